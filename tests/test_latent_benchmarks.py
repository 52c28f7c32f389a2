"""The latent benchmarks' own machinery (no long training): the information measures and variants of
``benchmarks/latent_variants.py``, ``quality.py``'s re-scoring of saved fits (``--reuse``,
``--replace``) and the reference-PCA mapping row."""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore", category=UserWarning, module="mudata")

variants_bench = pytest.importorskip("benchmarks.latent_variants")


def test_binary_information_is_zero_for_inactive_units_and_one_bit_for_a_crisp_balanced_unit():
    rng = np.random.default_rng(0)
    n = 4000
    crisp = np.where(rng.random(n) < 0.5, 1e-9, 1 - 1e-9)  # on in half the cells, no doubt
    stuck = np.full(n, 0.999)  # the same posterior everywhere (crisp but uninformative)
    fuzzy = np.full(n, 0.5)  # the same posterior everywhere (fuzzy)
    half = np.where(rng.random(n) < 0.5, 0.25, 0.75)  # informative but fuzzy
    info = variants_bench.binary_information(np.c_[crisp, stuck, fuzzy, half])
    h = -(0.25 * np.log2(0.25) + 0.75 * np.log2(0.75))  # entropy of Bernoulli(1/4)
    # I = H(E[q]) - E[H(q)]: E[q] is ~1/2 for `crisp` and `half`
    np.testing.assert_allclose(info, [1.0, 0.0, 0.0, 1.0 - h], atol=2e-3)


def test_continuous_information_is_the_gaussian_channel_capacity():
    rng = np.random.default_rng(1)
    loc = np.c_[rng.normal(0, 3.0, 20000), np.full(20000, 0.7)]
    scale = np.c_[np.full(20000, 1.0), np.full(20000, 0.5)]
    info = variants_bench.continuous_information(loc, scale)
    np.testing.assert_allclose(info, [0.5 * np.log2(1 + 9.0), 0.0], rtol=0.02, atol=1e-9)


def test_variants_balance_parts_and_drop_inactive_units():
    rng = np.random.default_rng(2)
    n = 500
    q = np.c_[rng.uniform(0.01, 0.99, (n, 3)), np.full((n, 2), 0.5)]  # 3 active, 2 inactive units
    logits = np.log(q / (1 - q))
    loc, scale = rng.normal(0, 2.0, (n, 4)), np.full((n, 4), 0.5)
    out = variants_bench.variants(logits, loc, scale)
    np.testing.assert_allclose(out["joint (today)"], np.c_[q, loc])
    balanced = out["parts at unit total variance"]
    np.testing.assert_allclose(balanced[:, :5].var(0).sum(), 1.0)
    np.testing.assert_allclose(balanced[:, 5:].var(0).sum(), 1.0)
    np.testing.assert_allclose(out["active probs (>= 0.1 bit) + gaussian"], np.c_[q[:, :3], loc])


def test_latent_variants_report_section(tmp_path):
    assert variants_bench.report_section(tmp_path) == []
    rows = [
        {"dataset": "paul15", "seed": s, "variant": "joint (today)", "knn_accuracy": a, "ari": 0.3}
        for s, a in enumerate([0.8, 0.9])
    ]
    (tmp_path / "latent_variants.json").write_text(json.dumps({"rows": rows}))
    text = "\n".join(variants_bench.report_section(tmp_path))
    assert "| joint (today) | 0.850 ± 0.071 | 0.300 ± 0.000 |" in text


def test_quality_rescores_a_saved_fit_and_refuses_other_settings(tmp_path):
    import qbm_pyro
    from benchmarks import quality

    data, _, batch_key, kwargs = quality.load("cite")
    settings = dict(quality.METHODS["qbm"])
    model = qbm_pyro.QBMVAE(data, batch_key=batch_key, seed=0, **kwargs, **settings)
    model.train(max_epochs=1, progress_bar=False)
    model.save(tmp_path / "fits" / "cite" / "seed0")
    row = quality.run("cite", "qbm", 0, epochs=1, latent_dir=None, reuse=tmp_path / "fits")
    assert row["reused_fit"] == str(tmp_path / "fits" / "cite" / "seed0")
    latent = model.get_latent_representation()
    expected = quality.score(latent, data, None, batch_key, 0)["batch_mixing"]
    assert row["batch_mixing"] == pytest.approx(expected)
    assert quality.saved_fit(tmp_path / "fits", "cite", "qbm", 1) is None  # no such seed: refit
    # a fit saved under another method's name is not taken for it
    (tmp_path / "fits" / "qbm_cov" / "cite").mkdir(parents=True)
    (tmp_path / "fits" / "cite" / "seed0").rename(tmp_path / "fits" / "qbm_cov" / "cite" / "seed0")
    with pytest.raises(ValueError, match="other settings"):
        quality.run("cite", "qbm_cov", 0, epochs=1, latent_dir=None, reuse=tmp_path / "fits")


