"""Relaxations of binary variables and the analytic KL to a Boltzmann prior."""

import pyro
import pyro.optim
import pytest
import torch
from conftest import random_machine
from pyro.infer import SVI, Trace_ELBO
from torch.distributions import kl_divergence

import qbm_pyro.distributions as dist
from qbm_pyro.samplers import GibbsSampler

RELAXED = [dist.SpikeAndExponential, dist.OverlappingExponentials]


@pytest.mark.parametrize("cls", RELAXED)
def test_relaxed_samples_keep_the_bernoulli_mean(cls):
    """P(ζ > 1/2) is close to q for sharp beta, samples lie in [0, 1], gradients reach logits."""
    logits = torch.tensor([-3.0, -1.0, 0.0, 1.0, 3.0], requires_grad=True)
    d = cls(logits, 20.0)
    x = d.rsample((100_000,))
    assert ((x >= 0) & (x <= 1)).all()
    assert torch.allclose((x > 0.5).float().mean(0), torch.sigmoid(logits), atol=0.03)
    x.mean().backward()
    assert (logits.grad > 0).all()


@pytest.mark.parametrize("cls", RELAXED)
def test_relaxed_density_matches_samples(cls):
    logits = torch.tensor([-1.0, 0.5, 2.0])
    d = cls(logits, 4.0)
    x = d.rsample((200_000,))
    grid = torch.linspace(0.0005, 0.4995, 500).unsqueeze(-1)
    continuous = d.log_prob(grid).exp().mean(0) * 0.5  # ∫_0^{1/2} density
    spike = (1 - torch.sigmoid(logits)) if cls is dist.SpikeAndExponential else 0.0
    assert torch.allclose((x < 0.5).float().mean(0), continuous + spike, atol=0.01)


def test_overlapping_exponentials_is_stable_at_extreme_logits():
    logits = torch.tensor([-40.0, -15.0, 15.0, 40.0], requires_grad=True)
    x = dist.OverlappingExponentials(logits, 10.0).rsample((1000,))
    assert torch.isfinite(x).all()
    x.sum().backward()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("beta", [1.0, 5.0, 20.0])
def test_overlapping_exponentials_implicit_gradient_is_the_icdf_gradient(beta):
    """rsample's implicit gradient -(dF/dq)/r(ζ) equals autograd through the quadratic's root
    (float64, logits from -30 to 30), and passes gradcheck."""
    logits = torch.linspace(-30, 30, 121, dtype=torch.float64).requires_grad_()
    d = dist.OverlappingExponentials(logits, beta)
    torch.manual_seed(0)
    zeta = d.rsample((20,))
    torch.manual_seed(0)
    rho = torch.rand(20, 121, dtype=torch.float64)
    reference = d.icdf(rho)
    assert torch.equal(zeta, reference)
    weights = torch.randn(20, 121, dtype=torch.float64)
    (implicit,) = torch.autograd.grad((weights * zeta).sum(), logits)
    (direct,) = torch.autograd.grad((weights * reference).sum(), logits)
    assert torch.allclose(implicit, direct, rtol=1e-7, atol=1e-10)
    assert implicit.abs().max() > 0.1  # the comparison is not between zeros

    def draw(x):
        torch.manual_seed(1)
        return dist.OverlappingExponentials(x, beta).rsample((4,))

    assert torch.autograd.gradcheck(draw, (torch.randn(6, dtype=torch.float64, requires_grad=True),))


def test_overlapping_exponentials_learnable_beta_gets_a_gradient():
    beta = torch.tensor(4.0, requires_grad=True)
    dist.OverlappingExponentials(torch.randn(10), beta).rsample().sum().backward()
    assert beta.grad is not None and torch.isfinite(beta.grad)


@pytest.mark.parametrize("base", ["bernoulli", "spike", "overlap"])
def test_kl_to_boltzmann_is_exact(base):
    h, J = random_machine(8, seed=0, dtype=torch.float32)
    prior = dist.Boltzmann(h, J)
    logits = torch.randn(5, 8)
    q = {
        "bernoulli": dist.Bernoulli(logits=logits),
        "spike": dist.SpikeAndExponential(logits),
        "overlap": dist.OverlappingExponentials(logits),
    }[base].to_event(1)
    z = prior.enumerate_support().unsqueeze(1)  # (256, 1, 8)
    log_q = dist.Bernoulli(logits=logits).to_event(1).log_prob(z)
    exact = (log_q.exp() * (log_q - prior.log_prob(z))).sum(0)
    assert torch.allclose(kl_divergence(q, prior), exact, atol=1e-4)
    assert torch.allclose(kl_divergence(q, prior.expand([5])), exact, atol=1e-4)


def test_kl_gradient_reaches_encoder_and_prior():
    h, J = random_machine(6, seed=1, dtype=torch.float32)
    h.requires_grad_(True)
    J.requires_grad_(True)
    logits = torch.zeros(3, 6, requires_grad=True)
    kl = kl_divergence(dist.SpikeAndExponential(logits).to_event(1), dist.Boltzmann(h, J)).sum()
    kl.backward()
    assert logits.grad.abs().sum() > 0 and h.grad.abs().sum() > 0 and J.grad.abs().sum() > 0


def test_kl_refuses_non_factorial_posterior():
    prior = dist.Boltzmann(torch.zeros(3), torch.zeros(3, 3))
    with pytest.raises(NotImplementedError):
        kl_divergence(dist.Normal(torch.zeros(3), 1.0).to_event(1), prior)


@pytest.mark.parametrize("exact", [True, False], ids=["exact-logZ", "sampled-logZ"])
def test_pyro_svi_with_boltzmann_prior(exact):
    """A small model with a learned Boltzmann prior and a Bernoulli guide: the ELBO improves."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    n, n_obs = 6, 200
    gen = torch.Generator().manual_seed(0)
    true_z = (torch.rand(n_obs, n, generator=gen) < 0.3).float()
    true_z[:, 1] = true_z[:, 0]  # correlated code the prior should learn
    W = torch.randn(n, 10, generator=gen)
    x = true_z @ W + 0.3 * torch.randn(n_obs, 10, generator=gen)
    sampler = GibbsSampler(num_sweeps=2, burn_in=20, seed=0)
    options = {} if exact else {"sampler": sampler, "exact_max_n": 0, "num_samples": 500, "log_z": 0.0}

    def model(x):
        h = pyro.param("h", torch.zeros(n))
        Jp = pyro.param("J", torch.zeros(n, n))
        with pyro.plate("cells", x.shape[0]):
            z = pyro.sample("z", dist.Boltzmann(h, torch.triu(Jp, 1), **options))
            pyro.sample("x", dist.Normal(z @ W, 0.3).to_event(1), obs=x)

    def guide(x):
        logits = pyro.param("logits", torch.zeros(x.shape[0], n))
        with pyro.plate("cells", x.shape[0]):
            pyro.sample("z", dist.Bernoulli(logits=logits).to_event(1))

    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO(num_particles=4))
    losses = [svi.step(x) for _ in range(300)]
    assert sum(losses[-20:]) / 20 < 0.5 * sum(losses[:20]) / 20
    J = pyro.param("J").detach()
    assert J[0, 1] > 0.5  # the coupling between the two tied units is learned, with the right sign
