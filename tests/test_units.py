"""Unit tests of the module layer's building blocks against ground truth.

- :class:`NegativeBinomialMixture`: ``log_prob`` against scipy's negative binomial, and the
  pmf summed over its support (normalisation and mean) by enumeration.
- :class:`BoltzmannPrior`: ``log_prob`` and ``log Z`` against brute-force enumeration of all
  ``2^n`` states, the RBM's coupling layout, the frozen Bernoulli(1/2) ablation, ``clamp_`` and
  the default sampler.
- :class:`~qbm_pyro.module.nets.Dropout`: keep rate, scaling and gradient of its CPU mask.
- :class:`MultiVAE`: which prior it holds (``None`` for the Gaussian twin), the model's
  likelihood sites against :meth:`MultiVAE.decode` evaluated by hand, and masked cells.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pyro
import pytest
import torch
from pyro import poutine
from scipy import stats

from qbm_pyro import datasets
from qbm_pyro._constants import REGISTRY_KEYS as K
from qbm_pyro.data import MinibatchLoader, setup_data
from qbm_pyro.module import BoltzmannPrior, MultiVAE
from qbm_pyro.module.likelihoods import NegativeBinomialMixture
from qbm_pyro.samplers import ParallelTemperingSampler

# ---------------------------------------------------------------------------- NB mixture


def _scipy_nb(y: np.ndarray, mean: float, theta: float) -> np.ndarray:
    return stats.nbinom.pmf(y, theta, theta / (theta + mean))


def test_nb_mixture_log_prob_matches_scipy():
    mean_bg, mean_fg, theta, logit = 3.0, 40.0, 2.5, 0.7
    y = np.arange(0, 120)
    d = NegativeBinomialMixture(
        torch.tensor(mean_bg, dtype=torch.float64),
        torch.tensor(mean_fg, dtype=torch.float64),
        torch.tensor(theta, dtype=torch.float64),
        torch.tensor(logit, dtype=torch.float64),
    )
    pi = 1 / (1 + math.exp(-logit))
    expected = np.log(pi * _scipy_nb(y, mean_bg, theta) + (1 - pi) * _scipy_nb(y, mean_fg, theta))
    got = d.log_prob(torch.tensor(y, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-8)


def test_nb_mixture_sums_to_one_with_its_mean():
    d = NegativeBinomialMixture(
        torch.tensor([1.5, 8.0], dtype=torch.float64),
        torch.tensor([20.0, 30.0], dtype=torch.float64),
        torch.tensor([4.0, 1.0], dtype=torch.float64),
        torch.tensor([-1.0, 2.0], dtype=torch.float64),
    )
    y = torch.arange(0, 3000, dtype=torch.float64).unsqueeze(-1)  # enumerate the support
    p = d.log_prob(y).exp()
    np.testing.assert_allclose(p.sum(0).numpy(), [1.0, 1.0], atol=1e-8)
    np.testing.assert_allclose((p * y).sum(0).numpy(), d.mean.numpy(), rtol=1e-6)


def test_nb_mixture_expand_and_validation():
    d = NegativeBinomialMixture(torch.tensor(2.0), torch.tensor(9.0), torch.tensor(3.0), torch.tensor(0.0))
    e = d.expand((4, 3))
    assert e.batch_shape == (4, 3)
    value = torch.full((4, 3), 5.0)
    torch.testing.assert_close(e.log_prob(value), d.log_prob(torch.tensor(5.0)).expand(4, 3))
    checked = NegativeBinomialMixture(
        torch.tensor(2.0), torch.tensor(9.0), torch.tensor(3.0), torch.tensor(0.0), validate_args=True
    )
    with pytest.raises(ValueError):
        checked.log_prob(torch.tensor(1.5))
    with pytest.raises(ValueError):
        NegativeBinomialMixture(
            torch.tensor(-1.0), torch.tensor(9.0), torch.tensor(3.0), torch.tensor(0.0), validate_args=True
        )


# ---------------------------------------------------------------------------- Boltzmann prior


def _all_states(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)


def _brute_force(h: torch.Tensor, J: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every state and its exact log-probability, with ``E(z) = -h·z - Σ_{i<j} J_ij z_i z_j``."""
    z = _all_states(h.numel())
    energy = -(z @ h) - ((z @ torch.triu(J, 1)) * z).sum(-1)
    return z, -energy - torch.logsumexp(-energy, 0)


