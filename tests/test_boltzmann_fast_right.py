"""dist.Boltzmann fast and right (issue 13, item 5): each point against exact enumeration."""

import math

import pyro
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO
from pyro.optim import Adam

import qbm_pyro.distributions as dist
from qbm_pyro.distributions.log_z_cache import LOG_Z_CACHE
from qbm_pyro.module import AnalyticKL_ELBO
from qbm_pyro.samplers import GibbsSampler, ParallelTemperingSampler
from qbm_pyro.samplers.exact import enumerate_states, exact_log_partition, exact_log_probs, exact_moments


def _machines(n, B=2, seed=0, scale=1.5):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(B, n, generator=g) * scale
    J = torch.triu(torch.randn(B, n, n, generator=g), 1)
    return h, J


def test_batched_machines_have_their_own_chains():
    # machine 1 is machine 0 with the biases flipped: sharing chains drags each towards the other
    h, J = _machines(8)
    h[1] = -h[0]
    sampler = GibbsSampler(num_sweeps=5, burn_in=100, seed=0)
    draws = torch.cat(
        [dist.Boltzmann(h, J, exact_max_n=0, sampler=sampler).sample((256,)) for _ in range(30)]
    )
    assert draws.shape == (30 * 256, 2, 8)
    for b in range(2):
        exact = exact_moments(h[b], J[b])[0]
        assert (draws[:, b].mean(0) - exact).abs().max() < 0.04


def test_batched_negative_phase_matches_exact_gradient():
    h, J = _machines(6, B=3, seed=1)
    h.requires_grad_(True)
    sampler = GibbsSampler(num_sweeps=5, burn_in=200, seed=0)
    grads = []
    for _ in range(20):
        h.grad = None
        dist.Boltzmann(
            h, J, exact_max_n=0, sampler=sampler, num_samples=512, log_z=0.0
        ).log_partition_surrogate.sum().backward()
        grads.append(h.grad.clone())
    exact = torch.stack([exact_moments(h[b].detach(), J[b])[0] for b in range(3)])
    assert (torch.stack(grads).mean(0) - exact).abs().max() < 0.03


def test_sample_batched_default_gives_each_machine_a_copy():
    from qbm_pyro.samplers import ExactSampler

    h, J = _machines(5, B=2, seed=2)
    z = ExactSampler(seed=0).sample_batched(h, J, 4000)
    for b in range(2):
        assert (z[b].mean(0) - exact_moments(h[b], J[b])[0]).abs().max() < 0.04


def test_swap_acceptance_is_one_for_a_flat_machine():
    pt = ParallelTemperingSampler(n_replicas=6, num_sweeps=7, burn_in=3, seed=0)
    for _ in range(3):  # the pairs' parities alternate across calls
        pt.sample(torch.zeros(5), torch.zeros(5, 5), 16)
        assert torch.allclose(pt.swap_acceptance, torch.ones(5, dtype=torch.float64))


def test_gibbs_refuses_blocks_with_coupled_units():
    J = torch.zeros(4, 4)
    J[0, 2] = 0.5
    with pytest.raises(ValueError, match="units 0 and 2, which are coupled"):
        GibbsSampler(blocks=[torch.tensor([0, 2]), torch.tensor([1, 3])]).sample(torch.zeros(4), J, 3)
    with pytest.raises(ValueError, match="cover every unit"):
        GibbsSampler(blocks=[torch.tensor([0, 1])]).sample(torch.zeros(4), J, 3)
    # independent sets are accepted and sample the right marginals
    h = torch.tensor([0.3, -0.2, 1.0, 0.1])
    z = GibbsSampler(blocks=[torch.tensor([0, 1, 3]), torch.tensor([2])], burn_in=50, seed=0).sample(
        h, J, 20000
    )
    assert (z.mean(0) - exact_moments(h, J)[0]).abs().max() < 0.02


