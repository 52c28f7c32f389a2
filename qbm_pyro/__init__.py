"""qbm_pyro: Boltzmann-machine priors, sampled by (quantum) annealers, in Pyro models for
single-cell multi-omics over MuData.

The subpackages (``tl``, ``pl``, ``pp``, ``distributions``, ...) and :class:`QBMVAE` load on
first use, so ``import qbm_pyro`` (and ``qbm-pyro --help``) does not import torch, Pyro or the
single-cell stack.
"""

from qbm_pyro._lazy import attach

__version__ = "0.1.0"

__getattr__, __dir__, _names = attach(
    __name__,
    submodules=["datasets", "distributions", "metrics", "pl", "pp", "samplers", "tl"],
    attributes={"QBMVAE": ".model"},
)
__all__ = [*_names, "__version__"]
