"""QBMVAE on every modality combination (real data where it exists), API, save/load, seeds."""

import warnings

import numpy as np
import pytest
import torch

import qbm_pyro
from qbm_pyro import datasets
from qbm_pyro.metrics import knn_accuracy

warnings.filterwarnings("ignore", category=UserWarning, module="mudata")

FAST = dict(max_epochs=3, batch_size=64, progress_bar=False)


def subset(mdata, n, seed=0):
    rng = np.random.default_rng(seed)
    return mdata[np.sort(rng.choice(mdata.n_obs, n, replace=False))].copy()


def check_fit(model, n_obs):
    history = model.train(**FAST)
    assert np.isfinite(history["train_loss"]).all()
    latent = model.get_latent_representation()
    assert latent.shape[0] == n_obs and np.isfinite(latent).all()
    energy = model.get_energy()
    assert energy.shape == (n_obs,) and np.isfinite(energy).all()
    return latent


@pytest.mark.parametrize(
    "name, loader, kwargs",
    [
        ("cite-2batch", datasets.pbmc_cite_2batch, dict(batch_key="batch")),
        ("cite-1k", datasets.pbmc_cite_1k, {}),
        ("rna-atac-a549", lambda: subset(datasets.a549_scicar(), 300), dict(layers={"rna": "counts"})),
        ("rna-atac-multiome", datasets.pbmc_rna_atac_100, {}),
        ("rna-5batch", lambda: subset(datasets.mixology_5batch(), 300), dict(batch_key="batch")),
        ("trimodal-simulated", lambda: datasets.simulated_trimodal(300), dict(batch_key="batch")),
    ],
)
def test_every_modality_combination(name, loader, kwargs):
    data = loader()
    model = qbm_pyro.QBMVAE(data, n_latent=8, n_continuous=4, seed=0, **kwargs)
    latent = check_fit(model, data.n_obs)
    assert latent.shape[1] == 12


def test_cells_missing_a_modality_get_a_latent():
    mdata = datasets.simulated_trimodal(300, missing_fraction=0.3, seed=1)
    assert (mdata.obsmap["prot"] == 0).any() and (mdata.obsmap["atac"] == 0).any()
    model = qbm_pyro.QBMVAE(mdata, batch_key="batch", n_latent=8, n_continuous=4)
    latent = check_fit(model, mdata.n_obs)
    missing = mdata.obsmap["prot"] == 0
    # a cell without protein is encoded from its other modalities, not left at the prior
    assert latent[missing].std(0).mean() > 1e-3


@pytest.mark.parametrize(
    "options",
    [
        dict(prior="rbm", n_latent=10, n_continuous=0),
        # above exact enumeration: AIS over the 24-unit joint machine every epoch (minutes)
        pytest.param(
            dict(prior="hidden", n_latent=16, n_continuous=4, n_prior_hidden=8), marks=pytest.mark.slow
        ),
        dict(prior="hidden", n_latent=8, n_continuous=4, n_prior_hidden=4),  # log Z exact
        dict(prior="gaussian", n_latent=6, n_continuous=0),
        dict(prior="bernoulli", n_latent=16, n_continuous=4),
        dict(prior="boltzmann", n_latent=8, n_continuous=4, encode_covariates=True),
        dict(prior="boltzmann", n_latent=24, n_continuous=4, relaxation="spike", rna_likelihood="zinb"),
    ],
    ids=[
        "rbm",
        "hidden-units",
        "hidden-units-exact",
        "gaussian",
        "bernoulli-ablation",
        "batch-to-encoder-too",
        "sampled-logZ-spike-zinb",
    ],
)
def test_prior_and_likelihood_options(options):
    data = datasets.pbmc_cite_2batch()
    model = qbm_pyro.QBMVAE(data, batch_key="batch", **options)
    latent = check_fit(model, data.n_obs)
    expected = options["n_latent"] + options["n_continuous"]
    assert latent.shape[1] == expected
    if options["prior"] != "gaussian":
        assert np.isfinite(model.history_["log_z"]).all()
    if options["prior"] == "bernoulli":  # the ablation's prior stays fixed at h = J = 0
        assert model.module.prior.h.abs().sum() == 0 and model.module.prior.J.abs().sum() == 0


