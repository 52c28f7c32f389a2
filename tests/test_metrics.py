"""qbm_pyro.metrics.active_units, and the report section of benchmarks/active_units.py."""

import json

import numpy as np
import pytest

from qbm_pyro.metrics import active_units


def test_active_units_marks_the_units_that_vary_across_cells():
    rng = np.random.default_rng(0)
    cells = 500
    means = np.column_stack(
        [
            rng.normal(0, 1.0, cells),  # used
            np.full(cells, 0.3),  # collapsed: the same posterior mean for every cell
            rng.normal(0, 0.05, cells),  # variance 0.0025: below the threshold
            rng.choice([0.02, 0.98], cells),  # a sharp binary unit, variance ~0.23
        ]
    )
    assert active_units(means).tolist() == [True, False, False, True]
    assert active_units(means, threshold=0.001).tolist() == [True, False, True, True]


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros(5), "shape"),
        (np.zeros((1, 3)), "at least 2 cells"),
        (np.array([[0.0, np.nan], [1.0, 2.0]]), "NaN"),
    ],
)
def test_active_units_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        active_units(bad)


def test_active_units_report_section(tmp_path):
    from benchmarks.active_units import report_section

    assert report_section(tmp_path) == []
    row = {
        "dataset": "paul15",
        "setting": "default",
        "n_binary": 64,
        "n_continuous": 16,
        "active_binary": 60,
        "active_continuous": 0,
        "continuous_variance_share": 0.001,
        "sharp_fraction": 0.6,
        "distinct_codes": 1700,
        "n_labels": 7,
        "leiden_clusters_at_1": 19.0,
        "leiden_ari_at_1": 0.2,
        "leiden_ari_grid": 0.34,
    }
    rows = [row | {"seed": 0}, row | {"seed": 1, "active_continuous": 2}]
    (tmp_path / "active_units.json").write_text(json.dumps({"meta": {"note": ""}, "rows": rows}))
    md = "\n".join(report_section(tmp_path))
    assert "| paul15 | default | 2 | 1.0 ± 1.4 / 16 | 60.0 ± 0.0 / 64 |" in md
    assert "19.0 ± 0.0 (7)" in md