def _set(prior: BoltzmannPrior, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in prior.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))


@pytest.mark.parametrize("seed", [0, 1])
def test_boltzmann_prior_log_prob_is_exact(seed):
    prior = BoltzmannPrior(5, structure="full").double()
    _set(prior, seed)
    z, expected = _brute_force(prior.h.detach(), prior.couplings().detach())
    torch.testing.assert_close(prior.distribution().log_prob(z).detach(), expected)
    assert prior.refresh_log_z() == pytest.approx(float(torch.logsumexp(-prior.energy(z).detach(), 0)))


def test_rbm_prior_couples_only_across_the_layers():
    prior = BoltzmannPrior(6, structure="rbm").double()
    _set(prior, 3)
    J = prior.couplings().detach()
    v = prior.n_visible
    assert v == 3 and prior.W.shape == (3, 3)
    torch.testing.assert_close(J[:v, v:], prior.W.detach())
    assert not J[:v, :v].any() and not J[v:, :].any()
    z, expected = _brute_force(prior.h.detach(), J)
    torch.testing.assert_close(prior.distribution().log_prob(z).detach(), expected)


def test_frozen_prior_is_bernoulli_half():
    prior = BoltzmannPrior(4, learnable=False).double()
    assert not any(p.requires_grad for p in prior.parameters())
    log_p = prior.distribution().log_prob(_all_states(4))
    torch.testing.assert_close(log_p, torch.full((16,), -4 * math.log(2.0), dtype=torch.float64))
    assert prior.refresh_log_z() == pytest.approx(4 * math.log(2.0))


def test_clamp_bounds_and_cleans_the_parameters():
    prior = BoltzmannPrior(3, coupling_bound=2.0)
    with torch.no_grad():
        prior.h.copy_(torch.tensor([float("nan"), 5.0, -7.0]))
    prior.clamp_()
    torch.testing.assert_close(prior.h.detach(), torch.tensor([0.0, 2.0, -2.0]))


@pytest.mark.parametrize("structure", ["full", "rbm"])
def test_default_sampler_is_persistent_tempering(structure):
    prior = BoltzmannPrior(4, structure=structure, seed=7)
    assert isinstance(prior.sampler, ParallelTemperingSampler)
    s = prior.sampler
    assert (s.n_replicas, s.num_sweeps, s.burn_in, s.hot_chains) == (12, 1, 200, 32)
    assert s.seed == 7


# ---------------------------------------------------------------------------- MultiVAE


@pytest.fixture(scope="module")
def cite_batch():
    mdata = datasets.pbmc_cite_2batch()
    registry = setup_data(mdata, batch_key="batch")
    loader = MinibatchLoader(mdata, registry, batch_size=32, seed=0)
    n_vars = {spec.kind: spec.n_vars for spec in registry.modalities.values()}
    return next(iter(loader)), n_vars, registry.n_batch


@pytest.mark.parametrize("prior", ["boltzmann", "rbm", "hidden", "bernoulli", "gaussian"])
def test_multivae_always_has_a_prior_attribute(prior, cite_batch):
    _, n_vars, n_batch = cite_batch
    vae = MultiVAE(n_vars, n_batch, n_latent=6, n_continuous=3, prior=prior)
    if prior == "gaussian":
        assert vae.prior is None and vae.n_binary == 0 and vae.n_continuous == 3
    else:
        assert isinstance(vae.prior, BoltzmannPrior) and vae.n_binary == 6
        assert vae.prior.structure == (prior if prior in ("rbm", "hidden") else "full")
        assert vae.prior.learnable == (prior != "bernoulli")


def test_multivae_rejects_unknown_kinds_and_choices():
    with pytest.raises(ValueError, match="n_vars needs kinds"):
        MultiVAE({"spatial": 10})
    with pytest.raises(ValueError, match="prior must be one of"):
        MultiVAE({"rna": 10}, prior="ising")


