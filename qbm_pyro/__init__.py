"""qbm_pyro: Boltzmann-machine priors, sampled by (quantum) annealers, in Pyro models for
single-cell multi-omics over MuData."""

from qbm_pyro import distributions, samplers

__version__ = "0.1.0"

__all__ = ["distributions", "samplers", "__version__"]
