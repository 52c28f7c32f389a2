"""The "does the learned prior matter" lever columns and the negative phase's cost rows of the report,
on small hand-made result files (no training)."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

report = pytest.importorskip("benchmarks.report")


def _row(method, seed, ll, knn, **more):
    base = {"dataset": "paul15", "method": method, "seed": seed, "marginal_ll": ll, "joint_knn": knn}
    return base | {"n_labels": 7, "n_basins": 2, "hard_knn": 0.7, "entropy_bits": 0.5} | more


def test_lever_columns_pair_each_lever_with_the_fixed_prior_of_its_settings(tmp_path):
    rows = [
        _row("bernoulli", 0, -100.0, 0.80),
        _row("bernoulli", 1, -200.0, 0.90),
        _row("qbm", 0, -99.0, 0.80),
        _row("qbm", 1, -197.0, 0.80),
        _row("binary_bernoulli", 0, -50.0, 0.80),
        _row("binary_qbm", 0, -40.0, 0.85, basin_ari=0.3),
        _row("binary_qbm", 1, -500.0, 0.85),  # no binary-only fixed prior on seed 1: not paired
    ]
    (tmp_path / "prior_levers.json").write_text(
        json.dumps({"meta": {"epochs": 40, "n_importance_samples": 1000}, "rows": rows})
    )
    lines = report._prior_lever_columns(tmp_path)
    header = next(line for line in lines if line.startswith("| measurement"))
    assert "learned, pairwise, plain ELBO (2)" in header and "binary only, learned (2)" in header
    assert "fixed" not in header  # the anchors are not columns
    ll = next(line for line in lines if line.startswith("| held-out log p(x) minus"))
    assert ll == "| held-out log p(x) minus the fixed prior's (nats/cell) | 2.000 ± 1.414 | 10.000 |"
    plain = next(line for line in lines if "at default settings" in line)
    assert plain.endswith("| 2.000 ± 1.414 | -120.000 ± 254.558 |")  # both against `bernoulli`
    knn = next(line for line in lines if line.startswith("| 15-NN acc., joint latent, minus"))
    assert knn.endswith("| -0.050 ± 0.071 | 0.050 |")


def test_negative_phase_cost_rows():
    cost = {
        "sets": {
            "paul15": {
                "epochs": 10,
                "repeats": 2,
                "steady": {"old": 0.4, "new": 0.5},
                "first": {"old": 0.6, "new": 1.2},
            }
        },
        "ratios": {"paul15": 1.25},
    }
    lines = report._negative_phase_cost({"cost": cost})
    assert "| paul15 | 10 × 2 | 0.400 | 0.500 | 1.25 | 0.60 / 1.20 |" in lines
    assert report._negative_phase_cost(None) == []


def test_lever_rows_merge_and_keep_the_note(tmp_path):
    prior_levers = pytest.importorskip("benchmarks.prior_levers")
    path = tmp_path / "prior_levers.json"
    old = [_row("bernoulli", 0, -100.0, 0.8), _row("qbm", 0, -99.0, 0.8)]
    path.write_text(json.dumps({"meta": {"epochs": 40, "note": "hand-written"}, "rows": old}))
    prior_levers._write(path, [_row("qbm", 0, -98.0, 0.9), _row("two_stage", 1, -97.0, 0.9)], 40)
    result = json.loads(path.read_text())
    assert result["meta"]["note"] == "hand-written" and result["meta"]["epochs"] == 40
    got = {(r["method"], r["seed"]): r["marginal_ll"] for r in result["rows"]}
    assert got == {("bernoulli", 0): -100.0, ("qbm", 0): -98.0, ("two_stage", 1): -97.0}


def test_lever_report_shows_the_grid_leiden_mixing_and_the_pairing_with_the_default(tmp_path):
    prior_levers = pytest.importorskip("benchmarks.prior_levers")
    more = {"basin_weights": [0.6, 0.4], "n_minima": 2}
    rows = [
        _row("qbm_ckl3", 0, -100.0, 0.8, leiden_ari_grid=0.30, batch_mixing=0.70, **more),
        _row("qbm_ckl3", 1, -110.0, 0.8, leiden_ari_grid=0.40, batch_mixing=0.80, **more),
        _row("qbm_b32", 0, -99.0, 0.8, leiden_ari_grid=0.50, batch_mixing=0.90, **more),
        _row("qbm_b32", 1, -107.0, 0.8, leiden_ari_grid=0.60, batch_mixing=0.70, **more),
    ]
    (tmp_path / "levers.json").write_text(json.dumps({"meta": _LEVER_META, "rows": rows}))
    lines = prior_levers.report_section(tmp_path, "levers.json")
    header = next(line for line in lines if line.startswith("| measurement"))
    assert "32 binary units (not 64)" in header
    grid = next(line for line in lines if line.startswith("| Leiden ARI, joint latent, mean over"))
    assert grid.endswith("| 0.350 ± 0.071 | 0.550 ± 0.071 |")
    mixing = next(line for line in lines if line.startswith("| batch mixing"))
    assert mixing.endswith("| 0.750 ± 0.071 | 0.800 ± 0.141 |")
    paired = next(line for line in lines if line.startswith("| log p(x) minus continuous_kl_weight 3"))
    assert paired.endswith("| 0.000 ± 0.000 | 2.000 ± 1.414 |")  # +1 and +3, seed by seed


_LEVER_META = {
    "model": "toy",
    "held_out": "toy",
    "n_importance_samples": 10,
    "ais": {},
    "basin_draws": 10,
}


def test_saved_fits_are_scored_only_when_their_settings_are_the_method_s(tmp_path):
    prior_levers = pytest.importorskip("benchmarks.prior_levers")
    import anndata as ad
    import numpy as np

    import qbm_pyro

    counts = np.random.default_rng(0).poisson(2.0, size=(60, 12)).astype(np.float32)
    adata = ad.AnnData(counts)
    fits = tmp_path / "fits"
    assert prior_levers._saved_fit(fits, adata, "toy", 0, {"n_latent": 4}, 400) is None
    model = qbm_pyro.QBMVAE(adata, n_latent=4, n_continuous=2, seed=0)
    model.train(max_epochs=2, progress_bar=False)
    folder = fits / "toy" / "seed0"
    model.save(folder)
    same = {"n_latent": 4, "n_continuous": 2}
    assert prior_levers._saved_fit(fits, adata, "toy", 0, same, 400) is None  # no DONE: unfinished
    (folder / "DONE").touch()  # written last by benchmarks/landscape.py: a finished fit
    got, history, seconds = prior_levers._saved_fit(fits, adata, "toy", 0, same, 400)
    assert got.module.n_binary == 4 and len(history["epoch"]) == 2 and np.isnan(seconds)
    with pytest.raises(ValueError, match="other settings"):
        prior_levers._saved_fit(fits, adata, "toy", 0, {"n_latent": 8, "n_continuous": 2}, 400)
    with pytest.raises(ValueError, match="other settings"):  # trained longer than the run asks
        prior_levers._saved_fit(fits, adata, "toy", 0, same, 1)
