"""Continuous relaxations of factorial Bernoulli variables for discrete VAEs.

Each distribution here is elementwise: ``probs``/``logits`` of shape ``(..., n)`` give samples
``ζ ∈ [0, 1]`` of the same shape, reparameterised (``rsample``) so that gradients reach the
logits. Use ``.to_event(1)`` for a vector-valued posterior. ``probs`` is the probability that
the underlying binary variable is one, which the KL to a Boltzmann prior needs.

- :class:`SpikeAndExponential` (DVAE [1]): ``ζ = 0`` with probability ``1 - q``; otherwise
  density ``∝ exp(β(ζ - 1))`` on ``[0, 1]``.
- :class:`OverlappingExponentials` (DVAE++ [2]): the mixture ``(1 - q) r_0 + q r_1`` with
  ``r_0(ζ) ∝ exp(-βζ)`` and ``r_1(ζ) ∝ exp(β(ζ - 1))``; its inverse CDF is the root of a
  quadratic, so ``ζ`` is smooth in ``q`` everywhere.

**References:** [1] Rolfe (2017) "Discrete variational autoencoders", ICLR.
[2] Vahdat, Macready, Bian, Khoshaman, Andriyash (2018) "DVAE++: Discrete variational
autoencoders with overlapping transformations", ICML.
"""

from __future__ import annotations

import torch
from pyro.distributions import TorchDistribution, constraints
from torch.distributions.utils import broadcast_all, lazy_property, logits_to_probs

__all__ = ["OverlappingExponentials", "SpikeAndExponential"]


