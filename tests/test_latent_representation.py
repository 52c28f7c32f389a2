"""``QBMVAE.get_latent_representation``'s representations against their definitions."""

import warnings

import numpy as np
import pytest

import qbm_pyro
from qbm_pyro import datasets

warnings.filterwarnings("ignore", category=UserWarning, module="mudata")


@pytest.fixture(scope="module")
def model():
    data = datasets.pbmc_cite_2batch()
    fitted = qbm_pyro.QBMVAE(data, batch_key="batch", n_latent=8, n_continuous=3, seed=0)
    fitted.train(max_epochs=2, batch_size=128, progress_bar=False)
    return fitted


def test_hellinger_distances_are_the_posteriors_hellinger_distances(model):
    q = model.get_latent_representation(representation="probs").astype(np.float64)
    mu = model.get_latent_representation(representation="continuous").astype(np.float64)
    emb = model.get_latent_representation(representation="hellinger").astype(np.float64)
    assert emb.shape == (q.shape[0], 2 * 8 + 3)
    # squared Hellinger distance of two Bernoullis: 1 - sqrt(q q') - sqrt((1-q)(1-q'))
    a, b = slice(0, 50), slice(50, 100)
    h2 = 1.0 - np.sqrt(q[a] * q[b]) - np.sqrt((1 - q[a]) * (1 - q[b]))
    expected = 2.0 * h2.sum(1) + ((mu[a] - mu[b]) ** 2).sum(1)
    np.testing.assert_allclose(((emb[a] - emb[b]) ** 2).sum(1), expected, rtol=1e-4, atol=1e-5)


def test_default_stays_the_joint_probabilities_and_means(model):
    joint = np.hstack(
        [
            model.get_latent_representation(representation="probs"),
            model.get_latent_representation(representation="continuous"),
        ]
    )
    assert model.default_representation == "joint"
    np.testing.assert_array_equal(model.get_latent_representation(), joint)


def test_hellinger_needs_binary_units():
    gaussian = qbm_pyro.QBMVAE(datasets.pbmc_cite_2batch(), prior="gaussian", n_continuous=4)
    with pytest.raises(ValueError, match="not available"):
        gaussian.get_latent_representation(representation="hellinger")
