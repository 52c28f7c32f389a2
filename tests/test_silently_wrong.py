"""Answers that used to be silently wrong (issue 22, "Silently wrong answers")."""

import itertools

import numpy as np
import pytest
import torch

import qbm_pyro.distributions as dist
from qbm_pyro.module.marginal import log_importance_weights


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("relaxation", ["spike", "overlap"])
def test_relaxed_boltzmann_density_integrates_to_one(n, relaxation):
    """Σ over the atoms (spike: ζ_i = 0) of ∫ over the slabs of exp(log_prob) is 1.

    Gauss-Legendre on (0, 1] per slab coordinate is exact to ~1e-12 for the exponential kernels.
    The spike kernel used to add the slab's density at ζ_i = 0 to the atom's mass (1.05 here).
    """
    gen = torch.Generator().manual_seed(n)
    h = torch.randn(n, dtype=torch.float64, generator=gen)
    J = torch.triu(torch.randn(n, n, dtype=torch.float64, generator=gen), 1)
    prior = dist.RelaxedBoltzmann(dist.Boltzmann(h, J), relaxation, 5.0)
    nodes, weights = np.polynomial.legendre.leggauss(30)
    slab, slab_w = torch.tensor((nodes + 1) / 2), torch.tensor(weights / 2)
    atom, atom_w = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    pieces = [(atom, atom_w), (slab, slab_w)] if relaxation == "spike" else [(slab, slab_w)]
    total = 0.0
    for choice in itertools.product(pieces, repeat=n):
        grid = torch.stack(torch.meshgrid(*[c[0] for c in choice], indexing="ij"), -1).reshape(-1, n)
        w = torch.stack(torch.meshgrid(*[c[1] for c in choice], indexing="ij"), -1).reshape(-1, n).prod(-1)
        total += float((prior.log_prob(grid).exp() * w).sum())
    assert total == pytest.approx(1.0, abs=1e-9)


def test_spike_atom_mass_is_the_probability_of_the_zero_code():
    """P(ζ = 0) under the spike kernel is P(z = 0): the log density at ζ = 0 is log p(z = 0)."""
    h = torch.tensor([0.3, -0.7], dtype=torch.float64)
    J = torch.tensor([[0.0, 0.5], [0.0, 0.0]], dtype=torch.float64)
    base = dist.Boltzmann(h, J)
    prior = dist.RelaxedBoltzmann(base, "spike", 5.0)
    zero = torch.zeros(1, 2, dtype=torch.float64)
    assert torch.allclose(prior.log_prob(zero), base.log_prob(zero))


def _tiny_masked_model():
    """An RNA model of 3 genes whose gene 2 of 3 is zero-padded (a query model's feature mask),
    with a huge count in that gene, so that scoring it changes log p(x) by far."""
    import anndata as ad

    import qbm_pyro
    from qbm_pyro.data import MinibatchLoader

    rng = np.random.default_rng(0)
    x = rng.poisson(2.0, size=(8, 3)).astype(np.float32)
    x[:, 0] += 1
    x[:, 1] = 500.0  # the padded gene: never scored
    adata = ad.AnnData(x)
    adata.obs_names = [f"c{i}" for i in range(8)]
    adata.var_names = ["g0", "g1", "g2"]
    model = qbm_pyro.QBMVAE(adata, n_latent=3, n_continuous=1, n_hidden=8, dropout=0.0, seed=0)
    model.module.feature_masks = {"rna": torch.tensor([True, False, True])}
    model.module.eval()
    batch = MinibatchLoader(adata, model.registry, shuffle=False, batch_size=100).batch(np.arange(8))
    return model, batch


