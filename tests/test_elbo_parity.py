"""The untraced training loss is the Pyro ELBO, for every option of the model.

:meth:`MultiVAE.loss` (what training runs) and ``AnalyticKL_ELBO().differentiable_loss(model,
guide)`` (what Pyro's ``SVI``/``Predictive`` see) are scored on ONE recorded guide trace: the Pyro
estimator replays model and guide against it, the fast loss gets the same draws as its
``inference_outputs``. The modules are in eval mode (no dropout), so no random draw is shared
between the two computations except the hidden-unit prior's codes for its KL, drawn right after
reseeding in both. Equality therefore does not depend on the order of random draws.

Matrix: RNA likelihood (nb, zinb) x second modality (protein, atac) x relaxation (overlap, spike)
x prior (boltzmann, rbm, hidden, bernoulli, gaussian) x covariates (none, decoder only, encoder
and decoder), values and gradients; masks (cells lacking a modality, a query's zero-padded
features) and a prior above exact enumeration (sampled negative phase, AIS log Z) separately.
With 150 genes beside 200 peaks the default ``likelihood_weights="balanced"`` weighs ATAC 0.75
throughout; other weights separately.
"""

import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from qbm_pyro import datasets
from qbm_pyro._constants import REGISTRY_KEYS as K
from qbm_pyro.data import MinibatchLoader, setup_data
from qbm_pyro.module import AnalyticKL_ELBO, MultiVAE
from qbm_pyro.samplers import GibbsSampler

DATA = {"protein": datasets.pbmc_cite_2batch, "atac": datasets.pbmc_rna_atac_100}
COVARIATES = ("none", "decoder", "encoder")  # no batch key; batch to the decoder; and to the encoders
N_GENES = 150
PRIORS = ("boltzmann", "rbm", "hidden", "bernoulli", "gaussian")


@pytest.fixture(scope="module")
def minibatches():
    """``{(second kind, covariates?): (batch, n_vars, n_batch)}``: 32 cells of each bundled set, their
    first ``N_GENES`` genes."""
    out = {}
    for kind, load in DATA.items():
        mdata = load()
        if kind == "atac":  # one set has no batch column: three made-up donors
            mdata.obs["batch"] = pd.Categorical(np.arange(mdata.n_obs) % 3).rename_categories(["a", "b", "c"])
        for with_covariates in (False, True):
            registry = setup_data(mdata, batch_key="batch" if with_covariates else None)
            batch = next(iter(MinibatchLoader(mdata, registry, batch_size=32, seed=0)))
            batch[K.x_key(K.RNA)] = batch[K.x_key(K.RNA)][:, :N_GENES]  # (the library stays observed)
            n_vars = {spec.kind: spec.n_vars for spec in registry.modalities.values()} | {K.RNA: N_GENES}
            assert set(n_vars) == {K.RNA, kind}
            out[kind, with_covariates] = batch, n_vars, registry.n_batch
    return out


def _module(minibatches, kind, covariates, **options):
    batch, n_vars, n_batch = minibatches[kind, covariates != "none"]
    assert bool(n_batch) == (covariates != "none")
    torch.manual_seed(0)  # the hidden prior's initial couplings
    options = {"n_latent": 6, "n_continuous": 3, "n_hidden": 16, **options}
    module = MultiVAE(n_vars, n_batch, encode_covariates=covariates == "encoder", seed=0, **options)
    return module.eval(), dict(batch)


def _reseed(module):
    torch.manual_seed(1)
    if module.prior is not None:
        module.prior.sampler.reset()
        module.prior.sampler.generator.manual_seed(0)


def _loss_and_grads(fn, module):
    _reseed(module)
    loss = fn()
    loss.backward(retain_graph=True)  # both losses go through the recorded draws
    grads = {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}
    module.zero_grad()
    return loss.detach(), grads


def _both(module, batch, kl_weight):
    """``(Pyro's, the fast loss's)`` ``(loss, {parameter: gradient})`` on one recorded guide trace."""
    torch.manual_seed(0)
    trace = poutine.trace(module.guide).get_trace(batch, kl_weight=kl_weight)
    sites = [
        name for name, site in trace.nodes.items() if site["type"] == "sample" and not site_is_subsample(site)
    ]
    expected = ["z"] * bool(module.n_binary) + ["c"] * bool(module.n_continuous)
    assert sites == expected
    pyro_loss = _loss_and_grads(
        lambda: AnalyticKL_ELBO().differentiable_loss(
            poutine.replay(module.model, trace=trace),
            poutine.replay(module.guide, trace=trace),
            batch,
            kl_weight=kl_weight,
        ),
        module,
    )
    recorded = {
        "posterior": {site: trace.nodes[site]["fn"] for site in sites},
        "latent": {site: trace.nodes[site]["value"] for site in sites},
    }
    fast_loss = _loss_and_grads(lambda: module.loss(batch, kl_weight, inference_outputs=recorded), module)
    return pyro_loss, fast_loss


def _assert_same(pyro_loss, fast_loss):
    (value, grads), (fast_value, fast_grads) = pyro_loss, fast_loss
    torch.testing.assert_close(fast_value, value, rtol=1e-6, atol=1e-4)
    assert set(fast_grads) == set(grads) and grads
    for name, grad in grads.items():  # float32 sums in another order: relative to the gradient's scale
        assert (fast_grads[name] - grad).abs().max() <= 1e-5 * grad.abs().max() + 1e-6, name


CASES = [
    (likelihood, kind, relaxation, prior, covariates)
    for likelihood, kind, relaxation, prior, covariates in itertools.product(
        ("nb", "zinb"), DATA, ("overlap", "spike"), PRIORS, COVARIATES
    )
    if not (prior == "gaussian" and relaxation == "spike")  # no binary code: nothing is relaxed
]


