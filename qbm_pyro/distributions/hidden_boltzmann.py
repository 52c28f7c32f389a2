r"""A Boltzmann machine over a binary code with hidden units of its own (the DVAE/QVAE RBM prior).

The code ``z ∈ {0,1}^n`` and ``m`` hidden units ``u ∈ {0,1}^m`` form one Boltzmann machine

.. math::
    E(z, u) = -h^\top z - \sum_{i<j} J_{ij} z_i z_j - b^\top u - z^\top W u ,

with the hidden units coupled to the code only, so they sum out analytically:

.. math::
    p(z) = \frac{1}{Z} \sum_u e^{-E(z, u)} = \frac{e^{-F(z)}}{Z}, \qquad
    F(z) = -h^\top z - \sum_{i<j} J_{ij} z_i z_j - \sum_k \operatorname{softplus}(b_k + (W^\top z)_k).

``F`` is the *free energy* of the code. Each hidden unit adds a softplus "expert", so the
marginal over the code is a product of experts that can hold many modes where a pairwise machine
over the code alone stores each one as a pattern in ``J``. ``Z`` is the joint machine's
partition function; the joint is an ordinary :class:`~qbm_pyro.distributions.Boltzmann` over
``n + m`` units (:meth:`HiddenBoltzmann.joint`), so every sampler of the package (Gibbs, parallel
tempering, an annealer through dimod) samples it, and the negative phase of ``∇ log Z`` is
``E_p[(z, u, zzᵀ, zuᵀ)]`` over joint samples.

**References:** [1] Rolfe (2017) "Discrete variational autoencoders", ICLR. [2] Khoshaman et al.
(2018) "Quantum variational autoencoder", Quantum Sci. Technol. 4, 014001. [3] Smolensky (1986),
Hinton (2002) "Training products of experts by minimizing contrastive divergence".
"""

from __future__ import annotations

import torch
from pyro.distributions import TorchDistribution, constraints
from pyro.distributions.util import broadcast_shape
from torch.distributions.utils import lazy_property
from torch.nn.functional import softplus

from ..energy import energy, upper_couplings
from ..samplers.base import Sampler
from ..samplers.exact import enumerate_states
from .boltzmann import BinaryVectorConstraint, Boltzmann

__all__ = ["HiddenBoltzmann", "joint_machine"]


