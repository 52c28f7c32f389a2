"""Pure torch/Pyro maths of the model: networks, likelihoods, priors, the VAE and its ELBO.

Nothing here reads MuData/AnnData; :mod:`qbm_pyro.model` builds these from a data registry.
"""

from qbm_pyro.module.elbo import AnalyticKL_ELBO
from qbm_pyro.module.likelihoods import NegativeBinomialMixture
from qbm_pyro.module.priors import BoltzmannPrior
from qbm_pyro.module.vae import MultiVAE

__all__ = ["AnalyticKL_ELBO", "BoltzmannPrior", "MultiVAE", "NegativeBinomialMixture"]
