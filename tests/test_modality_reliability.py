"""``tl.modality_reliability`` and its use by ``tl.transfer_labels``: query cells that lack a
modality get the uncertainty their modalities earn on the reference."""

import warnings

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest

import qbm_pyro
from qbm_pyro import datasets
from qbm_pyro.model import MissingModalityWarning
from qbm_pyro.tl._reliability import MODALITIES_KEY, RELIABILITY_KEY

SMALL = dict(n_latent=6, n_continuous=2, n_hidden=32, num_prior_samples=32)


def _reference(n=200, seed=0):
    """Two labelled blobs in a 3-D latent, cells named r0, r1, ..."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(["a", "b"], n // 2)
    rep = np.where(labels[:, None] == "a", 0.0, 4.0) * np.array([1.0, 0, 0]) + rng.normal(0, 0.4, (n, 3))
    ref = ad.AnnData(np.zeros((n, 1)), obs=pd.DataFrame({"t": labels}, index=[f"r{i}" for i in range(n)]))
    ref.obsm["X_qbm"] = rep
    return ref


def _query(ref, rng):
    """30 cells with every modality, 30 from the 'good' pattern, 30 from the 'bad' one; each
    query cell is a copy of a reference cell mapped as its pattern maps reference cells."""
    pick = rng.choice(ref.n_obs, 90, replace=False)
    rep = ref.obsm["X_qbm"][pick].copy()
    rep[30:60] += rng.normal(0, 0.05, (30, 3))  # good: places cells where they belong
    rep[60:] = np.array([0.0, 0.0, 0.0]) + rng.normal(0, 0.4, (30, 3))  # bad: everything onto blob a
    query = ad.AnnData(np.zeros((90, 1)), obs=pd.DataFrame(index=[f"q{i}" for i in range(90)]))
    query.obsm["X_qbm"] = rep
    query.obs[MODALITIES_KEY] = pd.Categorical(["prot+rna"] * 30 + ["rna"] * 30 + ["prot"] * 30)
    sub = rng.choice(ref.n_obs, 150, replace=False)
    full = ref.obsm["X_qbm"][sub]
    query.uns[RELIABILITY_KEY] = {
        "reference_obs_names": np.asarray(ref.obs_names[sub]),
        "full": full,
        "reduced": {
            "rna": full + rng.normal(0, 0.05, full.shape),
            "prot": np.zeros_like(full) + rng.normal(0, 0.4, full.shape),
        },
    }
    return query, ref.obs["t"].to_numpy()[pick]


def test_transfer_labels_uncertainty_follows_the_modalities_reliability():
    ref = _reference()
    query, truth = _query(ref, np.random.default_rng(1))
    plain = query.copy()
    del plain.uns[RELIABILITY_KEY]
    for aware in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the bad cells lie far off (without estimate)
            before = qbm_pyro.tl.transfer_labels(plain, ref, "t", distance_aware=aware, copy=True)
        after = qbm_pyro.tl.transfer_labels(query, ref, "t", distance_aware=aware, copy=True)
        assert (after.obs["t_pred"] == before.obs["t_pred"]).all()  # the same labels
        u0, u1 = before.obs["t_uncertainty"].to_numpy(), after.obs["t_uncertainty"].to_numpy()
        right = after.obs["t_pred"].astype(str).to_numpy() == truth
        acc = after.obs["t_modality_accuracy"].to_numpy()
        # every modality: untouched, accuracy 1
        np.testing.assert_array_equal(u1[:30], u0[:30])
        assert (acc[:30] == 1).all()
        # the bad pattern: half of its reference cells go wrong; its query cells, half wrong too,
        # are no longer confident (vote-only: every neighbour is of blob a)
        assert 0.35 < acc[60] < 0.65 and (acc[60:] == acc[60]).all()
        assert 0.3 < right[60:].mean() < 0.7 and u0[60:].max() < 0.05 and u1[60:].min() > 0.3
        # the good pattern: estimated accurate, stays confident
        assert acc[30] > 0.95 and u1[30:60].max() < 0.1


def test_transfer_labels_reliability_without_reference_labels_of_those_cells():
    """Subsampled cells not in the reference given (renamed): the label-free neighbourhood
    agreement caps the confidence instead."""
    ref = _reference()
    query, _ = _query(ref, np.random.default_rng(2))
    query.uns[RELIABILITY_KEY]["reference_obs_names"] = np.array(
        [f"other{i}" for i in range(150)], dtype=object
    )
    qbm_pyro.tl.transfer_labels(query, ref, "t", distance_aware=False)
    acc = query.obs["t_modality_accuracy"].to_numpy()
    u = query.obs["t_uncertainty"].to_numpy()
    assert acc[60] < 0.2 and (u[60:] >= 1 - acc[60] - 1e-12).all()  # bad: no neighbourhood kept
    assert acc[30] > acc[60] + 0.3 and (u[30:60] >= 1 - acc[30] - 1e-12).all()


@pytest.fixture(scope="module")
def cite():
    mdata = datasets.pbmc_cite_2batch()
    ref = mdata[mdata.obs["batch"] == "pbmc10k"].copy()
    model = qbm_pyro.QBMVAE(ref, batch_key="batch", seed=0, **SMALL)
    model.train(max_epochs=2, progress_bar=False)
    query = mdata[mdata.obs["batch"] == "pbmc5k"].copy()
    return model, ref, query


def test_modality_reliability_masks_as_a_query_lacking_the_modality(cite):
    """The reduced latents are exactly the latents of the reference cells given without protein
    (as a query that lacks it is encoded); cells with every modality are recorded as such."""
    model, ref, query = cite
    rna_only = md.MuData({"rna": query["rna"].copy()})
    rna_only.obs["batch"] = query.obs["batch"].to_numpy()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MissingModalityWarning)
        mapped = qbm_pyro.QBMVAE.load_query_data(rna_only, model)
    assert any(w.category is MissingModalityWarning for w in caught)
    holder = ad.AnnData(np.zeros((mapped.data.n_obs, 1)))
    holder.obs_names = mapped.data.obs_names
    qbm_pyro.tl.modality_reliability(holder, mapped, model, n_cells=50, seed=3)
    assert (holder.obs[MODALITIES_KEY] == "rna").all()
    info = holder.uns[RELIABILITY_KEY]
    names = info["reference_obs_names"]
    assert len(names) == 50 and set(info["reduced"]) == {"rna"}
    sub = ref[list(names)].copy()
    np.testing.assert_allclose(info["full"], model.get_latent_representation(sub), atol=1e-5)
    sub_rna = md.MuData({"rna": sub["rna"].copy()})
    sub_rna.obs["batch"] = sub.obs["batch"].to_numpy()
    prepared = qbm_pyro.QBMVAE.prepare_query_data(sub_rna, model)
    expected = model.get_latent_representation(prepared)
    np.testing.assert_allclose(info["reduced"]["rna"], expected, atol=1e-5)
    assert not np.allclose(info["reduced"]["rna"], info["full"], atol=1e-3)
    # a query with every modality: no pattern to estimate
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # no new batch level to train
        full = qbm_pyro.QBMVAE.load_query_data(query, model)
    whole = ad.AnnData(np.zeros((full.data.n_obs, 1)))
    whole.obs_names = full.data.obs_names
    qbm_pyro.tl.modality_reliability(whole, full, model, n_cells=20)
    assert info["reduced"] and whole.uns[RELIABILITY_KEY]["reduced"] == {}
    with pytest.raises(ValueError, match="does not hold query_model's cells"):
        qbm_pyro.tl.modality_reliability(whole[:5].copy(), full, model)
    with pytest.raises(ValueError, match="n_cells"):
        qbm_pyro.tl.modality_reliability(whole, full, model, n_cells=1)


def _cite_types(mdata) -> np.ndarray:
    """Coarse protein-gated types (as benchmarks/mapping.py's cite_labels)."""
    markers = {"T": "CD3", "B": "CD19", "monocyte": "CD14", "NK": "CD56"}
    x = mdata["prot"].X
    x = np.log1p(x.toarray() if hasattr(x, "toarray") else np.asarray(x))
    scores = (x - x.mean(1, keepdims=True))[
        :, [list(mdata["prot"].var_names).index(m) for m in markers.values()]
    ]
    scores = (scores - scores.mean(0)) / scores.std(0)
    return np.asarray(list(markers))[scores.argmax(1)]


@pytest.mark.slow
def test_protein_only_query_uncertain_rna_only_confident_on_cite():
    """End to end on the bundled CITE-seq set (benchmarks/missing_modality.py in small): a
    protein-only query maps near chance and becomes uncertain; an RNA-only one stays confident."""
    mdata = datasets.pbmc_cite_2batch()
    ref = mdata[mdata.obs["batch"] == "pbmc10k"].copy()
    query = mdata[mdata.obs["batch"] == "pbmc5k"].copy()
    ref.obs["cell_type"] = _cite_types(ref)
    truth = _cite_types(query)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = qbm_pyro.QBMVAE(ref, batch_key="batch", seed=0)
        model.train(max_epochs=60, progress_bar=False)
    ref.obsm["X_qbm"] = model.get_latent_representation()
    mean_u = {}
    for name in ("rna", "prot"):
        variant = md.MuData({name: query[name].copy()})
        variant.obs["batch"] = query.obs["batch"].to_numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mapped = qbm_pyro.QBMVAE.load_query_data(variant, model)
            mapped.train(max_epochs=1, progress_bar=False)  # the encoders are frozen: latent as is
            variant.obsm["X_qbm"] = mapped.get_latent_representation()
        qbm_pyro.tl.modality_reliability(variant, mapped, model)
        qbm_pyro.tl.transfer_labels(variant, ref, "cell_type", distance_aware=False)
        accuracy = (variant.obs["cell_type_pred"].astype(str).to_numpy() == truth).mean()
        mean_u[name] = (accuracy, variant.obs["cell_type_uncertainty"].mean())
    (acc_rna, u_rna), (acc_prot, u_prot) = mean_u["rna"], mean_u["prot"]
    assert acc_rna > 0.8 and u_rna < 0.2
    assert acc_prot < 0.7 and u_prot > 0.3
    # mean confidence within 0.15 of the accuracy for both
    assert abs((1 - u_rna) - acc_rna) < 0.15 and abs((1 - u_prot) - acc_prot) < 0.15
