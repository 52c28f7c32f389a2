"""Samplers of Boltzmann machines behind one interface: ``sample(h, J, num_samples, beta=1.0)``.

- :class:`GibbsSampler`: persistent-chain Gibbs (sequential scan, or blocks for RBMs).
- :class:`ParallelTemperingSampler`: replica exchange for rough landscapes.
- :class:`ExactSampler`: exact draws by enumeration (small ``n``).
"""

from qbm_pyro.samplers.base import Sampler
from qbm_pyro.samplers.exact import ExactSampler
from qbm_pyro.samplers.gibbs import GibbsSampler
from qbm_pyro.samplers.tempering import ParallelTemperingSampler

__all__ = ["ExactSampler", "GibbsSampler", "ParallelTemperingSampler", "Sampler"]
