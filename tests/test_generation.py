"""The generative model: marginal likelihood against exact values, prior samples against exact
enumeration, generation for every modality combination, attractors, one model for training and
generation."""

import math

import anndata as ad
import mudata as md
import numpy as np
import pytest
import torch
from conftest import random_machine, total_variation
from pyro.infer import Predictive

import qbm_pyro
from qbm_pyro import datasets
from qbm_pyro import distributions as dist
from qbm_pyro.data import MinibatchLoader
from qbm_pyro.module.likelihoods import NegativeBinomialMixture
from qbm_pyro.module.marginal import log_importance_weights
from qbm_pyro.samplers import DimodSampler
from qbm_pyro.samplers.exact import ExactSampler, enumerate_states
from qbm_pyro.tl._attractors import descend


def _tiny_rna(n_cells=6, n_genes=3, seed=0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    x = rng.poisson(1.0, size=(n_cells, n_genes)).astype(np.float32)
    x[:, 0] += 1  # no empty cell
    adata = ad.AnnData(x)
    adata.obs_names = [f"c{i}" for i in range(n_cells)]
    adata.var_names = [f"g{j}" for j in range(n_genes)]
    return adata


def _tiny_model(adata, *, prior, n_latent, n_continuous, relaxation="overlap", seed=0):
    model = qbm_pyro.QBMVAE(
        adata,
        prior=prior,
        n_latent=n_latent,
        n_continuous=n_continuous,
        relaxation=relaxation,
        n_hidden=8,
        dropout=0.0,
        seed=seed,
    )
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # a non-trivial model: random weights, random machine
        fixed = {id(p) for p in model.module.prior.parameters()} if model.module.n_binary else set()
        for p in model.module.parameters():
            if id(p) not in fixed:
                p.copy_(0.4 * torch.randn(p.shape, generator=g))
        for head in model.module.encoder_heads.values():  # a proposal near the prior: bounded weights
            head.weight.mul_(0.15)
            head.bias.zero_()
            head.bias[model.module.n_binary + model.module.n_continuous :] = 1.0  # expert log-variance
        if model.module.n_binary and prior == "boltzmann":
            h, J = random_machine(n_latent, seed=seed, j_scale=1.0, dtype=torch.float32)
            model.module.prior.h.copy_(h)
            model.module.prior.J.copy_(J)
    model.module.eval()
    return model


def _exact_log_marginal(model, batch, n_grid=120, n_hermite=40) -> torch.Tensor:
    """log p(x) per cell by summing the codes and integrating ζ (inverse-CDF midpoint rule in
    each dimension) and c (Gauss-Hermite)."""
    m = model.module
    n, d = m.n_binary, m.n_continuous
    u = (torch.arange(n_grid, dtype=torch.float64) + 0.5) / n_grid
    grids = torch.cartesian_prod(*([u] * n)).reshape(-1, n) if n else torch.zeros(1, 0, dtype=torch.float64)
    nodes, weights = np.polynomial.hermite_e.hermegauss(n_hermite)  # ∫ f(t) e^{-t²/2} dt
    nodes = torch.as_tensor(nodes)
    log_wts = torch.as_tensor(np.log(weights)) - 0.5 * math.log(2 * math.pi)
    codes = enumerate_states(n, dtype=torch.float64) if n else torch.zeros(1, 0, dtype=torch.float64)
    B = batch["index"].shape[0]
    out = []
    for cell in range(B):
        terms = []
        for z in codes:
            log_pz = m.code_log_prob(z.float()).double() if n else torch.zeros((), dtype=torch.float64)
            zeta = dist.smooth_code(z.expand_as(grids), m.relaxation, m.smoothing, rho=grids) if n else grids
            if d:
                loc = (
                    m.prior_loc(zeta.float()).double()
                    if n
                    else torch.zeros(len(grids), d, dtype=torch.float64)
                )
                c = (loc.unsqueeze(1) + nodes.view(1, -1, 1)).reshape(-1, d)  # d == 1
                latent = torch.cat([zeta.repeat_interleave(n_hermite, 0), c], -1)
                log_quad = log_wts.repeat(len(grids))
            else:
                latent, log_quad = zeta, torch.zeros(len(grids), dtype=torch.float64)
            rows = {k: v[cell : cell + 1].expand(len(latent), *v.shape[1:]) for k, v in batch.items()}
            ll = m.log_likelihood(latent.float(), rows).double()
            terms.append(log_pz + torch.logsumexp(ll + log_quad, 0) - math.log(len(grids)))
        out.append(torch.logsumexp(torch.stack(terms), 0))
    return torch.stack(out)


@pytest.mark.parametrize(
    "prior, n_latent, n_continuous, relaxation",
    [
        ("boltzmann", 2, 0, "overlap"),
        ("boltzmann", 2, 0, "spike"),
        ("bernoulli", 2, 0, "overlap"),
        ("boltzmann", 2, 1, "overlap"),
        ("gaussian", 0, 1, "overlap"),
    ],
)
def test_marginal_ll_matches_exact_value(prior, n_latent, n_continuous, relaxation):
    adata = _tiny_rna()
    model = _tiny_model(
        adata, prior=prior, n_latent=n_latent, n_continuous=n_continuous, relaxation=relaxation
    )
    batch = MinibatchLoader(adata, model.registry, shuffle=False, batch_size=100).batch(np.arange(4))
    grid = 24 if n_continuous and n_latent else 60  # converged to < 0.005 nats (checked at 2x)
    with torch.no_grad():
        exact = _exact_log_marginal(model, batch, n_grid=grid, n_hermite=24).numpy()
    estimate = model.get_marginal_ll(indices=np.arange(4), n_samples=8000, return_mean=False, seed=0)
    assert estimate.shape == (4,)
    np.testing.assert_allclose(estimate, exact, atol=0.03)
    # the ELBO (the mean log weight) lies below: the gap the importance samples close
    with torch.no_grad():
        elbo = log_importance_weights(model.module, batch, 4000).mean(0).numpy()
    assert (elbo < exact).all()


def test_marginal_ll_is_seeded_and_means():
    adata = _tiny_rna(n_cells=10)
    model = _tiny_model(adata, prior="boltzmann", n_latent=3, n_continuous=1)
    a = model.get_marginal_ll(n_samples=20, return_mean=False, seed=3)
    b = model.get_marginal_ll(n_samples=20, return_mean=False, seed=3)
    np.testing.assert_array_equal(a, b)
    assert model.get_marginal_ll(n_samples=20, seed=3) == pytest.approx(float(a.mean()))
    with pytest.raises(ValueError, match="n_samples"):
        model.get_marginal_ll(n_samples=0)
    # no cell selected (a small model's empty validation set): a clear error, not a torch one
    with pytest.raises(ValueError, match="select no cell.*validation_fraction"):
        model.get_marginal_ll(indices=np.array([], dtype=np.int64), n_samples=2)


def test_one_model_for_training_and_likelihood():
    """The training loss is the negative mean of the S=1 log importance weights: the ELBO of the
    model that generation and get_marginal_ll use."""
    adata = _tiny_rna(n_cells=8)
    model = _tiny_model(adata, prior="boltzmann", n_latent=3, n_continuous=1)
    batch = MinibatchLoader(adata, model.registry, shuffle=False, batch_size=100).batch(np.arange(8))
    torch.manual_seed(0)
    with torch.no_grad():
        # 3000 draws of the loss in one pass over the batch tiled 3000 times: the training loss's
        # terms per cell (the Pyro ELBO's, tests/test_elbo_parity.py), summed per copy
        tiled = {key: value.repeat(3000, *([1] * (value.dim() - 1))) for key, value in batch.items()}
        terms = model.module.loss_terms(tiled)
        elbo = sum(terms["log_likelihood"].values()) - sum(terms["kl"].values())
        losses = -elbo.reshape(3000, -1).sum(-1)
        log_w = log_importance_weights(model.module, batch, 3000).sum(-1)
    se = float((losses.std() ** 2 / len(losses) + log_w.std() ** 2 / len(log_w)).sqrt())
    assert abs(float(losses.mean() + log_w.mean())) < 4 * se + 1e-3
    # the model's latent site is the smoothed code: values inside [0, 1], not binary
    trace = Predictive(model.module.model, num_samples=1)(batch, observe=False)
    z = trace["z"]
    assert ((z >= 0) & (z <= 1)).all() and not torch.isin(z, torch.tensor([0.0, 1.0])).all()
    assert (trace["x_rna"] == trace["x_rna"].round()).all()


def test_relaxed_boltzmann_density_and_kl():
    h, J = random_machine(2, seed=1, j_scale=1.0)
    prior = dist.RelaxedBoltzmann(dist.Boltzmann(h, J), "overlap", 4.0)
    u = (torch.arange(400, dtype=torch.float64) + 0.5) / 400
    grid = torch.cartesian_prod(u, u)
    assert float(prior.log_prob(grid).exp().mean()) == pytest.approx(1.0, abs=1e-3)
    logits = torch.tensor([0.3, -1.2], dtype=torch.float64)
    q = dist.OverlappingExponentials(logits, torch.tensor(4.0, dtype=torch.float64)).to_event(1)
    kl = torch.distributions.kl_divergence(q, prior)
    assert float(kl) == pytest.approx(float(dist.kl_bernoulli_boltzmann(logits, dist.Boltzmann(h, J))))
    with pytest.raises(NotImplementedError, match="beta"):
        torch.distributions.kl_divergence(q, dist.RelaxedBoltzmann(dist.Boltzmann(h, J), "overlap", 2.0))


@pytest.mark.parametrize("relaxation", ["overlap", "spike"])
def test_smoothed_code_marginal_is_the_relaxed_posterior(relaxation):
    """z ~ Bernoulli(q) then ζ ~ r(ζ | z) has the relaxation's distribution (CDFs at its icdf)."""
    q = torch.tensor([0.1, 0.5, 0.83], dtype=torch.float64)
    beta = 5.0
    relaxed = dist.relaxed_boltzmann.RELAXATION_KINDS[relaxation](torch.logit(q), torch.tensor(beta).double())
    rho = torch.linspace(0.02, 0.98, 49, dtype=torch.float64).unsqueeze(-1).expand(-1, 3)
    zeta = relaxed.icdf(rho)
    e = math.exp(-beta)
    cdf1 = ((torch.exp(beta * (zeta - 1)) - e) / (1 - e)).clamp(0, 1)
    cdf0 = torch.ones_like(zeta) if relaxation == "spike" else (1 - torch.exp(-beta * zeta)) / (1 - e)
    mixture = (1 - q) * cdf0 + q * cdf1
    inside = zeta > 0  # the spike's atom at 0 has a flat inverse
    torch.testing.assert_close(mixture[inside], rho[inside], atol=1e-6, rtol=0)
    torch.manual_seed(0)
    z = (torch.rand(200_000, 3, dtype=torch.float64) < q).double()
    draws = dist.smooth_code(z, relaxation, beta)
    np.testing.assert_allclose(draws.mean(0).numpy(), relaxed.sample((200_000,)).mean(0).numpy(), atol=0.006)


def test_sample_prior_matches_exact_enumeration():
    adata = _tiny_rna(n_cells=12)
    model = _tiny_model(adata, prior="boltzmann", n_latent=8, n_continuous=0)
    h, J = model.module.prior.h.detach().double(), model.module.prior.couplings().detach().double()
    noise = total_variation(ExactSampler(seed=0).sample(h, J, 20_000), h, J)
    codes = model.sample_prior(20_000, seed=0)
    assert codes.shape == (20_000, 8) and set(np.unique(codes)) <= {0.0, 1.0}
    assert total_variation(torch.as_tensor(codes), h, J) < noise + 0.02
    np.testing.assert_array_equal(codes[:50], model.sample_prior(20_000, seed=0)[:50])
    chains = model.module.prior.sampler.chains
    model.sample_prior(10, seed=1)
    assert model.module.prior.sampler.chains is chains  # the training chains are untouched


def test_sample_prior_with_an_annealer():
    adata = _tiny_rna(n_cells=12)
    sampler = DimodSampler(num_sweeps=200, seed=0)
    model = qbm_pyro.QBMVAE(adata, n_latent=6, n_continuous=0, sampler=sampler, sampler_fallback=False)
    with torch.no_grad():
        h, J = random_machine(6, seed=2, j_scale=1.0, dtype=torch.float32)
        model.module.prior.h.copy_(h)
        model.module.prior.J.copy_(J)
    codes = torch.as_tensor(model.sample_prior(5000, seed=0))
    h, J = h.double(), J.double()
    noise = total_variation(ExactSampler(seed=0).sample(h, J, 5000), h, J)
    assert total_variation(codes, h, J) < noise + 0.03


def test_sample_prior_needs_a_code():
    model = _tiny_model(_tiny_rna(), prior="gaussian", n_latent=0, n_continuous=2)
    with pytest.raises(ValueError, match="binary code"):
        model.sample_prior(3)


@pytest.mark.parametrize(
    "make, kwargs, names",
    [
        (lambda: datasets.paul15_myeloid()[:150].copy(), {}, None),
        (lambda: datasets.pbmc_cite_2batch(), dict(batch_key="batch"), ["rna", "prot"]),
        (lambda: datasets.pbmc_rna_atac_100(), {}, ["rna", "atac"]),
        (lambda: datasets.simulated_trimodal(120, missing_fraction=0.2), dict(batch_key="batch"), None),
    ],
    ids=["rna", "rna+protein", "rna+atac", "trimodal"],
)
def test_generate_every_modality_combination(make, kwargs, names):
    data = make()
    model = qbm_pyro.QBMVAE(data, n_latent=8, n_continuous=4, n_hidden=16, **kwargs)
    model.train(max_epochs=1, progress_bar=False, validation_fraction=0.0)
    out = model.generate(30, seed=4)
    again = model.generate(30, seed=4)
    if isinstance(data, ad.AnnData):
        assert isinstance(out, ad.AnnData)
        pairs = {"": (out, again, data)}
    else:
        assert isinstance(out, md.MuData) and list(out.mod) == list(model.registry.modalities)
        pairs = {n: (out[n], again[n], data[n]) for n in out.mod}
    for a, b, real in pairs.values():
        assert a.n_obs == 30
        assert list(a.var_names) == list(real.var_names)
        x = a.X.toarray()
        np.testing.assert_array_equal(x, b.X.toarray())
        assert (x >= 0).all() and (x == np.round(x)).all() and x.sum() > 0
        assert set(np.unique(a.obsm["qbm_code"])) <= {0, 1}
        assert a.obs["qbm_code"].str.len().eq(8).all()
    obs = out.obs
    energy = model.module.prior.energy(torch.as_tensor(out.obsm["qbm_code"]).float()).detach().numpy()
    np.testing.assert_allclose(obs["qbm_energy"].to_numpy(), energy, rtol=1e-5, atol=1e-6)
    if kwargs.get("batch_key"):
        level = model.registry.batch_categories["batch"][0]
        assert (model.generate(10, batch=level, seed=0).obs["batch"] == level).all()
        with pytest.raises(ValueError, match="not one of"):
            model.generate(3, batch="no-such-batch")


def test_generate_gaussian_twin_and_posterior_predictive():
    data = datasets.pbmc_cite_2batch()
    model = qbm_pyro.QBMVAE(data, batch_key="batch", prior="gaussian", n_continuous=4, n_hidden=16)
    model.train(max_epochs=1, progress_bar=False, validation_fraction=0.0)
    out = model.generate(12, seed=0)
    assert "qbm_code" not in out.obs and out["prot"].n_obs == 12
    pp = model.posterior_predictive_sample(indices=np.arange(5), n_samples=3, seed=0)
    assert pp["rna"].shape == (5, data["rna"].n_vars, 3) and pp["prot"].shape == (5, 14, 3)
    one = model.posterior_predictive_sample(indices=np.arange(5), modality="prot", seed=0)
    assert one.shape == (5, 14) and (one >= 0).all()
    # one naming rule: a modality's name or its kind, as get_normalized_expression takes
    by_kind = model.posterior_predictive_sample(indices=np.arange(5), modality="protein", seed=0)
    np.testing.assert_array_equal(by_kind, one)
    assert model.get_normalized_expression(modality="protein", return_pandas=False).shape[1] == 14
    with pytest.raises(ValueError, match="modality"):
        model.posterior_predictive_sample(modality="nope")


def test_predictive_uses_the_models_own_minibatches():
    """model.predictive: Pyro's Predictive over the model's loader; sites named by kind; seeded;
    the prior path (posterior=False) gives the same sites; model.sampler is the prior's."""
    data = datasets.pbmc_cite_2batch()
    model = qbm_pyro.QBMVAE(data, batch_key="batch", n_latent=4, n_continuous=2, n_hidden=16)
    assert model.sampler is model.module.prior.sampler
    cells = np.array([3, 0, 7])
    chains = model.sampler.state_dict()["generator"].clone()
    draws = model.predictive(indices=cells, num_samples=2, seed=1, batch_size=2)  # two minibatches
    assert sorted(draws) == ["c", "x_protein", "x_rna", "z"]
    assert draws["x_rna"].shape == (2, 3, data["rna"].n_vars) and draws["z"].shape == (2, 3, 4)
    assert (draws["x_protein"] == draws["x_protein"].round()).all() and (draws["x_protein"] >= 0).all()
    again = model.predictive(indices=cells, num_samples=2, seed=1, batch_size=2)
    assert all(torch.equal(draws[k], again[k]) for k in draws)
    assert torch.equal(model.sampler.state_dict()["generator"], chains)  # the model's chains are left alone
    prior = model.predictive(indices=cells, posterior=False, return_sites=["x_rna"], seed=0)
    assert list(prior) == ["x_rna"] and prior["x_rna"].shape == (1, 3, data["rna"].n_vars)
    with pytest.raises(ValueError, match="num_samples"):
        model.predictive(num_samples=0)
    gaussian = qbm_pyro.QBMVAE(data, prior="gaussian", n_continuous=2, n_hidden=16)
    assert gaussian.sampler is None


def test_negative_binomial_mixture_sample_moments():
    torch.manual_seed(0)
    d = NegativeBinomialMixture(
        torch.tensor([2.0, 5.0]),
        torch.tensor([30.0, 8.0]),
        torch.tensor([4.0, 1.5]),
        torch.tensor([0.5, -1.0]),
    )
    x = d.sample((100_000,))
    assert x.shape == (100_000, 2) and (x == x.round()).all()
    np.testing.assert_allclose(x.mean(0).numpy(), d.mean.numpy(), rtol=0.02)
    support = torch.arange(0, 400.0).unsqueeze(-1)
    np.testing.assert_allclose(d.log_prob(support).exp().sum(0).numpy(), 1.0, atol=1e-4)


def _hopfield(patterns: torch.Tensor, strength: float = 1.0):
    """A machine whose local minima include the given ±-orthogonal binary patterns."""
    s = 2 * patterns - 1  # spins
    W = strength * (s.T @ s)
    W.fill_diagonal_(0)
    # E = -1/2 Σ W_ij s_i s_j with s = 2z - 1, written as -h·z - Σ_{i<j} J_ij z_i z_j
    J = torch.triu(4 * W, 1)
    h = -2 * W.sum(1)
    return h, J


def test_attractors_recover_known_minima():
    n = 12
    patterns = torch.tensor([[1.0] * 6 + [0.0] * 6, [1.0, 0.0] * 6])
    h, J = _hopfield(patterns.double())
    states = enumerate_states(n, dtype=torch.float64)
    energy = -(states @ h) - ((states @ J) * states).sum(-1)
    for p in patterns.double():
        e = float(-(p @ h) - ((p @ J) * p).sum())
        flips = p.repeat(n, 1)
        flips[range(n), range(n)] = 1 - flips[range(n), range(n)]
        assert (-(flips @ h) - ((flips @ J) * flips).sum(-1) > e).all()  # a local minimum
        assert e == pytest.approx(float(energy.min()))
    rng = np.random.default_rng(0)
    noisy, truth = [], []
    for _ in range(40):
        k = rng.integers(2)
        code = patterns[k].clone()
        flip = rng.choice(n, 2, replace=False)
        code[flip] = 1 - code[flip]
        noisy.append(code)
        truth.append(k)
    noisy = torch.stack(noisy)
    minima = descend(noisy.double(), h, J)
    np.testing.assert_array_equal(minima.numpy(), patterns[truth].numpy())
    adata = ad.AnnData(np.zeros((40, 1), dtype=np.float32))
    adata.obsm["X_qbm"] = np.hstack([noisy.numpy() * 0.8 + 0.1, np.zeros((40, 3))])
    adata.uns["qbm"] = {"prior": {"h": h.numpy(), "J": J.numpy()}}
    qbm_pyro.tl.attractors(adata, method="greedy")
    found = adata.uns["qbm_attractor"]["states"]
    assert {tuple(r) for r in found} == {tuple(r) for r in patterns.numpy().astype(np.int8)}
    labels = adata.obs["qbm_attractor"].astype(str).to_numpy()
    assert len(set(zip(labels, truth, strict=True))) == 2  # one attractor per pattern
    # annealing to T≈0 may cross to the mirror-image minima (complements), all of equal energy
    qbm_pyro.tl.attractors(adata, method="anneal", key_added="annealed")
    ground = {tuple(r) for r in np.vstack([patterns.numpy(), 1 - patterns.numpy()]).astype(np.int8)}
    assert {tuple(r) for r in adata.uns["annealed"]["states"]} <= ground
    with pytest.raises(KeyError, match="tl.qbm"):
        qbm_pyro.tl.attractors(ad.AnnData(np.zeros((2, 1), dtype=np.float32)))


def test_attractors_after_tl_qbm():
    mdata = datasets.pbmc_cite_2batch()
    qbm_pyro.tl.qbm(mdata, batch_key="batch", n_latent=8, n_continuous=2, max_epochs=1, progress_bar=False)
    qbm_pyro.tl.attractors(mdata)
    info = mdata.uns["qbm_attractor"]
    assert info["n_cells"].sum() == mdata.n_obs
    assert np.all(np.diff(info["energies"]) >= 0)
    assert mdata.obs["qbm_attractor_energy"].min() == pytest.approx(info["energies"][0])
