"""Reference mapping (scArches-style) and kNN label transfer: ground truth from the reference
itself (frozen weights, identical latents), known labels and exact feature bookkeeping."""

import warnings

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pyro
import pytest
import scipy.sparse as sp
import torch

import qbm_pyro
from qbm_pyro import datasets
from qbm_pyro.data import MinibatchLoader
from qbm_pyro.model import PADDED_KEY, MissingModalityWarning

SMALL = dict(n_latent=6, n_continuous=2, n_hidden=32, num_prior_samples=32)


def dense(x):
    return x.toarray() if sp.issparse(x) else np.asarray(x)


@pytest.fixture(scope="module")
def paul():
    adata = datasets.paul15_myeloid()
    rng = np.random.default_rng(0)
    return adata[rng.permutation(adata.n_obs)[:600]].copy()


@pytest.fixture(scope="module")
def two_batch_reference(paul):
    """Reference on 400 cells in batches a/b with batches in the encoders too (the harder case
    for 'frozen': the encoders then have batch columns)."""
    ref = paul[:400].copy()
    ref.obs["batch"] = np.where(np.arange(ref.n_obs) % 2 == 0, "a", "b")
    model = qbm_pyro.QBMVAE(ref, batch_key="batch", encode_covariates=True, seed=0, **SMALL)
    model.train(max_epochs=3, progress_bar=False)
    return model


@pytest.fixture(scope="module")
def cite_reference():
    """CITE-seq reference of a single batch (pbmc10k)."""
    mdata = datasets.pbmc_cite_2batch()
    ref = mdata[mdata.obs["batch"] == "pbmc10k"].copy()
    model = qbm_pyro.QBMVAE(ref, batch_key="batch", seed=0, **SMALL)
    model.train(max_epochs=2, progress_bar=False)
    query = mdata[mdata.obs["batch"] == "pbmc5k"].copy()
    return model, query


# ------------------------------------------------------------------ prepare_query_data


def test_prepare_reorders_pads_and_drops_features(paul, two_batch_reference):
    ref_names = list(paul.var_names)
    query = paul[400:450].copy()
    query = query[:, ::-1].copy()  # reversed order
    query = query[:, 5:].copy()  # the last 5 reference features are missing
    extra = ad.AnnData(sp.csr_matrix(np.ones((query.n_obs, 1), np.float32)), obs=query.obs[[]])
    extra.var_names = ["not_in_reference"]
    query = ad.concat([query, extra], axis=1, merge="first")
    before = dense(query.X).copy()

    prepared = qbm_pyro.QBMVAE.prepare_query_data(query, two_batch_reference)

    assert isinstance(prepared, ad.AnnData)
    assert list(prepared.var_names) == ref_names
    assert list(prepared.obs_names) == list(query.obs_names)
    padded = prepared.var[PADDED_KEY].to_numpy()
    assert padded.sum() == 5 and set(prepared.var_names[padded]) == set(ref_names[-5:])
    x = dense(prepared.X)
    assert (x[:, padded] == 0).all()
    truth = dense(paul[400:450].X)  # the same cells in the reference's order
    np.testing.assert_array_equal(x[:, ~padded], truth[:, ~padded])
    np.testing.assert_array_equal(dense(query.X), before)  # the query is not modified
    assert "not_in_reference" in query.var_names


def test_padded_features_are_left_out_of_the_likelihood(paul, two_batch_reference):
    query = paul[400:440, 10:].copy()
    query.obs["batch"] = "new"
    model = qbm_pyro.QBMVAE.load_query_data(query, two_batch_reference)
    padded = model.data.var[PADDED_KEY].to_numpy()
    np.testing.assert_array_equal(model.module.feature_masks["rna"].numpy(), ~padded)
    loader = MinibatchLoader(model.data, model.registry, batch_size=40, shuffle=False)
    batch = loader.batch(np.arange(40))
    model.module.eval()
    with torch.no_grad():
        trace = pyro.poutine.trace(model.module.model).get_trace(batch)
        fn, x = trace.nodes["x_rna"]["fn"], trace.nodes["x_rna"]["value"]
        poisoned = x.clone()
        poisoned[:, torch.from_numpy(padded)] = 50.0  # values the likelihood must not see
        assert torch.equal(fn.log_prob(x), fn.log_prob(poisoned))
        changed = x.clone()
        changed[:, np.flatnonzero(~padded)[:5]] += 7.0  # the observed features do count
        assert not torch.equal(fn.log_prob(x), fn.log_prob(changed))


