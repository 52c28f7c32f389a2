"""Every sampler against exact enumeration at n = 10 (the foundation issue's acceptance bar)."""

import pytest
import torch
from conftest import random_machine, total_variation

from qbm_pyro.samplers import ExactSampler, GibbsSampler, ParallelTemperingSampler
from qbm_pyro.samplers.exact import exact_moments
from qbm_pyro.samplers.gibbs import colour_blocks

N_SAMPLES = 50_000

SAMPLERS = {
    "gibbs": lambda: GibbsSampler(burn_in=100, seed=1),
    "gibbs-auto-blocks": lambda: GibbsSampler(burn_in=100, blocks="auto", seed=2),
    "tempering": lambda: ParallelTemperingSampler(n_replicas=4, burn_in=60, seed=3),
    "exact": lambda: ExactSampler(seed=4),
}


@pytest.fixture(scope="module")
def reference():
    h, J = random_machine(10, seed=0)
    exact_tv = total_variation(ExactSampler(seed=99).sample(h, J, N_SAMPLES), h, J)
    mean, second = exact_moments(h, J)
    return h, J, exact_tv, mean, second


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_sampler_matches_exact_distribution(name, reference):
    h, J, exact_tv, mean, second = reference
    z = SAMPLERS[name]().sample(h.float(), J.float(), N_SAMPLES).double()
    assert z.shape == (N_SAMPLES, 10)
    assert ((z == 0) | (z == 1)).all()
    tv = total_variation(z, h, J)
    assert tv <= exact_tv + 0.02, (tv, exact_tv)
    assert (z.mean(0) - mean).abs().max() <= 0.02
    assert ((z.T @ z) / N_SAMPLES - second).abs().max() <= 0.02


def test_wrong_gibbs_is_detected(reference):
    """Updating all units of a fully connected BM at once is not Gibbs: the TV test catches it."""
    h, J, exact_tv, *_ = reference
    gen = torch.Generator().manual_seed(0)
    Jt = J + J.T
    z = (torch.rand(N_SAMPLES, 10, generator=gen) < 0.5).double()
    for _ in range(100):
        z = (torch.rand(z.shape, generator=gen, dtype=z.dtype) < torch.sigmoid(h + z @ Jt)).double()
    assert total_variation(z, h, J) > exact_tv + 0.05


def test_sampling_at_other_beta():
    h, J = random_machine(8, seed=5)
    beta = 0.5
    z = GibbsSampler(seed=0).sample(h, J, 40_000, beta=beta)
    mean, _ = exact_moments(h, J, beta=beta)
    assert (z.mean(0) - mean).abs().max() < 0.02


def test_rbm_block_gibbs_is_exact():
    g = torch.Generator().manual_seed(7)
    J = torch.zeros(10, 10, dtype=torch.float64)
    J[:4, 4:] = torch.randn(4, 6, generator=g, dtype=torch.float64)
    h = torch.randn(10, generator=g, dtype=torch.float64)
    blocks = colour_blocks(J)
    assert [b.tolist() for b in blocks] == [[0, 1, 2, 3], [4, 5, 6, 7, 8, 9]]
    sampler = GibbsSampler(blocks="auto", burn_in=100, seed=0)
    tv = total_variation(sampler.sample(h, J, N_SAMPLES), h, J)
    exact_tv = total_variation(ExactSampler(seed=1).sample(h, J, N_SAMPLES), h, J)
    assert tv <= exact_tv + 0.02


def test_persistent_chains_and_state_roundtrip():
    h, J = random_machine(6, seed=1)
    a = GibbsSampler(num_sweeps=2, burn_in=5, seed=3)
    first = a.sample(h, J, 32)
    assert torch.equal(a.chains, first)
    state = a.state_dict()
    next_a = a.sample(h, J, 32)
    b = GibbsSampler(num_sweeps=2, burn_in=5, seed=999)
    b.load_state_dict(state)
    assert torch.equal(b.sample(h, J, 32), next_a)
    a.reset()
    assert a.chains is None


@pytest.mark.parametrize("cls", [GibbsSampler, ParallelTemperingSampler, ExactSampler])
def test_seeded_reproducibility(cls):
    h, J = random_machine(6, seed=2)
    assert torch.equal(cls(seed=11).sample(h, J, 64), cls(seed=11).sample(h, J, 64))


def test_tempering_records_swap_acceptance():
    h, J = random_machine(8, seed=3)
    s = ParallelTemperingSampler(n_replicas=5, burn_in=10, seed=0)
    s.sample(h, J, 100)
    assert s.swap_acceptance.shape == (4,)
    assert ((s.swap_acceptance > 0) & (s.swap_acceptance <= 1)).all()


@pytest.mark.parametrize(
    "args, match",
    [
        ((torch.zeros(3), torch.zeros(3, 2), 5), "J must have shape"),
        ((torch.zeros(3, 1), torch.zeros(3, 3), 5), "h must have shape"),
        ((torch.zeros(3), torch.zeros(3, 3), 0), "num_samples"),
        ((torch.tensor([0.0, float("nan"), 0.0]), torch.zeros(3, 3), 5), "finite"),
    ],
)
def test_sampler_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        GibbsSampler().sample(*args)


def test_bad_seed_and_options():
    with pytest.raises(TypeError, match="seed"):
        GibbsSampler(seed="x")
    with pytest.raises(ValueError, match="blocks"):
        GibbsSampler(blocks="parallel")
    with pytest.raises(ValueError, match="beta"):
        GibbsSampler().sample(torch.zeros(2), torch.zeros(2, 2), 3, beta=0.0)
