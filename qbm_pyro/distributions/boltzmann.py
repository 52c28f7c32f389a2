"""The Boltzmann distribution over binary vectors, with full or bipartite (RBM) couplings."""

from __future__ import annotations

import time

import torch
from pyro.distributions import TorchDistribution, constraints
from pyro.distributions.util import broadcast_shape
from torch.distributions.utils import lazy_property

from ..energy import energy, upper_couplings
from ..samplers.ais import AISResult, ais_log_partition, continue_ais_run
from ..samplers.anneal import minimum_energy_state
from ..samplers.base import Sampler
from ..samplers.exact import ExactSampler, enumerate_states, exact_log_partition
from ..samplers.gibbs import GibbsSampler
from .log_z_cache import LOG_Z_CACHE, announce_ais

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
    exactly by enumeration and is differentiable. Above that, its *value* comes from ``log_z``
    if given, else from a cache kept across SVI steps (annealed importance sampling on first use
    and every ``log_z_refresh_every`` parameter updates, the run continued between along a short
    bridge to each new machine: :mod:`qbm_pyro.distributions.log_z_cache` states the policy
    and how stale the value may be), and its *gradient* from samples of the attached sampler,
    through the surrogate

    .. math::
        \log Z_{sur}(θ) = \mathrm{sg}(\log \hat Z) + \overline{-E_θ(z^{(s)})}
                          - \mathrm{sg}\big(\overline{-E_θ(z^{(s)})}\big),
        \qquad z^{(s)} \sim p_θ,

    so that ``log_prob`` has the value ``-E - log Ẑ`` and the maximum-likelihood gradient
    ``∂ log p(z)/∂h_i = z_i - E_p[z_i]``, ``∂ log p(z)/∂J_ij = z_i z_j - E_p[z_i z_j]``.

    **Sampling.** ``sample`` draws from ``sampler``: by default exact draws for
    ``n ≤ exact_max_n`` and otherwise a :class:`~qbm_pyro.samplers.GibbsSampler` kept with the
    cached log Z of the same parameters (so its chains persist across SVI steps). A batch of
    different machines (not made by :meth:`expand`) gives each machine its own chains
    (:meth:`~qbm_pyro.samplers.Sampler.sample_batched`: one vectorised sweep for Gibbs). Pass a sampler
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
        Keyword arguments of :func:`qbm_pyro.samplers.ais.ais_log_partition`.
    log_z_refresh_every
        Above ``exact_max_n``: rerun AIS after this many parameter updates (see above).
    log_z_min_ess
        Above ``exact_max_n``: rerun AIS when the cached run, continued to the new parameters,
        has an effective sample size below this fraction of its own AIS run's.
    log_z_bridge_steps
        Above ``exact_max_n``: Gibbs sweeps of the bridge that continues the cached AIS run to
        the new parameters at each update (``0``: plain importance reweighting of the run). One
        optimiser step moves the machine little: 5 sweeps (6 ms at 32 units) were as accurate
        as 20 on a two-mode machine (training's per-epoch bridge, a larger move, uses 20).
    relaxed
        Score relaxed values ``ζ ∈ [0, 1]^n`` (a relaxed posterior's samples replayed at the
        prior site) with validation on: the support becomes ``[0, 1]^n`` and ``log_prob(ζ)`` is
        ``-E(ζ) - log Z``, the multilinear extension of the Boltzmann log-density (equal to it at
        binary ζ). Without it, validation refuses non-binary values.

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
        log_z_refresh_every: int = 100,
        log_z_min_ess: float = 0.5,
        log_z_bridge_steps: int = 5,
        relaxed: bool = False,
        validate_args: bool | None = None,
    ):
        if h.dim() < 1 or J.dim() < 2:
            raise ValueError(f"need h (..., n) and J (..., n, n), got {tuple(h.shape)}, {tuple(J.shape)}")
        n = h.shape[-1]
        if J.shape[-2:] != (n, n):
            raise ValueError(f"J must have shape (..., {n}, {n}) to match h, got {tuple(J.shape)}")
        batch_shape = torch.Size(broadcast_shape(h.shape[:-1], J.shape[:-2]))
        self.h = h.expand(batch_shape + (n,))
        self.J = J.expand(batch_shape + (n, n))
        self.sampler = sampler
        self.num_samples = int(num_samples)
        self.exact_max_n = int(exact_max_n)
        self._log_z = log_z
        self.ais_options = dict(ais_options or {})
        if int(log_z_refresh_every) < 1 or not 0 < float(log_z_min_ess) <= 1 or int(log_z_bridge_steps) < 0:
            raise ValueError(
                "need log_z_refresh_every >= 1, 0 < log_z_min_ess <= 1 and log_z_bridge_steps >= 0, got "
                f"{log_z_refresh_every}, {log_z_min_ess}, {log_z_bridge_steps}"
            )
        self.log_z_refresh_every = int(log_z_refresh_every)
        self.log_z_min_ess = float(log_z_min_ess)
        self.log_z_bridge_steps = int(log_z_bridge_steps)
        self.relaxed = bool(relaxed)
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

    @constraints.dependent_property(event_dim=1)
    def support(self):
        """``{0,1}^n``; with ``relaxed=True`` the cube ``[0,1]^n`` (relaxed posterior values)."""
        if self.relaxed:
            return constraints.independent(constraints.unit_interval, 1)
        return BinaryVectorConstraint(self.n)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(type(self), _instance)
        batch_shape = torch.Size(batch_shape)
        new.h = self.h.expand(batch_shape + (self.n,))
        new.J = self.J.expand(batch_shape + (self.n, self.n))
        for attr in (
            "sampler",
            "num_samples",
            "exact_max_n",
            "_log_z",
            "ais_options",
            "log_z_refresh_every",
            "log_z_min_ess",
            "log_z_bridge_steps",
            "relaxed",
        ):
            setattr(new, attr, getattr(self, attr))
        new._unbatched = self._unbatched or (self if self.batch_shape == () else None)
        super(Boltzmann, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    # ------------------------------------------------------------------ energy and log Z

    def energy(self, value: torch.Tensor) -> torch.Tensor:
        """``E(z)`` for binary or relaxed ``z ∈ [0,1]^n``; shape ``value.shape[:-1]`` broadcast
        with ``batch_shape``. For a factorial Bernoulli ``q`` this is ``E_q[E(z)]`` exactly."""
        base = self._unbatched
        if base is None:
            return energy(value, self.h, self.J)
        # an expanded machine: one (n, n) product, not one per batch element (and its backward)
        out = energy(value, base.h, base.J)
        if out.shape == self.batch_shape:
            return out
        return out.expand(broadcast_shape(out.shape, self.batch_shape))

    @property
    def is_exact(self) -> bool:
        """Whether log Z is computed by enumeration (``n ≤ exact_max_n``)."""
        return self.n <= self.exact_max_n

    def _machines(self) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """The distinct machines: ``(h (n,), J (n, n), False)`` when all batch elements are one
        machine (unbatched, or made by :meth:`expand`), else ``(h (B, n), J (B, n, n), True)``
        over the flattened batch."""
        if self._unbatched is not None or self.batch_shape == ():
            base = self._unbatched or self
            return base.h, base.J, False
        return self.h.reshape(-1, self.n), self.J.reshape(-1, self.n, self.n), True

    def _to_batch(self, per_machine: torch.Tensor, batched: bool) -> torch.Tensor:
        """Per-machine values ``(B, *out)`` (or ``out`` for one machine) as ``batch_shape + out``."""
        if batched:
            return per_machine.reshape(self.batch_shape + per_machine.shape[1:])
        return per_machine.expand(self.batch_shape + per_machine.shape)

    def _draw(self, h: torch.Tensor, J: torch.Tensor, batched: bool, num_samples: int) -> torch.Tensor:
        """Sampler draws ``(C, n)``, or ``(B, C, n)`` with each machine on its own chains."""
        sampler = self._sampler()
        if batched:
            return sampler.sample_batched(h, J, num_samples)
        return sampler.sample(h, J, num_samples)

    @lazy_property
    def _ais_runs(self) -> list[AISResult]:
        """A fresh AIS run per distinct machine (one for an unbatched or expanded machine)."""
        h, J, batched = self._machines()
        if batched:
            return [ais_log_partition(h[b], J[b], **self.ais_options) for b in range(h.shape[0])]
        return [ais_log_partition(h, J, **self.ais_options)]

    @lazy_property
    def _ais_estimate(self) -> torch.Tensor:
        """AIS ``(log Ẑ, stderr)`` per batch element, shape ``batch_shape + (2,)``."""
        h, _, batched = self._machines()
        values = torch.tensor([[r.log_z, r.stderr] for r in self._ais_runs], dtype=h.dtype, device=h.device)
        return self._to_batch(values if batched else values[0], batched)

    def _bridged_runs(self, entry, h: torch.Tensor, J: torch.Tensor, batched: bool) -> list[AISResult] | None:
        """The cached AIS runs continued from ``entry``'s machines to ``h, J`` along a bridge of
        ``log_z_bridge_steps`` sweeps, or ``None`` when a run's effective sample size falls below
        ``log_z_min_ess`` times its AIS run's (or its estimate is not finite)."""
        options = self.ais_options
        seed = options.get("seed", 0)
        seed = None if seed is None else int(seed) + entry.updates + 1
        old_h, old_J = (entry.h, entry.J) if batched else (entry.h[None], entry.J[None])
        new_h, new_J = (h, J) if batched else (h[None], J[None])
        out = []
        for b, run in enumerate(entry.runs):
            tracked = continue_ais_run(
                run,
                (old_h[b], old_J[b]),
                new_h[b],
                new_J[b],
                anchor_ess=entry.anchor_ess[b],
                min_ess_ratio=self.log_z_min_ess,
                beta=options.get("beta", 1.0),
                n_steps=self.log_z_bridge_steps,
                seed=seed,
            )
            if tracked is None:
                return None
            out.append(tracked)
        return out

    def _cached_log_z(self) -> torch.Tensor:
        """log Z per distinct machine above ``exact_max_n``, from :data:`LOG_Z_CACHE` (policy in
        :mod:`qbm_pyro.distributions.log_z_cache`)."""
        h, J, batched = self._machines()
        key, leaves, versions = LOG_Z_CACHE.key(h, J)
        entry = LOG_Z_CACHE.get(key, leaves)
        hd, Jd = h.detach(), J.detach()
        if entry is None and not leaves:  # values outside a graph: a parameter entry may match
            found = LOG_Z_CACHE.find_machine(hd, Jd)
            if found is not None and found.ais_runs > 0:
                return found.log_z
        usable = entry is not None and entry.ais_runs > 0 and entry.h.shape == hd.shape
        if usable and entry.versions == versions and torch.equal(entry.h, hd) and torch.equal(entry.J, Jd):
            return entry.log_z
        if usable and entry.updates + 1 < self.log_z_refresh_every:
            runs = self._bridged_runs(entry, hd, Jd, batched)
            if runs is not None:
                entry.runs, entry.log_z = runs, _log_z_of(runs, hd, batched)
                entry.h, entry.J = hd.clone(), Jd.clone()
                entry.versions, entry.updates = versions, entry.updates + 1
                return entry.log_z
        start = time.perf_counter()
        runs = self._ais_runs
        announce_ais(self.n, time.perf_counter() - start, self.log_z_refresh_every)
        sampler = entry.sampler if entry is not None else self.sampler
        log_z = _log_z_of(runs, hd, batched)
        entry = LOG_Z_CACHE.put(
            key,
            leaves,
            versions,
            log_z=log_z,
            stderr=torch.tensor([r.stderr for r in runs], dtype=hd.dtype).reshape(log_z.shape),
            h=hd.clone(),
            J=Jd.clone(),
            runs=list(runs),
            anchor_ess=[r.ess for r in runs],
            ais_runs=(entry.ais_runs if entry is not None else 0) + 1,
            sampler=sampler,
        )
        return entry.log_z

    @lazy_property
    def log_partition_function(self) -> torch.Tensor:
        """``log Z``, shape ``batch_shape``.

        Exact and differentiable for ``n ≤ exact_max_n``; above it, the given ``log_z`` or a
        cached estimate (a value without gradient; see :mod:`~qbm_pyro.distributions.log_z_cache`
        for how it is refreshed and how stale it may be).
        """
        if self.is_exact:
            if self._unbatched is not None:  # expanded (e.g. by a plate): compute once
                base = self._unbatched
                return exact_log_partition(base.h, base.J).expand(self.batch_shape)
            return exact_log_partition(self.h, self.J)
        if self._log_z is not None:
            return torch.as_tensor(self._log_z, dtype=self.h.dtype, device=self.h.device).expand(
                self.batch_shape
            )
        _, _, batched = self._machines()
        return self._to_batch(self._cached_log_z(), batched)

    @property
    def log_partition_stderr(self) -> torch.Tensor:
        """Standard error of a fresh AIS estimate of log Z (zero when exact or given)."""
        if self.is_exact or self._log_z is not None:
            return torch.zeros(self.batch_shape, dtype=self.h.dtype)
        return self._ais_estimate[..., 1]

    @lazy_property
    def log_partition_surrogate(self) -> torch.Tensor:
        """A tensor whose value is ``log Z`` and whose gradient in ``h, J`` is ``E_p[(z, zzᵀ)]``.

        Exact enumeration for ``n ≤ exact_max_n``; otherwise the sampled surrogate of the class
        docstring, with ``num_samples`` samples from the sampler (detached). Each machine of a
        batch (not made by :meth:`expand`) has its own chains."""
        if self.is_exact:
            return self.log_partition_function
        if not (torch.is_grad_enabled() and (self.h.requires_grad or self.J.requires_grad)):
            return self.log_partition_function  # no gradient wanted: skip the sampler
        h, J, batched = self._machines()
        z = self._draw(h, J, batched, self.num_samples)
        minus_e = -_energies(z, h, J).mean(-1)
        if self._log_z is not None:
            value = self.log_partition_function
        else:
            value = self._to_batch(self._cached_log_z(), batched)
        return value.detach() + self._to_batch(minus_e - minus_e.detach(), batched)

    def _sampler(self) -> Sampler:
        if self.sampler is None:
            if self.is_exact:
                self.sampler = ExactSampler()
            else:  # a persistent default sampler per set of parameters (kept by the cache)
                h, J, _ = self._machines()
                key, leaves, versions = LOG_Z_CACHE.key(h, J)
                entry = LOG_Z_CACHE.get(key, leaves)
                if entry is None:
                    nan = torch.full(h.shape[:-1], float("nan"), dtype=h.dtype, device=h.device)
                    entry = LOG_Z_CACHE.put(
                        key,
                        leaves,
                        versions,
                        log_z=nan,
                        stderr=nan,
                        h=h.detach().clone(),
                        J=J.detach().clone(),
                    )
                if entry.sampler is None:
                    entry.sampler = GibbsSampler()
                self.sampler = entry.sampler
        return self.sampler

    # ------------------------------------------------------------------ Distribution API

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return -self.energy(value) - self.log_partition_surrogate

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        sample_shape = torch.Size(sample_shape)
        m = sample_shape.numel()
        h, J, batched = self._machines()
        if not batched:
            z = self._draw(h, J, False, m * self.batch_shape.numel())
            return z.reshape(sample_shape + self.batch_shape + (self.n,))
        z = self._draw(h, J, True, m).transpose(0, 1)  # (m, B, n)
        return z.reshape(sample_shape + self.batch_shape + (self.n,))

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        z = enumerate_states(self.n, dtype=self.h.dtype).to(self.h.device)
        z = z.reshape((-1,) + (1,) * len(self.batch_shape) + (self.n,))
        return z.expand((-1,) + self.batch_shape + (self.n,)) if expand else z

    def _exact_probs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All states ``(2^n, 1…, n)`` and their probabilities ``(2^n, *batch_shape)``."""
        z = self.enumerate_support(expand=False)
        return z, (-energy(z, self.h, self.J) - exact_log_partition(self.h, self.J)).exp()

    @property
    def mean(self) -> torch.Tensor:
        """Marginals ``E[z_i]``: exact (enumeration) for ``n ≤ exact_max_n``, else the mean of
        ``num_samples`` draws of the sampler (Monte Carlo, no gradient)."""
        if self.is_exact:
            z, p = self._exact_probs()
            return (p.unsqueeze(-1) * z).sum(0)
        with torch.no_grad():
            return self.sample((self.num_samples,)).mean(0)

    @property
    def variance(self) -> torch.Tensor:
        """``Var[z_i] = E[z_i](1 - E[z_i])`` (binary units), from :attr:`mean`."""
        mean = self.mean
        return mean * (1 - mean)

    def entropy(self) -> torch.Tensor:
        """``H[p] = log Z + E_p[E(z)]``, shape ``batch_shape``: exact for ``n ≤ exact_max_n``;
        above, log Z as :attr:`log_partition_function` and ``E_p[E]`` from ``num_samples`` draws."""
        if self.is_exact:
            z, p = self._exact_probs()
            return self.log_partition_function + (p * energy(z, self.h, self.J)).sum(0)
        with torch.no_grad():
            z = self.sample((self.num_samples,))
            return self.log_partition_function + self.energy(z).mean(0)

    def mode(self, *, num_reads: int = 64, num_sweeps: int = 200, seed: int | None = 0) -> torch.Tensor:
        """The minimum-energy state(s), shape ``batch_shape + (n,)``.

        Exact (enumeration, ties broken towards the lowest state index) for ``n ≤ exact_max_n``;
        above, :func:`~qbm_pyro.samplers.anneal.minimum_energy_state` (Gibbs annealing to T ≈ 0
        and a greedy descent, ``num_reads`` chains of ``num_sweeps`` sweeps): a local minimum
        under single flips, the global one with high probability for moderate ``n``."""
        h, J, batched = self._machines()
        with torch.no_grad():
            if self.is_exact:
                z = enumerate_states(self.n, dtype=self.h.dtype).to(self.h.device)
                e = _energies(z.expand(h.shape[:-1] + z.shape), h, J)
                out = z[e.argmin(-1)]
            else:
                options = dict(num_reads=num_reads, num_sweeps=num_sweeps, seed=seed)
                hs, Js = (h, J) if batched else (h.unsqueeze(0), J.unsqueeze(0))
                out = torch.stack([minimum_energy_state(hs[b], Js[b], **options) for b in range(hs.shape[0])])
                out = out.to(self.h) if batched else out[0].to(self.h)
        return self._to_batch(out, batched)


def _energies(z: torch.Tensor, h: torch.Tensor, J: torch.Tensor) -> torch.Tensor:
    """Energies of samples ``z`` ``(…, C, n)`` of machines ``h`` ``(…, n)``, ``J`` ``(…, n, n)``
    (one machine per leading index): shape ``(…, C)``."""
    upper = upper_couplings(J)
    return -(z * h.unsqueeze(-2)).sum(-1) - ((z @ upper) * z).sum(-1)


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
        batch = torch.Size(broadcast_shape(a.shape[:-1], b.shape[:-1], W.shape[:-2]))
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


def _log_z_of(runs: list[AISResult], h: torch.Tensor, batched: bool) -> torch.Tensor:
    """The runs' log Z as a tensor: ``(B,)`` for a batch of machines, a scalar for one."""
    values = torch.tensor([r.log_z for r in runs], dtype=h.dtype, device=h.device)
    return values if batched else values[0]
