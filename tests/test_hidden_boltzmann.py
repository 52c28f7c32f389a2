"""The Boltzmann prior with hidden units against exact enumeration of the joint machine."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import kl_divergence

import qbm_pyro.distributions as dist
from qbm_pyro.distributions.hidden_boltzmann import joint_machine
from qbm_pyro.distributions.kl import expected_softplus, kl_bernoulli_hidden_boltzmann
from qbm_pyro.energy import energy
from qbm_pyro.module.priors import BoltzmannPrior
from qbm_pyro.samplers import ExactSampler
from qbm_pyro.samplers.exact import enumerate_states


def machine(n=4, m=3, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    h = scale * torch.randn(n, generator=g, dtype=torch.float64)
    J = scale * torch.randn(n, n, generator=g, dtype=torch.float64).triu(1)
    b = scale * torch.randn(m, generator=g, dtype=torch.float64)
    W = scale * torch.randn(n, m, generator=g, dtype=torch.float64)
    return [t.requires_grad_() for t in (h, J, b, W)]


def brute_log_marginal(h, J, b, W):
    """log p(z) for every code, by summing the joint machine over u and over (z, u)."""
    n, m = h.shape[0], b.shape[0]
    z = enumerate_states(n, dtype=h.dtype)
    u = enumerate_states(m, dtype=h.dtype)
    hj, Jj = joint_machine(h, J, b, W)
    zu = torch.cat([z.repeat_interleave(len(u), 0), u.repeat(len(z), 1)], -1)  # (2^n 2^m, n + m)
    minus_e = -energy(zu, hj, Jj).reshape(len(z), len(u))
    log_joint_z = torch.logsumexp(minus_e, 1)
    return z, log_joint_z - torch.logsumexp(minus_e.reshape(-1), 0)


def test_marginal_log_prob_and_its_gradient_match_enumeration_of_the_joint():
    params = machine()
    d = dist.HiddenBoltzmann(*params, validate_args=True)
    z, expected = brute_log_marginal(*params)
    ours = d.log_prob(z)
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(ours.exp().sum(), torch.tensor(1.0, dtype=torch.float64))
    weights = torch.linspace(-1, 1, len(z), dtype=torch.float64)  # a generic scalar of log p
    g_ours = torch.autograd.grad((weights * ours).sum(), params)
    g_true = torch.autograd.grad((weights * expected).sum(), params)
    for a, e in zip(g_ours, g_true):
        torch.testing.assert_close(a, e)
    # the free energy is -log Σ_u exp(-E(z, u)): log p = -F - log Z
    torch.testing.assert_close(-d.free_energy(z) - d.log_partition_function, expected)


def test_sampled_log_z_gradient_is_the_joint_negative_phase():
    """Above the enumeration limit the gradient of log Z comes from joint samples; with exact
    joint draws it matches the exact gradient to Monte Carlo error."""
    params = machine(n=4, m=3, seed=1)
    exact = dist.HiddenBoltzmann(*params).log_partition_function
    g_exact = torch.autograd.grad(exact, params)
    sampled = dist.HiddenBoltzmann(
        *params, exact_max_n=0, sampler=ExactSampler(seed=0), num_samples=200_000, log_z=float(exact.detach())
    )
    surrogate = sampled.log_partition_surrogate
    assert float(surrogate.detach()) == pytest.approx(float(exact.detach()))
    g_sampled = torch.autograd.grad(surrogate, params)
    for a, e in zip(g_sampled, g_exact):
        torch.testing.assert_close(a, e, atol=6e-3, rtol=0)  # sd of a mean of 2e5 draws < 1.2e-3


def test_exact_samples_follow_the_marginal():
    params = [p.detach() for p in machine(n=4, m=3, seed=2)]
    d = dist.HiddenBoltzmann(*params)
    torch.manual_seed(0)
    z = d.sample((40_000,))
    assert z.shape == (40_000, 4) and set(z.unique().tolist()) <= {0.0, 1.0}
    states, log_p = brute_log_marginal(*params)
    index = (z * 2 ** torch.arange(3, -1, -1, dtype=z.dtype)).sum(-1).long()
    freq = torch.bincount(index, minlength=16).double() / len(z)
    assert 0.5 * (freq - log_p.exp()).abs().sum() < 0.02  # noise floor about 0.01 here
    # the joint draws are joint: u | z is the right conditional
    z, u = d.sample_joint((40_000,))
    on = z[:, 0] == 1
    expected = torch.sigmoid(params[2][0] + z[on] @ params[3][:, 0]).mean()
    assert float(u[on, 0].mean()) == pytest.approx(float(expected), abs=0.02)


def test_sampler_draws_the_joint_machine():
    params = [p.detach() for p in machine(n=3, m=2, seed=3)]
    d = dist.HiddenBoltzmann(*params, sampler=ExactSampler(seed=0), exact_max_n=0, log_z=0.0)
    torch.manual_seed(0)
    z = d.sample((30_000,))
    states, log_p = brute_log_marginal(*params)
    index = (z * torch.tensor([4.0, 2.0, 1.0], dtype=z.dtype)).sum(-1).long()
    freq = torch.bincount(index, minlength=8).double() / len(z)
    assert 0.5 * (freq - log_p.exp()).abs().sum() < 0.02


def exact_kl(logits, h, J, b, W):
    """KL(Π Bernoulli(σ(logits)) ‖ p) by enumeration of the codes, per row of logits."""
    z, log_p = brute_log_marginal(h, J, b, W)
    log_q = (z * torch.nn.functional.logsigmoid(logits).unsqueeze(-2)).sum(-1) + (
        (1 - z) * torch.nn.functional.logsigmoid(-logits).unsqueeze(-2)
    ).sum(-1)  # (B, 2^n)
    return (log_q.exp() * (log_q - log_p)).sum(-1)


def test_kl_estimate_and_its_gradients_are_unbiased():
    """Averaged over many draws, the sampled KL and its gradients in the posterior's logits and
    in every prior parameter match the exact ones; the gradient in the logits also differs from
    what the pathwise term alone would give (the local-expectation term matters)."""
    params = machine(n=4, m=3, seed=4)
    logits = torch.tensor([[0.5, -1.0, 2.0, 0.0], [-0.3, 0.8, -2.0, 1.5]], dtype=torch.float64)
    logits.requires_grad_()
    d = dist.HiddenBoltzmann(*params)
    true = exact_kl(logits, *params).sum()
    g_true = torch.autograd.grad(true, [logits, *params])
    torch.manual_seed(0)
    draws = 40_000
    estimate = kl_bernoulli_hidden_boltzmann(logits, d, num_draws=draws).sum()
    assert float(estimate.detach()) == pytest.approx(float(true.detach()), abs=0.02)
    g_est = torch.autograd.grad(estimate, [logits, *params])
    for a, e in zip(g_est, g_true):
        torch.testing.assert_close(a, e, atol=0.03, rtol=0)
    # the softplus term's own gradient in the logits is large, so the match above needs the
    # local-expectation term (the pathwise term gives the logits nothing: the draws are hard)
    z, _ = brute_log_marginal(*params)
    log_q = (z * torch.nn.functional.logsigmoid(logits).unsqueeze(-2)).sum(-1) + (
        (1 - z) * torch.nn.functional.logsigmoid(-logits).unsqueeze(-2)
    ).sum(-1)
    softplus_term = (log_q.exp() * torch.nn.functional.softplus(d.hidden_input(z)).sum(-1)).sum()
    assert torch.autograd.grad(softplus_term, logits)[0].abs().max() > 0.2
    torch.manual_seed(0)
    q_z = torch.bernoulli(torch.sigmoid(logits.detach()).expand(4, 2, 4))
    assert torch.autograd.grad(expected_softplus(logits, d, z=q_z).sum(), logits)[0].abs().max() > 0


def test_registered_kl_for_bernoulli_and_relaxed_posteriors():
    params = machine(n=4, m=3, seed=5)
    logits = torch.tensor([[0.5, -1.0, 2.0, 0.0]], dtype=torch.float64)
    d = dist.HiddenBoltzmann(*params)
    true = exact_kl(logits, *params)
    torch.manual_seed(0)
    q = dist.Independent(dist.Bernoulli(logits=logits.expand(20_000, 4)), 1)
    kl = kl_divergence(q, d.expand((20_000,)))
    assert kl.shape == (20_000,)
    assert float(kl.mean().detach()) == pytest.approx(float(true.detach()), abs=0.03)
    relaxed_q = dist.Independent(dist.OverlappingExponentials(logits.expand(20_000, 4), 5.0), 1)
    prior = dist.RelaxedBoltzmann(d, "overlap", 5.0).expand((20_000,))
    kl_relaxed = kl_divergence(relaxed_q, prior).mean().detach()
    assert float(kl_relaxed) == pytest.approx(float(true.detach()), abs=0.03)


def test_descend_reaches_the_local_minima_of_the_free_energy():
    params = [p.detach() for p in machine(n=5, m=4, seed=6, scale=2.0)]
    d = dist.HiddenBoltzmann(*params)
    z = enumerate_states(5, dtype=torch.float64)
    minima = d.descend(z)
    f = d.free_energy(minima)
    assert (f <= d.free_energy(z) + 1e-12).all()
    flips = torch.eye(5, dtype=torch.float64)
    for row, value in zip(minima, f):
        neighbours = (row + flips) % 2
        assert (d.free_energy(neighbours) >= value - 1e-12).all()
    # every brute-force local minimum is reached from itself
    local = [s for s in z if all(d.free_energy((s + e) % 2) >= d.free_energy(s) for e in flips)]
    assert {tuple(s.tolist()) for s in local} == {tuple(s.tolist()) for s in minima.unique(dim=0)}


def test_bad_arguments_are_refused():
    h, J, b, W = (p.detach() for p in machine())
    with pytest.raises(ValueError, match="W must have shape"):
        dist.HiddenBoltzmann(h, J, b, W.T)
    with pytest.raises(ValueError, match="J must have shape"):
        dist.HiddenBoltzmann(h, J[:3], b, W)
    with pytest.raises(ValueError, match="one machine"):
        dist.HiddenBoltzmann(h.expand(2, 4), J, b, W)
    with pytest.raises(ValueError, match="at least one hidden unit"):
        dist.HiddenBoltzmann(h, J, b[:0], W[:, :0])
    d = dist.HiddenBoltzmann(h, J, b, W, validate_args=True)
    with pytest.raises(ValueError):
        d.log_prob(torch.full((4,), 0.5, dtype=torch.float64))
    with pytest.raises(ValueError, match="n_hidden >= 1"):
        BoltzmannPrior(4, structure="hidden", n_hidden=0)


@pytest.mark.parametrize("n", [6, 14])
def test_prior_module_with_hidden_units(n):
    """The prior module's log Z (exact up to its limit, AIS over the joint machine above) and
    its sampling machine."""
    torch.manual_seed(0)
    prior = BoltzmannPrior(n, structure="hidden", n_hidden=5).double()
    with torch.no_grad():
        prior.W.normal_(0, 0.5)
        prior.h.normal_(0, 0.5)
    h, J = prior.sampling_machine()
    assert h.shape == (n + 5,) and J.shape == (n + 5, n + 5)
    with torch.no_grad():
        d = dist.HiddenBoltzmann(prior.h, prior.couplings(), prior.b, prior.W, exact_max_n=20)
        exact = float(d.log_partition_function)
    value = prior.refresh_log_z(n_chains=256, n_steps=500) if n > prior.exact_max_n else prior.refresh_log_z()
    assert value == pytest.approx(exact, abs=0.05 if n > prior.exact_max_n else 1e-9)
    z = torch.bernoulli(torch.full((3, n), 0.5, dtype=torch.float64))
    with torch.no_grad():
        torch.testing.assert_close(prior.energy(z), prior.distribution().free_energy(z))


def test_model_with_hidden_units_saves_loads_and_generates(tmp_path):
    import numpy as np

    import qbm_pyro
    from qbm_pyro import datasets

    data = datasets.pbmc_cite_2batch()
    model = qbm_pyro.QBMVAE(
        data, batch_key="batch", n_latent=8, n_continuous=2, prior="hidden", n_prior_hidden=4
    )
    model.train(max_epochs=2, progress_bar=False)
    assert model.module.prior.W.shape == (8, 4)
    assert np.isfinite(model.history_["log_z"]).all()
    codes = model.sample_prior(50, seed=0)
    assert codes.shape == (50, 8) and set(np.unique(codes)) <= {0.0, 1.0}
    assert np.isfinite(model.get_marginal_ll(n_samples=4, seed=0))
    model.save(tmp_path)
    loaded = qbm_pyro.QBMVAE.load(tmp_path, data)
    assert loaded.init_args["n_prior_hidden"] == 4
    torch.testing.assert_close(loaded.module.prior.W, model.module.prior.W)
    np.testing.assert_allclose(loaded.sample_prior(50, seed=0), codes)


def test_attractors_of_a_prior_with_hidden_units_need_the_model():
    """From uns alone (h, J) the free energy is unknown, so tl.attractors says so; with the model it
    descends the prior's own (free) energy."""
    import qbm_pyro
    from qbm_pyro import datasets

    data = datasets.pbmc_cite_2batch()
    model = qbm_pyro.QBMVAE(
        data, batch_key="batch", n_latent=6, n_continuous=0, prior="hidden", n_prior_hidden=3
    )
    model.train(max_epochs=1, progress_bar=False)
    qbm_pyro.tl.qbm(data, model)
    assert data.uns["qbm"]["prior"]["W"].shape == (6, 3)
    with pytest.raises(NotImplementedError, match="model="):
        qbm_pyro.tl.attractors(data)
    qbm_pyro.tl.attractors(data, model, n_prior_samples=64, method="greedy")
    codes = torch.as_tensor(data.uns["qbm_attractor"]["states"], dtype=torch.float32)
    # the default (mean-field states) needs h and J: with hidden units it is the graph basins
    qbm_pyro.tl.attractors(data, model, n_prior_samples=0, n_markers=0, key_added="default")
    assert data.uns["default"]["method"] == "graph"
    with pytest.raises(ValueError, match="quadratic"):
        qbm_pyro.tl.attractors(data, model, method="meanfield", n_markers=0)
    free = model.module.prior.distribution()
    # each attractor is a minimum of the free energy
    torch.testing.assert_close(free.descend(codes), codes.to(free.h.dtype))
