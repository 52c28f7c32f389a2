"""The default negative phase on machines with separated modes (issue 20), against exact
enumeration: draws (as ``sample_prior`` and as training make them), the prior's gradient, and the
mixing diagnostic with its warning."""

import copy
import math
import warnings

import pytest
import torch
from conftest import total_variation

from qbm_pyro.module.priors import BoltzmannPrior
from qbm_pyro.samplers import (
    ExactSampler,
    MixingMonitor,
    ParallelTemperingSampler,
    SamplerMixingWarning,
    default_gibbs,
    default_sampler,
)
from qbm_pyro.samplers.exact import exact_moments

DRAWS = 10_000


def two_mode(n):
    """All couplings 1.5, biases -0.75 (n - 1) + 0.1: all-ones (0.69 at n = 8, 0.77 at n = 12)
    and all-zeros."""
    h = torch.full((n,), -0.75 * (n - 1) + 0.1, dtype=torch.float64)
    return h, torch.triu(torch.full((n, n), 1.5, dtype=torch.float64), 1)


def planted(n=16, strength=4.0, fields=(0.1, 0.08, 0.06, 0.04)):
    """Hopfield machine with four orthogonal patterns (Sylvester-Hadamard rows 1-4), a field
    toward them (weights 0.34 / 0.25 / 0.18 / 0.13)."""
    H = torch.ones(1, 1, dtype=torch.float64)
    while H.shape[0] < n:
        H = torch.cat([torch.cat([H, H], 1), torch.cat([H, -H], 1)])
    xi = H[1 : 1 + len(fields)]
    W = strength / n * xi.T @ xi
    W.fill_diagonal_(0)
    a = (torch.tensor(fields, dtype=torch.float64)[:, None] * xi).sum(0)
    return 2 * a - 2 * W.sum(1), torch.triu(4 * W, 1)


def fresh(sampler, h, J, draws=DRAWS):
    s = copy.deepcopy(sampler)
    s.reset()
    return s.sample(h.float(), J.float(), draws)


def floor(h, J, draws=DRAWS):
    return total_variation(ExactSampler(seed=11).sample(h, J, draws), h, J)


@pytest.mark.parametrize("n", [8, 12])
def test_default_sampler_draws_two_mode_machines(n):
    h, J = two_mode(n)
    noise = floor(h, J)
    new = total_variation(fresh(default_sampler(seed=0), h, J), h, J)
    old = total_variation(fresh(default_gibbs(seed=0), h, J), h, J)
    assert new <= noise + 0.02, (new, noise)
    assert old > noise + 0.1, (old, noise)  # the machine does trap single-chain Gibbs


@pytest.mark.parametrize("n", [8, 12])
def test_default_sampler_in_training_calls_two_mode_machines(n):
    """Persistent, 256 chains, one sweep per call (as the negative phase runs): every 4th of 160
    calls after the first."""
    h, J = two_mode(n)
    s = default_sampler(seed=1)
    calls = [s.sample(h.float(), J.float(), 256) for _ in range(161)]
    z = torch.cat(calls[4::4])
    assert total_variation(z, h, J) <= floor(h, J, len(z)) + 0.02


@pytest.mark.slow
def test_default_sampler_draws_four_planted_modes():
    h, J = planted()
    noise = floor(h, J, 20_000)
    new = total_variation(fresh(default_sampler(seed=0), h, J, 20_000), h, J)
    assert new <= noise + 0.02, (new, noise)
    assert total_variation(fresh(default_gibbs(seed=0), h, J, 20_000), h, J) > noise + 0.1


