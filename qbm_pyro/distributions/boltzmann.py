"""The Boltzmann distribution over binary vectors, with full or bipartite (RBM) couplings."""

from __future__ import annotations

import torch
from pyro.distributions import TorchDistribution, constraints
from torch.distributions.utils import lazy_property

from ..ais import ais_log_partition
from ..energy import energy, upper_couplings
from ..samplers.base import Sampler
from ..samplers.exact import ExactSampler, enumerate_states, exact_log_partition
from ..samplers.gibbs import GibbsSampler

__all__ = ["RBM", "Boltzmann", "BinaryVectorConstraint"]


class BinaryVectorConstraint(constraints.Constraint):
    """Vectors of length ``n`` with entries in ``{0, 1}``."""

    is_discrete = True
    event_dim = 1

    def __init__(self, n: int):
        self.n = n
        super().__init__()

    def check(self, value: torch.Tensor) -> torch.Tensor:
        if value.shape[-1:] != (self.n,):
            return torch.zeros(value.shape[:-1], dtype=torch.bool, device=value.device)
        return ((value == 0) | (value == 1)).all(-1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.n})"


class Boltzmann(TorchDistribution):
    r"""Boltzmann machine over binary vectors ``z ∈ {0,1}^n``.

    .. math::
        E(z) = -h^\top z - \sum_{i<j} J_{ij} z_i z_j, \qquad p(z) = \exp(-E(z)) / Z

    **Couplings.** ``J`` is a square ``(..., n, n)`` matrix of which only the strict upper triangle
    is used, so an upper-triangular ``J`` and a symmetric ``J`` with zero diagonal mean the same
    machine. With validation on, a nonzero diagonal (put it in ``h``: ``z_i^2 = z_i``) and a
    lower triangle that is neither zero nor the transpose of the upper one are refused.

    **log Z and gradients.** For ``n ≤ exact_max_n`` the log partition function is computed
    exactly by enumeration and is differentiable. Above that, its *value* comes from annealed
    importance sampling (or from ``log_z`` if given) and its *gradient* from samples of the
    attached sampler, through the surrogate

    .. math::
        \log Z_{sur}(θ) = \mathrm{sg}(\log \hat Z) + \overline{-E_θ(z^{(s)})}
                          - \mathrm{sg}\big(\overline{-E_θ(z^{(s)})}\big),
        \qquad z^{(s)} \sim p_θ,

    so that ``log_prob`` has the value ``-E - log Ẑ`` and the maximum-likelihood gradient
    ``∂ log p(z)/∂h_i = z_i - E_p[z_i]``, ``∂ log p(z)/∂J_ij = z_i z_j - E_p[z_i z_j]``.

    **Sampling.** ``sample`` draws from ``sampler``: by default exact draws for
    ``n ≤ exact_max_n`` and a :class:`~qbm_pyro.samplers.GibbsSampler` otherwise. Pass a sampler
    object you keep (Gibbs, parallel tempering, a dimod/annealer backend) to keep persistent
    chains across calls; its samples are Boltzmann samples only if it samples at β = 1 (an
    annealer cooled to T ≈ 0 returns minima, not samples).

    Parameters
    ----------
    h
        Biases, shape ``(..., n)``.
    J
        Couplings, shape ``(..., n, n)``; batch dims broadcast with ``h``'s.
    sampler
        A :class:`~qbm_pyro.samplers.Sampler` used for ``sample`` and the gradient of log Z.
    num_samples
        Samples drawn per evaluation of the sampled log Z gradient.
    exact_max_n
        Largest ``n`` for which log Z is computed by enumeration.
    log_z
        A known value of log Z above ``exact_max_n`` (e.g. a cached AIS estimate), used instead
        of running AIS. The gradient still comes from the sampler.
    ais_options
        Keyword arguments of :func:`qbm_pyro.ais.ais_log_partition`.

    Examples
    --------
    >>> import torch
    >>> import qbm_pyro.distributions as dist
    >>> d = dist.Boltzmann(torch.zeros(3), torch.zeros(3, 3))
    >>> d.log_prob(torch.tensor([1.0, 0.0, 1.0]))
    tensor(-2.0794)

    **References:** [1] Ackley, Hinton, Sejnowski (1985) "A learning algorithm for Boltzmann
    machines", Cognitive Science 9, 147-169. [2] Tieleman (2008) "Training restricted Boltzmann
    machines using approximations to the likelihood gradient", ICML.
    """

    arg_constraints = {
        "h": constraints.real_vector,
        "J": constraints.independent(constraints.real, 2),
    }
    has_enumerate_support = True
    has_rsample = False

    def __init__(
        self,
        h: torch.Tensor,
        J: torch.Tensor,
        *,
        sampler: Sampler | None = None,
        num_samples: int = 256,
        exact_max_n: int = 20,
        log_z: torch.Tensor | float | None = None,
        ais_options: dict | None = None,
        validate_args: bool | None = None,
    ):
        if h.dim() < 1 or J.dim() < 2:
            raise ValueError(f"need h (..., n) and J (..., n, n), got {tuple(h.shape)}, {tuple(J.shape)}")
        n = h.shape[-1]
        if J.shape[-2:] != (n, n):
            raise ValueError(f"J must have shape (..., {n}, {n}) to match h, got {tuple(J.shape)}")
        batch_shape = torch.broadcast_shapes(h.shape[:-1], J.shape[:-2])
        self.h = h.expand(batch_shape + (n,))
        self.J = J.expand(batch_shape + (n, n))
        self.sampler = sampler
        self.num_samples = int(num_samples)
        self.exact_max_n = int(exact_max_n)
        self._log_z = log_z
        self.ais_options = dict(ais_options or {})
        self._unbatched: Boltzmann | None = None
        super().__init__(batch_shape, (n,), validate_args=validate_args)
        if self._validate_args:
            self._validate_couplings()

    def _validate_couplings(self) -> None:
        J = self.J.detach()
        if (torch.diagonal(J, dim1=-2, dim2=-1) != 0).any():
            raise ValueError(
                "J has a nonzero diagonal, which Boltzmann ignores; add self-couplings to h "
                "instead (z_i**2 == z_i)"
            )
        lower = torch.tril(J, -1)
        if (lower != 0).any() and not torch.allclose(lower, upper_couplings(J).transpose(-1, -2)):
            raise ValueError(
                "J must be strictly upper-triangular or symmetric with zero diagonal; "
                "got a lower triangle that is neither zero nor the transpose of the upper one"
            )

    @property
    def n(self) -> int:
        """Number of binary units."""
        return self.event_shape[0]

    @constraints.dependent_property(is_discrete=True, event_dim=1)
    def support(self):
        return BinaryVectorConstraint(self.n)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(type(self), _instance)
        batch_shape = torch.Size(batch_shape)
        new.h = self.h.expand(batch_shape + (self.n,))
        new.J = self.J.expand(batch_shape + (self.n, self.n))
        for attr in ("sampler", "num_samples", "exact_max_n", "_log_z", "ais_options"):
            setattr(new, attr, getattr(self, attr))
        new._unbatched = self._unbatched or (self if self.batch_shape == () else None)
        super(Boltzmann, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    # ------------------------------------------------------------------ energy and log Z

    def energy(self, value: torch.Tensor) -> torch.Tensor:
        """``E(z)`` for binary or relaxed ``z ∈ [0,1]^n``; shape ``value.shape[:-1]`` broadcast
        with ``batch_shape``. For a factorial Bernoulli ``q`` this is ``E_q[E(z)]`` exactly."""
        return energy(value, self.h, self.J)

    @property
    def is_exact(self) -> bool:
        """Whether log Z is computed by enumeration (``n ≤ exact_max_n``)."""
        return self.n <= self.exact_max_n

    def _each(self, fn) -> torch.Tensor:
        """``fn(h, J)`` on unbatched parameters, over the batch: shape ``batch_shape + out``.

        An instance made by :meth:`expand` from an unbatched one computes ``fn`` once."""
        if self._unbatched is not None or self.batch_shape == ():
            base = self._unbatched or self
            out = fn(base.h, base.J)
            return out.expand(self.batch_shape + out.shape)
        h = self.h.reshape(-1, self.n)
        J = self.J.reshape(-1, self.n, self.n)
        out = torch.stack([fn(h[b], J[b]) for b in range(h.shape[0])])
        return out.reshape(self.batch_shape + out.shape[1:])

    @lazy_property
    def _ais_estimate(self) -> torch.Tensor:
        """AIS ``(log Ẑ, stderr)`` per batch element, shape ``batch_shape + (2,)``."""

        def estimate(h, J):
            result = ais_log_partition(h, J, **self.ais_options)
            return torch.tensor([result.log_z, result.stderr], dtype=h.dtype)

        return self._each(estimate)

    @lazy_property
    def log_partition_function(self) -> torch.Tensor:
        """``log Z``, shape ``batch_shape``.

        Exact and differentiable for ``n ≤ exact_max_n``; above it, the given ``log_z`` or an
        AIS estimate (a value without gradient; its standard error is ``log_partition_stderr``).
        """
        if self.is_exact:
            if self._unbatched is not None:  # expanded (e.g. by a plate): compute once
                base = self._unbatched
                return exact_log_partition(base.h, base.J).expand(self.batch_shape)
            return exact_log_partition(self.h, self.J)
        if self._log_z is not None:
            return torch.as_tensor(self._log_z, dtype=self.h.dtype).expand(self.batch_shape)
        return self._ais_estimate[..., 0]

    @property
    def log_partition_stderr(self) -> torch.Tensor:
        """Standard error of :attr:`log_partition_function` (zero when exact or given)."""
        if self.is_exact or self._log_z is not None:
            return torch.zeros(self.batch_shape, dtype=self.h.dtype)
        return self._ais_estimate[..., 1]

    @lazy_property
    def log_partition_surrogate(self) -> torch.Tensor:
        """A tensor whose value is ``log Z`` and whose gradient in ``h, J`` is ``E_p[(z, zzᵀ)]``.

        Exact enumeration for ``n ≤ exact_max_n``; otherwise the sampled surrogate of the class
        docstring, with ``num_samples`` samples from the sampler (detached)."""
        if self.is_exact:
            return self.log_partition_function
        if not (torch.is_grad_enabled() and (self.h.requires_grad or self.J.requires_grad)):
            return self.log_partition_function  # no gradient wanted: skip the sampler

        def negative_phase(h, J):
            z = self._sampler().sample(h, J, self.num_samples)
            minus_e = -energy(z, h, J).mean()
            return minus_e - minus_e.detach()

        return self.log_partition_function.detach() + self._each(negative_phase)

    def _sampler(self) -> Sampler:
        if self.sampler is None:
            self.sampler = ExactSampler() if self.is_exact else GibbsSampler()
        return self.sampler

    # ------------------------------------------------------------------ Distribution API

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return -self.energy(value) - self.log_partition_surrogate

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        sample_shape = torch.Size(sample_shape)
        m = sample_shape.numel()
        if self._unbatched is not None or self.batch_shape == ():
            base = self._unbatched or self
            z = self._sampler().sample(base.h, base.J, m * self.batch_shape.numel())
            return z.reshape(sample_shape + self.batch_shape + (self.n,))
        h = self.h.reshape(-1, self.n)
        J = self.J.reshape(-1, self.n, self.n)
        z = torch.stack([self._sampler().sample(h[b], J[b], m) for b in range(h.shape[0])], 1)
        return z.reshape(sample_shape + self.batch_shape + (self.n,))

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        z = enumerate_states(self.n, dtype=self.h.dtype).to(self.h.device)
        z = z.reshape((-1,) + (1,) * len(self.batch_shape) + (self.n,))
        return z.expand((-1,) + self.batch_shape + (self.n,)) if expand else z

    @property
    def mean(self) -> torch.Tensor:
        """Exact marginals ``E[z_i]`` (enumeration; ``n ≤ exact_max_n`` only)."""
        if not self.is_exact:
            raise NotImplementedError(f"exact mean needs n <= exact_max_n={self.exact_max_n}; sample instead")
        z = self.enumerate_support(expand=False)
        p = (-energy(z, self.h, self.J) - exact_log_partition(self.h, self.J)).exp()
        return (p.unsqueeze(-1) * z).sum(0)


class RBM(Boltzmann):
    r"""Restricted Boltzmann machine: a :class:`Boltzmann` with bipartite couplings.

    Units are ``z = (v, u)`` with ``n_visible`` visible and ``n_hidden`` hidden units,

    .. math::
        E(v, u) = -a^\top v - b^\top u - v^\top W u ,

    i.e. ``h = (a, b)`` and ``J`` zero except the visible-hidden block ``W``. Sampling defaults to
    block Gibbs (all visible units, then all hidden units: each layer is conditionally
    independent given the other).

    Parameters
    ----------
    a
        Visible biases ``(..., n_visible)``.
    b
        Hidden biases ``(..., n_hidden)``.
    W
        Couplings ``(..., n_visible, n_hidden)``.
    **kwargs
        As for :class:`Boltzmann`.

    Examples
    --------
    >>> import torch
    >>> import qbm_pyro.distributions as dist
    >>> d = dist.RBM(torch.zeros(2), torch.zeros(3), torch.ones(2, 3))
    >>> d.sample((5,)).shape
    torch.Size([5, 5])
    """

    def __init__(self, a: torch.Tensor, b: torch.Tensor, W: torch.Tensor, **kwargs):
        n_v, n_u = a.shape[-1], b.shape[-1]
        if W.shape[-2:] != (n_v, n_u):
            raise ValueError(f"W must have shape (..., {n_v}, {n_u}), got {tuple(W.shape)}")
        batch = torch.broadcast_shapes(a.shape[:-1], b.shape[:-1], W.shape[:-2])
        h = torch.cat([a.expand(batch + (n_v,)), b.expand(batch + (n_u,))], -1)
        top = torch.cat([torch.zeros(batch + (n_v, n_v), dtype=W.dtype), W.expand(batch + (n_v, n_u))], -1)
        J = torch.cat([top, torch.zeros(batch + (n_u, n_v + n_u), dtype=W.dtype)], -2)
        if kwargs.get("sampler") is None and n_v + n_u > kwargs.get("exact_max_n", 20):
            kwargs["sampler"] = GibbsSampler(blocks=[torch.arange(n_v), torch.arange(n_v, n_v + n_u)])
        self.n_visible = n_v
        super().__init__(h, J, **kwargs)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(RBM, _instance)
        new.n_visible = self.n_visible
        return super().expand(batch_shape, _instance=new)
