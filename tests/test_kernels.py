"""One kernel contract for the sequential Gibbs sweep: the numba kernel (CPU) and the torch one (any
device, run here on CPU) draw the same thresholds and give the same chains, and both sample the
exact distribution."""

import numpy as np
import pytest
import torch
from conftest import random_machine, total_variation

from qbm_pyro.energy import symmetric_couplings
from qbm_pyro.samplers import ExactSampler
from qbm_pyro.samplers._kernels import sequential_sweep_numba, sequential_sweep_torch, sweep_thresholds

KERNELS = {"numba": sequential_sweep_numba, "torch": sequential_sweep_torch}


def _run(kernel, h, J, shape, beta, sweeps, seed, dtype=torch.float32):
    h, Jt = h.to(dtype), symmetric_couplings(J).to(dtype)
    generator = torch.Generator().manual_seed(seed)
    z = (torch.rand(shape, generator=generator) < 0.5).to(dtype)
    field = (h + z @ Jt).contiguous()
    for _ in range(sweeps):
        kernel(z, field, Jt, beta, sweep_thresholds(z.shape, z.dtype, generator))
    return z, field


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("shape", "beta"),
    [((64, 10), 1.0), ((3, 40, 10), torch.tensor([0.2, 0.5, 1.0], dtype=torch.float64).view(3, 1, 1))],
)
def test_numba_and_torch_kernels_give_the_same_chains(shape, beta, dtype):
    h, J = random_machine(10, seed=2, j_scale=1.0)
    za, fa = _run(sequential_sweep_numba, h, J, shape, beta, 30, seed=5, dtype=dtype)
    zb, fb = _run(sequential_sweep_torch, h, J, shape, beta, 30, seed=5, dtype=dtype)
    assert torch.equal(za, zb)
    assert torch.equal(fa, fb)
    # and the chains moved: the contract is not met by two kernels that do nothing
    z0, _ = _run(sequential_sweep_numba, h, J, shape, beta, 0, seed=5, dtype=dtype)
    assert not torch.equal(za, z0)