@pytest.mark.filterwarnings("ignore::qbm_pyro.pp.NonCountInputWarning")  # tiny hand-made counts
def test_marginal_ll_scores_the_model_that_was_trained_with_feature_masks():
    """The importance weights of get_marginal_ll leave masked features out, as the loss does:
    the mean S = 1 log weight is the negative mean loss (both are the ELBO)."""
    model, batch = _tiny_masked_model()
    m = model.module
    torch.manual_seed(0)
    with torch.no_grad():
        tiled = {key: value.repeat(1000, *([1] * (value.dim() - 1))) for key, value in batch.items()}
        terms = m.loss_terms(tiled)  # 1000 draws of the loss's terms per cell in one pass
        elbo = sum(terms["log_likelihood"].values()) - sum(terms["kl"].values())
        losses = -elbo.reshape(1000, -1).sum(-1)
        log_w = log_importance_weights(m, batch, 1000).sum(-1)
    se = float((losses.std() ** 2 / len(losses) + log_w.std() ** 2 / len(log_w)).sqrt())
    assert abs(float(losses.mean() + log_w.mean())) < 4 * se + 1e-3
    # the likelihood of a latent is that of the unmasked genes only
    with torch.no_grad():
        latent = m.posterior_latent(batch)
        per_gene = m.decode(latent, batch)["rna"].log_prob(batch["x_rna"])
        expected = per_gene[:, [0, 2]].sum(-1)
        assert torch.allclose(m.log_likelihood(latent, batch), expected)


def _scvi_tools_change_mode(scales_1, scales_2, pseudocounts, delta, test_mode="three"):
    """scvi-tools 1.4's change mode on given pairs (``DifferentialComputation.get_bayes_factors``,
    ``scvi/model/base/_differential.py``), written out from its source."""
    eps = 1e-8
    change = np.log2(scales_1 + pseudocounts) - np.log2(scales_2 + pseudocounts)
    proba_m1 = np.mean(change >= delta, 0)
    proba_m2 = np.mean(change < -delta, 0)
    if test_mode == "two":
        proba_de, sign = proba_m1 + proba_m2, 1.0
    else:
        proba_de, sign = np.maximum(proba_m1, proba_m2), np.sign(proba_m1 - proba_m2)
    return proba_de, sign * (np.log(proba_de + eps) - np.log(1.0 - proba_de + eps))


@pytest.mark.parametrize("test_mode", ["three", "two"])
def test_proba_de_follows_scvi_tools_on_the_same_draws(test_mode):
    """proba_de and bayes_factor are scvi-tools 1.4's on the same pairs of draws; the default is
    the larger tail ("three"), not the two-tail sum."""
    from qbm_pyro.model._expression import _bayes_stats

    rng = np.random.default_rng(0)
    n_genes = 6
    # gene 0: no change, lfc sd 0.4; gene 1: very uncertain, no change; 2: up; 3: down; 4-5: noise
    sd = np.array([0.4, 3.0, 0.2, 0.2, 0.1, 1.0])
    shift = np.array([0.0, 0.0, 1.5, -1.5, 0.0, 0.3])
    base = np.exp(rng.normal(-6, 0.5, n_genes))
    d1 = [base * 2 ** (shift + sd / np.sqrt(2) * rng.standard_normal((4000, n_genes)))]
    d2 = [base * 2 ** (sd / np.sqrt(2) * rng.standard_normal((4000, n_genes)))]
    pc, delta = 1e-6, 0.25
    where_zero = (np.zeros(n_genes, bool), np.zeros(n_genes, bool))
    kwargs = {} if test_mode == "three" else {"test_mode": "two"}
    ours = _bayes_stats(d1, d2, "change", delta, pc, where_zero, 20000, np.random.default_rng(1), **kwargs)
    pairs = np.random.default_rng(1)  # the same pairs: one batch level, n_pairs draws of each group
    a = d1[0][pairs.integers(0, 4000, 20000)]
    b = d2[0][pairs.integers(0, 4000, 20000)]
    proba_de, bayes_factor = _scvi_tools_change_mode(a, b, pc, delta, test_mode)
    np.testing.assert_allclose(ours["proba_de"], proba_de)
    np.testing.assert_allclose(ours["bayes_factor"], bayes_factor)
    if test_mode == "three":  # an unchanged gene with lfc sd 0.4: P(lfc >= 0.25) ~ 0.27, not 0.53
        assert ours["proba_de"][0] == pytest.approx(0.27, abs=0.03)
        assert ours["proba_de"][1] < 0.5  # very uncertain, unchanged: never above one tail
        assert ours["bayes_factor"][2] > 0 > ours["bayes_factor"][3]  # signed: up, down


