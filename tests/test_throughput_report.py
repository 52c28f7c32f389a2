"""The speed benchmark's pieces that need no training: its report section and its protein set."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
throughput = pytest.importorskip("benchmarks.throughput")


def test_report_lines_state_the_measured_ratios():
    rows = {
        "scvi": {"cells_per_second": 1000.0, "steady_cells_per_second": 2000.0, "peak_rss_mb": 800.0},
        "qbm": {"cells_per_second": 1250.0, "steady_cells_per_second": 3000.0, "peak_rss_mb": 600.0},
    }
    result = {
        "config": {"epochs": 3, "batch_size": 128},
        "throughput": {
            "paul15": {
                "anchor": "scvi",
                "rows": rows,
                "ratios": {
                    "qbm": {
                        "throughput_vs_anchor": 1.25,
                        "steady_vs_anchor": 1.5,
                        "peak_rss_vs_anchor": 0.75,
                        "median_vs_anchor": 1.4,
                        "paired_vs_anchor": [1.2, 1.6, 1.4],
                    }
                },
            }
        },
        "profile": {"paul15": {"seconds_per_step": 0.01, "parts": {"backward": 0.004}}},
        "distributed": {"protein": {"ratio": 1.7, "ratio_whole": 0.9}},
    }
    text = "\n".join(throughput.report_lines(result))
    assert "| paul15 (qbm) | scvi | 3,000 | 2,000 | 1.50 | 1.40 (1.20–1.60) | 1.25 | 0.75 |" in text
    assert "protein 1.70x per epoch (0.90x over the whole call)" in text
    assert "| backward | 4.0 | 40% |" in text
    assert throughput.report_lines(None) == []


def test_protein_only_set_is_resampled_from_the_bundled_proteins():
    from qbm_pyro import datasets

    adata = throughput.protein_only(500, seed=0)
    source = datasets.pbmc_cite_2batch()["prot"]
    assert adata.shape == (500, source.n_vars)
    assert set(adata.obs["batch"].unique()) <= set(datasets.pbmc_cite_2batch().obs["batch"].astype(str))
    x = np.asarray(adata.X)
    assert (x >= 0).all() and (x == np.round(x)).all()
    assert x.max() <= np.asarray(source.X.todense() if hasattr(source.X, "todense") else source.X).max()
