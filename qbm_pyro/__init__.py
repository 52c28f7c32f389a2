"""qbm_pyro: Boltzmann-machine priors, sampled by (quantum) annealers, in Pyro models for
single-cell multi-omics over MuData."""

from qbm_pyro import datasets, distributions, metrics, pl, pp, samplers, tl
from qbm_pyro.model import QBMVAE

__version__ = "0.1.0"

__all__ = ["QBMVAE", "datasets", "distributions", "metrics", "pl", "pp", "samplers", "tl", "__version__"]
