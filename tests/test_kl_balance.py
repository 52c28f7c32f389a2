"""KL balancing (``kl_balance``): the plain KL in value, its gradient split between prior and posterior."""

import numpy as np
import pytest
import torch

import qbm_pyro.distributions as dist
from qbm_pyro.distributions import kl_balanced_code
from qbm_pyro.distributions.kl import kl_bernoulli_code


def _grads(fn, logits, params):
    for t in (logits, *params):
        t.grad = None
    value = fn().sum()
    value.backward()
    return value.detach(), logits.grad.clone(), [p.grad.clone() for p in params]


def _boltzmann(h, J):
    return dist.Boltzmann(h, J)  # n = 6 <= exact_max_n: log Z exact and differentiable


def _hidden(h, J, b, W):
    return dist.HiddenBoltzmann(h, J, b, W)


@pytest.mark.parametrize("alpha", [0.5, 0.8, 1.0])
@pytest.mark.parametrize("hidden", [False, True])
def test_balanced_kl_value_and_gradient_split(alpha, hidden):
    g = torch.Generator().manual_seed(0)
    n, m = 6, 3
    logits = torch.randn(5, n, generator=g).requires_grad_()
    params = [torch.randn(n, generator=g), torch.triu(torch.randn(n, n, generator=g), 1)]
    if hidden:
        params += [torch.randn(m, generator=g), torch.randn(n, m, generator=g)]
    params = [p.requires_grad_() for p in params]
    make = _hidden if hidden else _boltzmann

    def plain():
        torch.manual_seed(1)  # the hidden prior's KL draws codes from q: the same draws each time
        return kl_bernoulli_code(logits, make(*params))

    def balanced():
        torch.manual_seed(1)
        return kl_balanced_code(logits, make(*params), alpha)

    def two_terms():  # α·KL(sg(q) ‖ p) + (1 − α)·KL(q ‖ sg(p)), literally
        torch.manual_seed(1)
        to_prior = kl_bernoulli_code(logits.detach(), make(*params))
        torch.manual_seed(1)
        to_posterior = kl_bernoulli_code(logits, make(*[p.detach() for p in params]))
        return alpha * to_prior + (1 - alpha) * to_posterior

    value, d_logits, d_params = _grads(plain, logits, params)
    b_value, b_logits, b_params = _grads(balanced, logits, params)
    t_value, t_logits, t_params = _grads(two_terms, logits, params)
    assert torch.equal(b_value, value)  # the same number, not an approximation of it
    assert torch.allclose(t_value, value, atol=1e-5)
    assert torch.allclose(b_logits, (1 - alpha) * d_logits, atol=1e-6)
    assert torch.allclose(b_logits, t_logits, atol=1e-6)
    for b, d, t in zip(b_params, d_params, t_params):
        assert torch.allclose(b, alpha * d, atol=1e-6)
        assert torch.allclose(b, t, atol=1e-6)
    assert d_logits.abs().max() > 0.1 and all(d.abs().max() > 0.01 for d in d_params)  # not trivial


@pytest.mark.parametrize("alpha", [0.0, -0.5, 1.5, float("nan")])
def test_balanced_kl_refuses_alpha_out_of_range(alpha):
    with pytest.raises(ValueError, match="alpha must be in"):
        kl_balanced_code(torch.zeros(2, 3), dist.Boltzmann(torch.zeros(3), torch.zeros(3, 3)), alpha)


