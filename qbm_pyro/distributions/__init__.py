"""Everything in :mod:`pyro.distributions`, plus the Boltzmann machines and the relaxations of
binary variables used by discrete VAEs.

>>> import qbm_pyro.distributions as dist
>>> dist.Normal, dist.Boltzmann  # doctest: +ELLIPSIS
(<class '...Normal'>, <class '...Boltzmann'>)
"""

from pyro.distributions import *  # noqa: F403
from pyro.distributions import __all__ as _pyro_all

from qbm_pyro.distributions.boltzmann import RBM, BinaryVectorConstraint, Boltzmann
from qbm_pyro.distributions.hidden_boltzmann import HiddenBoltzmann
from qbm_pyro.distributions.kl import kl_bernoulli_boltzmann, kl_bernoulli_hidden_boltzmann
from qbm_pyro.distributions.relaxed import OverlappingExponentials, SpikeAndExponential
from qbm_pyro.distributions.relaxed_boltzmann import RelaxedBoltzmann, smooth_code

__all__ = list(_pyro_all) + [
    "BinaryVectorConstraint",
    "Boltzmann",
    "HiddenBoltzmann",
    "OverlappingExponentials",
    "RBM",
    "RelaxedBoltzmann",
    "SpikeAndExponential",
    "kl_bernoulli_boltzmann",
    "kl_bernoulli_hidden_boltzmann",
    "smooth_code",
]
__all__[:] = sorted(set(__all__))