def test_invalid_options_are_refused():
    data = datasets.pbmc_cite_2batch()
    with pytest.raises(ValueError, match="prior must be one of"):
        qbm_pyro.QBMVAE(data, prior="laplace")
    with pytest.raises(ValueError, match="relaxation must be one of"):
        qbm_pyro.QBMVAE(data, relaxation="gumbel-soft")
    with pytest.raises(ValueError, match="encoder_input must be one of"):
        qbm_pyro.QBMVAE(data, encoder_input="clr")
    model = qbm_pyro.QBMVAE(data, prior="gaussian", n_continuous=4)
    with pytest.raises(ValueError, match="not available"):
        model.get_latent_representation(representation="probs")


def test_depth_scaled_encoder_input_ignores_sequencing_depth():
    """With encoder_input="depth" a cell and the same cell sequenced 3x deeper encode alike."""
    data = datasets.pbmc_cite_2batch()
    model = qbm_pyro.QBMVAE(data, batch_key="batch", n_latent=8, n_continuous=4, encoder_input="depth")
    batch = next(iter(qbm_pyro.data.MinibatchLoader(data, model.registry, batch_size=16, seed=0)))
    deeper = dict(batch)
    for kind in ("rna", "protein"):
        key, lib = qbm_pyro.data.REGISTRY_KEYS.x_key(kind), qbm_pyro.data.REGISTRY_KEYS.library_key(kind)
        deeper[key], deeper[lib] = 3 * batch[key], 3 * batch[lib]
        torch.testing.assert_close(
            model.module.encoder_input(kind, deeper), model.module.encoder_input(kind, batch)
        )
    model.module.eval()
    torch.testing.assert_close(model.module.encode(deeper)["logits"], model.module.encode(batch)["logits"])
    # the default (log1p of raw counts, as scVI) does see depth
    plain = qbm_pyro.QBMVAE(data, batch_key="batch", n_latent=8, n_continuous=4)
    key = qbm_pyro.data.REGISTRY_KEYS.x_key("protein")
    assert not torch.allclose(
        plain.module.encoder_input("protein", deeper), plain.module.encoder_input("protein", batch)
    )
    assert deeper[key].sum() > 0


@pytest.mark.parametrize("protein_depth", [True, False])
def test_protein_background_follows_the_observed_tag_depth(protein_depth):
    data = datasets.pbmc_cite_2batch()
    model = qbm_pyro.QBMVAE(data, batch_key="batch", n_latent=8, n_continuous=4, protein_depth=protein_depth)
    module = model.module
    batch = next(iter(qbm_pyro.data.MinibatchLoader(data, model.registry, batch_size=16, seed=0)))
    with torch.no_grad():
        module.protein_background.normal_()
        latent = module.posterior_latent(batch)
        protein = module.decode(latent, batch)["protein"]
    key = qbm_pyro.data.REGISTRY_KEYS
    x = batch[key.x_key("protein")]
    expected = module.protein_background[batch[key.BATCH_KEY][:, 0]].exp()
    if protein_depth:
        expected = expected * torch.log1p(x).mean(-1, keepdim=True).exp()
        assert torch.log1p(x).mean(-1).std() > 0.1  # cells do differ in depth here
    torch.testing.assert_close(protein.mean_background, expected)
    assert (protein.mean_foreground >= protein.mean_background).all()


def test_kl_gradient_reaches_encoder_and_prior():
    """The prior term alone (no likelihood) moves both the encoder and h, J."""
    data = datasets.pbmc_cite_2batch()
    model = qbm_pyro.QBMVAE(data, batch_key="batch", n_latent=8, n_continuous=0)
    module = model.module
    with torch.no_grad():
        module.prior.h.copy_(torch.linspace(-1, 1, 8))
    batch = next(iter(qbm_pyro.data.MinibatchLoader(data, model.registry, batch_size=32, seed=0)))
    posterior = module.encode(batch)
    from torch.distributions import kl_divergence

    q = qbm_pyro.distributions.OverlappingExponentials(posterior["logits"]).to_event(1)
    kl = kl_divergence(q, module.prior.distribution()).sum()
    kl.backward()
    encoder_grad = sum(p.grad.abs().sum() for p in module.encoders.parameters() if p.grad is not None)
    assert encoder_grad > 0
    assert module.prior.h.grad.abs().sum() > 0 and module.prior.J.grad.abs().sum() > 0


def test_normalized_expression_rows_sum_to_library_size():
    data = datasets.pbmc_cite_2batch()
    model = qbm_pyro.QBMVAE(data, batch_key="batch", n_latent=8, n_continuous=4)
    model.train(**FAST)
    expr = model.get_normalized_expression(library_size=1e4)
    assert expr.shape == (400, data["rna"].n_vars)
    assert np.allclose(expr.sum(1), 1e4, rtol=1e-4)


