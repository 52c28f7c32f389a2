"""KL divergence from a factorial Bernoulli posterior to a Boltzmann prior.

For ``q(z) = Π_i Bernoulli(z_i; q_i)`` and ``p(z) = exp(-E(z)) / Z``,

.. math::
    KL(q \\| p) = \\sum_i [q_i \\log q_i + (1 - q_i)\\log(1 - q_i)] + E(q) + \\log Z ,

exactly, because ``E`` is multilinear so ``E_q[E(z)] = E(q)`` for a factorial ``q``. The first
two terms are analytic in ``q`` (the prior's gradient reaches the encoder with no sampling
noise); ``log Z`` enters through :attr:`Boltzmann.log_partition_surrogate`, whose gradient in
``h, J`` is the sampled negative phase. For a relaxed posterior (spike-and-exponential,
overlapping exponentials, concrete) the KL is that of its underlying Bernoulli variables, as in
DVAE/DVAE++.

Registered for ``Independent(base, 1)`` against :class:`Boltzmann`, with ``base`` one of
``Bernoulli``, :class:`SpikeAndExponential`, :class:`OverlappingExponentials` or
``RelaxedBernoulli``; the result has the posterior's batch shape.

**Hidden units** (:class:`~qbm_pyro.distributions.HiddenBoltzmann`, ``p(z) = e^{-F(z)}/Z`` with
``F(z) = E(z) - Σ_k softplus(b_k + (Wᵀz)_k)``):

.. math::
    KL(q \\| p) = -H[q] + E(q)
    - \\mathbb{E}_q\\Big[\\sum_k \\operatorname{softplus}(b_k + (W^\\top z)_k)\\Big] + \\log Z .

The softplus term has no closed form under ``q``. :func:`kl_bernoulli_hidden_boltzmann` estimates
it from hard codes ``z ~ q`` (fresh Bernoulli draws; the posterior's relaxed sample the decoder
sees is not needed, as the KL is of the codes), with the *local-expectation* gradient for the
posterior: for each unit ``i``, ``∂E_q[f]/∂q_i = E_q[f(z_{i←1}) - f(z_{i←0})]``, estimated with
the same draw. Value and gradients (in the logits and in ``b, W``) are unbiased, and the
gradient has no score-function variance (Titsias & Lázaro-Gredilla 2015, "Local expectation
gradients for black box variational inference", NeurIPS). The cost is one ``(B, n, m)`` tensor
per draw.
"""

from __future__ import annotations

import torch
from pyro.distributions import Bernoulli, Independent, RelaxedBernoulli
from torch.distributions import register_kl
from torch.nn.functional import logsigmoid, softplus

from ..energy import energy
from .boltzmann import RBM, Boltzmann  # noqa: F401  (RBM: qbm_pyro.distributions loads the priors from here)
from .hidden_boltzmann import HiddenBoltzmann
from .relaxed import OverlappingExponentials, SpikeAndExponential

__all__ = [
    "kl_balanced_code",
    "kl_bernoulli_boltzmann",
    "kl_bernoulli_code",
    "kl_bernoulli_hidden_boltzmann",
]

_FACTORIAL = (Bernoulli, SpikeAndExponential, OverlappingExponentials, RelaxedBernoulli)


def kl_bernoulli_boltzmann(logits: torch.Tensor, prior: Boltzmann) -> torch.Tensor:
    """``KL(Π Bernoulli(σ(logits)) ‖ prior)``, shape ``broadcast(logits[..., 0], prior.batch_shape)``."""
    q = torch.sigmoid(logits)
    # q log q + (1 - q) log(1 - q) = q·logits + log σ(-logits): three operations, not seven
    neg_entropy = (q * logits + logsigmoid(-logits)).sum(-1)
    return neg_entropy + prior.energy(q) + prior.log_partition_surrogate


@register_kl(Independent, Boltzmann)
@register_kl(Independent, HiddenBoltzmann)
def _kl_independent_code(q: Independent, p: Boltzmann | HiddenBoltzmann) -> torch.Tensor:
    """The registered KL of a factorial binary posterior to either prior (``kl_bernoulli_code``)."""
    if q.reinterpreted_batch_ndims != 1 or not isinstance(q.base_dist, _FACTORIAL):
        raise NotImplementedError(
            f"KL to {type(p).__name__} is implemented for Independent(<factorial binary>, 1), got {q}"
        )
    return kl_bernoulli_code(q.base_dist.logits, p)


