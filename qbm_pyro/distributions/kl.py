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
"""

from __future__ import annotations

import torch
from pyro.distributions import Bernoulli, Independent, RelaxedBernoulli
from torch.distributions import register_kl
from torch.nn.functional import logsigmoid

from .boltzmann import Boltzmann
from .relaxed import OverlappingExponentials, SpikeAndExponential

__all__ = ["kl_bernoulli_boltzmann"]

_FACTORIAL = (Bernoulli, SpikeAndExponential, OverlappingExponentials, RelaxedBernoulli)


def kl_bernoulli_boltzmann(logits: torch.Tensor, prior: Boltzmann) -> torch.Tensor:
    """``KL(Π Bernoulli(σ(logits)) ‖ prior)``, shape ``broadcast(logits[..., 0], prior.batch_shape)``."""
    q = torch.sigmoid(logits)
    # q log q + (1 - q) log(1 - q) = q·logits + log σ(-logits): three operations, not seven
    neg_entropy = (q * logits + logsigmoid(-logits)).sum(-1)
    return neg_entropy + prior.energy(q) + prior.log_partition_surrogate


@register_kl(Independent, Boltzmann)
def _kl_independent_boltzmann(q: Independent, p: Boltzmann) -> torch.Tensor:
    if q.reinterpreted_batch_ndims != 1 or not isinstance(q.base_dist, _FACTORIAL):
        raise NotImplementedError(
            f"KL to Boltzmann is implemented for Independent(<factorial binary>, 1), got {q}"
        )
    return kl_bernoulli_boltzmann(q.base_dist.logits, p)