@pytest.mark.parametrize(("likelihood", "kind", "relaxation", "prior", "covariates"), CASES)
def test_fast_loss_is_the_pyro_elbo(minibatches, likelihood, kind, relaxation, prior, covariates):
    module, batch = _module(
        minibatches, kind, covariates, rna_likelihood=likelihood, relaxation=relaxation, prior=prior
    )
    _assert_same(*_both(module, batch, kl_weight=0.3))


@pytest.mark.parametrize("kind", DATA)
@pytest.mark.parametrize("prior", ["boltzmann", "hidden", "gaussian"])
def test_masks_are_scored_alike(minibatches, kind, prior):
    """Some cells lack the second modality and two of its features are a query's zero padding
    (``feature_masks``); the masks change the loss, and both losses alike."""
    module, batch = _module(minibatches, kind, "decoder", prior=prior)
    unmasked = _both(module, batch, kl_weight=1.0)[1][0]
    batch[K.mask_key(kind)] = batch[K.mask_key(kind)].clone()
    batch[K.mask_key(kind)][:10] = False
    features = torch.ones(module.n_vars[kind], dtype=torch.bool)
    features[:2] = False
    module.feature_masks = {kind: features}
    pyro_loss, fast_loss = _both(module, batch, kl_weight=1.0)
    _assert_same(pyro_loss, fast_loss)
    assert not torch.allclose(fast_loss[0], unmasked)


@pytest.mark.parametrize(("likelihood", "n_continuous"), [("nb", 4), ("zinb", 0)])
def test_above_exact_enumeration(minibatches, likelihood, n_continuous):
    """14 binary units, above the prior's ``exact_max_n=12``: log Z the cached (AIS) value, its
    gradient from the sampler's persistent chains (reset to the same state for both losses)."""
    module, batch = _module(
        minibatches,
        "protein",
        "encoder",
        rna_likelihood=likelihood,
        n_latent=14,
        n_continuous=n_continuous,
        sampler=GibbsSampler(num_sweeps=2, seed=0),
        num_prior_samples=32,
    )
    with torch.no_grad():
        module.prior.J.normal_(0.0, 0.3)
    assert module.prior.n_latent > module.prior.exact_max_n
    module.prior.refresh_log_z(n_chains=16, n_steps=20)  # a rough AIS value: any value is shared
    _assert_same(*_both(module, batch, kl_weight=1.0))


def test_the_draws_matter(minibatches):
    """Sensitivity: the fast loss on another draw of the latent is another number."""
    module, batch = _module(minibatches, "protein", "decoder")
    torch.manual_seed(0)
    first = module.loss(batch)
    torch.manual_seed(1)
    assert not torch.allclose(module.loss(batch), first)
    terms = module.loss_terms(batch)
    n = batch[K.BATCH_KEY].shape[0]
    assert set(terms["kl"]) == {"z", "c"} and all(t.shape == (n,) for t in terms["kl"].values())
    assert set(terms["log_likelihood"]) == {K.RNA, K.PROTEIN}


@pytest.mark.parametrize("kind", DATA)
def test_likelihood_weights_are_scored_alike(minibatches, kind):
    """A weight on each kind's log-likelihood (``poutine.scale`` in the model, the same factor in
    the fast loss) changes the loss, and both losses alike; the loss moves by exactly the
    weighted log-likelihoods."""
    module, batch = _module(minibatches, kind, "decoder", likelihood_weights=None)
    plain = _both(module, batch, kl_weight=0.5)[1][0]
    weights = {K.RNA: 0.5, kind: 0.1}
    module.likelihood_weights = weights
    pyro_loss, fast_loss = _both(module, batch, kl_weight=0.5)
    _assert_same(pyro_loss, fast_loss)
    module.likelihood_weights = {}
    _reseed(module)
    torch.manual_seed(0)
    trace = poutine.trace(module.guide).get_trace(batch, kl_weight=0.5)
    recorded = {
        "posterior": {s: trace.nodes[s]["fn"] for s in ("z", "c")},
        "latent": {s: trace.nodes[s]["value"] for s in ("z", "c")},
    }
    _reseed(module)
    terms = module.loss_terms(batch, recorded)
    shift = sum((1 - w) * terms["log_likelihood"][k].sum() for k, w in weights.items())
    torch.testing.assert_close(fast_loss[0], plain + shift.detach(), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("prior", PRIORS)
def test_site_kl_weights_are_scored_alike(minibatches, prior):
    """Per-site KL weights (``{"z": w, "c": w·β}``: training's ``continuous_kl_weight``) reach the
    Pyro model and guide (``poutine.scale`` on each site) and the fast loss alike; the loss moves by
    exactly the extra weight times each site's KL."""
    module, batch = _module(minibatches, "protein", "decoder", prior=prior)
    plain = _both(module, batch, kl_weight=0.4)[1][0]
    weights = {"z": 0.4, "c": 1.2}
    pyro_loss, fast_loss = _both(module, batch, kl_weight=weights)
    _assert_same(pyro_loss, fast_loss)
    _reseed(module)
    torch.manual_seed(0)
    trace = poutine.trace(module.guide).get_trace(batch, kl_weight=weights)
    sites = [s for s in ("z", "c") if s in trace.nodes]
    recorded = {
        "posterior": {s: trace.nodes[s]["fn"] for s in sites},
        "latent": {s: trace.nodes[s]["value"] for s in sites},
    }
    _reseed(module)
    kl = module.loss_terms(batch, recorded)["kl"]
    shift = (weights["c"] - 0.4) * kl["c"].sum()
    torch.testing.assert_close(fast_loss[0], plain + shift.detach(), rtol=1e-5, atol=1e-3)
    assert abs(float(shift.detach())) > 1e-3  # the weight matters: the test can fail
