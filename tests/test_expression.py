"""Denoised values and differential expression (issue 12, points 4 and 5).

Ground truth: the decoder's own distributions (denoised values must be their parts), exact
numpy statistics of the counts (raw columns), scvi-tools' FDR rule on a hand-made example, and
the known cell types of paul15 (markers and scanpy's Wilcoxon ranking).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

import qbm_pyro
from qbm_pyro import datasets
from qbm_pyro.data import REGISTRY_KEYS as K
from qbm_pyro.model import estimate_pseudocounts_offset, fdr_de_prediction

torch.set_num_threads(1)

SMALL = dict(n_latent=8, n_continuous=2, n_hidden=32)
QUICK = dict(max_epochs=2, batch_size=64, progress_bar=False)


@pytest.fixture(scope="module")
def cite_model():
    data = datasets.pbmc_cite_2batch()
    model = qbm_pyro.QBMVAE(data, batch_key="batch", seed=1, **SMALL)
    model.train(**QUICK)
    return data, model


@pytest.fixture(scope="module")
def paul15_model():
    adata = datasets.paul15_myeloid()
    model = qbm_pyro.QBMVAE(adata, n_latent=16, n_continuous=4, n_hidden=64, seed=0)
    model.train(max_epochs=10, progress_bar=False)
    return adata, model


def _first_batch(model, data, n=50):
    loader = model._loader(data, np.arange(n), batch_size=n)
    return next(iter(loader))


# ---------------------------------------------------------------------- denoised values


def test_rna_keeps_names_and_sums_to_library_size(cite_model):
    data, model = cite_model
    expr = model.get_normalized_expression(library_size=1e4)
    assert isinstance(expr, pd.DataFrame)
    assert list(expr.index) == list(data.obs_names)
    assert list(expr.columns) == list(data["rna"].var_names)
    np.testing.assert_allclose(expr.sum(1), 1e4, rtol=1e-4)
    array = model.get_normalized_expression(return_pandas=False, library_size=1e4)
    np.testing.assert_array_equal(array, expr.to_numpy())


def test_posterior_samples_average_and_are_seeded(cite_model):
    _, model = cite_model
    mean = model.get_normalized_expression(return_pandas=False)
    draws = model.get_normalized_expression(n_samples=20, return_pandas=False, seed=3)
    again = model.get_normalized_expression(n_samples=20, return_pandas=False, seed=3)
    other = model.get_normalized_expression(n_samples=20, return_pandas=False, seed=4)
    np.testing.assert_array_equal(draws, again)
    assert not np.array_equal(draws, other)
    assert not np.array_equal(draws, mean)
    np.testing.assert_allclose(draws.sum(1), 1.0, rtol=1e-4)
    # the average of draws is near the decoded posterior mean (not equal: decoding is nonlinear)
    assert np.corrcoef(np.log(draws).ravel(), np.log(mean).ravel())[0, 1] > 0.95


def test_transform_batch_decodes_as_one_batch_and_averages_a_list(cite_model):
    data, model = cite_model
    levels = list(model.registry.batch_categories["batch"])
    one = [model.get_normalized_expression(transform_batch=b, return_pandas=False) for b in levels]
    both = model.get_normalized_expression(transform_batch=levels, return_pandas=False)
    np.testing.assert_allclose(both, (one[0] + one[1]) / 2, rtol=1e-5, atol=1e-9)
    own = model.get_normalized_expression(return_pandas=False)
    in_first = (data.obs["batch"].astype(str) == levels[0]).to_numpy()
    np.testing.assert_allclose(own[in_first], one[0][in_first], rtol=1e-5, atol=1e-9)
    assert not np.allclose(own[~in_first], one[0][~in_first])
    with pytest.raises(ValueError, match="not a level of obs"):
        model.get_normalized_expression(transform_batch="nope")


def test_protein_is_the_foreground_part_of_the_decoder(cite_model):
    data, model = cite_model
    prot = model.get_normalized_expression(modality="prot")
    assert list(prot.columns) == list(data["prot"].var_names)
    batch = _first_batch(model, data)
    with torch.no_grad():
        mixture = model.module.decode(model.module.posterior_latent(batch), batch)[K.PROTEIN]
        expected = (1 - torch.sigmoid(mixture.background_logits)) * mixture.mean_foreground
    np.testing.assert_allclose(prot.to_numpy()[:50], expected.numpy(), rtol=1e-5)
    assert (expected <= mixture.mean).all()  # the background part is left out
    by_kind = model.get_normalized_expression(modality="protein")
    pd.testing.assert_frame_equal(prot, by_kind)


def test_atac_is_an_accessibility_probability():
    mdata = datasets.pbmc_rna_atac_100()
    model = qbm_pyro.QBMVAE(mdata, seed=0, **SMALL)
    model.train(**QUICK)
    acc = model.get_normalized_expression(modality="atac")
    assert list(acc.columns) == list(mdata["atac"].var_names)
    values = acc.to_numpy()
    assert ((values > 0) & (values < 1)).all()
    batch = _first_batch(model, mdata)
    with torch.no_grad():
        hidden = model.module.decoder(
            model.module.posterior_latent(batch), batch[K.BATCH_KEY].new_zeros(50, 0)
        )
        expected = torch.sigmoid(model.module.decoder_heads["atac"](hidden))
    np.testing.assert_allclose(values[:50], expected.numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="not one of this model's modalities"):
        model.get_normalized_expression(modality="protein")


# ---------------------------------------------------------------------- differential expression


def test_fdr_rule_and_pseudocounts_match_scvi_tools():
    proba = np.array([0.99, 0.2, 0.97, 0.5, 0.96])
    # cumulative mean of 1 - p in decreasing order: .01, .02, .0267, .145, .36
    assert fdr_de_prediction(proba, 0.05).tolist() == [True, False, True, False, True]
    assert fdr_de_prediction(proba, 0.2).tolist() == [True, False, True, True, True]
    scvi_diff = pytest.importorskip("scvi.model.base._differential")
    rng = np.random.default_rng(0)
    a, b = rng.random((50, 6)), rng.random((50, 6))
    za, zb = np.array([1, 0, 0, 1, 0, 0], bool), np.zeros(6, bool)
    ours = estimate_pseudocounts_offset(a, b, za, zb)
    theirs = scvi_diff.estimate_pseudocounts_offset(a, b, za, zb, quantile=0.9)
    assert ours == pytest.approx(float(theirs))


def test_de_columns_raw_statistics_and_order(paul15_model):
    adata, model = paul15_model
    de = model.differential_expression(groupby="cell_type", group1="Erythrocyte", n_samples=500, n_pairs=2000)
    assert len(de) == adata.n_vars and set(de.index) == set(adata.var_names)
    for column in ("lfc_mean", "lfc_median", "lfc_std", "proba_de", "bayes_factor", "is_de_fdr_0.05"):
        assert column in de
    assert (de["group1"] == "Erythrocyte").all() and (de["group2"] == "Rest").all()
    assert de["proba_de"].is_monotonic_decreasing
    np.testing.assert_allclose(de["proba_not_de"], 1 - de["proba_de"])
    x = adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)
    ery = (adata.obs["cell_type"] == "Erythrocyte").to_numpy()
    raw = de.loc[adata.var_names]
    np.testing.assert_allclose(raw["raw_mean1"], x[ery].mean(0), rtol=1e-5)
    np.testing.assert_allclose(raw["raw_mean2"], x[~ery].mean(0), rtol=1e-5)
    np.testing.assert_allclose(raw["non_zeros_proportion1"], (x[ery] > 0).mean(0), rtol=1e-6)
    normalized = x / x.sum(1, keepdims=True) * 1e4
    np.testing.assert_allclose(raw["raw_normalized_mean2"], normalized[~ery].mean(0), rtol=1e-4)
    again = model.differential_expression(
        groupby="cell_type", group1="Erythrocyte", n_samples=500, n_pairs=2000
    )
    pd.testing.assert_frame_equal(de, again)  # seeded


def _up_ranking(de: pd.DataFrame, group: str) -> list[str]:
    d = de[(de["group1"] == group) & (de["lfc_mean"] > 0)]
    return list(d.sort_values(["proba_de", "lfc_mean"], ascending=False, kind="stable").index)


@pytest.mark.slow  # differential expression over every paul15 group (minutes)
def test_markers_come_out_and_agree_with_wilcoxon(paul15_model):
    sc = pytest.importorskip("scanpy")
    adata, model = paul15_model
    de = model.differential_expression(groupby="cell_type", n_samples=2000, n_pairs=5000)
    assert set(de["group1"]) == set(adata.obs["cell_type"])
    erythroid = _up_ranking(de, "Erythrocyte")[:20]
    assert len({"Hba-a2", "Car2", "Klf1", "Car1", "Ermap", "Rhd"} & set(erythroid)) >= 3
    neutrophil = _up_ranking(de, "Neutrophils")[:20]
    assert len({"Mpo", "Elane", "Prtn3", "Ctsg"} & set(neutrophil)) >= 2
    reference = adata.copy()
    sc.pp.normalize_total(reference, target_sum=1e4)
    sc.pp.log1p(reference)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.tl.rank_genes_groups(reference, "cell_type", method="wilcoxon")
    names = reference.uns["rank_genes_groups"]["names"]
    for group in ("Erythrocyte", "Neutrophils", "Monocytes"):
        overlap = set(_up_ranking(de, group)[:20]) & set(names[group][:20])
        assert len(overlap) >= 8, (group, overlap)  # of 20, among 240 genes (chance: ~1.7)


def test_vanilla_mode_group2_and_qbm_states(paul15_model):
    adata, model = paul15_model
    de = model.differential_expression(
        groupby="cell_type", group1="Erythrocyte", group2="Neutrophils", mode="vanilla", n_samples=300
    )
    assert {"proba_m1", "proba_m2", "bayes_factor"} <= set(de) and "is_de_fdr_0.05" not in de
    assert (de["comparison"] == "Erythrocyte vs Neutrophils").all()
    assert de["bayes_factor"].is_monotonic_decreasing
    assert de.loc["Car2", "proba_m1"] > 0.9 and de.loc["Elane", "proba_m1"] < 0.1
    data = adata.copy()
    data.obs["qbm_state"] = pd.Categorical(np.where(data.obs["cell_type"] == "Erythrocyte", "s0", "s1"))
    by_state = model.differential_expression(data, groupby="qbm_state", group1="s0", n_samples=300)
    assert by_state.loc["Car2", "lfc_mean"] > 1
    with pytest.raises(ValueError, match="not an obs column"):
        model.differential_expression(groupby="nope")
    with pytest.raises(ValueError, match="not a value of obs"):
        model.differential_expression(groupby="cell_type", group1="T cells")


def test_batch_correction_pairs_within_batches(cite_model):
    data, model = cite_model
    data = data.copy()
    data.obs["half"] = np.where(np.arange(data.n_obs) % 2 == 0, "a", "b")
    de = model.differential_expression(
        data, groupby="half", group1="a", batch_correction=True, n_samples=200, n_pairs=400
    )
    assert len(de) == data["rna"].n_vars and np.isfinite(de["lfc_mean"]).all()
    prot = model.differential_expression(data, groupby="half", group1="a", modality="prot", n_samples=100)
    assert list(sorted(prot.index)) == sorted(data["prot"].var_names)
