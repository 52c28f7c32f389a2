"""The dimod backend: BQM mapping, SA at a target β, persistent chains, QPU path, β_eff."""

from __future__ import annotations

import itertools
import sys
import warnings

import dimod
import networkx as nx
import numpy as np
import pytest
import torch
from dwave.samplers import SimulatedAnnealingSampler

from qbm_pyro.energy import energy
from qbm_pyro.samplers.dimod import (
    DimodSampler,
    boltzmann_from_bqm,
    bqm_from_boltzmann,
    estimate_beta_eff,
    sampleset_to_tensor,
)
from qbm_pyro.samplers.qpu import QPUSampler

# -------------------------------------------------------------------------- helpers


def all_states(n: int) -> torch.Tensor:
    """All 2**n states, row k = binary digits of k (most significant first)."""
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)


def exact_probs(h: torch.Tensor, J: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    return torch.softmax(-beta * energy(all_states(h.shape[0]), h, J), 0)


def exact_draw(h, J, num_samples, beta=1.0, seed=0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    index = torch.multinomial(exact_probs(h, J, beta), num_samples, True, generator=generator)
    return all_states(h.shape[0])[index]


def total_variation(samples: torch.Tensor, probs: torch.Tensor) -> float:
    n = samples.shape[1]
    weights = 2 ** torch.arange(n - 1, -1, -1, dtype=torch.float64)
    index = (samples.double() @ weights).long()
    empirical = torch.bincount(index, minlength=2**n).double() / samples.shape[0]
    return 0.5 * (empirical - probs).abs().sum().item()


def random_model(n: int, seed: int, coupling_scale: float = 0.5):
    generator = torch.Generator().manual_seed(seed)
    h = torch.randn(n, generator=generator, dtype=torch.float64)
    J = coupling_scale * torch.randn(n, n, generator=generator, dtype=torch.float64)
    return h, J  # full matrix on purpose: only the strict upper triangle must count


def clique_mock(n: int, beta_true: float, sweeps: int = 200):
    """A MockDWaveSampler on a complete graph that samples at β_true (SA at fixed β).

    The stock mock runs SteepestDescentSampler (an optimiser, local minima) on a Chimera
    [4, 4, 4] graph and raises on kwargs DWaveSampler does not know; substituting SA with a
    fixed-β schedule turns it into a thermal sampler with a known β_eff.
    """
    from dwave.system.testing import MockDWaveSampler

    graph = nx.complete_graph(n)
    return MockDWaveSampler(
        nodelist=list(graph.nodes),
        edgelist=list(graph.edges),
        substitute_sampler=SimulatedAnnealingSampler(),
        substitute_kwargs={"beta_schedule_type": "custom", "beta_schedule": [beta_true] * sweeps},
        parameter_warnings=False,
    )


# ----------------------------------------------------------------- BQM mapping


def test_bqm_energies_equal_boltzmann_energy_on_all_states():
    h, J = random_model(8, seed=1)
    bqm = bqm_from_boltzmann(h, J)
    assert bqm.vartype is dimod.BINARY
    assert set(bqm.variables) == set(range(8))
    assert bqm.num_interactions == 8 * 7 // 2
    states = all_states(8)
    np.testing.assert_allclose(
        bqm.energies((states.numpy().astype(np.int8), range(8))),
        energy(states, h, J).numpy(),
        rtol=1e-12,
        atol=1e-12,
    )
    sampleset = dimod.ExactSolver().sample(bqm)
    dimod.testing.assert_sampleset_energies(sampleset, bqm)
    tensor = sampleset_to_tensor(sampleset, 8).double()
    np.testing.assert_allclose(
        sampleset.record.energy[np.argsort(sampleset.record.energy)],
        np.sort(energy(tensor, h, J).numpy()),
        atol=1e-12,
    )


def test_bqm_round_trip_binary_and_spin():
    h, J = random_model(8, seed=2)
    bqm = bqm_from_boltzmann(h, J)
    h2, J2 = boltzmann_from_bqm(bqm)
    torch.testing.assert_close(h2, h)
    torch.testing.assert_close(J2, torch.triu(J, 1))

    spin = bqm.change_vartype(dimod.SPIN, inplace=False)
    h3, J3, offset = boltzmann_from_bqm(spin, return_offset=True)
    torch.testing.assert_close(h3, h)
    torch.testing.assert_close(J3, torch.triu(J, 1))
    assert offset == pytest.approx(0.0, abs=1e-12)

    shifted = bqm.copy()
    shifted.offset = 3.5
    *_, offset = boltzmann_from_bqm(shifted, return_offset=True)
    assert offset == 3.5


def test_boltzmann_from_bqm_with_labels():
    bqm = dimod.BinaryQuadraticModel({"a": 1.0, "b": -2.0}, {("b", "a"): 0.5}, 0.0, "BINARY")
    h, J = boltzmann_from_bqm(bqm, variable_order=["b", "a"])
    torch.testing.assert_close(h, torch.tensor([2.0, -1.0], dtype=torch.float64))
    torch.testing.assert_close(J, torch.tensor([[0.0, -0.5], [0.0, 0.0]], dtype=torch.float64))
    with pytest.raises(ValueError, match="variable_order"):
        boltzmann_from_bqm(bqm, variable_order=["a", "c"])


# ---------------------------------------------------------------- SA sampling


def test_sa_ending_at_beta_is_close_to_exact_and_default_schedule_is_not():
    h, J = random_model(10, seed=3)
    probs = exact_probs(h, J)
    num_samples = 20_000
    floor = total_variation(exact_draw(h, J, num_samples, seed=9), probs)  # finite-sample TV

    sampler = DimodSampler(num_sweeps=100, seed=0)
    samples = sampler.sample(h, J, num_samples, beta=1.0)
    assert samples.shape == (num_samples, 10)
    assert sampler.last_info["beta_range"] == (0.1, 1.0)
    tv_anneal = total_variation(samples, probs)

    default = SimulatedAnnealingSampler().sample(bqm_from_boltzmann(h, J), num_reads=2_000, seed=1)
    tv_default = total_variation(sampleset_to_tensor(default, 10), probs)

    # Measured: floor ≈ 0.06, anneal ≈ 0.06, default schedule (cools to T≈0) ≈ 0.95.
    assert tv_anneal < floor + 0.03
    assert tv_default > 0.8


def test_fixed_beta_persistent_chains():
    h, J = random_model(10, seed=4)
    probs = exact_probs(h, J, beta=0.7)
    sampler = DimodSampler(mode="fixed", num_sweeps=5, burn_in=50, seed=0)
    first = sampler.sample(h, J, 10_000, beta=0.7)
    stored = sampler.state_dict()["initial_states"]
    torch.testing.assert_close(stored, first.float())
    second = sampler.sample(h, J, 10_000, beta=0.7)
    floor = total_variation(exact_draw(h, J, 10_000, beta=0.7, seed=5), probs)
    assert total_variation(second, probs) < floor + 0.04
    # one Metropolis sweep from the stored states: the chains remember them (Metropolis
    # flips most low-ΔE spins, so the dependence can be anti-correlation)
    sampler.num_sweeps = 1
    third = sampler.sample(h, J, 10_000, beta=0.7)
    agreement = (third == second).double().mean().item()
    independent = (second.mean(0) ** 2 + (1 - second.mean(0)) ** 2).mean().item()
    assert abs(agreement - independent) > 0.05

    restored = DimodSampler(mode="fixed", num_sweeps=5, seed=1)
    restored.load_state_dict(sampler.state_dict())
    torch.testing.assert_close(restored.state_dict()["initial_states"], third.float())
    restored.reset()
    assert restored.state_dict()["initial_states"] is None


def test_fixed_mode_really_starts_from_stored_states():
    # β tiny and one sweep would randomise; β huge and one sweep keeps a local minimum.
    h = torch.zeros(6, dtype=torch.float64)
    J = torch.triu(torch.full((6, 6), 2.0, dtype=torch.float64), 1)  # ferromagnet
    sampler = DimodSampler(mode="fixed", num_sweeps=1, burn_in=0, seed=0)
    sampler.load_state_dict({"initial_states": torch.ones(50, 6)})
    assert (sampler.sample(h, J, 50, beta=50.0) == 1).all()


def test_sampler_is_seeded():
    h, J = random_model(6, seed=5)
    a = DimodSampler(num_sweeps=20, seed=7).sample(h, J, 50)
    b = DimodSampler(num_sweeps=20, seed=7).sample(h, J, 50)
    torch.testing.assert_close(a, b)


def test_neal_sampler_object_accepted():
    neal = pytest.importorskip("neal")
    h, J = random_model(6, seed=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        sampler = DimodSampler(neal.SimulatedAnnealingSampler(), num_sweeps=50, seed=0)
    out = sampler.sample(h.float(), J.float(), 200, beta=1.0)
    assert out.shape == (200, 6) and out.dtype == torch.float32
    assert ((out == 0) | (out == 1)).all()


def test_invalid_mode_and_scaled_without_beta_eff():
    with pytest.raises(ValueError, match="mode must be one of"):
        DimodSampler(mode="hot")
    sampler = DimodSampler(dimod.RandomSampler(), mode="scaled")
    with pytest.raises(RuntimeError, match="beta_eff"):
        sampler.sample(torch.zeros(3), torch.zeros(3, 3), 2)


# ------------------------------------------------------------------ β_eff / QPU


def test_estimate_beta_eff_recovers_beta_of_exact_samples():
    h, J = random_model(8, seed=7)
    samples = exact_draw(h, J, 20_000, beta=0.5, seed=3)
    # Measured over seeds: |error| ≲ 0.01 at 20,000 samples.
    assert estimate_beta_eff(samples, h, J) == pytest.approx(0.5, abs=0.03)
    samples = exact_draw(h, J, 20_000, beta=2.0, seed=4)
    assert estimate_beta_eff(samples, h, J) == pytest.approx(2.0, rel=0.05)


def test_estimate_beta_eff_warns_on_minima():
    h = torch.ones(4, dtype=torch.float64)
    J = torch.zeros(4, 4, dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="upper bound"):
        estimate_beta_eff(torch.ones(10, 4), h, J)
    with pytest.raises(ValueError, match="no information"):
        estimate_beta_eff(torch.ones(10, 4), torch.zeros(4), J)


def test_qpu_sampler_calibrates_and_rescales_on_mock():
    pytest.importorskip("dwave.system")
    h, J = random_model(8, seed=8, coupling_scale=0.3)
    qpu = QPUSampler(clique_mock(8, beta_true=3.0), num_probe_samples=5_000, seed=0)
    samples = qpu.sample(h, J, 5_000, beta=1.0)
    assert qpu.beta_eff_ == pytest.approx(3.0, rel=0.05)
    probs = exact_probs(h, J)
    floor = total_variation(exact_draw(h, J, 5_000, seed=2), probs)
    assert total_variation(samples, probs) < floor + 0.04
    assert qpu.state_dict() == {"beta_eff": qpu.beta_eff_}


def test_qpu_sampler_through_embedding_composite_on_stock_mock():
    pytest.importorskip("dwave.system")
    from dwave.system import EmbeddingComposite
    from dwave.system.testing import MockDWaveSampler

    h, J = random_model(6, seed=9)
    qpu = QPUSampler(EmbeddingComposite(MockDWaveSampler(parameter_warnings=False)), seed=0)
    out = qpu.sample(h, J, 50, beta=1.0)  # histogram answers are expanded to 50 rows
    assert out.shape == (50, 6)
    assert qpu.beta_eff_ is not None and qpu.beta_eff_ > 0


def test_qpu_default_sampler_is_built_lazily(monkeypatch):
    system = pytest.importorskip("dwave.system")
    from dwave.system.testing import MockDWaveSampler

    built = []

    def fake_dwave_sampler(**config):
        built.append(config)
        return MockDWaveSampler(parameter_warnings=False)

    monkeypatch.setattr(system, "DWaveSampler", fake_dwave_sampler)
    qpu = QPUSampler(beta_eff=1.0)
    assert built == []
    assert qpu.sample(torch.zeros(4), torch.zeros(4, 4), 8).shape == (8, 4)
    assert len(built) == 1


def test_qpu_missing_dependency_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "dwave.system", None)
    qpu = QPUSampler(beta_eff=1.0)
    with pytest.raises(ImportError, match=r"qbm-pyro\[qpu\]"):
        qpu.sample(torch.zeros(3), torch.zeros(3, 3), 2)
