"""Gene selection, size-dependent defaults and non-count input (qbm_pyro.pp and tl.qbm)."""

import warnings

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

import qbm_pyro
from qbm_pyro.pp import (
    GeneSelectionWarning,
    NonCountInputWarning,
    check_count_input,
    highly_variable_genes,
    resolve_n_top_genes,
    select_genes,
    size_defaults,
)

N_DE = 40


def two_groups(n_cells=80, n_genes=5000, seed=0) -> ad.AnnData:
    """Poisson counts of two cell groups; the first ``N_DE`` genes are 10-fold up in group B (the
    truth that a variable-gene step must find), the others have the same mean in both."""
    rng = np.random.default_rng(seed)
    base = np.exp(rng.uniform(np.log(0.05), np.log(20.0), size=n_genes))  # means of 0.05 to 20
    group = np.repeat(["A", "B"], n_cells // 2)
    mean = np.tile(base, (n_cells, 1))
    de_base = np.exp(rng.uniform(np.log(0.5), np.log(4.0), size=N_DE))  # spread over the mean bins
    mean[:, :N_DE] = np.where(group == "B", 10.0, 1.0)[:, None] * de_base
    depth = rng.uniform(0.7, 1.4, size=(n_cells, 1))
    x = rng.poisson(mean * depth).astype(np.float32)
    obs = pd.DataFrame({"group": group}, index=[f"c{i}" for i in range(n_cells)])
    return ad.AnnData(X=sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(n_genes)]))


# ---------------------------------------------------------------- highly variable genes


# seurat's binned dispersions are the weakest of the three on Poisson noise (0.6 here); chance is 0.07
@pytest.mark.parametrize(
    ("flavor", "recall"), [("seurat_v3", 0.9), ("seurat", 0.5), ("pearson_residuals", 0.9)]
)
def test_hvg_finds_the_differential_genes(flavor, recall):
    adata = two_groups(n_genes=600)
    x0 = adata.X.copy()
    highly_variable_genes(adata, n_top_genes=N_DE, flavor=flavor)
    flagged = np.flatnonzero(adata.var["qbm_highly_variable"].to_numpy())
    assert len(flagged) == N_DE
    # the truth: the differential genes are the first N_DE
    assert np.isin(flagged, np.arange(N_DE)).mean() >= recall
    assert adata.uns["qbm_highly_variable"]["flavor"] == flavor
    assert (adata.X != x0).nnz == 0
    assert list(adata.var.columns) == ["qbm_highly_variable"]  # nothing else of scanpy's


def test_hvg_not_inplace_and_errors():
    adata = two_groups(n_genes=300)
    flags = highly_variable_genes(adata, 20, inplace=False)
    assert flags.sum() == 20 and "qbm_highly_variable" not in adata.var
    with pytest.raises(ValueError, match="more than the 300 genes"):
        highly_variable_genes(adata, 301)
    with pytest.raises(ValueError, match="positive int"):
        highly_variable_genes(adata, 0)
    with pytest.raises(KeyError, match="layer 'nope'"):
        highly_variable_genes(adata, 10, layer="nope")


# ---------------------------------------------------------------- select_genes


def test_resolve_n_top_genes():
    assert resolve_n_top_genes("auto", 47_000) == 2000
    assert resolve_n_top_genes("auto", 4001) == 2000
    assert resolve_n_top_genes("auto", 4000) is None
    assert resolve_n_top_genes(None, 47_000) is None
    assert resolve_n_top_genes(500, 47_000) == 500
    assert resolve_n_top_genes(500, 300) is None  # fewer genes than asked: all of them
    for bad in ("all", 0, -3, 2.5, True):
        with pytest.raises(ValueError, match="n_top_genes"):
            resolve_n_top_genes(bad, 100)


