"""The prior's last fit (``BoltzmannPrior.fit_moments``, ``Trainer.refit_prior``) against exact
enumeration: maximum likelihood on fixed moments recovers the machine (exactly up to
``exact_max_n``, with the sampled negative phase above it, mode weights included), and after
training it changes the prior only."""

import warnings

import numpy as np
import pytest
import torch
from conftest import random_machine

import qbm_pyro
from qbm_pyro.distributions import Boltzmann
from qbm_pyro.module.priors import BoltzmannPrior
from qbm_pyro.samplers.exact import exact_log_probs
from qbm_pyro.training import TrainingConfig

warnings.filterwarnings("ignore", category=UserWarning, module="mudata")


def exact_moments(h, J):
    d = Boltzmann(h.double(), J.double(), exact_max_n=16, validate_args=False)
    states = d.enumerate_support(expand=False)
    p = d.log_prob(states).exp()
    return p @ states, states.T @ (p[:, None] * states)


def test_fit_moments_recovers_a_machine_from_its_exact_moments():
    h, J = random_machine(8, seed=3)
    mean, second = exact_moments(h, J)
    prior = BoltzmannPrior(8, seed=0)  # n <= exact_max_n: exact negative phase
    gaps = prior.fit_moments(mean, second, n_steps=3000, lr=0.1)
    assert gaps["mean_gap_before"] > 0.1 and gaps["mean_gap_after"] < 1e-3 and gaps["pair_gap_after"] < 1e-3
    # the likelihood is strictly convex in (h, J): the moments pin the machine down
    torch.testing.assert_close(prior.h.detach().double(), h, atol=0.02, rtol=0)
    torch.testing.assert_close(prior.couplings().detach().double(), J, atol=0.02, rtol=0)


def test_fit_moments_with_the_sampled_negative_phase_gets_the_mode_weights_right():
    """Two modes (all-ones 0.73, all-zeros 0.27, couplings 1.5): the persistent tempering chains
    give the gradient (exact_max_n below n), averaging removes their noise; the fitted machine's
    exact distribution is compared with the truth."""
    n = 10
    h = torch.full((n,), -0.75 * (n - 1) + 0.1, dtype=torch.float64)
    J = torch.triu(torch.full((n, n), 1.5, dtype=torch.float64), 1)
    truth = exact_log_probs(h, J).exp()
    mean, second = exact_moments(h, J)
    prior = BoltzmannPrior(n, seed=0, exact_max_n=4)
    with torch.no_grad():  # as after training: near the optimum, the mode weights far off
        prior.h.copy_(h + 0.1)
        prior.J.copy_(0.95 * J)
    start = exact_log_probs(prior.h.detach().double(), prior.couplings().detach().double()).exp()
    gaps = prior.fit_moments(mean, second)  # the defaults training uses
    fitted = exact_log_probs(prior.h.detach().double(), prior.couplings().detach().double()).exp()
    assert float(truth[-1]) == pytest.approx(0.73, abs=0.01)  # all-ones
    assert abs(float(start[-1] - truth[-1])) > 0.2
    assert float(fitted[-1]) == pytest.approx(float(truth[-1]), abs=0.03)
    assert float(fitted[0]) == pytest.approx(float(truth[0]), abs=0.03)  # all-zeros
    assert 0.5 * float((fitted - truth).abs().sum()) < 0.05
    assert gaps["mean_gap_after"] < 0.05 < gaps["mean_gap_before"]


def test_fit_moments_refuses_what_it_cannot_fit():
    mean, second = torch.full((4,), 0.5), torch.full((4, 4), 0.25)
    with pytest.raises(ValueError, match="hidden units"):
        BoltzmannPrior(4, structure="hidden", n_hidden=2).fit_moments(mean, second)
    with pytest.raises(ValueError, match="fixed"):
        BoltzmannPrior(4, learnable=False).fit_moments(mean, second)
    with pytest.raises(ValueError, match=r"need mean \(4,\) and second \(4, 4\)"):
        BoltzmannPrior(4).fit_moments(mean[:3], second)
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]"):
        BoltzmannPrior(4).fit_moments(mean + 1, second)
    with pytest.raises(ValueError, match="not finite"):
        BoltzmannPrior(4).fit_moments(mean * float("nan"), second)
    with pytest.raises(ValueError, match="prior_refit_steps must be >= 0"):
        TrainingConfig(prior_refit_steps=-1)