def joint_machine(
    h: torch.Tensor, J: torch.Tensor, b: torch.Tensor, W: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The joint machine over ``(z, u)``: biases ``(n + m,)`` and strict-upper couplings
    ``(n + m, n + m)`` with ``triu(J, 1)`` in the code block and ``W`` in the code-hidden block."""
    n, m = h.shape[-1], b.shape[-1]
    top = torch.cat([upper_couplings(J), W], -1)
    return torch.cat([h, b], -1), torch.cat([top, W.new_zeros(m, n + m)], -2)


class HiddenBoltzmann(TorchDistribution):
    r"""The marginal over the code ``z`` of a Boltzmann machine with ``m`` hidden units.

    ``log_prob(z) = -F(z) - log Z`` (module docstring). For ``n ≤ exact_max_n`` log Z is exact
    and differentiable: the code is enumerated (``2^n`` states) and the hidden units summed out
    analytically, whatever ``m``. Above, its value is ``log_z`` (e.g. an AIS estimate over the
    joint machine kept by the caller) or the joint :class:`Boltzmann`'s cached estimate, and its
    gradient comes from samples of the joint machine through the same surrogate as
    :class:`Boltzmann` (``∂ log Z/∂θ = E_p[-∂E(z, u)/∂θ]``).

    Parameters
    ----------
    h
        Code biases ``(n,)``.
    J
        Code couplings ``(n, n)``, strict upper triangle used (``zeros`` for an RBM prior).
    b
        Hidden biases ``(m,)``.
    W
        Code-hidden couplings ``(n, m)``.
    sampler
        Sampler of the joint machine (``n + m`` units), for ``sample`` and the gradient of log Z
        above ``exact_max_n``. Its draws are ``(z, u)``; the code is the first ``n`` columns.
        Default: exact draws for ``n ≤ exact_max_n``, else the joint :class:`Boltzmann`'s default.
    num_samples
        Joint samples per evaluation of the sampled log Z gradient.
    exact_max_n
        Largest code size ``n`` for which log Z is computed by enumeration.
    log_z
        A known value of log Z above ``exact_max_n`` (its gradient still comes from samples).
    validate_args
        As for Pyro distributions.

    Notes
    -----
    One machine per distribution: batched parameters are refused; :meth:`expand` (a plate) shares
    the machine over a batch. The KL from a factorial Bernoulli posterior is registered in
    ``qbm_pyro.distributions.kl`` (an unbiased estimate of the softplus term).

    Examples
    --------
    >>> import torch
    >>> from qbm_pyro.distributions import HiddenBoltzmann
    >>> d = HiddenBoltzmann(torch.zeros(3), torch.zeros(3, 3), torch.zeros(2), torch.zeros(3, 2))
    >>> d.log_prob(torch.tensor([1.0, 0.0, 1.0]))  # uniform over the 8 codes
    tensor(-2.0794)
    """

    arg_constraints = {
        "h": constraints.real_vector,
        "J": constraints.independent(constraints.real, 2),
        "b": constraints.real_vector,
        "W": constraints.independent(constraints.real, 2),
    }
    has_enumerate_support = True
    has_rsample = False

    def __init__(
        self,
        h: torch.Tensor,
        J: torch.Tensor,
        b: torch.Tensor,
        W: torch.Tensor,
        *,
        sampler: Sampler | None = None,
        num_samples: int = 256,
        exact_max_n: int = 20,
        log_z: torch.Tensor | float | None = None,
        validate_args: bool | None = None,
    ):
        if h.dim() != 1 or b.dim() != 1:
            raise ValueError(
                f"HiddenBoltzmann takes one machine: h (n,) and b (m,), got {tuple(h.shape)}, "
                f"{tuple(b.shape)} (use .expand for a batch)"
            )
        n, m = h.shape[0], b.shape[0]
        if J.shape != (n, n):
            raise ValueError(f"J must have shape ({n}, {n}) to match h, got {tuple(J.shape)}")
        if W.shape != (n, m):
            raise ValueError(f"W must have shape ({n}, {m}) to match h and b, got {tuple(W.shape)}")
        if m < 1:
            raise ValueError("HiddenBoltzmann needs at least one hidden unit (else use Boltzmann)")
        self.h, self.J, self.b, self.W = h, J, b, W
        self.sampler = sampler
        self.num_samples = int(num_samples)
        self.exact_max_n = int(exact_max_n)
        self._log_z = log_z
        self._batch_elements = 1
        super().__init__(torch.Size(), (n,), validate_args=validate_args)

    @property
    def n(self) -> int:
        """Number of code units."""
        return self.h.shape[0]

    @property
    def n_hidden(self) -> int:
        """Number of hidden units."""
        return self.b.shape[0]

    @constraints.dependent_property(event_dim=1)
    def support(self):
        """``{0,1}^n``."""
        return BinaryVectorConstraint(self.n)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(HiddenBoltzmann, _instance)
        for attr in ("h", "J", "b", "W", "sampler", "num_samples", "exact_max_n", "_log_z"):
            setattr(new, attr, getattr(self, attr))
        super(HiddenBoltzmann, new).__init__(torch.Size(batch_shape), self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _batch(self, out: torch.Tensor) -> torch.Tensor:
        """``out`` broadcast against :attr:`batch_shape` (an expanded machine)."""
        if out.shape == self.batch_shape:
            return out
        shape = broadcast_shape(out.shape, self.batch_shape)
        return out.expand(shape)

    # ------------------------------------------------------------------ energies and log Z

    def hidden_input(self, z: torch.Tensor) -> torch.Tensor:
        """``b + Wᵀz``, the input of each hidden unit given the code, ``(..., m)``."""
        return self.b + z @ self.W

    def free_energy(self, z: torch.Tensor) -> torch.Tensor:
        """``F(z) = E_pair(z) - Σ_k softplus(b_k + (Wᵀz)_k)`` of codes ``(..., n)`` (binary, or
        relaxed values in ``[0,1]^n``: then the free energy at that point, not an average)."""
        return self._batch(energy(z, self.h, self.J) - softplus(self.hidden_input(z)).sum(-1))

    def joint(self) -> Boltzmann:
        """The joint machine over ``(z, u)`` as a :class:`Boltzmann` of ``n + m`` units, with this
        distribution's sampler, ``num_samples`` and ``log_z``."""
        hj, Jj = joint_machine(self.h, self.J, self.b, self.W)
        return Boltzmann(
            hj,
            Jj,
            sampler=self.sampler,
            num_samples=self.num_samples,
            exact_max_n=self.exact_max_n,
            log_z=self._log_z,
            validate_args=False,
        )

    @property
    def is_exact(self) -> bool:
        """Whether log Z is computed by enumerating the code (``n ≤ exact_max_n``)."""
        return self.n <= self.exact_max_n

    def _exact_log_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All codes ``(2^n, n)`` and their unnormalised log-probabilities ``-F(z)``."""
        z = enumerate_states(self.n, dtype=self.h.dtype).to(self.h.device)
        return z, -(energy(z, self.h, self.J) - softplus(self.hidden_input(z)).sum(-1))

    @lazy_property
    def log_partition_function(self) -> torch.Tensor:
        """``log Z`` (of the joint machine, so also of the marginal), shape ``batch_shape``:
        exact and differentiable for ``n ≤ exact_max_n``, else ``log_z`` or the joint machine's
        cached estimate (a value without gradient)."""
        if self.is_exact:
            return self._batch(torch.logsumexp(self._exact_log_weights()[1], 0))
        return self._batch(self.joint().log_partition_function)

    @lazy_property
    def log_partition_surrogate(self) -> torch.Tensor:
        """A tensor whose value is ``log Z`` and whose gradient is the negative phase: exact for
        ``n ≤ exact_max_n``, else from ``num_samples`` samples of the joint machine."""
        if self.is_exact:
            return self.log_partition_function
        return self._batch(self.joint().log_partition_surrogate)

    # ------------------------------------------------------------------ Distribution API

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return -self.free_energy(value) - self.log_partition_surrogate

    def sample_joint(self, sample_shape=torch.Size()) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``(z, u)``, shapes ``sample_shape + batch_shape + (n,)`` and ``(..., m)``.

        Exact for ``n ≤ exact_max_n`` without a sampler (the code from its enumerated marginal,
        then ``u | z`` factorial); otherwise the sampler's draws of the joint machine."""
        shape = torch.Size(sample_shape) + self.batch_shape
        count = shape.numel()
        with torch.no_grad():
            if self.sampler is None and self.is_exact:
                states, log_w = self._exact_log_weights()
                idx = torch.multinomial(torch.softmax(log_w, 0), count, replacement=True)
                z = states[idx]
                u = (
                    torch.rand(count, self.n_hidden, dtype=z.dtype) < torch.sigmoid(self.hidden_input(z))
                ).to(z)
            else:
                hj, Jj = joint_machine(self.h.detach(), self.J.detach(), self.b.detach(), self.W.detach())
                zu = self.joint()._sampler().sample(hj, Jj, count)
                z, u = zu[:, : self.n], zu[:, self.n :]
        return z.reshape(shape + (self.n,)), u.reshape(shape + (self.n_hidden,))

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return self.sample_joint(sample_shape)[0]

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        z = enumerate_states(self.n, dtype=self.h.dtype).to(self.h.device)
        z = z.reshape((-1,) + (1,) * len(self.batch_shape) + (self.n,))
        return z.expand((-1,) + self.batch_shape + (self.n,)) if expand else z

    @property
    def mean(self) -> torch.Tensor:
        """Marginals ``E[z_i]``: exact for ``n ≤ exact_max_n``, else the mean of ``num_samples``
        draws (Monte Carlo, no gradient)."""
        if self.is_exact:
            z, log_w = self._exact_log_weights()
            return self._batch_event((torch.softmax(log_w, 0).unsqueeze(-1) * z).sum(0))
        with torch.no_grad():
            return self._batch_event(self.sample((self.num_samples,)).reshape(-1, self.n).mean(0))

    def _batch_event(self, x: torch.Tensor) -> torch.Tensor:
        return x.expand(self.batch_shape + (self.n,))

    @property
    def variance(self) -> torch.Tensor:
        """``Var[z_i] = E[z_i](1 - E[z_i])``."""
        mean = self.mean
        return mean * (1 - mean)

    def descend(self, z: torch.Tensor, *, max_steps: int | None = None) -> torch.Tensor:
        """Steepest single-flip descent of the free energy ``F`` from each row of ``z`` ``(B, n)``
        to a local minimum (no single flip of a code unit lowers ``F``): the attractors of the
        marginal over the code, as ``qbm_pyro.tl._attractors.descend`` for a pairwise machine."""
        with torch.no_grad():
            z = z.detach().to(self.h.dtype).clone()
            upper = upper_couplings(self.J.detach())
            Jsym = upper + upper.T
            W = self.W.detach()
            max_steps = 10 * self.n if max_steps is None else int(max_steps)
            for _ in range(max_steps):
                a = self.b.detach() + z @ W  # (B, m)
                sign = 1 - 2 * z  # +1 turns a unit on, -1 off
                a_new = a.unsqueeze(-2) + sign.unsqueeze(-1) * W  # (B, n, m)
                d_hidden = (softplus(a_new) - softplus(a).unsqueeze(-2)).sum(-1)
                delta = -sign * (self.h.detach() + z @ Jsym) - d_hidden  # ΔF of each flip
                best, idx = delta.min(-1)
                move = best < -1e-9
                if not bool(move.any()):
                    break
                rows = torch.nonzero(move).squeeze(-1)
                z[rows, idx[rows]] = 1 - z[rows, idx[rows]]
        return z