def test_thresholds_are_one_seeded_stream():
    a = sweep_thresholds((4, 5), torch.float32, torch.Generator().manual_seed(1))
    b = sweep_thresholds((4, 5), torch.float32, torch.Generator().manual_seed(1))
    c = sweep_thresholds((4, 5), torch.float32, torch.Generator().manual_seed(2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.dtype == np.float32


@pytest.mark.parametrize("name", list(KERNELS))
def test_each_kernel_samples_the_exact_distribution(name):
    h, J = random_machine(8, seed=3)
    z, _ = _run(KERNELS[name], h, J, (20_000, 8), 1.0, 60, seed=0, dtype=torch.float64)
    floor = total_variation(ExactSampler(seed=1).sample(h, J, 20_000), h, J)
    assert total_variation(z, h, J) <= floor + 0.02


@pytest.mark.parametrize("name", list(KERNELS))
def test_each_kernel_samples_per_replica_temperatures(name):
    """One β per leading index: each replica samples its own tempered distribution."""
    from qbm_pyro.samplers.exact import exact_moments

    h, J = random_machine(6, seed=4, j_scale=1.0)
    betas = torch.tensor([0.3, 1.0], dtype=torch.float64)
    z, _ = _run(KERNELS[name], h, J, (2, 20_000, 6), betas.view(2, 1, 1), 40, seed=0, dtype=torch.float64)
    for k, beta in enumerate(betas.tolist()):
        mean, _ = exact_moments(h, J, beta=beta)
        assert (z[k].mean(0) - mean).abs().max() < 0.02


# ---------------------------------------------------------------- the replica-exchange step


def _tempering_state(R, H, C, n, dtype, seed):
    """A tempering state after one sweep of a random machine: chains, fields, energies, labels."""
    from qbm_pyro.samplers._kernels import sweep_stream, sweep_with_, thresholds_from

    h, J = random_machine(n, seed=seed, j_scale=1.0)
    h, Jt = h.to(dtype), symmetric_couplings(J).to(dtype)
    g = torch.Generator().manual_seed(seed)
    hot = (torch.rand(R - 1, H, n, generator=g) < 0.5).to(dtype)
    cold = (torch.rand(C, n, generator=g) < 0.5).to(dtype)
    betas = torch.logspace(-1, 0, R, dtype=torch.float64)
    state = {
        "hot": hot,
        "cold": cold,
        "hot_field": (h + hot @ Jt).contiguous(),
        "cold_field": (h + cold @ Jt).contiguous(),
        "hot_dir": torch.zeros(R - 1, H, dtype=torch.int8),
        "cold_dir": torch.zeros(C, dtype=torch.int8),
        "accepted": torch.zeros(R - 1, dtype=torch.float64),
        "attempted": torch.zeros(R - 1, dtype=torch.float64),
    }
    rng = sweep_stream(g)
    sweep_with_(
        hot, state["hot_field"], Jt, betas[:-1].view(-1, 1, 1), thresholds_from(rng, hot.shape, dtype)
    )
    sweep_with_(cold, state["cold_field"], Jt, betas[-1:].view(1, 1), thresholds_from(rng, cold.shape, dtype))
    state["e_hot"] = -0.5 * (hot * (h + state["hot_field"])).sum(-1)
    state["e_cold"] = -0.5 * (cold * (h + state["cold_field"])).sum(-1)
    return state, betas, rng


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("R", "H", "C"), [(5, 16, 16), (6, 8, 40), (2, 12, 12), (3, 4, 30)])
def test_numba_and_torch_exchange_make_the_same_swaps(R, H, C, dtype):
    from qbm_pyro.samplers._exchange import exchange_applies, exchange_draws, exchange_numba, exchange_torch

    a, betas, rng = _tempering_state(R, H, C, 10, dtype, seed=R + H)
    b = {k: v.clone() for k, v in a.items()}
    before = {k: v.clone() for k, v in a.items()}
    assert exchange_applies(a)
    log_u, pick = exchange_draws(R, H, C, rng)
    trips_a = exchange_numba(a, betas, log_u, pick)
    trips_b = exchange_torch(b, betas, log_u, pick)
    assert trips_a == trips_b
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # something was swapped (the contract is not met by two steps that do nothing) ...
    assert not torch.equal(a["hot"], before["hot"]) or not torch.equal(a["cold"], before["cold"])
    assert (a["attempted"] == 1).all() and (a["accepted"] > 0).any()
    # ... and a swap moves a chain whole: the states, fields, energies stay consistent
    states = torch.cat([a["hot"].reshape(-1, 10), a["cold"]])
    fields = torch.cat([a["hot_field"].reshape(-1, 10), a["cold_field"]])
    energies = torch.cat([a["e_hot"].reshape(-1), a["e_cold"]])
    old_states = torch.cat([before["hot"].reshape(-1, 10), before["cold"]])
    old_fields = torch.cat([before["hot_field"].reshape(-1, 10), before["cold_field"]])
    old_energies = torch.cat([before["e_hot"].reshape(-1), before["e_cold"]])
    for s, f, e in zip(states, fields, energies):
        rows = ((old_states == s).all(-1) & (old_fields == f).all(-1) & (old_energies == e)).nonzero()
        assert rows.numel() >= 1


def test_swaps_follow_the_metropolis_rule():
    """Two replicas, one chain each, energies fixed by hand: the swap passes exactly when
    log u < (β_0 - β_1)(E_0 - E_1)."""
    from qbm_pyro.samplers._exchange import exchange_numba, exchange_torch

    for impl in (exchange_numba, exchange_torch):
        for e0, e1, log_u, swapped in (
            (3.0, 1.0, -0.5, False),
            (3.0, 1.0, -2.0, True),
            (1.0, 3.0, -1e-9, True),
        ):
            state = {
                "hot": torch.zeros(1, 1, 2),
                "cold": torch.ones(1, 2),
                "hot_field": torch.zeros(1, 1, 2),
                "cold_field": torch.ones(1, 2),
                "hot_dir": torch.ones(1, 1, dtype=torch.int8),  # this chain was at the hot end
                "cold_dir": torch.zeros(1, dtype=torch.int8),
                "e_hot": torch.tensor([[e0]]),
                "e_cold": torch.tensor([e1]),
                "accepted": torch.zeros(1, dtype=torch.float64),
                "attempted": torch.zeros(1, dtype=torch.float64),
            }
            betas = torch.tensor([0.5, 1.0], dtype=torch.float64)  # (β_0 - β_1)(E_0 - E_1) = -0.5 (E_0 - E_1)
            draws = np.array([[[log_u]], [[0.0]]]), np.array([0])  # the pair is tried in round 0 only
            trips = impl(state, betas, *draws)
            assert bool(state["cold"].eq(0).all()) == swapped, (impl.__name__, e0, e1, log_u)
            assert float(state["accepted"][0]) == float(swapped)
            # a chain from the hottest replica that reached the target is a round trip
            assert trips == int(swapped)


def test_tempering_gives_the_same_chains_with_either_exchange(monkeypatch):
    """The whole sampler, persistent over calls: the numba and torch exchange steps agree draw for
    draw (what a GPU run takes is the torch path)."""
    from qbm_pyro.samplers import _exchange, default_sampler

    h, J = random_machine(12, seed=4, j_scale=1.0)

    def draws():
        pt = default_sampler(seed=3)
        out = [pt.sample(h, J, 64) for _ in range(3)]
        return torch.stack(out), pt.mixing_stats()

    a, stats_a = draws()
    monkeypatch.setattr(_exchange, "exchange_applies", lambda state: False)
    b, stats_b = draws()
    assert torch.equal(a, b)
    assert stats_a["round_trips"] == stats_b["round_trips"] > 0
    assert torch.equal(stats_a["accepted"], stats_b["accepted"])
