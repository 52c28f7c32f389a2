"""Free bits on the Gaussian units' KL (``continuous_free_bits``): the floored value against the
closed-form Gaussian KL, no gradient below the floor, the plain KL's above it, and the trainer's
objective."""

import numpy as np
import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence

from qbm_pyro.module.free_bits import free_bits_kl


def closed_form_kl(mu, sigma, m):
    """KL(N(mu, sigma²) ‖ N(m, 1)) per entry."""
    return 0.5 * (sigma**2 + (mu - m) ** 2 - 1.0) - torch.log(sigma)


def _units():
    """Four cells, three units: unit 0 far from its prior (mean KL > 1 nat), unit 1 at 0.3-0.5
    nats, unit 2 on its prior (0 nats)."""
    mu = torch.tensor(
        [[2.0, 0.9, 0.0], [1.5, -0.8, 0.0], [-2.5, 1.0, 0.0], [1.8, 0.7, 0.0]], dtype=torch.float64
    )
    sigma = torch.tensor([[0.5, 1.0, 1.0]], dtype=torch.float64).expand(4, 3).clone()
    m = torch.zeros(4, 3, dtype=torch.float64)
    return mu.requires_grad_(), sigma.requires_grad_(), m


@pytest.mark.parametrize("floor", [0.0, 0.2, 0.5, 3.0])
def test_value_is_each_units_batch_mean_kl_floored(floor):
    mu, sigma, m = _units()
    per = closed_form_kl(mu, sigma, m).detach()
    got = free_bits_kl(Normal(mu, sigma), Normal(m, 1.0), floor)
    expected = torch.where(per.mean(0) >= floor, per, torch.full_like(per, floor)).sum(-1)
    torch.testing.assert_close(got, expected)
    # the minibatch total is B * sum_d max(floor, mean_d KL)
    total = 4 * sum(max(floor, float(per[:, d].mean())) for d in range(3))
    assert float(got.detach().sum()) == pytest.approx(total)
    if floor == 0.0:  # the plain KL summed over units
        plain = kl_divergence(Independent(Normal(mu, sigma), 1), Independent(Normal(m, 1.0), 1))
        torch.testing.assert_close(got, plain)


def test_no_gradient_below_the_floor_and_the_plain_one_above():
    mu, sigma, m = _units()
    per_mean = closed_form_kl(mu, sigma, m).detach().mean(0)
    floor = 0.5
    below = per_mean < floor
    assert below.tolist() == [False, True, True]
    free_bits_kl(Normal(mu, sigma), Normal(m, 1.0), floor).sum().backward()
    g_mu, g_sigma = mu.grad.clone(), sigma.grad.clone()
    assert (g_mu[:, below] == 0).all() and (g_sigma[:, below] == 0).all()
    mu.grad = sigma.grad = None
    closed_form_kl(mu, sigma, m).sum().backward()
    torch.testing.assert_close(g_mu[:, ~below], mu.grad[:, ~below])
    torch.testing.assert_close(g_sigma[:, ~below], sigma.grad[:, ~below])
    assert (g_mu[:, ~below] != 0).all()


@pytest.mark.parametrize("bad", [-0.1, float("inf"), float("nan")])
def test_bad_floor_is_refused(bad):
    mu, sigma, m = _units()
    with pytest.raises(ValueError, match="free-bits floor"):
        free_bits_kl(Normal(mu, sigma), Normal(m, 1.0), bad)


def test_training_config_checks_and_records_continuous_free_bits():
    from qbm_pyro.training import TrainingConfig, recorded_config

    assert TrainingConfig().continuous_free_bits == 0.0  # off since stop 21 (0.5 for stops 18-20)
    assert TrainingConfig(continuous_free_bits=0.5).record()["continuous_free_bits"] == 0.5
    for bad in (-1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="continuous_free_bits"):
            TrainingConfig(continuous_free_bits=bad)
    # a checkpoint written before the setting existed was trained without free bits
    now = TrainingConfig(progress_bar=False).record()
    old = {k: v for k, v in now.items() if k != "continuous_free_bits"}
    assert recorded_config(old)["continuous_free_bits"] == 0.0


def test_free_bits_are_the_objective_trained_and_validated(paul15_module_batch):
    """``continuous_free_bits=λ``: the trainer's loss is the module's loss with the Gaussian units'
    KL floored at ``λ`` per unit (then weighed as before), in training and validation; 0 is the
    objective without it."""
    from qbm_pyro.training import Trainer, TrainingConfig

    adata, registry, module, batch = paul15_module_batch
    losses = {}
    for floor in (0.0, 2.0):
        config = TrainingConfig(continuous_free_bits=floor, progress_bar=False)
        trainer = Trainer(module, adata, registry, np.arange(200), np.arange(0), config)
        torch.manual_seed(0)
        losses[floor] = trainer._loss(batch, 0.5)
    torch.manual_seed(0)
    assert torch.equal(losses[0.0], module.loss(batch, {"z": 0.5, "c": 1.5}))
    torch.manual_seed(0)
    assert torch.equal(losses[2.0], module.loss(batch, {"z": 0.5, "c": 1.5}, free_bits=2.0))
    torch.manual_seed(0)
    terms = module.loss_terms(batch)
    torch.manual_seed(0)
    floored = module.loss_terms(batch, free_bits=2.0)
    per_cell, plain = floored["kl"]["c"].detach(), terms["kl"]["c"].detach()
    assert float(per_cell.sum()) >= float(plain.sum()) - 1e-4  # a floor only raises the total
    torch.testing.assert_close(floored["kl"]["z"], terms["kl"]["z"])  # the code's KL untouched
    torch.testing.assert_close(
        losses[2.0] - losses[0.0], 1.5 * (per_cell.sum() - plain.sum()), rtol=1e-4, atol=1e-3
    )
