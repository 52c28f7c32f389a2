"""Samplers of Boltzmann machines behind one interface: ``sample(h, J, num_samples, beta=1.0)``.

- :class:`GibbsSampler`: persistent-chain Gibbs (sequential scan, or blocks for RBMs).
- :class:`ParallelTemperingSampler`: replica exchange for rough landscapes; with
  :func:`default_sampler` settings, the prior's default.
- :class:`ExactSampler`: exact draws by enumeration (small ``n``).
- :class:`DimodSampler`: any dimod sampler (dwave-samplers SA by default, neal, hardware).
- :class:`QPUSampler`: D-Wave hardware through the ``[qpu]`` extra, with β_eff calibration.
- :class:`FallbackSampler`: a primary backend that gives way to Gibbs when it fails.
"""

from qbm_pyro.samplers.base import Sampler
from qbm_pyro.samplers.dimod import (
    DimodSampler,
    boltzmann_from_bqm,
    bqm_from_boltzmann,
    estimate_beta_eff,
)
from qbm_pyro.samplers.exact import ExactSampler
from qbm_pyro.samplers.fallback import FallbackSampler, SamplerFallbackWarning
from qbm_pyro.samplers.gibbs import GibbsSampler, default_gibbs
from qbm_pyro.samplers.mixing import MixingMonitor, SamplerMixingWarning
from qbm_pyro.samplers.qpu import QPUSampler
from qbm_pyro.samplers.tempering import ParallelTemperingSampler, default_sampler

__all__ = [
    "DimodSampler",
    "ExactSampler",
    "FallbackSampler",
    "MixingMonitor",
    "GibbsSampler",
    "ParallelTemperingSampler",
    "QPUSampler",
    "Sampler",
    "SamplerFallbackWarning",
    "SamplerMixingWarning",
    "boltzmann_from_bqm",
    "bqm_from_boltzmann",
    "default_gibbs",
    "default_sampler",
    "estimate_beta_eff",
]