@pytest.mark.filterwarnings("ignore::qbm_pyro.pp.NonCountInputWarning")  # tiny hand-made counts
def test_differential_expression_rejects_an_unknown_test_mode():
    import anndata as ad

    import qbm_pyro

    x = np.random.default_rng(0).poisson(2.0, size=(20, 4)).astype(np.float32) + 1
    adata = ad.AnnData(x, obs={"g": ["a", "b"] * 10})
    adata.obs_names = [f"c{i}" for i in range(20)]
    model = qbm_pyro.QBMVAE(adata, n_latent=2, n_continuous=1, n_hidden=8, seed=0)
    with pytest.raises(ValueError, match="test_mode"):
        model.differential_expression(groupby="g", test_mode="four")


def _small_batched_rna(n_cells=40, seed=0):
    import anndata as ad

    rng = np.random.default_rng(seed)
    x = rng.poisson(2.0, size=(n_cells, 12)).astype(np.float32) + 1
    adata = ad.AnnData(x)
    adata.obs_names = [f"c{i}" for i in range(n_cells)]
    adata.var_names = [f"g{j}" for j in range(12)]
    adata.obs["batch"] = np.where(np.arange(n_cells) % 2 == 0, "a", "b")
    return adata


def test_every_module_is_built_on_the_models_device(monkeypatch, tmp_path):
    """A query model (load_query_data) and a loaded model whose batch levels are renumbered
    (_use_saved_levels) build new modules: each must be moved to model.device (a GPU on a GPU
    host). A fake device check on the CPU: every module ends up `.to(model.device)`."""
    import qbm_pyro
    from qbm_pyro.module import MultiVAE

    moved = {}
    original_to = MultiVAE.to

    def recording_to(self, *args, **kwargs):
        moved[id(self)] = args[0] if args else kwargs.get("device")
        return original_to(self, *args, **kwargs)

    monkeypatch.setattr(MultiVAE, "to", recording_to)
    adata = _small_batched_rna()
    small = dict(n_latent=3, n_continuous=1, n_hidden=8, num_prior_samples=8)
    reference = qbm_pyro.QBMVAE(adata[:30].copy(), batch_key="batch", **small)
    assert moved.get(id(reference.module)) == reference.device
    reference.train(max_epochs=1, progress_bar=False, validation_fraction=0.0)

    query = adata[30:].copy()
    query.obs["batch"] = "new"
    mapped = qbm_pyro.QBMVAE.load_query_data(query, reference)
    assert moved.get(id(mapped.module)) == mapped.device

    reference.save(tmp_path / "ref")
    only_b = adata[:30][adata[:30].obs["batch"] == "b"].copy()  # one level: renumbered on load
    loaded = qbm_pyro.QBMVAE.load(tmp_path / "ref", only_b)
    assert moved.get(id(loaded.module)) == loaded.device
    assert all(mask.device == loaded.device for mask in loaded.module.feature_masks.values())


# ------------------------------------------------------------------ untrained / not converged


def _tiny_model(adata=None, **kwargs):
    import qbm_pyro

    adata = _small_batched_rna() if adata is None else adata
    small = dict(n_latent=3, n_continuous=1, n_hidden=8, num_prior_samples=8, seed=0)
    return qbm_pyro.QBMVAE(adata, batch_key="batch", **{**small, **kwargs})


