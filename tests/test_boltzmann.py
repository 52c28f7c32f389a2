"""`dist.Boltzmann` / `dist.RBM` against exact enumeration: shapes, log Z, gradients, fitting."""

import pytest
import torch
from conftest import random_machine

import qbm_pyro.distributions as dist
from qbm_pyro.energy import energy
from qbm_pyro.samplers import ExactSampler, GibbsSampler
from qbm_pyro.samplers.exact import exact_log_partition, exact_moments


def test_namespace_reexports_pyro():
    import pyro.distributions as pdist

    assert dist.Normal is pdist.Normal and dist.Bernoulli is pdist.Bernoulli
    assert "Boltzmann" in dist.__all__ and dist.__all__ == sorted(dist.__all__)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", [1, 5, 9])
def test_log_prob_normalised(n, dtype):
    h, J = random_machine(n, seed=n, dtype=dtype)
    d = dist.Boltzmann(h, J)
    support = d.enumerate_support()
    assert support.shape == (2**n, n)
    assert d.support.check(support).all()
    assert torch.allclose(d.log_prob(support).logsumexp(0), torch.zeros((), dtype=dtype), atol=1e-5)


def test_energy_convention_upper_equals_symmetric():
    h, J = random_machine(6, seed=1)
    sym = J + J.T
    z = dist.Boltzmann(h, J).enumerate_support()
    assert torch.allclose(dist.Boltzmann(h, J).log_prob(z), dist.Boltzmann(h, sym).log_prob(z))
    # explicit formula for one state
    state = torch.tensor([1.0, 0, 1, 1, 0, 1], dtype=h.dtype)
    expected = -(h * state).sum() - sum(
        J[i, j] * state[i] * state[j] for i in range(6) for j in range(i + 1, 6)
    )
    assert torch.allclose(energy(state, h, J), expected)


def test_relaxed_energy_is_expected_energy():
    """E(q) == E_q[E(z)] for factorial q (multilinearity), which the KL relies on."""
    h, J = random_machine(7, seed=2)
    d = dist.Boltzmann(h, J)
    q = torch.rand(7, dtype=h.dtype)
    z = d.enumerate_support()
    weights = (z * q + (1 - z) * (1 - q)).prod(-1)
    assert torch.allclose(d.energy(q), (weights * d.energy(z)).sum())


@pytest.mark.parametrize(
    "J, match",
    [
        (torch.eye(3), "diagonal"),
        (torch.tensor([[0.0, 1, 0], [2, 0, 0], [0, 0, 0]]), "upper-triangular or symmetric"),
    ],
)
def test_validation_of_couplings(J, match):
    with pytest.raises(ValueError, match=match):
        dist.Boltzmann(torch.zeros(3), J, validate_args=True)


def test_shape_errors_and_support_validation():
    with pytest.raises(ValueError, match="J must have shape"):
        dist.Boltzmann(torch.zeros(3), torch.zeros(4, 4))
    d = dist.Boltzmann(torch.zeros(3), torch.zeros(3, 3), validate_args=True)
    with pytest.raises(ValueError):
        d.log_prob(torch.tensor([0.5, 0.0, 1.0]))


def test_batch_shapes_and_expand():
    h = torch.randn(4, 5)
    J = torch.triu(torch.randn(5, 5), 1)
    d = dist.Boltzmann(h, J)
    assert d.batch_shape == (4,) and d.event_shape == (5,)
    assert d.sample((3,)).shape == (3, 4, 5)
    assert d.log_prob(d.sample((3,))).shape == (3, 4)
    assert d.enumerate_support().shape == (32, 4, 5)
    assert d.enumerate_support(expand=False).shape == (32, 1, 5)
    for b in range(4):
        assert torch.allclose(d.log_partition_function[b], exact_log_partition(h[b], J))
    e = dist.Boltzmann(h[0], J).expand([2, 3])
    assert e.batch_shape == (2, 3) and e.sample((7,)).shape == (7, 2, 3, 5)
    assert torch.allclose(e.log_partition_function, exact_log_partition(h[0], J).expand(2, 3))


