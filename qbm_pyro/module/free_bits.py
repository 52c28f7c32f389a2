r"""Free bits on the Gaussian units' KL (Kingma et al. 2016, "Improved variational inference with
inverse autoregressive flow", NeurIPS, §C.8).

Per Gaussian unit ``d`` the KL of each cell, averaged over the minibatch, is floored at
``λ`` nats:

.. math::
    \sum_d \max\big(λ,\ \overline{KL_d}\big), \qquad
    \overline{KL_d} = \frac{1}{B} \sum_{b} KL\big(q(c_{bd}) \,\|\, p(c_{bd} \mid ζ_b)\big),

returned per cell (``KL_bd`` for a unit at or above the floor, ``λ`` otherwise) so that the
minibatch's sum is ``B`` times the sum above. A unit whose mean KL is below ``λ`` pays a constant
and gets no gradient from the KL: the first ``λ`` nats a unit carries are free. Under a KL
weighed ``β > 1`` (training's ``continuous_kl_weight``) the Gaussian units otherwise collapse
where the binary code can carry the cells alone (paul15: 0.03 bits over 16 units), and the
latent is the code's clumps; with a floor each unit keeps some of the cells' continuous
variation. A training objective, not the ELBO: held-out likelihoods (``get_marginal_ll``) and
the Pyro model and guide are unchanged.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Distribution, kl_divergence

__all__ = ["free_bits_kl"]


def free_bits_kl(posterior: Distribution, prior: Distribution, floor: float) -> torch.Tensor:
    """The free-bits KL of factorised Gaussian units, per cell.

    Parameters
    ----------
    posterior, prior
        Per-unit distributions with batch shape ``(B, d)`` (the Gaussian units' ``Normal``s,
        without ``to_event``), for which ``kl_divergence`` is registered.
    floor
        ``λ``, nats per unit, ``>= 0`` (0: the plain KL summed over units).

    Returns
    -------
    ``(B,)``: each cell's KL summed over the units, a unit whose minibatch-mean KL is below
    ``floor`` counted as ``floor`` (no gradient).
    """
    if not (math.isfinite(floor) and floor >= 0):
        raise ValueError(f"the free-bits floor must be a finite number of nats >= 0, got {floor!r}")
    per_unit = kl_divergence(posterior, prior)  # (B, d)
    if per_unit.dim() != 2:
        raise ValueError(
            f"free_bits_kl needs per-unit KLs of shape (cells, units), got {tuple(per_unit.shape)}"
        )
    keep = per_unit.mean(0) >= floor
    return torch.where(keep, per_unit, torch.full_like(per_unit, floor)).sum(-1)