def test_prepare_errors(paul, two_batch_reference, cite_reference):
    alien = paul[:20].copy()
    alien.var_names = [f"other{i}" for i in range(alien.n_vars)]
    with pytest.raises(ValueError, match="none of the reference's 240 features"):
        qbm_pyro.QBMVAE.prepare_query_data(alien, two_batch_reference)
    few = paul[:20, :100].copy()
    with pytest.warns(UserWarning, match=r"has 100 of the reference's 240 features \(42%"):
        qbm_pyro.QBMVAE.prepare_query_data(few, two_batch_reference)
    model, query = cite_reference
    with pytest.raises(ValueError, match=r"the query is an AnnData but the reference has 2 modalities"):
        qbm_pyro.QBMVAE.prepare_query_data(query["rna"].copy(), model)
    other = md.MuData({"atac": query["rna"].copy()})
    with pytest.raises(ValueError, match="the query has none of the reference's modalities"):
        qbm_pyro.QBMVAE.prepare_query_data(other, model)
    with pytest.raises(TypeError, match="reference must be a fitted QBMVAE or the folder"):
        qbm_pyro.QBMVAE.prepare_query_data(query, 3)
    untrained = qbm_pyro.QBMVAE(paul[:50].copy(), **SMALL)
    with pytest.raises(ValueError, match="the reference model is not trained"):
        qbm_pyro.QBMVAE.prepare_query_data(paul[50:60].copy(), untrained)
    no_batch = paul[400:420].copy()
    with pytest.raises(KeyError, match="the reference was fitted with batch_key 'batch'"):
        qbm_pyro.QBMVAE.load_query_data(no_batch, two_batch_reference)


# ------------------------------------------------------------------ load_query_data


def test_new_levels_frozen_weights_and_reference_cells_remapped(paul, two_batch_reference):
    ref = two_batch_reference
    # query: 40 reference cells of batch "a" (same batch) and 100 new cells of two new batches
    same = ref.data[ref.data.obs["batch"] == "a"][:40].copy()
    new = paul[400:500].copy()
    new.obs["batch"] = np.where(np.arange(100) < 50, "c", "d")
    query = ad.concat([same, new], merge="first")
    model = qbm_pyro.QBMVAE.load_query_data(query, ref, seed=1)

    assert model.registry.batch_categories["batch"] == ("a", "b", "c", "d")
    assert model.mapping_["new_levels"] == {"batch": ["c", "d"]}
    assert model.is_trained_ is False
    ref_state = ref.module.state_dict()
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    # weights of reference levels copied; new columns start at the mean of "a" and "b"
    w_old, w_new = ref_state["decoder.layers.0.0.weight"], before["decoder.layers.0.0.weight"]
    n_in = w_new.shape[1] - 4
    np.testing.assert_array_equal(w_new[:, : n_in + 2], w_old)
    mean = w_old[:, n_in:].mean(1)
    np.testing.assert_allclose(w_new[:, n_in + 2], mean, rtol=1e-6)
    np.testing.assert_allclose(w_new[:, n_in + 3], mean, rtol=1e-6)

    model.train(max_epochs=3, progress_bar=False)
    after = model.module.state_dict()
    changed = set()
    for key, value in after.items():
        diff = before[key] != value
        if key in ("encoders.rna.layers.0.0.weight", "decoder.layers.0.0.weight"):
            n_in = value.shape[1] - 4
            assert not diff[:, : n_in + 2].any(), key  # features and reference levels frozen
            assert diff[:, n_in + 2 :].any(), key  # the new levels' columns trained
            changed.add(key)
        elif key != "prior.log_z":  # log Z is re-estimated (same prior, same value below)
            assert not diff.any(), f"{key} changed although frozen"
    assert changed == {"encoders.rna.layers.0.0.weight", "decoder.layers.0.0.weight"}
    torch.testing.assert_close(after["prior.h"], ref_state["prior.h"], rtol=0, atol=0)

    latent = model.get_latent_representation()
    truth = ref.get_latent_representation()[ref.data.obs_names.get_indexer(same.obs_names)]
    np.testing.assert_allclose(latent[: same.n_obs], truth, rtol=1e-5, atol=1e-6)
    assert np.isfinite(latent).all() and latent.shape == (140, 8)