@pytest.mark.parametrize("exact_max_n", [20, 4])
def test_entropy_variance_mode_against_enumeration(exact_max_n):
    h, J = _machines(9, B=1, seed=3)
    h, J = h[0], J[0]
    logp = exact_log_probs(h, J)
    entropy = float(-(logp.exp() * logp).sum())
    mean = exact_moments(h, J)[0]
    mode = enumerate_states(9)[logp.argmax()]
    d = dist.Boltzmann(
        h, J, exact_max_n=exact_max_n, sampler=GibbsSampler(burn_in=200, seed=0), num_samples=4096
    )
    tol = 1e-4 if exact_max_n == 20 else 0.1
    assert abs(float(d.entropy()) - entropy) < tol
    assert (d.variance - mean * (1 - mean)).abs().max() < (1e-5 if exact_max_n == 20 else 0.03)
    assert torch.equal(d.mode(), mode)


def test_mode_of_a_batch_and_above_enumeration():
    h, J = _machines(14, B=2, seed=4)
    modes = dist.Boltzmann(h, J, exact_max_n=10).mode()
    for b in range(2):
        assert torch.equal(modes[b], enumerate_states(14)[exact_log_probs(h[b], J[b]).argmax()])


def test_relaxed_values_are_scored_with_validation_on():
    h, J = _machines(4, B=1, seed=5)
    zeta = torch.tensor([0.2, 0.9, 0.0, 1.0])
    strict = dist.Boltzmann(h[0], J[0], validate_args=True)
    with pytest.raises(ValueError, match="support"):
        strict.log_prob(zeta)
    relaxed = dist.Boltzmann(h[0], J[0], relaxed=True, validate_args=True)
    expected = -relaxed.energy(zeta) - exact_log_partition(h[0], J[0])
    assert torch.allclose(relaxed.log_prob(zeta), expected)
    binary = torch.tensor([1.0, 0.0, 1.0, 1.0])
    assert torch.allclose(relaxed.log_prob(binary), strict.log_prob(binary))
    with pytest.raises(ValueError, match="support"):
        relaxed.log_prob(torch.tensor([1.5, 0.0, 0.0, 0.0]))


def test_relaxed_prior_in_a_validated_svi_loop():
    pyro.clear_param_store()
    x = torch.rand(32, 3)

    def model(x):
        h = pyro.param("h", torch.zeros(3))
        with pyro.plate("n", x.shape[0]):
            z = pyro.sample("z", dist.Boltzmann(h, torch.zeros(3, 3), relaxed=True))
            pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)

    def guide(x):
        logits = pyro.param("logits", torch.zeros(3))
        with pyro.plate("n", x.shape[0]):
            pyro.sample("z", dist.OverlappingExponentials(logits.expand(x.shape[0], 3), 5.0).to_event(1))

    with pyro.validation_enabled(True):
        svi = SVI(model, guide, Adam({"lr": 0.01}), TraceMeanField_ELBO())
        assert all(math.isfinite(svi.step(x)) for _ in range(3))


def test_log_z_is_cached_across_svi_steps_and_tracks_the_exact_value():
    LOG_Z_CACHE.clear()
    pyro.clear_param_store()
    n = 14
    g = torch.Generator().manual_seed(6)
    x = (torch.rand(512, n, generator=g) < 0.3).float()
    sampler = GibbsSampler(seed=0)

    def model(x):
        h = pyro.param("h", torch.zeros(n))
        J = pyro.param("J", torch.zeros(n, n))
        with pyro.plate("cells", x.shape[0]):
            prior = dist.Boltzmann(
                h,
                torch.triu(J, 1),
                exact_max_n=10,
                log_z_refresh_every=25,
                sampler=sampler,  # seeded, so that the test is reproducible
                ais_options={"seed": 0},
            )
            pyro.sample("x", prior, obs=x)

    svi = SVI(model, lambda x: None, Adam({"lr": 0.05}), Trace_ELBO())
    errors = []
    for step in range(40):
        loss = svi.step(x)
        h, J = pyro.param("h").detach(), torch.triu(pyro.param("J").detach(), 1)
        if step % 5 == 4:
            exact_loss = float(-dist.Boltzmann(h, J).log_prob(x).sum())
            with torch.no_grad():  # the cached value for these parameters (no new AIS run)
                cached_loss = float(-dist.Boltzmann(h, J, exact_max_n=10).log_prob(x).sum())
            errors.append(abs(cached_loss - exact_loss) / x.shape[0])
            assert math.isfinite(loss)
    entries = [e for e in LOG_Z_CACHE._entries.values() if e.ais_runs]
    assert max(e.ais_runs for e in entries) == 2  # first use and after 25 updates, not 40 times
    assert max(errors) < 0.15  # log Z per cell, within 0.15 nats of exact over 40 Adam steps