def test_select_genes_auto_warns_records_and_leaves_data_intact():
    adata = two_groups()
    x0 = adata.X.copy()
    with pytest.warns(GeneSelectionWarning, match="2000 most variable of 5000 genes"):
        fit = select_genes(adata)
    assert fit is not adata and fit.shape == (80, 2000)
    assert adata.shape == (80, 5000) and (adata.X != x0).nnz == 0  # the user's object keeps all genes
    mask = adata.var["qbm_highly_variable"].to_numpy()
    assert mask.sum() == 2000 and list(fit.var_names) == list(adata.var_names[mask])  # order kept
    assert mask[:N_DE].all()  # the differential genes are among them
    assert adata.uns["qbm_highly_variable"]["n_vars_total"] == 5000


def test_select_genes_no_selection_cases():
    small = two_groups(n_genes=300)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GeneSelectionWarning)
        assert select_genes(small) is small  # below the threshold: all genes
        big = two_groups()
        assert select_genes(big, None) is big  # explicitly all genes
        out = select_genes(big, 100)  # an explicit number: no warning
    assert out.n_vars == 100 and "qbm_highly_variable" not in small.var


def test_select_genes_mudata_reduces_rna_only():
    rna = two_groups()
    prot = ad.AnnData(
        X=np.random.default_rng(1).poisson(20, size=(80, 6)).astype(np.float32),
        obs=pd.DataFrame(index=rna.obs_names),
        var=pd.DataFrame(index=[f"p{j}" for j in range(6)]),
    )
    mdata = md.MuData({"rna": rna, "prot": prot})
    mdata.obs["batch"] = np.tile(["b1", "b2"], 40)
    fit = select_genes(mdata, 300, batch_key="batch")
    assert fit["rna"].n_vars == 300 and fit["prot"].n_vars == 6
    assert mdata["rna"].n_vars == 5000 and mdata["rna"].var["qbm_highly_variable"].sum() == 300
    assert "batch" in fit.obs and fit.n_obs == 80
    assert mdata["rna"].uns["qbm_highly_variable"]["batch_key"] == "batch"


# ---------------------------------------------------------------- size-dependent defaults


@pytest.mark.parametrize(
    ("n_cells", "epochs", "val", "stop", "latent"),
    [
        (271, 400, 0.0, False, (64, 16)),
        (999, 400, 0.0, False, (64, 16)),
        (1000, 400, 0.1, True, (64, 16)),
        (2641, 400, 0.1, True, (64, 16)),
        (20_000, 400, 0.1, True, (64, 16)),
        (32_000, 250, 0.1, True, (64, 16)),
        (40_000, 200, 0.1, True, (64, 16)),
        (1_000_000, 200, 0.1, True, (64, 16)),
    ],
)
def test_size_defaults(n_cells, epochs, val, stop, latent):
    d = size_defaults(n_cells)
    assert (d["max_epochs"], d["validation_fraction"], d["early_stopping"]) == (epochs, val, stop)
    assert (d["n_latent"], d["n_continuous"]) == latent
    assert d["small_data"] == (n_cells < 1000)
    assert d["continuous_free_bits"] == 0.0  # no free bits at any size (stop 21)


def test_size_defaults_keep_given_values():
    d = size_defaults(271, n_latent=64, n_continuous=0, max_epochs=7, validation_fraction=0.2)
    assert (d["n_latent"], d["n_continuous"], d["max_epochs"]) == (64, 0, 7)
    assert d["validation_fraction"] == 0.2 and d["early_stopping"] is True
    assert size_defaults(5000, validation_fraction=0.0)["early_stopping"] is False
    assert size_defaults(271, continuous_free_bits=0.5)["continuous_free_bits"] == 0.5
    assert size_defaults(5000, continuous_free_bits=0.0)["continuous_free_bits"] == 0.0
    with pytest.raises(ValueError, match="n_cells"):
        size_defaults(0)


def test_early_stopping_asked_for_on_small_data_brings_its_validation_set():
    d = size_defaults(271, early_stopping=True)
    assert d["validation_fraction"] == 0.1 and d["early_stopping"] is True
    d = size_defaults(271, early_stopping=False)
    assert d["validation_fraction"] == 0.0 and d["early_stopping"] is False