def test_quality_replace_reruns_only_the_chosen_rows(tmp_path, monkeypatch):
    from benchmarks import quality

    out = tmp_path / "quality.json"
    old = [
        {"dataset": "cite", "method": "qbm", "seed": 0, "batch_mixing": 0.1},
        {"dataset": "cite", "method": "qbm", "seed": 1, "batch_mixing": 0.2},
        {"dataset": "cite", "method": "gaussian", "seed": 0, "batch_mixing": 0.3},
    ]
    out.with_suffix(".jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    out.write_text(json.dumps({"meta": {"note": "earlier"}, "rows": old}))
    calls = []

    def fake_run(dataset, method, seed, epochs, latent_dir, reuse):
        calls.append((dataset, method, seed))
        return {"dataset": dataset, "method": method, "seed": seed, "batch_mixing": 0.9}

    monkeypatch.setattr(quality, "run", fake_run)
    argv = ["--datasets", "cite", "--methods", "qbm", "--seeds", "0", "--out", str(out)]
    quality.main([*argv, "--note", "now"])
    assert calls == []  # without --replace a finished row is skipped
    quality.main([*argv, "--replace"])
    assert calls == [("cite", "qbm", 0)]
    result = json.loads(out.read_text())
    kept = {(r["method"], r["seed"]): r["batch_mixing"] for r in result["rows"]}
    assert kept == {("qbm", 0): 0.9, ("qbm", 1): 0.2, ("gaussian", 0): 0.3}
    assert result["meta"]["note"].startswith("earlier now")


def test_reference_pca_input_is_log_normalised_counts():
    import anndata as ad
    import scanpy as sc
    import scipy.sparse as sp

    mapping_bench = pytest.importorskip("benchmarks.mapping")
    rng = np.random.default_rng(3)
    counts = rng.poisson(2.0, (30, 12)).astype(np.float32)
    adata = ad.AnnData(sp.csr_matrix(counts))
    expected = adata.copy()
    sc.pp.normalize_total(expected, target_sum=1e4)
    sc.pp.log1p(expected)
    np.testing.assert_allclose(mapping_bench._log_normalised_rna(adata), expected.X.toarray(), rtol=1e-5)
    assert adata.X.sum() == counts.sum()  # the data is not modified


def test_resolution_profile_recovers_separated_groups_and_the_grid_mean_is_its_mean():
    rng = np.random.default_rng(3)
    centres = np.array([[0.0, 0.0], [40.0, 0.0], [0.0, 40.0]])
    labels = np.repeat(["a", "b", "c"], 100)
    latent = centres[np.repeat(np.arange(3), 100)] + rng.normal(0, 1.0, (300, 2))
    profile = variants_bench.resolution_profile(latent, labels, seed=0, leiden_seeds=2)
    assert [p["resolution"] for p in profile] == list(variants_bench.RESOLUTIONS)
    assert profile[0]["ari"] == pytest.approx(1.0) and profile[0]["n_clusters"] == 3
    # finer resolutions split the groups: never better than the exact partition
    assert all(p["ari"] <= 1.0 + 1e-12 and p["n_clusters"] >= 3 for p in profile)
    grid = variants_bench.clustering_profile(latent, labels, seed=0, leiden_seeds=2)
    assert grid["ari_grid"] == pytest.approx(np.mean([p["ari"] for p in profile]))
    assert grid["clusters_grid"] == [p["n_clusters_first"] for p in profile]
    # shuffled labels: no agreement at any resolution
    shuffled = variants_bench.resolution_profile(latent, rng.permutation(labels), seed=0, leiden_seeds=1)
    assert max(p["ari"] for p in shuffled) < 0.05


def test_leiden_resolutions_report_and_label_alignment(tmp_path):
    import pandas as pd

    from benchmarks import leiden_resolutions as bench

    assert bench.report_section(tmp_path) == []
    profile = [{"resolution": r, "ari": 0.5, "nmi": 0.6, "n_clusters": 4.0} for r in (0.1, 0.2)]
    rows = [{"dataset": "paul15", "method": "qbm", "seed": s, "profile": profile} for s in (0, 1)]
    meta = {"resolutions": [0.1, 0.2]}
    (tmp_path / "leiden_resolutions.json").write_text(json.dumps({"rows": rows, "meta": meta}))
    text = "\n".join(bench.report_section(tmp_path))
    assert "| QBM-VAE (defaults) | 2 | 0.500 ± 0.000 (4.0) | 0.500 ± 0.000 (4.0) | 0.500 ± 0.000 |" in text

    class Data:
        obs = pd.DataFrame({"type": ["x", "y", "z"]}, index=["c1", "c2", "c3"])

    # a saved latent's cells are matched by name, in the latent's order
    assert list(bench._labels_of(Data, "type", np.array(["c3", "c1"], dtype=object))) == ["z", "x"]
    with pytest.raises(ValueError, match="1 cells of a saved latent are not in the data set"):
        bench._labels_of(Data, "type", np.array(["c1", "c9"]))
