"""The relaxed Boltzmann prior of DVAE/DVAE++: a binary code smoothed into ``[0, 1]^n``.

The generative model is

.. math::
    z \\sim p_θ(z) = e^{-E_θ(z)}/Z_θ, \\qquad ζ_i \\mid z_i \\sim r(ζ_i \\mid z_i),

with ``r(· | 1) ∝ exp(β(ζ - 1))`` on ``[0, 1]`` and ``r(· | 0)`` either the mirror image
``∝ exp(-βζ)`` (overlapping exponentials, DVAE++) or a point mass at 0 (spike-and-exponential,
DVAE). The decoder sees ``ζ``. A factorial posterior ``q(z | x) r(ζ | z)`` marginalises to the
relaxations of :mod:`qbm_pyro.distributions.relaxed`, and since ``r`` is shared,

.. math::
    KL(q(z, ζ) \\| p(z, ζ)) = KL(q(z) \\| p_θ(z)) \\ge KL(q(ζ) \\| p(ζ)),

so the analytic Bernoulli-to-Boltzmann KL is the KL of the joint, and the ELBO it gives is a
lower bound on ``log p(x)`` of this model (registered below for the posterior relaxations).
"""

from __future__ import annotations

import math

import torch
from pyro.distributions import Independent, TorchDistribution, constraints
from pyro.infer.util import is_validation_enabled
from torch.distributions import register_kl

from .boltzmann import Boltzmann
from .hidden_boltzmann import HiddenBoltzmann
from .kl import kl_bernoulli_code
from .relaxed import OverlappingExponentials, SpikeAndExponential

__all__ = ["RELAXATION_KINDS", "RelaxedBoltzmann", "smooth_code", "smoothing_log_density"]

#: Names of the smoothing kernels ``r(ζ | z)`` and the posterior relaxation each one pairs with.
RELAXATION_KINDS = {"overlap": OverlappingExponentials, "spike": SpikeAndExponential}


def _check_kind(relaxation: str) -> None:
    if relaxation not in RELAXATION_KINDS:
        raise ValueError(f"relaxation must be one of {sorted(RELAXATION_KINDS)}, got {relaxation!r}")


def smooth_code(z: torch.Tensor, relaxation: str = "overlap", beta: float = 5.0, *, rho=None) -> torch.Tensor:
    """Draw ``ζ ~ r(ζ | z)`` elementwise (inverse CDF of the truncated exponentials).

    Parameters
    ----------
    z
        Binary code, any shape.
    relaxation
        ``"overlap"`` or ``"spike"``.
    beta
        Sharpness ``β`` of the exponentials.
    rho
        Uniform draws of ``z``'s shape (default: fresh ``torch.rand``).
    """
    _check_kind(relaxation)
    rho = torch.rand_like(z) if rho is None else rho
    e = math.exp(-beta)
    one = 1 + torch.log(rho * (1 - e) + e) / beta
    if relaxation == "spike":
        # rho == 0 would put the slab's draw on the atom, where the slab has no mass
        one = one.clamp_min(torch.finfo(one.dtype).tiny)
        zero = torch.zeros_like(one)
    else:
        zero = -torch.log1p(-rho * (1 - e)) / beta
    return torch.where(z > 0.5, one, zero).clamp(0, 1)


def smoothing_log_density(zeta: torch.Tensor, z: torch.Tensor, relaxation: str, beta: float) -> torch.Tensor:
    """``log r(ζ | z)`` elementwise; for ``"spike"`` with respect to ``δ_0`` + Lebesgue measure.

    Under that measure the point ``ζ = 0`` is the atom: ``r(0 | 0) = 1`` and ``r(0 | 1) = 0``
    (the slab puts no mass on a single point), while ``r(ζ | 1)`` for ``ζ > 0`` is the slab's
    Lebesgue density and ``r(ζ | 0) = 0``.
    """
    _check_kind(relaxation)
    log_norm = math.log(-math.expm1(-beta)) - math.log(beta)
    one = beta * (zeta - 1) - log_norm
    if relaxation == "spike":
        at_zero = zeta == 0
        minus_inf = torch.full_like(zeta, -math.inf)
        zero = torch.where(at_zero, torch.zeros_like(zeta), minus_inf)
        one = torch.where(at_zero, minus_inf, one)  # the slab has no atom at 0
    else:
        zero = -beta * zeta - log_norm
    return torch.where(z > 0.5, one, zero)