def test_outputs_of_an_untrained_model_warn():
    """As scvi-tools: every output of a model that was never trained warns; after train() none."""
    from qbm_pyro.convergence import NotTrainedWarning

    model = _tiny_model()
    calls = {
        "get_latent_representation": lambda: model.get_latent_representation(),
        "get_energy": lambda: model.get_energy(),
        "get_normalized_expression": lambda: model.get_normalized_expression(),
        "differential_expression": lambda: model.differential_expression(
            groupby="batch", group1="a", n_samples=20, n_pairs=20
        ),
        "get_marginal_ll": lambda: model.get_marginal_ll(n_samples=2),
        "sample_prior": lambda: model.sample_prior(3),
        "generate": lambda: model.generate(3, seed=0),
        "posterior_predictive_sample": lambda: model.posterior_predictive_sample(),
    }
    for name, call in calls.items():
        with pytest.warns(NotTrainedWarning, match=f"{name} is computed with a model that has not been"):
            call()
    model.is_trained_ = True
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", NotTrainedWarning)
        for call in calls.values():
            call()


def test_frozen_query_latent_needs_no_training():
    """A frozen query model encodes with the reference's trained encoders: its latent does not
    warn before its own train(), but its decoded outputs do."""
    import warnings

    import qbm_pyro
    from qbm_pyro.convergence import NotTrainedWarning

    adata = _small_batched_rna()
    reference = _tiny_model(adata[:30].copy())
    reference.is_trained_ = True  # (what train() sets; the weights do not matter here)
    query = adata[30:].copy()
    query.obs["batch"] = "new"
    mapped = qbm_pyro.QBMVAE.load_query_data(query, reference)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotTrainedWarning)
        mapped.get_latent_representation()
    with pytest.warns(NotTrainedWarning):
        mapped.get_normalized_expression()


def test_loss_fall_rate_tells_a_falling_curve_from_a_flat_one():
    from qbm_pyro.convergence import MAX_RELATIVE_FALL, loss_fall_rate

    rng = np.random.default_rng(0)
    epochs = np.arange(60)
    kl = np.minimum(1.0, (epochs + 1) / 15)
    falling = 1000 - 2.0 * epochs + rng.normal(0, 0.5, 60)  # 4% per 20 epochs at the end
    flat = 1000 + rng.normal(0, 2.0, 60)
    assert loss_fall_rate({"validation_loss": falling, "kl_weight": kl}) > MAX_RELATIVE_FALL
    assert abs(loss_fall_rate({"validation_loss": flat, "kl_weight": kl})) < MAX_RELATIVE_FALL
    nan = np.full(60, np.nan)  # no validation cells: the training loss
    assert loss_fall_rate({"validation_loss": nan, "train_loss": falling, "kl_weight": kl}) > 0.03
    assert loss_fall_rate({"validation_loss": falling[:3], "kl_weight": kl[:3]}) is None


def _ignore_code(model):
    """Zero, and keep at zero, the decoder's weights of its latent inputs: its output no longer
    depends on the code (what 60 epochs on 300 cells left in the issue's example)."""
    first = model.module.decoder.layers[0][0]
    n_latent = model.module.n_binary + model.module.n_continuous
    with torch.no_grad():
        first.weight[:, :n_latent] = 0.0
    keep = torch.ones_like(first.weight)
    keep[:, :n_latent] = 0.0
    first.weight.register_hook(lambda grad: grad * keep)


def test_train_warns_when_the_decoder_ignores_its_code():
    from qbm_pyro.convergence import NotConvergedWarning, decoded_spread

    model = _tiny_model()
    _ignore_code(model)
    with pytest.warns(NotConvergedWarning, match="decoder ignores its latent input"):
        model.train(max_epochs=2, progress_bar=False, weight_decay=0.0)
    assert max(decoded_spread(model).values()) < 1e-6
    model = _tiny_model()  # the same model, its decoder left alone: it uses the code
    with torch.no_grad():
        model.module.decoder.layers[0][0].weight.mul_(20.0)
    assert min(decoded_spread(model).values()) > 0.05


def test_check_fit_warns_about_a_loss_still_falling():
    from qbm_pyro.convergence import NotConvergedWarning, check_fit

    model = _tiny_model()
    epochs = np.arange(60)
    model.history_ = {
        "epoch": list(epochs),
        "validation_loss": list(1000 - 2.0 * epochs),
        "kl_weight": list(np.minimum(1.0, (epochs + 1) / 15)),
    }
    with torch.no_grad():  # a decoder that uses its code: only the loss is the problem
        model.module.decoder.layers[0][0].weight.mul_(20.0)
    with pytest.warns(NotConvergedWarning, match="loss still fell by"):
        check_fit(model, stopped_early=False)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", NotConvergedWarning)
        check_fit(model, stopped_early=True)  # early stopping: converged by its own rule