def test_log_partition_gradcheck():
    h, J = random_machine(5, seed=3)
    h.requires_grad_(True)
    J.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda h, J: dist.Boltzmann(h, torch.triu(J, 1)).log_partition_function, (h, J)
    )


def test_sampled_log_z_gradient_matches_exact():
    """Above exact_max_n the gradient of log Z comes from samples: cosine >= 0.99 at n = 10."""
    h, J = random_machine(10, seed=0)
    h.requires_grad_(True)
    J.requires_grad_(True)
    exact_grad = torch.autograd.grad(exact_log_partition(h, J), (h, J))
    d = dist.Boltzmann(h, J, sampler=GibbsSampler(seed=0), num_samples=20_000, exact_max_n=0, log_z=0.0)
    sampled_grad = torch.autograd.grad(d.log_partition_surrogate, (h, J))
    flat = lambda g: torch.cat([g[0], torch.triu(g[1], 1).flatten()])  # noqa: E731
    cos = torch.nn.functional.cosine_similarity(flat(exact_grad), flat(sampled_grad), dim=0)
    assert cos >= 0.99
    # the gradient is E_p[z] (h) and E_p[z_i z_j] (J, upper triangle)
    mean, second = exact_moments(h.detach(), J.detach())
    assert torch.allclose(exact_grad[0], mean, atol=1e-8)
    assert torch.allclose(torch.triu(exact_grad[1], 1), torch.triu(second, 1), atol=1e-8)


def test_ais_value_above_threshold():
    h, J = random_machine(14, seed=4)
    d = dist.Boltzmann(h, J, exact_max_n=10, ais_options={"seed": 0})
    assert abs(float(d.log_partition_function) - float(exact_log_partition(h, J))) < 0.05
    assert 0 < float(d.log_partition_stderr) < 0.05
    assert abs(float(d.log_partition_surrogate) - float(d.log_partition_function)) < 1e-9


def fit(data, n, *, steps, lr, **kwargs):
    h = torch.zeros(n, dtype=torch.float64, requires_grad=True)
    W = torch.zeros(n, n, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([h, W], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = -dist.Boltzmann(h, torch.triu(W, 1), **kwargs).log_prob(data).mean()
        loss.backward()
        opt.step()
    return h.detach(), torch.triu(W.detach(), 1)


def test_maximum_likelihood_recovers_parameters_exact_path():
    """Sign check: a wrong sign on log Z sends h, J to +inf; the right one recovers them."""
    h0, J0 = random_machine(6, seed=5)
    data = ExactSampler(seed=0).sample(h0, J0, 20_000)
    h, J = fit(data, 6, steps=300, lr=0.1)
    # measured: max |h - h0| = 0.13, max |J - J0| = 0.12 (sampling noise of 20,000 draws)
    assert (h - h0).abs().max() < 0.2
    assert (J - J0).abs().max() < 0.2


def test_maximum_likelihood_recovers_parameters_sampled_path():
    h0, J0 = random_machine(6, seed=5)
    data = ExactSampler(seed=0).sample(h0, J0, 20_000)
    sampler = GibbsSampler(num_sweeps=2, burn_in=50, seed=1)
    h, J = fit(data, 6, steps=400, lr=0.05, sampler=sampler, num_samples=2000, exact_max_n=0, log_z=0.0)
    assert (h - h0).abs().max() < 0.25  # measured: 0.1
    assert (J - J0).abs().max() < 0.3  # measured: 0.15


def test_rbm_matches_equivalent_boltzmann():
    g = torch.Generator().manual_seed(0)
    a, b, W = (
        torch.randn(3, generator=g),
        torch.randn(4, generator=g),
        torch.randn(3, 4, generator=g),
    )
    rbm = dist.RBM(a, b, W)
    J = torch.zeros(7, 7)
    J[:3, 3:] = W
    full = dist.Boltzmann(torch.cat([a, b]), J)
    z = full.enumerate_support()
    assert torch.allclose(rbm.log_prob(z), full.log_prob(z), atol=1e-5)
    assert rbm.expand([2]).n_visible == 3
    big = dist.RBM(torch.zeros(12), torch.zeros(12), torch.zeros(12, 12))
    assert [blk.tolist() for blk in big.sampler.blocks] == [list(range(12)), list(range(12, 24))]