def test_analytic_kl_elbo_matches_trace_mean_field_and_scales_the_kl():
    pyro.clear_param_store()
    x = torch.randn(16, 2)

    def model(x, kl_weight=1.0):
        with pyro.plate("n", 16), pyro.poutine.scale(scale=kl_weight):
            z = pyro.sample("z", dist.Normal(torch.zeros(16, 2), 1.0).to_event(1))
        with pyro.plate("m", 16):
            pyro.sample("x", dist.Normal(z, 0.5).to_event(1), obs=x)

    def guide(x, kl_weight=1.0):
        loc = pyro.param("loc", torch.full((16, 2), 0.3))
        with pyro.plate("n", 16), pyro.poutine.scale(scale=kl_weight):
            pyro.sample("z", dist.Normal(loc, 0.7).to_event(1))

    for w in (1.0, 0.25):
        pyro.set_rng_seed(0)
        ours = AnalyticKL_ELBO().differentiable_loss(model, guide, x, kl_weight=w)
        pyro.set_rng_seed(0)
        theirs = TraceMeanField_ELBO().differentiable_loss(model, guide, x, kl_weight=w)
        assert torch.allclose(ours, theirs)
    pyro.set_rng_seed(0)
    full = AnalyticKL_ELBO().differentiable_loss(model, guide, x)
    kl = float(16 * torch.distributions.kl_divergence(dist.Normal(0.3, 0.7), dist.Normal(0.0, 1.0)) * 2)
    pyro.set_rng_seed(0)
    half = AnalyticKL_ELBO().differentiable_loss(model, guide, x, kl_weight=0.5)
    assert abs(float((full - half).detach()) - 0.5 * kl) < 1e-4


@pytest.mark.parametrize(
    ("prior", "n_latent", "n_continuous", "kl_weight", "masked"),
    [("boltzmann", 16, 4, 0.3, True), ("hidden", 8, 0, 1.0, False)],
)
def test_module_loss_is_the_pyro_estimator_without_tracing(prior, n_latent, n_continuous, kl_weight, masked):
    """Same loss and gradients in training mode (dropout on), each drawing its own latents and
    dropout masks in the same order from one seed; ``masked``: some cells lack the protein
    modality and two protein features are zero-padded (a query model's ``feature_masks``).
    Every option, on one recorded guide trace (order-free): ``tests/test_elbo_parity.py``."""
    from qbm_pyro import datasets
    from qbm_pyro._constants import REGISTRY_KEYS as K
    from qbm_pyro.data import MinibatchLoader, setup_data
    from qbm_pyro.module import MultiVAE

    mdata = datasets.pbmc_cite_2batch()
    registry = setup_data(mdata, batch_key="batch")
    n_vars = {spec.kind: spec.n_vars for spec in registry.modalities.values()}
    module = MultiVAE(n_vars, registry.n_batch, prior=prior, n_latent=n_latent, n_continuous=n_continuous)
    batch = next(iter(MinibatchLoader(mdata, registry, batch_size=64, seed=0)))
    if masked:
        batch[K.mask_key(K.PROTEIN)][:10] = False
        features = torch.ones(n_vars[K.PROTEIN], dtype=torch.bool)
        features[:2] = False
        module.feature_masks = {K.PROTEIN: features}
    losses = []
    for fn in (
        lambda: AnalyticKL_ELBO().differentiable_loss(module.model, module.guide, batch, kl_weight=kl_weight),
        lambda: module.loss(batch, kl_weight),
    ):
        if module.prior is not None:
            module.prior.sampler.reset()
            module.prior.sampler.generator.manual_seed(0)
        torch.manual_seed(0)
        loss = fn()
        loss.backward()
        grads = [p.grad.clone() for p in module.parameters() if p.grad is not None]
        module.zero_grad()
        losses.append((loss.detach(), grads))
    assert torch.equal(losses[0][0], losses[1][0])
    assert all(torch.equal(a, b) for a, b in zip(losses[0][1], losses[1][1]))
    if masked:  # the masks matter: the loss differs from the unmasked one
        module.feature_masks = {}
        batch[K.mask_key(K.PROTEIN)][:] = True
        if module.prior is not None:
            module.prior.sampler.reset()
            module.prior.sampler.generator.manual_seed(0)
        torch.manual_seed(0)
        assert not torch.equal(module.loss(batch, kl_weight).detach(), losses[1][0])