def test_same_seed_same_result_and_save_load_roundtrip(tmp_path):
    data = datasets.pbmc_cite_2batch()

    def fit():
        model = qbm_pyro.QBMVAE(data, batch_key="batch", n_latent=16, n_continuous=4, seed=3)
        model.train(**FAST)
        return model

    a, b = fit(), fit()
    latent = a.get_latent_representation()
    np.testing.assert_array_equal(latent, b.get_latent_representation())
    a.save(tmp_path / "m")
    with pytest.raises(FileExistsError):
        a.save(tmp_path / "m")
    loaded = qbm_pyro.QBMVAE.load(tmp_path / "m", data)
    np.testing.assert_array_equal(loaded.get_latent_representation(), latent)
    np.testing.assert_array_equal(loaded.get_energy(), a.get_energy())
    assert loaded.history_["train_loss"] == a.history_["train_loss"]


def test_load_refuses_damaged_and_mismatched_files(tmp_path):
    data = datasets.pbmc_cite_2batch()
    model = qbm_pyro.QBMVAE(data, batch_key="batch", n_latent=8, n_continuous=0)
    model.save(tmp_path / "m")
    path = tmp_path / "m" / "model.pt"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="not a valid qbm_pyro model file"):
        qbm_pyro.QBMVAE.load(tmp_path / "m", data)
    # a pickle that would run code is refused by weights_only loading
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path.write_bytes(pickle.dumps({"class_name": Evil()}))
    with pytest.raises(ValueError, match="not a valid qbm_pyro model file"):
        qbm_pyro.QBMVAE.load(tmp_path / "m", data)
    model.save(tmp_path / "ok")
    with pytest.raises(KeyError, match="batch_key 'batch' not found"):
        qbm_pyro.QBMVAE.load(tmp_path / "ok", datasets.pbmc_cite_1k())
    fewer_genes = data.copy()
    fewer_genes.mod["rna"] = fewer_genes["rna"][:, :-5].copy()
    fewer_genes.update()
    with pytest.raises(ValueError, match="features"):
        qbm_pyro.QBMVAE.load(tmp_path / "ok", fewer_genes)


def test_tl_qbm_writes_outputs_and_copy_semantics(tmp_path):
    mdata = datasets.pbmc_cite_2batch()
    before = set(mdata.obsm.keys())
    out = qbm_pyro.tl.qbm(mdata, batch_key="batch", n_latent=8, n_continuous=4, copy=True, **FAST)
    assert set(mdata.obsm.keys()) == before  # copy=True leaves the input alone
    assert out.obsm["X_qbm"].shape == (400, 12)
    assert "qbm_energy" in out.obs and out.uns["qbm"]["params"]["n_binary"] == 8
    out.write_h5mu(tmp_path / "out.h5mu")  # everything written serialises


@pytest.mark.slow  # scanpy's neighbours and UMAP compile numba code on first use (minutes on 2 cores)
def test_tl_qbm_output_feeds_scanpy_neighbors_and_umap():
    import scanpy as sc

    mdata = datasets.pbmc_cite_2batch()
    qbm_pyro.tl.qbm(mdata, batch_key="batch", n_latent=8, n_continuous=4, **FAST)
    sc.pp.neighbors(mdata, use_rep="X_qbm")
    sc.tl.umap(mdata)
    assert mdata.obsm["X_umap"].shape == (400, 2)


@pytest.mark.slow
def test_mixology_latent_separates_cell_lines_and_mixes_batches():
    """Robust claims only: labels well above chance (3-5 lines), batches mixed better than PCA."""
    import scanpy as sc

    from qbm_pyro.metrics import batch_mixing_entropy

    adata = datasets.mixology_5batch()
    adata = adata[adata.obs["demuxlet_cls"] == "SNG"].copy()
    labels = adata.obs["cell_line"].astype(str).to_numpy()
    batches = adata.obs["batch"].astype(str).to_numpy()
    model = qbm_pyro.QBMVAE(adata, batch_key="batch", n_latent=32, n_continuous=8, seed=0)
    model.train(max_epochs=60, progress_bar=False)
    latent = model.get_latent_representation()
    assert knn_accuracy(latent, labels)["accuracy"] > 0.9
    pca = adata.copy()
    sc.pp.normalize_total(pca, target_sum=1e4)
    sc.pp.log1p(pca)
    sc.pp.pca(pca, n_comps=30)
    assert batch_mixing_entropy(latent, batches) > batch_mixing_entropy(pca.obsm["X_pca"], batches)
