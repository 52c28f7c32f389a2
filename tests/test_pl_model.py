"""The model plots take the data object (scanpy convention), a model only where asked."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import qbm_pyro  # noqa: E402
from qbm_pyro import datasets, pl  # noqa: E402


@pytest.fixture(scope="module")
def fitted():
    mdata = datasets.pbmc_cite_2batch()
    model = qbm_pyro.QBMVAE(mdata, batch_key="batch", n_latent=6, n_continuous=2, n_hidden=16)
    model.train(max_epochs=2, progress_bar=False, validation_fraction=0.0)
    qbm_pyro.tl.qbm(mdata, model)
    return mdata, model


def _image(ax) -> np.ndarray:
    return np.asarray(ax.images[0].get_array())


def test_couplings_from_the_data_object_or_the_model(fitted):
    mdata, model = fitted
    from_data = _image(pl.couplings(mdata))
    from_model = _image(pl.couplings(model=model))
    np.testing.assert_allclose(from_data, from_model, rtol=1e-6)
    np.testing.assert_allclose(_image(pl.couplings(model)), from_model)  # the model first, as before
    prior = model.module.prior
    np.testing.assert_allclose(np.diag(from_data), prior.h.detach().numpy(), rtol=1e-6)
    J = prior.couplings().detach().numpy()
    np.testing.assert_allclose(from_data[0, 1], J[0, 1] + J[1, 0], rtol=1e-6)
    with pytest.raises(KeyError, match="run qbm_pyro.tl.qbm"):
        pl.couplings(datasets.pbmc_cite_2batch())
    with pytest.raises(KeyError, match="run qbm_pyro.tl.qbm"):
        pl.couplings(mdata, key="other")


def test_training_curve_from_the_data_object_or_the_model(fitted):
    mdata, model = fitted
    lines = [pl.training_curve(x).lines[0].get_ydata() for x in (mdata, model.history_, model)]
    lines.append(pl.training_curve(model=model).lines[0].get_ydata())
    for line in lines[1:]:
        np.testing.assert_allclose(line, lines[0])
    assert len(lines[0]) == 2
    with pytest.raises(TypeError, match="MuData/AnnData"):
        pl.training_curve([1, 2])


def test_couplings_of_a_model_without_a_prior():
    mdata = datasets.pbmc_cite_2batch()
    model = qbm_pyro.QBMVAE(mdata, prior="gaussian", n_continuous=2, n_hidden=16)
    model.train(max_epochs=1, progress_bar=False, validation_fraction=0.0)
    qbm_pyro.tl.qbm(mdata, model)
    with pytest.raises(ValueError, match="no prior"):
        pl.couplings(mdata)
    with pytest.raises(ValueError, match="no Boltzmann prior"):
        pl.couplings(model=model)
