"""The cached log Z follows the prior between AIS runs (validation losses use a current value).

Between full AIS refreshes (``log_z_every`` epochs) training continues the last AIS run to the
current prior along a short bridge (:meth:`BoltzmannPrior.track_log_z`). Checked against exact
enumeration, for the full machine and the machine with hidden units, and through a training run.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import random_machine

import qbm_pyro
from qbm_pyro.distributions import Boltzmann, HiddenBoltzmann
from qbm_pyro.module import priors
from qbm_pyro.module.priors import BoltzmannPrior


def _exact(prior: BoltzmannPrior) -> float:
    h, J = prior.h.detach(), prior.couplings().detach()
    if prior.structure == "hidden":
        d = HiddenBoltzmann(h, J, prior.b.detach(), prior.W.detach(), exact_max_n=20)
    else:
        d = Boltzmann(h, J, exact_max_n=20, validate_args=False)
    return float(d.log_partition_function)


def _prior(structure: str, n: int = 14) -> BoltzmannPrior:
    prior = BoltzmannPrior(n, structure=structure, n_hidden=6, exact_max_n=8).double()  # AIS above 8
    h, J = random_machine(n, seed=3, j_scale=0.3)
    with torch.no_grad():
        prior.h.copy_(h)
        if structure == "hidden":
            prior.J.copy_(J)
            prior.W.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(0))
        else:
            prior.J.copy_(J)
    return prior


def _move(prior: BoltzmannPrior, size: float, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        prior.h.add_(size + size * torch.randn(prior.h.shape, generator=g, dtype=prior.h.dtype))
        prior.J.add_(
            torch.triu(0.25 * size * torch.randn(prior.J.shape, generator=g, dtype=prior.J.dtype), 1)
        )


@pytest.fixture
def full_runs(monkeypatch):
    """Counts the full AIS runs of BoltzmannPrior."""
    count = {"n": 0}
    original = priors.ais_log_partition

    def counted(*args, **kwargs):
        count["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(priors, "ais_log_partition", counted)
    return count


@pytest.mark.parametrize("structure", ["full", "hidden"])
def test_tracked_log_z_follows_the_prior_without_a_new_run(structure, full_runs):
    prior = _prior(structure)
    prior.refresh_log_z()
    for step in range(3):  # three moves, each continued from the last
        _move(prior, 0.1, seed=step)
        stale, exact = float(prior.log_z), _exact(prior)
        assert abs(stale - exact) > 0.5  # what the validation loss used before tracking
        tracked = prior.track_log_z()
        assert float(prior.log_z) == tracked
        assert abs(tracked - exact) < 0.1
        assert torch.equal(prior._ais[1][0][: prior.n_latent], prior.h)  # the run now targets it
    assert full_runs["n"] == 1  # continued, never re-run


def test_tracking_runs_ais_again_when_the_prior_has_moved_far(full_runs):
    prior = _prior("full")
    prior.refresh_log_z()
    _move(prior, 1.5)
    tracked = prior.track_log_z(n_steps=0)  # reweighting alone: its ESS falls below half
    assert full_runs["n"] == 2
    assert abs(tracked - _exact(prior)) < 0.1


def test_tracking_without_a_run_or_at_exact_sizes_computes_log_z_afresh():
    prior = _prior("full")
    assert prior._ais is None
    assert abs(prior.track_log_z() - _exact(prior)) < 0.1  # no run yet: AIS
    small = BoltzmannPrior(6).double()
    with torch.no_grad():
        small.h.fill_(0.3)
        small.J.fill_(0.2)
    assert small.track_log_z() == pytest.approx(_exact(small), abs=1e-9)  # exact, no AIS
    assert small._ais is None


def test_the_ais_run_travels_in_state_and_gives_the_same_tracked_value():
    prior = _prior("full")
    prior.refresh_log_z()
    _move(prior, 0.1)
    state = prior.ais_state()
    other = _prior("full")
    _move(other, 0.1)
    other.load_ais_state(state)
    assert other.track_log_z() == prior.track_log_z()
    other.load_ais_state({})
    assert other._ais is None
    with pytest.raises(ValueError, match="does not fit"):
        other.load_ais_state({**state, "h": torch.zeros(3)})


def test_training_validates_with_a_current_log_z():
    """Six epochs with no scheduled AIS refresh after the first (log_z_every=100): the cached
    log Z at the end is the trained prior's (exact enumeration at n=14), while the first
    epoch's value, which the cache held before tracking, is not."""
    data = qbm_pyro.datasets.pbmc_cite_2batch()[::2].copy()
    model = qbm_pyro.QBMVAE(data, batch_key="batch", n_latent=14, n_continuous=2, n_hidden=32, seed=0)
    model.module.prior.exact_max_n = 8
    history = model.train(
        max_epochs=6,
        lr=3e-3,
        validation_fraction=0.2,
        early_stopping=False,
        restore_best=False,
        log_z_every=100,
        prior_lr_factor=50.0,
        prior_refit_steps=0,  # the last epoch's prior is the one compared (no fit after training)
        progress_bar=False,
    )
    prior = model.module.prior
    exact = _exact(prior)
    assert abs(history["log_z"][0] - exact) > 0.5  # the prior moved
    assert abs(history["log_z"][-1] - exact) < 0.1
    assert np.isfinite(history["validation_loss"]).all()
