"""``likelihood_weights``: a weight per modality kind on the training loss's log-likelihoods.

The loss and the Pyro model agree on it (``tests/test_elbo_parity.py``); here: how the option is
read and checked, that the marginal likelihood stays the unweighted model, that a model keeps its
weights through save and load, and that modality names map to kinds.
"""

import math

import numpy as np
import pytest
import torch

import qbm_pyro
from qbm_pyro import datasets
from qbm_pyro._constants import REGISTRY_KEYS as K
from qbm_pyro.module import MultiVAE
from qbm_pyro.module.likelihoods import resolve_likelihood_weights
from qbm_pyro.torch_files import atomic_torch_save, load_torch_file


def test_balanced_weighs_atac_by_genes_per_peak():
    assert resolve_likelihood_weights("balanced", {K.RNA: 1185, K.ATAC: 11567}) == {K.ATAC: 1185 / 11567}
    assert resolve_likelihood_weights("balanced", {K.RNA: 200, K.ATAC: 200}) == {}  # no more peaks than genes
    assert resolve_likelihood_weights("balanced", {K.RNA: 2000, K.PROTEIN: 14}) == {}  # no ATAC
    assert resolve_likelihood_weights("balanced", {K.ATAC: 5000}) == {}  # nothing to balance against
    assert resolve_likelihood_weights(None, {K.RNA: 10}) == {}
    assert resolve_likelihood_weights({K.RNA: 1.0, K.ATAC: 0.25}, {K.RNA: 10, K.ATAC: 20}) == {K.ATAC: 0.25}


@pytest.mark.parametrize(
    ("weights", "error", "match"),
    [
        ("equal", ValueError, "likelihood_weights"),
        ({"protein": 0.5}, ValueError, r"\['protein'\]"),
        ({K.ATAC: 0.0}, ValueError, "finite number > 0"),
        ({K.ATAC: -1.0}, ValueError, "finite number > 0"),
        ({K.ATAC: math.nan}, ValueError, "finite number > 0"),
        ({K.ATAC: "0.1"}, ValueError, "finite number > 0"),
        ({K.ATAC: True}, ValueError, "finite number > 0"),
        ([0.1, 1.0], TypeError, "mapping"),
    ],
)
def test_bad_weights_are_refused(weights, error, match):
    with pytest.raises(error, match=match):
        MultiVAE({K.RNA: 10, K.ATAC: 20}, likelihood_weights=weights, n_latent=4, n_continuous=2)


def test_marginal_likelihood_is_the_unweighted_model():
    """Same parameters, weighted or not: the same ``log p(x | latent)``; the loss differs."""
    mdata = datasets.pbmc_rna_atac_100()
    plain = qbm_pyro.QBMVAE(mdata, n_latent=6, n_continuous=2, seed=0)
    weighted = qbm_pyro.QBMVAE(mdata, n_latent=6, n_continuous=2, seed=0, likelihood_weights={"atac": 0.1})
    weighted.module.load_state_dict(plain.module.state_dict())
    batch = next(iter(plain._loader(batch_size=100)))
    plain.module.eval(), weighted.module.eval()
    latent = plain.module.posterior_latent(batch)
    torch.testing.assert_close(
        weighted.module.log_likelihood(latent, batch), plain.module.log_likelihood(latent, batch)
    )
    torch.manual_seed(0)
    a = plain.module.loss(batch).detach()
    torch.manual_seed(0)
    b = weighted.module.loss(batch).detach()
    assert float(b) < float(a) - 1.0  # the ATAC term (negative log-likelihood > 0) shrinks
    ll_plain = plain.get_marginal_ll(n_samples=20, seed=0)
    ll_weighted = weighted.get_marginal_ll(n_samples=20, seed=0)
    np.testing.assert_allclose(ll_weighted, ll_plain, rtol=1e-5)


def test_names_map_to_kinds_and_survive_save(tmp_path):
    mdata = datasets.pbmc_cite_2batch()
    model = qbm_pyro.QBMVAE(
        mdata, batch_key="batch", n_latent=6, n_continuous=2, likelihood_weights={"prot": 2.0}
    )
    assert model.module.likelihood_weights == {K.PROTEIN: 2.0}
    with pytest.raises(ValueError, match="'atac' is not one of this model's modalities"):
        qbm_pyro.QBMVAE(mdata, batch_key="batch", likelihood_weights={"atac": 0.1})
    model.train(max_epochs=1, progress_bar=False)
    model.save(tmp_path / "m")
    loaded = qbm_pyro.QBMVAE.load(tmp_path / "m", mdata)
    assert loaded.module.likelihood_weights == {K.PROTEIN: 2.0}


def test_balanced_on_the_shipped_multiome_pair():
    """``"balanced"`` leaves a model with as many peaks as genes unweighted, and weights ATAC
    below 1 when peaks outnumber genes."""
    mdata = datasets.pbmc_rna_atac_100()
    assert qbm_pyro.QBMVAE(mdata, n_latent=4, likelihood_weights="balanced").module.likelihood_weights == {}
    small = mdata[:, list(mdata["rna"].var_names[:50]) + list(mdata["atac"].var_names)].copy()
    model = qbm_pyro.QBMVAE(small, n_latent=4, likelihood_weights="balanced")
    assert model.module.likelihood_weights == {K.ATAC: 50 / 200}


def test_default_is_balanced_and_an_older_file_reloads_unweighted(tmp_path):
    """The default is ``"balanced"``; a model file written before the option existed (no
    ``likelihood_weights`` among its settings) was trained unweighted and reloads so."""
    mdata = datasets.pbmc_rna_atac_100()
    small = mdata[:, list(mdata["rna"].var_names[:50]) + list(mdata["atac"].var_names)].copy()
    model = qbm_pyro.QBMVAE(small, n_latent=4, n_continuous=2)
    assert model.init_args["likelihood_weights"] == "balanced"
    assert model.module.likelihood_weights == {K.ATAC: 0.25}
    model.save(tmp_path / "m")
    assert qbm_pyro.QBMVAE.load(tmp_path / "m", small).module.likelihood_weights == {K.ATAC: 0.25}
    path = tmp_path / "m" / "model.pt"
    payload = load_torch_file(path, what="model file")  # rewritten as an older version wrote it
    del payload["init_args"]["likelihood_weights"]
    atomic_torch_save(payload, path)
    assert qbm_pyro.QBMVAE.load(tmp_path / "m", small).module.likelihood_weights == {}


def test_tl_qbm_passes_the_weights_on(tmp_path):
    mdata = datasets.pbmc_rna_atac_100()
    small = mdata[:, list(mdata["rna"].var_names[:50]) + list(mdata["atac"].var_names)].copy()
    for weights, expected in (("balanced", {K.ATAC: 0.25}), (None, {}), ({"atac": 0.5}, {K.ATAC: 0.5})):
        qbm_pyro.tl.qbm(
            small, likelihood_weights=weights, n_latent=4, n_continuous=2, max_epochs=1,
            n_top_genes=None, model_dir=tmp_path / str(weights), progress_bar=False,
        )  # fmt: skip
        assert qbm_pyro.QBMVAE.load(tmp_path / str(weights), small).module.likelihood_weights == expected