def test_model_train_resolves_validation_from_the_number_of_cells(monkeypatch):
    """``QBMVAE.train()`` holds out cells and stops early as ``tl.qbm`` and the CLI do: no
    validation set below ``SMALL_DATA_CELLS``, 10 % and early stopping from there on."""
    torch.set_num_threads(1)
    adata = two_groups(n_cells=60, n_genes=50)
    model = qbm_pyro.QBMVAE(adata, n_latent=4, n_continuous=2)
    history = model.train(max_epochs=2, progress_bar=False)
    assert len(model.validation_indices_) == 0 and len(model.train_indices_) == 60
    assert all(np.isnan(history["validation_loss"]))
    monkeypatch.setattr(qbm_pyro.pp._sizes, "SMALL_DATA_CELLS", 50)  # 60 cells are no longer small
    model = qbm_pyro.QBMVAE(adata, n_latent=4, n_continuous=2)
    history = model.train(max_epochs=2, progress_bar=False)
    assert len(model.validation_indices_) == 6 and np.isfinite(history["validation_loss"]).all()
    # asked-for values are kept
    model.train(max_epochs=1, progress_bar=False, validation_fraction=0.0)
    assert len(model.validation_indices_) == 0


def test_tl_qbm_selects_records_and_resolves_sizes():
    torch.set_num_threads(1)
    adata = two_groups(n_cells=60)
    with pytest.warns(GeneSelectionWarning):
        qbm_pyro.tl.qbm(adata, max_epochs=1, progress_bar=False)
    assert adata.n_vars == 5000  # the user's data keeps all genes
    params = adata.uns["qbm"]["params"]
    assert params["n_vars"] == {"rna": 2000}
    sizes = params["size_defaults"]
    assert sizes["n_cells"] == 60 and sizes["validation_fraction"] == 0.0 and not sizes["early_stopping"]
    assert (params["n_binary"], params["n_continuous"]) == (64, 16)
    assert adata.obsm["X_qbm"].shape == (60, 80)
    assert len(adata.uns["qbm"]["history"]["epoch"]) == 1  # the given max_epochs is kept
    # a model fit on the selected genes applies to the whole data (restricted to its genes)
    fit = adata[:, adata.var["qbm_highly_variable"].to_numpy()].copy()
    model = qbm_pyro.QBMVAE(fit, n_latent=4, n_continuous=0)
    model.train(max_epochs=1, progress_bar=False, validation_fraction=0.0)
    qbm_pyro.tl.qbm(adata, model, key_added="again")
    np.testing.assert_allclose(adata.obsm["X_again"], model.get_latent_representation(), rtol=1e-5)


# ---------------------------------------------------------------- non-count input


def test_raw_counts_do_not_warn():
    adata = two_groups(n_genes=300)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonCountInputWarning)
        stats = check_count_input(adata.X)
    assert stats["median_min_nonzero"] == 1.0 and stats["totals_cv"] > 0.02


def test_rounded_cpm_and_scaled_values_warn():
    x = two_groups(n_genes=300).X.toarray()
    cpm = np.round(x / x.sum(1, keepdims=True) * 1e6)
    with pytest.warns(NonCountInputWarning, match="TPM/CPM-like"):
        check_count_input(cpm)
    with pytest.warns(NonCountInputWarning, match="smallest nonzero value is 7"):
        check_count_input(7 * x)
    # through the pipeline: tl.qbm warns and still fits (the NB treats the values as counts)
    adata = ad.AnnData(X=sp.csr_matrix(cpm.astype(np.float32)))
    with pytest.warns(NonCountInputWarning):
        qbm_pyro.tl.qbm(adata, max_epochs=1, progress_bar=False)
    assert np.isfinite(adata.obsm["X_qbm"]).all()


def test_non_integer_input_is_refused():
    x = two_groups(n_genes=300).X.toarray()
    adata = ad.AnnData(X=sp.csr_matrix((x / x.sum(1, keepdims=True) * 1e4).astype(np.float32)))
    # the whole input is checked before anything else: the error comes first (issue 22)
    with pytest.raises(ValueError, match="non-integer"):
        qbm_pyro.tl.qbm(adata, max_epochs=1, progress_bar=False)