# ------------------------------------------------------------------ queries that lack a modality


def test_transfer_labels_uncertainty_grows_off_the_reference():
    """Query cells mapped far off the reference (as a protein-only query of an RNA + protein
    reference is) are no more certain than a guess of their label, although all their neighbours
    share it; cells from the reference's own distribution keep scArches' vote uncertainty and a
    distance ratio ~1."""
    import anndata as ad

    from qbm_pyro.tl import transfer_labels

    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    labels = np.repeat(["a", "b"], 100)
    ref = ad.AnnData(np.zeros((200, 1)), obs={"t": labels})
    ref.obs_names = [f"r{i}" for i in range(200)]
    ref.obsm["X_qbm"] = centres[np.repeat([0, 1], 100)] + rng.normal(0, 0.3, (200, 3))
    inside = centres[np.repeat([0, 1], 20)] + rng.normal(0, 0.3, (40, 3))
    off = np.array([0.0, 0.0, 4.0]) + rng.normal(0, 0.3, (20, 3))  # nearest: type a, far away
    query = ad.AnnData(np.zeros((60, 1)))
    query.obs_names = [f"q{i}" for i in range(60)]
    query.obsm["X_qbm"] = np.concatenate([inside, off])
    before = transfer_labels(query, ref, "t", distance_aware=False, copy=True)
    after = transfer_labels(query, ref, "t", copy=True)
    assert (after.obs["t_pred"] == before.obs["t_pred"]).all()  # the same labels
    ratio = after.obs["t_distance_ratio"].to_numpy()
    assert 0.7 < np.median(ratio[:40]) < 1.3 and ratio[40:].min() > 3
    u_before, u_after = before.obs["t_uncertainty"].to_numpy(), after.obs["t_uncertainty"].to_numpy()
    assert u_before[40:].max() < 0.05  # vote-only: confident, all neighbours are type a
    # far off: no more certain than guessing "a", half the labelled reference cells
    np.testing.assert_allclose(u_after[40:], 0.5, atol=0.15)
    np.testing.assert_allclose(np.median(u_after[:40]), np.median(u_before[:40]), atol=0.02)
    far_only = query[40:].copy()  # most cells off the reference: said out loud
    with pytest.warns(UserWarning, match="20 of 20 query cells lie farther from the reference"):
        transfer_labels(far_only, ref, "t")


def test_load_query_data_warns_about_a_modality_the_reference_always_had():
    """Query cells without protein warn for a reference whose cells all had protein, not for one
    trained with many cells lacking it (its encoders learnt to do without)."""
    import warnings

    import mudata as md

    import qbm_pyro
    from qbm_pyro.datasets._simulate import simulated_trimodal
    from qbm_pyro.model import MissingModalityWarning

    small = dict(n_latent=3, n_continuous=1, n_hidden=8, num_prior_samples=8)
    query_full = simulated_trimodal(60, n_genes=30, n_peaks=40, seed=1)
    query = md.MuData({"rna": query_full["rna"].copy(), "atac": query_full["atac"].copy()})
    query.obs["batch"] = "new"
    for fraction, warns in ((0.0, True), (0.4, False)):
        ref_data = simulated_trimodal(120, n_genes=30, n_peaks=40, missing_fraction=fraction, seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # cells lacking modalities: set-up warns
            reference = qbm_pyro.QBMVAE(ref_data, batch_key="batch", **small)
        reference.is_trained_ = True
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            qbm_pyro.QBMVAE.load_query_data(query, reference)
        warned = [w for w in caught if issubclass(w.category, MissingModalityWarning)]
        assert bool(warned) == warns, (fraction, [str(w.message) for w in caught])
        if warns:
            assert "60 of 60 lack 'prot'" in str(warned[0].message)