def test_single_batch_reference_missing_modality_and_saved_folder(cite_reference, tmp_path):
    model, query = cite_reference
    assert model.registry.batch_categories["batch"] == ("pbmc10k",)
    rna_only = md.MuData({"rna": query["rna"].copy()})
    rna_only.obs["batch"] = query.obs["batch"].to_numpy()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MissingModalityWarning)
        mapped = qbm_pyro.QBMVAE.load_query_data(rna_only, model)
    assert any(
        "200 of 200 lack 'prot'" in str(w.message) for w in caught if w.category is MissingModalityWarning
    )
    assert mapped.registry.batch_categories["batch"] == ("pbmc10k", "pbmc5k")
    assert mapped.data["prot"].n_obs == 0
    assert not (mapped.registry.rows["prot"] >= 0).any()
    mapped.train(max_epochs=2, progress_bar=False)
    latent = mapped.get_latent_representation()
    # ground truth: the frozen reference encoders, from RNA alone (batches do not reach the
    # encoders with the default encode_covariates=False)
    batch = MinibatchLoader(mapped.data, mapped.registry, shuffle=False).batch(np.arange(query.n_obs))
    batch["batch"] = torch.zeros_like(batch["batch"])
    with torch.no_grad():
        model.module.eval()
        post = model.module.encode(batch)
    truth = torch.cat([torch.sigmoid(post["logits"]), post["loc"]], -1).numpy()
    np.testing.assert_allclose(latent, truth, rtol=1e-5, atol=1e-6)

    model.save(tmp_path / "ref")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingModalityWarning)  # (checked above)
        from_folder = qbm_pyro.QBMVAE.load_query_data(rna_only, tmp_path / "ref")
        from_object = qbm_pyro.QBMVAE.load_query_data(rna_only, model)
    folder_state, object_state = from_folder.module.state_dict(), from_object.module.state_dict()
    assert folder_state.keys() == object_state.keys()
    for key, value in folder_state.items():
        torch.testing.assert_close(value, object_state[key], rtol=0, atol=0)
    np.testing.assert_allclose(from_folder.get_latent_representation(), latent, rtol=1e-5, atol=1e-6)


def test_protein_background_of_new_batch_trains(cite_reference):
    model, query = cite_reference
    mapped = qbm_pyro.QBMVAE.load_query_data(query, model)
    bg = mapped.module.protein_background.detach().clone()
    np.testing.assert_array_equal(bg[0], model.module.protein_background.detach()[0])
    np.testing.assert_array_equal(bg[1], bg[0])  # new level starts at the mean of the reference's
    mapped.train(max_epochs=2, progress_bar=False)
    after = mapped.module.protein_background.detach()
    assert torch.equal(after[0], bg[0]) and not torch.equal(after[1], bg[1])


def test_anndata_query_for_one_modality_mudata_reference(paul):
    ref = md.MuData({"rna": paul[:300].copy()})
    model = qbm_pyro.QBMVAE(ref, **SMALL)
    model.train(max_epochs=1, progress_bar=False)
    query = paul[300:360].copy()
    with pytest.warns(UserWarning, match="nothing is trained"):
        mapped = qbm_pyro.QBMVAE.load_query_data(query, model)
    assert mapped.mapping_["n_trainable"] == 0
    np.testing.assert_allclose(
        mapped.get_latent_representation(),
        model.get_latent_representation(md.MuData({"rna": query})),
        rtol=1e-5,
        atol=1e-6,
    )