def expected_softplus(
    logits: torch.Tensor, prior: HiddenBoltzmann, num_draws: int = 1, *, z: torch.Tensor | None = None
) -> torch.Tensor:
    """An unbiased estimate of ``E_q[Σ_k softplus(b_k + (Wᵀz)_k)]`` under ``q = Π Bernoulli(σ(logits))``,
    shape ``logits.shape[:-1]``, whose gradient in ``logits`` is the local-expectation one and
    in ``b, W`` the pathwise one (module docstring). ``z``: hard draws ``(num_draws, ..., n)`` to
    use instead of fresh ones (tests)."""
    q = torch.sigmoid(logits)
    if z is None:
        with torch.no_grad():
            z = torch.bernoulli(q.detach().expand((int(num_draws),) + q.shape))
    a = prior.hidden_input(z)  # (S, ..., m)
    value = softplus(a).sum(-1)
    with torch.no_grad():
        W = prior.W.detach()
        a0 = a.unsqueeze(-2) - z.unsqueeze(-1) * W  # hidden inputs with unit i off, (S, ..., n, m)
        diff = (softplus(a0 + W) - softplus(a0)).sum(-1)  # f(z_i←1) - f(z_i←0), (S, ..., n)
    local = ((q - q.detach()) * diff).sum(-1)  # value 0, gradient Σ_i diff_i ∂q_i
    return (value + local).mean(0)


def kl_bernoulli_hidden_boltzmann(
    logits: torch.Tensor, prior: HiddenBoltzmann, num_draws: int = 1
) -> torch.Tensor:
    """``KL(Π Bernoulli(σ(logits)) ‖ prior)`` for a prior with hidden units: exact in every term but
    the softplus one, which is an unbiased estimate from ``num_draws`` hard codes per cell
    (``expected_softplus``). Shape ``broadcast(logits[..., 0], prior.batch_shape)``."""
    q = torch.sigmoid(logits)
    neg_entropy = (q * logits + logsigmoid(-logits)).sum(-1)
    pair = energy(q, prior.h, prior.J)
    return neg_entropy + pair - expected_softplus(logits, prior, num_draws) + prior.log_partition_surrogate


def kl_bernoulli_code(logits: torch.Tensor, prior: Boltzmann | HiddenBoltzmann) -> torch.Tensor:
    """The KL of the codes to either prior: :func:`kl_bernoulli_boltzmann` or
    :func:`kl_bernoulli_hidden_boltzmann`."""
    if isinstance(prior, HiddenBoltzmann):
        return kl_bernoulli_hidden_boltzmann(logits, prior)
    return kl_bernoulli_boltzmann(logits, prior)


def _scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` in value (exactly), with its gradient multiplied by ``scale``."""
    detached = x.detach()
    return detached + scale * (x - detached)


def kl_balanced_code(logits: torch.Tensor, prior: Boltzmann | HiddenBoltzmann, alpha: float) -> torch.Tensor:
    """KL balancing (Hafner et al. 2021, "Mastering Atari with discrete world models", DreamerV2):
    ``α·KL(sg(q) ‖ p) + (1 − α)·KL(q ‖ sg(p))`` with ``sg`` stop-gradient.

    The value is ``kl_bernoulli_code``'s, exactly; the prior's parameters get ``α`` times the
    KL's gradient and the posterior's logits ``1 − α`` times it. With ``α > ½`` the prior moves to
    the aggregate posterior faster than the posterior is pulled onto the prior. The KL (and its
    sampled negative phase) is evaluated once; only the gradients are rescaled.

    Parameters
    ----------
    logits
        The posterior's logits ``(..., n)``.
    prior
        The prior of the codes.
    alpha
        The prior's share of the gradient, in ``(0, 1]``.
    """
    if not 0 < alpha <= 1:
        raise ValueError(f"the KL balance alpha must be in (0, 1], got {alpha}")
    # f(a', b) with a' = a in value: ∂/∂a = (1-α)/α·∂f/∂a, ∂/∂b = ∂f/∂b; then the whole by α
    return _scale_grad(kl_bernoulli_code(_scale_grad(logits, (1 - alpha) / alpha), prior), alpha)
