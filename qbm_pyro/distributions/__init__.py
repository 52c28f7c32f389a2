"""Everything in :mod:`pyro.distributions`, plus the Boltzmann machines and the relaxations of
binary variables used by discrete VAEs (these load on first use, with the samplers under them).

>>> import qbm_pyro.distributions as dist
>>> dist.Normal, dist.Boltzmann  # doctest: +ELLIPSIS
(<class '...Normal'>, <class '...Boltzmann'>)
"""

from pyro.distributions import *  # noqa: F403
from pyro.distributions import __all__ as _pyro_all

from qbm_pyro._lazy import attach

__getattr__, __dir__, _ours = attach(
    __name__,
    attributes={
        "BinaryVectorConstraint": ".boltzmann",
        # the priors load through .kl, so that their registered KL(q ‖ prior) comes with them
        "Boltzmann": ".kl",
        "RBM": ".kl",
        "HiddenBoltzmann": ".kl",
        "kl_bernoulli_boltzmann": ".kl",
        "kl_bernoulli_hidden_boltzmann": ".kl",
        "kl_balanced_code": ".kl",
        "OverlappingExponentials": ".relaxed",
        "SpikeAndExponential": ".relaxed",
        "RelaxedBoltzmann": ".relaxed_boltzmann",
        "smooth_code": ".relaxed_boltzmann",
    },
)
__all__ = sorted(set(_pyro_all) | set(_ours))