def test_module_loss_with_balance_half_is_the_plain_loss_and_halves_the_prior_gradient():
    from qbm_pyro import datasets
    from qbm_pyro.data import MinibatchLoader, setup_data
    from qbm_pyro.module import MultiVAE

    adata = datasets.paul15_myeloid()
    registry = setup_data(adata)
    n_vars = {spec.kind: spec.n_vars for spec in registry.modalities.values()}
    module = MultiVAE(n_vars, registry.n_batch, prior="boltzmann", n_latent=12, n_continuous=4)
    with torch.no_grad():  # a prior away from zero, so that its gradient is not trivial
        for p in module.prior.parameters():
            p.normal_(0, 0.3, generator=torch.Generator().manual_seed(2))
    batch = next(iter(MinibatchLoader(adata, registry, batch_size=32, seed=0)))
    prior_ids = {id(p) for p in module.prior.parameters()}
    out = []
    for balance in (None, 0.5):
        torch.manual_seed(0)
        loss = module.loss(batch, 0.7, kl_balance=balance)
        loss.backward()
        out.append(
            (
                loss.detach(),
                {
                    name: p.grad.clone()
                    for name, p in module.named_parameters()
                    if p.grad is not None and id(p) in prior_ids
                },
                {
                    name: p.grad.clone()
                    for name, p in module.named_parameters()
                    if p.grad is not None and name.startswith("decoder")
                },
            )
        )
        module.zero_grad()
    (plain, plain_prior, plain_dec), (half, half_prior, half_dec) = out
    assert torch.equal(half, plain)
    assert plain_prior and plain_dec
    for name, g in plain_prior.items():
        assert g.abs().max() > 0
        assert torch.allclose(half_prior[name], 0.5 * g, atol=1e-6)
    for name, g in plain_dec.items():  # the reconstruction term is untouched
        assert torch.equal(half_dec[name], g)


def test_training_config_checks_kl_balance():
    from qbm_pyro.training import TrainingConfig

    assert TrainingConfig().kl_balance is None
    assert TrainingConfig(kl_balance=0.8).record()["kl_balance"] == 0.8
    with pytest.raises(ValueError, match="kl_balance"):
        TrainingConfig(kl_balance=1.2)


def test_training_config_checks_continuous_kl_weight():
    from qbm_pyro.training import TrainingConfig

    assert TrainingConfig().continuous_kl_weight == 3.0  # the default since stop 13 (BENCHMARKS.md)
    assert TrainingConfig(continuous_kl_weight=3.0).record()["continuous_kl_weight"] == 3.0
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="continuous_kl_weight"):
            TrainingConfig(continuous_kl_weight=bad)


def test_checkpoint_records_written_before_the_default_changed_read_as_trained():
    """A checkpoint written before ``continuous_kl_weight`` existed was trained at 1 (the ELBO):
    resuming it at today's default must count as a change of setting (and warn), not as the same."""
    from qbm_pyro.training import TrainingConfig, recorded_config

    now = TrainingConfig(progress_bar=False).record()
    old = {k: v for k, v in now.items() if k != "continuous_kl_weight"}
    assert recorded_config(old)["continuous_kl_weight"] == 1.0
    assert {k: recorded_config(now)[k] for k in now} == now
    assert recorded_config(None)["lr"] == TrainingConfig().lr


def test_continuous_kl_weight_is_the_objective_trained_and_validated(paul15_module_batch):
    """``continuous_kl_weight=β``: the trainer's loss is the module's loss with the Gaussian units'
    KL weighed ``β`` times the warm-up weight (the code's KL as before), in training and in the
    validation loss that early stopping follows; ``β = 1`` is the plain ELBO."""
    from qbm_pyro.training import Trainer, TrainingConfig

    adata, registry, module, batch = paul15_module_batch
    losses = {}
    for beta in (1.0, 3.0):
        config = TrainingConfig(continuous_kl_weight=beta, continuous_free_bits=0.0, progress_bar=False)
        trainer = Trainer(module, adata, registry, np.arange(200), np.arange(0), config)
        torch.manual_seed(0)
        losses[beta] = trainer._loss(batch, 0.5)
    torch.manual_seed(0)
    assert torch.equal(losses[1.0], module.loss(batch, 0.5))
    torch.manual_seed(0)
    assert torch.equal(losses[3.0], module.loss(batch, {"z": 0.5, "c": 1.5}))
    torch.manual_seed(0)
    kl_c = module.loss_terms(batch)["kl"]["c"].sum()
    torch.testing.assert_close(losses[3.0] - losses[1.0], 1.0 * kl_c.detach(), rtol=1e-4, atol=1e-3)
