"""Sampler diagnostic plots and the effective sample size."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from qbm_pyro import pl  # noqa: E402
from qbm_pyro.samplers import GibbsSampler, ParallelTemperingSampler  # noqa: E402

torch.set_num_threads(1)


def ar1(phi: float, n: int = 4000, chains: int = 4, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((n, chains))
    for t in range(1, n):
        x[t] = phi * x[t - 1] + rng.normal(size=chains)
    return x


def test_ess_matches_ar1_theory():
    # AR(1): τ = (1 + φ) / (1 - φ)
    for phi in (0.0, 0.5, 0.9):
        trace = ar1(phi)
        tau = (1 + phi) / (1 - phi)
        assert pl.effective_sample_size(trace) == pytest.approx(trace.size / tau, rel=0.25)


def test_plots_return_axes_and_save(tmp_path, machine10):
    h, J = (t.float() for t in machine10)
    trace = pl.record_energy_trace(GibbsSampler(num_sweeps=1, burn_in=0, seed=0), h, J, n_steps=30)
    assert trace.shape == (30, 8)
    ax = pl.energy_trace(trace, save=tmp_path / "trace.png")
    assert (tmp_path / "trace.png").is_file() and "ESS" in ax.get_title()
    assert pl.energy_trace(GibbsSampler(seed=0), h, J, n_steps=5, num_samples=2) is not None
    assert pl.autocorrelation(trace, max_lag=10).get_xlabel().startswith("lag")
    pt = ParallelTemperingSampler(n_replicas=4, num_sweeps=5, burn_in=5, seed=0)
    with pytest.raises(ValueError, match="not been called"):
        pl.swap_acceptance(pt)
    pt.sample(h, J, 16)
    ax = pl.swap_acceptance(pt)
    assert len(ax.patches) == 3
    assert len(pl.swap_acceptance([0.5, 0.1]).patches) == 2
    with pytest.raises(ValueError, match="h and J"):
        pl.energy_trace(GibbsSampler(seed=0))
    plt.close("all")
