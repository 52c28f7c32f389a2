"""Shared fixtures: small random Boltzmann machines with exact ground truth; cells on a path."""

import os

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


def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (``nox -s tests``): one worker per core, at most 4. Each worker imports torch
    and scanpy and trains with one torch thread (the test modules set it), so more workers add
    memory faster than speed."""
    return max(1, min(4, os.cpu_count() or 1))


def _marker_expression(config) -> bool:
    """A marker expression was given (``pytest -m ...``): the slow tests are not skipped, and
    training keeps its default last fit of the prior."""
    return bool(config.getoption("markexpr"))


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` (they train for minutes or start processes) are skipped unless a
    marker expression is given: ``pytest -m slow`` runs them (CI's second step, ``.ci/run``),
    ``pytest -m "slow or not slow"`` runs everything."""
    if _marker_expression(config):
        return
    skip = pytest.mark.skip(reason="slow: run with pytest -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# The prior's last fit (``prior_refit_steps``, 2000 steps by default) costs 6-8 s per training
# call even on a 100-cell model that trains in half a second: most of the fast suite's time. A
# plain ``pytest`` run (the fast tests) trains with 100 steps (the same code path, a shorter fit);
# a call that passes ``prior_refit_steps`` keeps its value. The package default holds for a run
# with a marker expression (``pytest -m slow``: the tests on real data), for the tests of the fit
# itself (tests/test_prior_refit.py) and for tests marked ``full_prior_refit``.
TEST_PRIOR_REFIT_STEPS = 100


@pytest.fixture(scope="session", autouse=True)
def _short_prior_refit(request):
    """The real ``TrainingConfig`` while ``QBMVAE.train`` builds a short-refit one; else ``None``."""
    if _marker_expression(request.config):
        yield None
        return
    from qbm_pyro.model import _model

    config_cls = _model.TrainingConfig

    def short_refit_config(*args, **kwargs):
        kwargs.setdefault("prior_refit_steps", TEST_PRIOR_REFIT_STEPS)
        return config_cls(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_model, "TrainingConfig", short_refit_config)
        yield config_cls


@pytest.fixture(autouse=True)
def _full_prior_refit(request, _short_prior_refit):
    """The package default for the tests of the fit itself and those marked ``full_prior_refit``."""
    full = "full_prior_refit" in request.keywords or request.path.name == "test_prior_refit.py"
    if _short_prior_refit is None or not full:
        yield
        return
    from qbm_pyro.model import _model

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_model, "TrainingConfig", _short_prior_refit)
        yield


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