def test_unfrozen_trains_everything(paul, two_batch_reference):
    query = paul[400:460].copy()
    query.obs["batch"] = "c"
    mapped = qbm_pyro.QBMVAE.load_query_data(query, two_batch_reference, freeze=False)
    before = mapped.module.encoders["rna"].layers[0][0].weight.detach().clone()
    mapped.train(max_epochs=2, progress_bar=False)
    n_in = before.shape[1] - 3
    assert (mapped.module.encoders["rna"].layers[0][0].weight.detach()[:, :n_in] != before[:, :n_in]).any()


def test_saved_models_keep_their_batch_levels(paul, two_batch_reference, tmp_path):
    ref = two_batch_reference
    ref.save(tmp_path / "ref")
    only_b = ref.data[ref.data.obs["batch"] == "b"].copy()  # setup alone would number "b" as 0
    loaded = qbm_pyro.QBMVAE.load(tmp_path / "ref", only_b)
    assert loaded.registry.batch_categories["batch"] == ("a", "b")
    assert (loaded.registry.batch_codes == 1).all()
    truth = ref.get_latent_representation()[ref.data.obs_names.get_indexer(only_b.obs_names)]
    np.testing.assert_allclose(loaded.get_latent_representation(), truth, rtol=1e-5, atol=1e-6)
    unknown = only_b.copy()
    unknown.obs["batch"] = "zzz"
    with pytest.raises(ValueError, match=r"levels the model was not trained on: \['zzz'\]"):
        qbm_pyro.QBMVAE.load(tmp_path / "ref", unknown)

    query = paul[400:460, 7:].copy()  # 7 features zero-padded
    query.obs["batch"] = "c"
    mapped = qbm_pyro.QBMVAE.load_query_data(query, ref)
    mapped.train(max_epochs=1, progress_bar=False)
    mapped.save(tmp_path / "query")
    again = qbm_pyro.QBMVAE.load(tmp_path / "query", mapped.data)
    assert again.registry.batch_categories["batch"] == ("a", "b", "c")
    assert torch.equal(again.module.feature_masks["rna"], mapped.module.feature_masks["rna"])
    np.testing.assert_array_equal(again.get_latent_representation(), mapped.get_latent_representation())


# ------------------------------------------------------------------ transfer_labels