def test_first_ais_run_is_announced_once(caplog):
    """A custom model's first step above exact_max_n runs AIS: one INFO line says so (per size)."""
    import logging

    from qbm_pyro.distributions import log_z_cache

    LOG_Z_CACHE.clear()
    log_z_cache._ANNOUNCED.discard(12)
    h = torch.nn.Parameter(torch.zeros(12))
    J = torch.nn.Parameter(torch.zeros(12, 12))
    x = torch.zeros(3, 12)
    options = {"exact_max_n": 10, "ais_options": {"n_chains": 32, "n_steps": 20, "seed": 0}}
    with caplog.at_level(logging.INFO, logger="qbm_pyro.distributions.log_z_cache"):
        dist.Boltzmann(h, torch.triu(J, 1), **options).log_prob(x)
        LOG_Z_CACHE.clear()  # a second AIS run of the same size is not announced again
        dist.Boltzmann(h, torch.triu(J, 1), **options).log_prob(x)
    lines = [r.getMessage() for r in caplog.records if "estimated by AIS" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("log Z of a 12-unit Boltzmann machine")


def test_cached_log_z_follows_a_two_mode_machine_without_the_training_sampler():
    """The cache continues its AIS run to each new machine (a bridge), so it does not lean on the
    negative-phase samples, which a Gibbs chain draws from one mode only on a two-mode machine.
    30 updates that sharpen the modes: one AIS run, every value within 0.15 nats of exact, while
    log Z itself moves by several nats (a stale value would be far off)."""
    LOG_Z_CACHE.clear()
    n = 14
    torch.manual_seed(0)
    spins = 2 * (torch.rand(n) < 0.5).float() - 1  # modes: the pattern and its complement
    J0 = torch.triu(torch.outer(spins, spins), 1) * 0.6
    h = torch.nn.Parameter(-(J0 + J0.T).sum(1) / 2)
    J = torch.nn.Parameter(J0.clone())
    first, errors = None, []
    for _ in range(30):
        with torch.no_grad():
            J.mul_(1.02)
            h.add_(0.01 * torch.randn(n))
        cached = dist.Boltzmann(h, torch.triu(J, 1), exact_max_n=10, ais_options={"seed": 0})
        value = float(cached.log_partition_function)
        exact = float(dist.Boltzmann(h.detach(), torch.triu(J.detach(), 1)).log_partition_function)
        first = exact if first is None else first
        errors.append(abs(value - exact))
    (entry,) = LOG_Z_CACHE._entries.values()
    assert entry.ais_runs == 1 and entry.updates == 29
    assert max(errors) < 0.15
    assert abs(exact - first) > 3.0