def test_fit_moments_fits_an_rbm_prior_on_its_bipartite_couplings():
    prior = BoltzmannPrior(6, structure="rbm", seed=0)
    h, _ = random_machine(6, seed=1)
    J = torch.zeros(6, 6, dtype=torch.float64)
    J[:3, 3:] = torch.randn(3, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    mean, second = exact_moments(h, J)
    prior.fit_moments(mean, second, n_steps=1500, lr=0.05)
    torch.testing.assert_close(prior.couplings().detach().double(), J, atol=0.03, rtol=0)


def _fit(steps):
    data = qbm_pyro.datasets.pbmc_cite_2batch()
    model = qbm_pyro.QBMVAE(data, batch_key="batch", n_latent=12, n_continuous=4, seed=0)
    model.train(max_epochs=3, validation_fraction=0.2, progress_bar=False, prior_refit_steps=steps)
    return model


def _cross_entropy(prior, mean, second):
    """The prior's part of the training cells' negative ELBO: ``-h·m - Σ J C + log Z`` (exact)."""
    h, J = prior.h.detach().double(), prior.couplings().detach().double()
    log_z = Boltzmann(h, J, exact_max_n=16, validate_args=False).log_partition_function
    return float(-(h @ mean) - (J * second).sum() + log_z)


def test_training_ends_with_the_prior_fitted_to_the_final_encoder_and_nothing_else_changed():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        refit, plain = _fit(500), _fit(0)
    assert plain.prior_refit_ is None
    record = refit.prior_refit_
    assert record["steps"] == 500 and np.isfinite(record["validation_loss_after"])
    # the encoder is what training left: the same latent as the fit without the refit
    np.testing.assert_array_equal(refit.get_latent_representation(), plain.get_latent_representation())
    assert not torch.equal(refit.module.prior.J, plain.module.prior.J)
    # the prior moved to the training cells' aggregate posterior: their KL term fell (exact, n = 12)
    q = torch.as_tensor(plain.get_latent_representation(representation="probs"), dtype=torch.float64)
    q = q[torch.as_tensor(plain.train_indices_)]
    mean, outer = q.mean(0), q.T @ q / len(q)
    assert (
        _cross_entropy(refit.module.prior, mean, outer)
        < _cross_entropy(plain.module.prior, mean, outer) - 0.01
    )
    assert record["mean_gap_after"] < record["mean_gap_before"]
    # log Z follows the refitted machine (exact at n = 12)
    log_z = float(refit.module.prior.log_z)
    assert log_z == pytest.approx(refit.module.prior.refresh_log_z(), abs=1e-6)


def test_prior_refit_report_section(tmp_path):
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks import prior_refit

    assert prior_refit.report_section(tmp_path) == []
    side = {
        "mean_gap": 0.3,
        "basin_weight_tv": 0.3,
        "n_basins": 6,
        "generated_type_tv": 0.5,
        "generated_c2st": 0.7,
    }
    rows = [
        {
            "dataset": "mixology",
            "seed": s,
            "before": side | {"heldout_log_px": -10.0},
            "after": side | {"heldout_log_px": -10.0 + gain, "basin_weight_tv": 0.05},
            "fit_seconds": 8.0,
        }
        for s, gain in enumerate([0.4, 0.6])
    ]
    (tmp_path / "prior_refit.json").write_text(json.dumps({"rows": rows, "meta": {}}))
    text = "\n".join(prior_refit.report_section(tmp_path))
    assert (
        "| mixology | 2 | 0.500 ± 0.141 | 0.300 ± 0.000 / 0.300 ± 0.000 | 0.300 ± 0.000 / 0.050 ± 0.000 |"
        in text
    )


def test_fit_moments_spends_no_annealer_time():
    """A prior sampled by an annealer (here any non-torch sampler) is refitted with persistent
    tempering on the CPU: thousands of annealer calls would cost minutes (a QPU, money)."""
    from qbm_pyro.samplers import ExactSampler

    class Counting(ExactSampler):
        calls = 0

        def sample(self, h, J, num_samples, beta=1.0):
            Counting.calls += 1
            return super().sample(h, J, num_samples, beta=beta)

    h, J = random_machine(6, seed=4)
    mean, second = exact_moments(h, J)
    prior = BoltzmannPrior(6, sampler=Counting(seed=0), exact_max_n=4)
    gaps = prior.fit_moments(mean, second, n_steps=400, lr=0.05)
    assert Counting.calls == 0 and gaps["mean_gap_after"] < gaps["mean_gap_before"]
