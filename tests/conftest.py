"""Shared fixtures: small random Boltzmann machines with exact ground truth; cells on a path."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

from qbm_pyro.samplers.exact import exact_log_probs, state_index


def random_machine(n: int, seed: int = 0, j_scale: float = 0.5, dtype=torch.float64):
    """h ~ N(0, 1), J ~ N(0, j_scale²) on the strict upper triangle."""
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, generator=g, dtype=dtype)
    J = torch.triu(j_scale * torch.randn(n, n, generator=g, dtype=dtype), 1)
    return h, J


def total_variation(samples: torch.Tensor, h: torch.Tensor, J: torch.Tensor) -> float:
    """Total variation between the empirical distribution of ``samples`` and the exact one."""
    n = h.shape[0]
    p = exact_log_probs(h.double(), J.double()).exp()
    counts = torch.bincount(state_index(samples), minlength=2**n).double()
    return 0.5 * float((counts / counts.sum() - p).abs().sum())


def _path_cells(n_cells: int = 300, seed: int = 0, energies=None) -> ad.AnnData:
    """Cells along a path of known order ``obs["t"]`` (16 sigmoid units in ``obsm["X_qbm"]``) with
    energies ``obs[key] = slope * t + N(0, 0.3²)`` for each ``key: slope`` of ``energies``
    (default ``{"qbm_energy": -3.0}``: the energy falls with time, a landscape of known order)."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 1, n_cells))
    q = 1.0 / (1.0 + np.exp(-20.0 * (t[:, None] - np.linspace(0.0, 1.0, 16)[None, :])))
    q = np.clip(q + rng.normal(0, 0.02, q.shape), 0, 1)
    adata = ad.AnnData(obs=pd.DataFrame({"t": t}, index=[f"c{i}" for i in range(n_cells)]))
    adata.obsm["X_qbm"] = q
    for key, slope in (energies or {"qbm_energy": -3.0}).items():
        adata.obs[key] = slope * t + rng.normal(0, 0.3, n_cells)
    return adata


@pytest.fixture
def path_cells():
    """Factory of :func:`_path_cells`: cells along a path with energies of known slope."""
    return _path_cells


@pytest.fixture
def machine10():
    return random_machine(10, seed=0)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` (they train for minutes or start processes) are skipped unless a
    marker expression is given: ``pytest -m slow`` runs them (CI's second step, ``.ci/run``),
    ``pytest -m "slow or not slow"`` runs everything."""
    if config.getoption("markexpr"):
        return
    skip = pytest.mark.skip(reason="slow: run with pytest -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def paul15_module_batch():
    """200 paul15 cells, their registry, a small untrained ``MultiVAE`` (8 binary, 4 Gaussian
    units; eval mode) and one minibatch of 64: for checks of the trainer's objective."""
    from qbm_pyro import datasets
    from qbm_pyro.data import MinibatchLoader, setup_data
    from qbm_pyro.module import MultiVAE

    adata = datasets.paul15_myeloid()[:200].copy()
    registry = setup_data(adata)
    n_vars = {spec.kind: spec.n_vars for spec in registry.modalities.values()}
    module = MultiVAE(n_vars, registry.n_batch, n_latent=8, n_continuous=4).eval()
    batch = next(iter(MinibatchLoader(adata, registry, batch_size=64, seed=0)))
    return adata, registry, module, batch