def test_multivae_model_sites_match_decode(cite_batch):
    """The observed sites' log-probabilities are those of decode() at the sampled latent."""
    batch, n_vars, n_batch = cite_batch
    pyro.clear_param_store()
    torch.manual_seed(0)
    vae = MultiVAE(n_vars, n_batch, n_latent=6, n_continuous=3, seed=0).eval()
    guide = poutine.trace(vae.guide).get_trace(batch)
    model = poutine.trace(poutine.replay(vae.model, trace=guide)).get_trace(batch)
    n = batch[K.BATCH_KEY].shape[0]
    assert guide.nodes["z"]["value"].shape == (n, 6) and guide.nodes["c"]["value"].shape == (n, 3)
    model.compute_log_prob()
    latent = torch.cat([guide.nodes["z"]["value"], guide.nodes["c"]["value"]], -1)
    for kind, likelihood in vae.decode(latent, batch).items():
        site = model.nodes[f"x_{kind}"]
        expected = likelihood.log_prob(batch[K.x_key(kind)]).sum(-1) * batch[K.mask_key(kind)]
        torch.testing.assert_close(site["log_prob"], expected)
    posterior = vae.encode(batch)
    expected_latent = torch.cat([torch.sigmoid(posterior["logits"]), posterior["loc"]], -1)
    torch.testing.assert_close(vae.posterior_latent(batch), expected_latent)


def test_multivae_masked_cells_add_nothing(cite_batch):
    batch, n_vars, n_batch = cite_batch
    batch = dict(batch)
    mask = batch[K.mask_key(K.PROTEIN)].clone()
    mask[::2] = False
    batch[K.mask_key(K.PROTEIN)] = mask
    pyro.clear_param_store()
    vae = MultiVAE(n_vars, n_batch, n_latent=4, n_continuous=2, seed=0).eval()
    guide = poutine.trace(vae.guide).get_trace(batch)
    model = poutine.trace(poutine.replay(vae.model, trace=guide)).get_trace(batch)
    model.compute_log_prob()
    log_p = model.nodes[f"x_{K.PROTEIN}"]["log_prob"]
    assert (log_p[::2] == 0).all() and (log_p[1::2] < 0).all()


def test_dropout_keeps_units_with_probability_one_minus_p_and_rescales():
    """The CPU mask (U(0,1) >= p): keep rate 1 - p, kept units scaled by 1/(1-p), the gradient is
    the mask; eval mode and p = 0 are the identity, p = 1 zeroes."""
    from qbm_pyro.module.nets import Dropout

    torch.manual_seed(0)
    x = torch.ones(400, 500, requires_grad=True)
    drop = Dropout(0.3)
    y = drop(x)
    kept = y != 0
    assert abs(float(kept.float().mean()) - 0.7) < 0.005
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.7))
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())
    drop.eval()
    assert torch.equal(drop(x), x)
    assert torch.equal(Dropout(0.0)(x), x)
    assert not Dropout(1.0)(x).any()


def test_mismatched_batch_shapes_are_refused_by_name():
    """Boltzmann and NegativeBinomial broadcast with Pyro's broadcast_shape: a mismatch is a
    ValueError naming both shapes; matching ones broadcast."""
    from qbm_pyro.distributions import Boltzmann
    from qbm_pyro.module.likelihoods import NegativeBinomial

    with pytest.raises(ValueError, match=r"broadcast.*\[2\].*\[4\]"):
        Boltzmann(torch.zeros(2, 3), torch.zeros(4, 3, 3))
    assert Boltzmann(torch.zeros(2, 1, 3), torch.zeros(4, 3, 3)).batch_shape == torch.Size([2, 4])
    with pytest.raises(ValueError, match=r"broadcast.*\[3\].*\[2\]"):
        NegativeBinomial(torch.ones(3), torch.ones(2))
    assert NegativeBinomial(torch.ones(2, 1), torch.ones(3)).batch_shape == torch.Size([2, 3])