def _blobs(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.choice(["x", "y", "z"], n)
    centres = {"x": [0, 0], "y": [6, 0], "z": [0, 6]}
    rep = np.array([centres[label] for label in labels]) + rng.normal(0, 0.5, (n, 2))
    return rep, labels


def test_transfer_labels_known_labels_anndata_and_mudata():
    ref_rep, ref_labels = _blobs(300, 0)
    q_rep, q_labels = _blobs(100, 1)
    ref = ad.AnnData(
        np.zeros((300, 1)), obs=pd.DataFrame({"t": ref_labels}, index=[f"r{i}" for i in range(300)])
    )
    ref.obsm["X_qbm"] = ref_rep
    ref.obs.loc[ref.obs_names[:30], "t"] = np.nan  # unlabelled reference cells do not vote
    query = ad.AnnData(np.zeros((100, 1)))
    query.obsm["X_qbm"] = q_rep
    votes_only = qbm_pyro.tl.transfer_labels(query, ref, "t", distance_aware=False, copy=True)
    u = votes_only.obs["t_uncertainty"].to_numpy()
    assert ((u >= 0) & (u < 1e-6)).all()  # well separated: every neighbour agrees
    qbm_pyro.tl.transfer_labels(query, ref, "t")
    assert (query.obs["t_pred"].astype(str).to_numpy() == q_labels).mean() == 1.0
    u = query.obs["t_uncertainty"].to_numpy()  # + distance: a query from the reference's blobs
    assert ((u >= 0) & (u < 0.2)).all() and np.median(u) < 1e-6
    # a query cell half-way between x and y is uncertain
    mid = ad.AnnData(np.zeros((1, 1)))
    mid.obsm["X_qbm"] = np.array([[3.0, 0.0]])
    with pytest.warns(UserWarning, match="1 of 1 query cells lie farther from the reference"):
        out = qbm_pyro.tl.transfer_labels(mid, ref, "t", n_neighbors=30, copy=True)
    assert "t_pred" not in mid.obs and out.obs["t_uncertainty"].iloc[0] > 0.2
    mquery = md.MuData({"rna": ad.AnnData(np.zeros((100, 1)))})
    mquery.obsm["X_qbm"] = q_rep
    qbm_pyro.tl.transfer_labels(mquery, ref, "t")
    assert (mquery.obs["t_pred"].astype(str).to_numpy() == q_labels).all()


def test_transfer_labels_errors():
    ref_rep, ref_labels = _blobs(20, 0)
    ref = ad.AnnData(
        np.zeros((20, 1)), obs=pd.DataFrame({"t": ref_labels}, index=[f"r{i}" for i in range(20)])
    )
    ref.obsm["X_qbm"] = ref_rep
    query = ad.AnnData(np.zeros((5, 1)))
    with pytest.raises(KeyError, match=r"label column 'cell_type' not in reference\.obs"):
        qbm_pyro.tl.transfer_labels(query, ref, "cell_type")
    with pytest.raises(KeyError, match=r"query\.obsm has no 'X_qbm'"):
        qbm_pyro.tl.transfer_labels(query, ref, "t")
    query.obsm["X_qbm"] = np.zeros((5, 3))
    with pytest.raises(ValueError, match="they are not latents of one model"):
        qbm_pyro.tl.transfer_labels(query, ref, "t")
    query.obsm["X_qbm"] = np.zeros((5, 2))
    with pytest.raises(ValueError, match=r"n_neighbors must be an int in \[1, 20\]"):
        qbm_pyro.tl.transfer_labels(query, ref, "t", n_neighbors=21)


@pytest.mark.slow  # 20 epochs on real data
def test_map_and_transfer_real_labels(paul):
    """Map held-out paul15 cells (a new batch) and transfer the cell types: far above chance."""
    ref = paul[:450].copy()
    ref.obs["batch"] = "ref"
    model = qbm_pyro.QBMVAE(ref, batch_key="batch", seed=0, **SMALL)
    model.train(max_epochs=15, progress_bar=False)
    ref.obsm["X_qbm"] = model.get_latent_representation()
    query = paul[450:].copy()
    query.obs["batch"] = "query"
    mapped = qbm_pyro.QBMVAE.load_query_data(query, model)
    mapped.train(max_epochs=5, progress_bar=False)
    query.obsm["X_qbm"] = mapped.get_latent_representation()
    qbm_pyro.tl.transfer_labels(query, ref, "cell_type")
    accuracy = (query.obs["cell_type_pred"].astype(str) == query.obs["cell_type"].astype(str)).mean()
    majority = query.obs["cell_type"].value_counts(normalize=True).max()
    print(f"paul15 mapped label transfer: accuracy {accuracy:.3f}, majority class {majority:.3f}")
    assert accuracy > majority + 0.2, (accuracy, majority)


# ------------------------------------------------------------------ the benchmark's report section


def test_mapping_report_section(tmp_path):
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    mapping_bench = pytest.importorskip("benchmarks.mapping")
    assert mapping_bench.report_section(tmp_path) == []  # no results, no section
    rows = [
        {"split": "s", "method": "qbm", "seed": seed, "accuracy": acc, "seconds": 1.0}
        for seed, acc in enumerate([0.9, 1.0])
    ]
    meta = {"ref_epochs": 10, "query_epochs": 5, "seeds": [0, 1], "settings": "x"}
    (tmp_path / "mapping.json").write_text(json.dumps({"meta": meta, "rows": rows}))
    text = "\n".join(mapping_bench.report_section(tmp_path))
    assert "| qbm (n=2) | 0.950 ± 0.071 |" in text  # mean ± sample sd of 0.9 and 1.0
    assert "Reference 10 epochs, query 5 epochs" in text