class _RelaxedBinary(TorchDistribution):
    """Shared parameterisation: ``logits`` of the binary variable and smoothing ``beta``."""

    arg_constraints = {"logits": constraints.real, "beta": constraints.positive}
    support = constraints.unit_interval
    has_rsample = True

    def __init__(self, logits: torch.Tensor, beta: torch.Tensor | float = 5.0, *, validate_args=None):
        self.logits, self.beta = broadcast_all(logits, beta)
        super().__init__(self.logits.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(type(self), _instance)
        batch_shape = torch.Size(batch_shape)
        new.logits = self.logits.expand(batch_shape)
        new.beta = self.beta.expand(batch_shape)
        super(_RelaxedBinary, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @lazy_property
    def probs(self) -> torch.Tensor:
        """Probability ``q`` that the binary variable is one."""
        return logits_to_probs(self.logits, is_binary=True)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        rho = torch.rand(shape, dtype=self.logits.dtype, device=self.logits.device)
        return self.icdf(rho)

    def _log_norm(self) -> torch.Tensor:
        """``log((1 - e^{-β}) / β)``, the log normaliser of one exponential on ``[0, 1]``."""
        return torch.log(-torch.expm1(-self.beta)) - torch.log(self.beta)


class SpikeAndExponential(_RelaxedBinary):
    r"""Spike at 0 with probability ``1 - q``, else an exponential rising towards 1 (DVAE).

    .. math::
        ζ = \begin{cases} 0 & ρ \le 1 - q \\
        1 + \frac{1}{β} \log\left(\frac{ρ - 1 + q}{q}(1 - e^{-β}) + e^{-β}\right) & ρ > 1 - q
        \end{cases}

    ``log_prob`` is the density with respect to :math:`δ_0` + Lebesgue measure.

    Parameters
    ----------
    logits
        Logits of ``q``, any shape.
    beta
        Sharpness of the exponential (larger is closer to binary).
    """

    def icdf(self, rho: torch.Tensor) -> torch.Tensor:
        q = self.probs
        e = torch.exp(-self.beta)
        inner = ((rho - 1 + q) / q.clamp_min(1e-12)).clamp_min(0) * (1 - e) + e
        zeta = 1 + torch.log(inner) / self.beta
        return torch.where(rho <= 1 - q, torch.zeros_like(zeta), zeta.clamp(0, 1))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        slab = torch.nn.functional.logsigmoid(self.logits) + self.beta * (value - 1) - self._log_norm()
        spike = torch.nn.functional.logsigmoid(-self.logits)
        return torch.where(value == 0, spike, slab)


class OverlappingExponentials(_RelaxedBinary):
    r"""Mixture of two exponentials peaked at 0 and 1, mixing weight ``q`` (DVAE++).

    .. math::
        r(ζ) = (1 - q)\,\frac{β e^{-βζ}}{1 - e^{-β}} + q\,\frac{β e^{β(ζ - 1)}}{1 - e^{-β}}

    Sampling solves ``F(ζ) = ρ``, a quadratic in ``u = e^{-βζ}``:
    ``(1 - q) u^2 + b u - q e^{-β} = 0`` with ``b = ρ(1 - e^{-β}) - (1 - q) + q e^{-β}``.

    Parameters
    ----------
    logits
        Logits of ``q``, any shape.
    beta
        Sharpness of the exponentials.
    """

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        """``icdf(ρ)`` with ``ρ ~ U(0, 1)``; the gradient to ``logits`` is the implicit one,
        ``∂ζ/∂q = -(∂F/∂q) / r(ζ)`` (the values of differentiating :meth:`icdf`, in a handful of
        operations instead of the quadratic's thirty). A ``beta`` that needs a gradient goes
        through :meth:`icdf`."""
        shape = self._extended_shape(sample_shape)
        rho = torch.rand(shape, dtype=self.logits.dtype, device=self.logits.device)
        if self.beta.requires_grad:
            return self.icdf(rho)
        return _OverlapSample.apply(self.logits.expand(shape), rho, self.beta.expand(shape))

    def icdf(self, rho: torch.Tensor) -> torch.Tensor:
        return _overlap_icdf(self.probs, rho, self.beta)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        log_r0 = -self.beta * value
        log_r1 = self.beta * (value - 1)
        mix = torch.logaddexp(
            torch.nn.functional.logsigmoid(-self.logits) + log_r0,
            torch.nn.functional.logsigmoid(self.logits) + log_r1,
        )
        return mix - self._log_norm()


def _overlap_icdf(q: torch.Tensor, rho: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """The root ``ζ = -log(u)/β`` of :class:`OverlappingExponentials`' quadratic in ``u``."""
    e = torch.exp(-beta)
    b = rho * (1 - e) - (1 - q) + q * e
    c = q * e
    disc = torch.sqrt(b * b + 4 * (1 - q) * c)
    # Two algebraically equal roots; pick the one without cancellation.
    u_pos = 2 * c / (b + disc).clamp_min(1e-30)
    u_neg = (disc - b) / (2 * (1 - q)).clamp_min(1e-30)
    u = torch.maximum(torch.where(b >= 0, u_pos, u_neg), e).clamp_max(1.0)
    return (-torch.log(u) / beta).clamp(0, 1)


class _OverlapSample(torch.autograd.Function):
    """``ζ = F^{-1}(ρ; q)`` of :class:`OverlappingExponentials` with the implicit gradient.

    ``F(ζ; q) = ρ`` holds for every ``q``, so ``∂ζ/∂q = -(∂F/∂q) / r(ζ)``. With
    ``a = e^{-βζ}`` and ``b = e^{β(ζ-1)}``: ``(1 - e^{-β}) ∂F/∂q = (1 - a) - (b - e^{-β})`` and
    ``(1 - e^{-β}) r(ζ) = β((1 - q) a + q b)``. At the clamped ends ``ζ = 0`` and ``ζ = 1`` the
    numerator is zero, as the clamp's gradient is.
    """

    @staticmethod
    def forward(logits, rho, beta):
        return _overlap_icdf(torch.sigmoid(logits), rho, beta)

    @staticmethod
    def setup_context(ctx, inputs, output):
        logits, _, beta = inputs
        ctx.save_for_backward(logits, beta, output)

    @staticmethod
    def backward(ctx, grad):
        logits, beta, zeta = ctx.saved_tensors
        q = torch.sigmoid(logits)
        a = torch.exp(-beta * zeta)
        b = torch.exp(beta * (zeta - 1))
        dzeta_dq = (1 + torch.exp(-beta) - a - b) / (beta * torch.lerp(a, b, q))
        return grad * dzeta_dq * q * (1 - q), None, None