def test_cli_n_top_genes_uses_the_same_selection(tmp_path):
    from qbm_pyro.cli import main

    path, out = tmp_path / "cite.h5mu", tmp_path / "out.h5mu"
    qbm_pyro.datasets.pbmc_cite_2batch().write_h5mu(path)
    argv = ["fit", str(path), "-o", str(out), "--batch-key", "batch", "--n-top-genes", "300"]
    assert main([*argv, "--epochs", "1", "--n-latent", "4", "--quiet"]) == 0
    mdata = md.read_h5mu(out)
    assert mdata["rna"].n_vars == 2000 and mdata["rna"].var["qbm_highly_variable"].sum() == 300
    assert mdata.uns["qbm"]["params"]["n_vars"]["rna"] == 300
    assert mdata.obsm["X_qbm"].shape == (400, 4 + 16)
    expected = select_genes(qbm_pyro.datasets.pbmc_cite_2batch(), 300, batch_key="batch")
    assert list(expected["rna"].var_names) == list(
        mdata["rna"].var_names[mdata["rna"].var["qbm_highly_variable"]]
    )
    assert main(["fit", str(path), "-o", str(tmp_path / "x.h5mu"), "--n-top-genes", "lots"]) == 2


def test_small_data_model_without_validation_cells_saves_and_loads(tmp_path):
    adata = two_groups(n_genes=200)
    model = qbm_pyro.QBMVAE(adata, n_latent=4, n_continuous=2)
    model.train(max_epochs=1, progress_bar=False, **{k: v for k, v in size_defaults(80).items() if k in (
        "validation_fraction", "early_stopping")})  # fmt: skip
    model.save(tmp_path / "m")  # its empty validation index is checksummed too
    again = qbm_pyro.QBMVAE.load(tmp_path / "m", adata)
    np.testing.assert_allclose(
        again.get_latent_representation(), model.get_latent_representation(), rtol=1e-6
    )


def test_train_without_max_epochs_follows_the_size_rule():
    """``QBMVAE.train()`` takes ``max_epochs`` from :func:`size_defaults` and warms the KL up
    over half of it; the trainer is stopped after one epoch so the test stays fast."""
    from qbm_pyro.training import Trainer

    seen = []

    class OneEpoch(Trainer):
        def run(self):
            seen.append((self.config.max_epochs, self.config.kl_warmup_epochs))
            self.config.max_epochs = 1
            return super().run()

    adata = two_groups(n_genes=50)
    model = qbm_pyro.QBMVAE(adata, n_latent=4, n_continuous=2)
    model.train(progress_bar=False, trainer_cls=OneEpoch)
    expected = size_defaults(adata.n_obs)["max_epochs"]
    assert seen == [(expected, expected // 2)]
    model.train(max_epochs=10, kl_warmup_epochs=3, progress_bar=False, trainer_cls=OneEpoch)
    assert seen[-1] == (10, 3)


@pytest.mark.parametrize(
    "n_cells, given, expected", [(80, None, 0.0), (1000, None, 0.0), (80, 0.5, 0.5), (1000, 0.25, 0.25)]
)
def test_train_takes_the_free_bits_from_the_size_rule(n_cells, given, expected):
    """No free bits at any size unless asked for; a given value is kept (the trainer is stopped
    before its first epoch)."""
    from qbm_pyro.training import Trainer

    seen = []

    class NoEpoch(Trainer):
        def run(self):
            seen.append(self.config.continuous_free_bits)
            self.config.max_epochs = 1
            return super().run()

    model = qbm_pyro.QBMVAE(two_groups(n_cells=n_cells, n_genes=60), n_latent=4, n_continuous=2)
    extra = {} if given is None else {"continuous_free_bits": given}
    model.train(max_epochs=1, progress_bar=False, trainer_cls=NoEpoch, **extra)
    assert seen == [expected]