class RelaxedBoltzmann(TorchDistribution):
    """The marginal of ``ζ`` when ``z ~ base`` and ``ζ | z ~ r(ζ | z)`` (see the module docstring).

    Parameters
    ----------
    base
        The Boltzmann machine (or RBM, or :class:`HiddenBoltzmann`) over the binary code; its
        sampler draws ``z``.
    relaxation
        ``"overlap"`` (overlapping exponentials) or ``"spike"`` (spike-and-exponential).
    beta
        Sharpness of the smoothing kernel.

    Notes
    -----
    ``sample`` draws ``z`` with the base's sampler (an annealer, if attached) and smooths it.
    ``log_prob`` sums the code out exactly and is available for ``n <= base.exact_max_n`` only;
    training never needs it, because the KL of a factorial relaxed posterior to this prior is the
    analytic one of :func:`~qbm_pyro.distributions.kl_bernoulli_boltzmann`.

    Examples
    --------
    >>> import torch
    >>> from qbm_pyro.distributions import Boltzmann, RelaxedBoltzmann
    >>> prior = RelaxedBoltzmann(Boltzmann(torch.zeros(4), torch.zeros(4, 4)), "overlap", 5.0)
    >>> zeta = prior.sample((3,))
    >>> zeta.shape, bool(((zeta >= 0) & (zeta <= 1)).all())
    (torch.Size([3, 4]), True)
    """

    arg_constraints = {}
    support = constraints.independent(constraints.unit_interval, 1)

    def __init__(
        self, base: Boltzmann, relaxation: str = "overlap", beta: float = 5.0, *, validate_args=None
    ):
        _check_kind(relaxation)
        if not isinstance(base, (Boltzmann, HiddenBoltzmann)):
            raise TypeError(
                f"base must be a Boltzmann or HiddenBoltzmann distribution, got {type(base).__name__}"
            )
        if not beta > 0:
            raise ValueError(f"beta must be positive, got {beta!r}")
        self.base = base
        self.relaxation = relaxation
        self.beta = float(beta)
        super().__init__(base.batch_shape, base.event_shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(RelaxedBoltzmann, _instance)
        new.base = self.base.expand(batch_shape)
        new.relaxation = self.relaxation
        new.beta = self.beta
        super(RelaxedBoltzmann, new).__init__(new.base.batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def sample_code(self, sample_shape=torch.Size()) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``(z, ζ)``: the binary code from the base machine and its smoothing."""
        z = self.base.sample(sample_shape)
        return z, smooth_code(z, self.relaxation, self.beta)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.sample_code(sample_shape)[1]

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``log Σ_z p(z) Π_i r(ζ_i | z_i)``, exactly by enumeration (``n <= exact_max_n``)."""
        if self._validate_args:
            self._validate_sample(value)
        if not self.base.is_exact:
            raise NotImplementedError(
                f"RelaxedBoltzmann.log_prob sums over all 2^n codes and needs n <= exact_max_n="
                f"{self.base.exact_max_n} (n={self.base.n}); train with the analytic KL instead"
            )
        n = self.base.n
        states = self.base.enumerate_support(expand=False).reshape(-1, n)
        states = states.reshape((-1,) + (1,) * (value.dim() - 1) + (n,))  # (2^n, 1, ..., 1, n)
        log_pz = self.base.log_prob(states)
        log_r = smoothing_log_density(value.unsqueeze(0), states, self.relaxation, self.beta).sum(-1)
        return torch.logsumexp(log_pz + log_r, 0)


@register_kl(Independent, RelaxedBoltzmann)
def _kl_relaxed_boltzmann(q: Independent, p: RelaxedBoltzmann) -> torch.Tensor:
    """KL of the joint ``(z, ζ)``: that of the codes, since the smoothing kernel is shared."""
    kind = RELAXATION_KINDS[p.relaxation]
    if q.reinterpreted_batch_ndims != 1 or not isinstance(q.base_dist, kind):
        raise NotImplementedError(
            f"KL to RelaxedBoltzmann({p.relaxation!r}) needs Independent({kind.__name__}, 1), got {q}"
        )
    # an argument check (skipped, as the distributions' own, when validation is off)
    if is_validation_enabled() and not torch.allclose(
        q.base_dist.beta, torch.as_tensor(p.beta, dtype=q.base_dist.beta.dtype)
    ):
        raise NotImplementedError("the posterior relaxation and the prior smoothing need the same beta")
    return kl_bernoulli_code(q.base_dist.logits, p.base)