def _averaged_prior_gradient(sampler, h, J, steps=60):
    """The sampled gradient of log Z (E_p[z], E_p[z_i z_j]) averaged over training-like calls."""
    prior = BoltzmannPrior(h.shape[0], sampler=sampler, exact_max_n=4)
    with torch.no_grad():
        prior.h.copy_(h)
        prior.J.copy_(J)
    prior.log_z.fill_(0.0)  # log Z's value does not enter the gradient
    gh, gJ = torch.zeros_like(prior.h), torch.zeros_like(prior.J)
    for _ in range(steps):
        prior.zero_grad()
        prior.distribution().log_partition_surrogate.backward()
        gh += prior.h.grad / steps
        gJ += prior.J.grad / steps
    return gh.double(), torch.triu(gJ.double(), 1)


def test_prior_gradient_on_a_two_mode_machine_matches_exact():
    h, J = two_mode(8)
    mean, second = exact_moments(h, J)
    new_h, new_J = _averaged_prior_gradient(default_sampler(seed=0), h.float(), J.float())
    old_h, old_J = _averaged_prior_gradient(default_gibbs(seed=0), h.float(), J.float())
    exact_J = torch.triu(second, 1)
    assert (new_h - mean).abs().max() < 0.04, (new_h, mean)
    assert (new_J - exact_J).abs().max() < 0.04
    assert (old_h - mean).abs().max() > 0.1  # the old default's gradient is off on this machine


def test_mixing_stats_count_round_trips_and_swaps():
    h, J = two_mode(8)
    pt = ParallelTemperingSampler(
        n_replicas=6, beta_min=0.05, num_sweeps=1, burn_in=100, hot_chains=16, seed=0
    )
    pt.sample(h.float(), J.float(), 64)
    first = pt.mixing_stats()
    assert first["sweeps"] == 101
    assert first["round_trips"] > 0
    assert (first["attempted"] > 0).all() and (first["accepted"] > 0).all()
    for _ in range(20):
        pt.sample(h.float(), J.float(), 64)
    assert pt.mixing_stats()["sweeps"] == 121
    state = pt.state_dict()
    twin = ParallelTemperingSampler(n_replicas=6, beta_min=0.05, num_sweeps=1, burn_in=100, hot_chains=16)
    twin.load_state_dict(state)
    assert torch.equal(twin.sample(h.float(), J.float(), 64), pt.sample(h.float(), J.float(), 64))
    assert twin.mixing_stats()["round_trips"] == pt.mixing_stats()["round_trips"]


def test_monitor_warns_once_when_a_short_ladder_does_not_mix():
    """Two replicas with the hot one at β = 0.05: the energy gap of the two-mode machine makes
    swaps (almost) never pass, and no chain reaches the target from the hot end."""
    h, J = two_mode(12)
    bad = ParallelTemperingSampler(n_replicas=2, beta_min=0.05, num_sweeps=1, burn_in=50, seed=0)
    good = default_sampler(seed=0)
    monitor, quiet = MixingMonitor(), MixingMonitor()
    with pytest.warns(SamplerMixingWarning, match="does not mix"):
        for epoch in range(3):
            for _ in range(20):
                bad.sample(h.float(), J.float(), 64)
                good.sample(h.float(), J.float(), 64)
            record = monitor.record(bad, epoch)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                fine = quiet.record(good, epoch)
    assert record["swap_acceptance"] < 0.01
    assert fine["swap_acceptance"] > 0.05 and fine["round_trips"] > 0
    assert monitor.warned and not quiet.warned
    with warnings.catch_warnings():  # once only
        warnings.simplefilter("error")
        bad.sample(h.float(), J.float(), 64)
        monitor.record(bad, 3)


def test_uncoupled_machine_starts_exact_without_burn_in():
    """A prior at initialisation (J = 0): every replica drawn from its own factorial distribution."""
    h = torch.linspace(-1.0, 1.0, 5)
    pt = ParallelTemperingSampler(n_replicas=3, beta_min=0.2, num_sweeps=1, burn_in=500, seed=0)
    z = pt.sample(h, torch.zeros(5, 5), 40_000)
    assert pt.mixing_stats()["sweeps"] == 1  # no burn-in
    assert (z.mean(0) - torch.sigmoid(h)).abs().max() < 0.01
    hot = pt.state_dict()["hot"]
    assert (hot[0].mean(0) - torch.sigmoid(0.2 * h)).abs().max() < 0.01


def test_monitor_is_nan_for_other_samplers():
    record = MixingMonitor().record(default_gibbs(seed=0), 0)
    assert math.isnan(record["swap_acceptance"]) and math.isnan(record["round_trips"])


def _small_model(sampler=None, n_latent=16):
    import qbm_pyro
    from qbm_pyro import datasets

    mdata = datasets.pbmc_cite_2batch()[::5].copy()
    return qbm_pyro.QBMVAE(
        mdata, batch_key="batch", n_latent=n_latent, n_continuous=4, n_hidden=32, sampler=sampler
    )


def test_sample_prior_of_a_two_mode_prior_matches_exact():
    """``sample_prior`` (and so ``generate`` and basin weights drawn from it) with the default
    sampler, on a model whose prior is the two-mode machine."""
    model = _small_model(n_latent=8)
    h, J = two_mode(8)
    with torch.no_grad():
        model.module.prior.h.copy_(h)
        model.module.prior.J.copy_(J)
    z = torch.as_tensor(model.sample_prior(DRAWS, seed=0))
    assert total_variation(z, h, J) <= floor(h, J) + 0.02


def test_training_history_records_mixing_every_epoch():
    model = _small_model()
    with warnings.catch_warnings():
        warnings.simplefilter("error", SamplerMixingWarning)
        model.train(max_epochs=2, batch_size=32, progress_bar=False)
    history = model.history_
    assert len(history["swap_acceptance"]) == len(history["round_trips"]) == 2
    assert all(0.05 < a <= 1 for a in history["swap_acceptance"])
    assert all(isinstance(r, int) and r >= 0 for r in history["round_trips"])


def test_training_warns_once_when_the_ladder_does_not_mix():
    """Two replicas, the hot one at β = 0.001 of the target: swaps between them never pass once the
    prior is coupled; here the coupling is forced large so that this holds from the first step."""
    bad = ParallelTemperingSampler(n_replicas=2, beta_min=0.001, num_sweeps=1, burn_in=10, seed=0)
    model = _small_model(bad)
    with torch.no_grad():
        model.module.prior.J.copy_(torch.triu(torch.full((16, 16), 1.5), 1))
        model.module.prior.h.fill_(-0.75 * 15 + 0.1)
    with pytest.warns(SamplerMixingWarning, match="does not mix") as record:
        model.train(max_epochs=3, batch_size=32, progress_bar=False, lr=1e-6)
    assert sum(issubclass(w.category, SamplerMixingWarning) for w in record) == 1
    assert model.history_["swap_acceptance"][0] < 0.01


def test_report_section_renders_the_tv_table_and_cost():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    report_lines = pytest.importorskip("benchmarks.samplers_modes").report_lines
    result = {
        "draws": 100,
        "seed": 0,
        "exact": {"two-mode n=8": {"noise floor (exact draws)": 0.007, "new default": 0.012}},
        "n64": {
            "reference basins": [0.7, 0.3, 0.0],
            "new default": {"mean": 0.01, "second": 0.02, "basin_tv": 0.03, "basins": [0.7, 0.3, 0.0]},
        },
        "cost": {
            "sets": {"paul15": {"steady": {"old": 0.2, "new": 0.22}, "first": {"old": 0.3, "new": 0.4}}},
            "ratios": {"paul15": 1.1},
            "epochs": 4,
            "repeats": 2,
        },
    }
    text = "\n".join(report_lines(result))
    assert "| new default | 0.012 |" in text
    assert "| new default | 0.010 | 0.020 | 0.030 |" in text
    assert "| paul15 | 4 × 2 | 0.200 | 0.220 | 1.10 |" in text
    assert report_lines(None) == []
