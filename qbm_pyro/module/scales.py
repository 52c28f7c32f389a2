"""Scales on the sites of the Pyro model and guide: KL warm-up and weights, likelihood weights.

The same factor must reach a site in :meth:`~qbm_pyro.module.MultiVAE.model`, in its guide and in
the untraced :meth:`~qbm_pyro.module.MultiVAE.loss` (``tests/test_elbo_parity.py``); these are the
two pieces all three use.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from pyro import poutine

__all__ = ["scaled", "site_weight"]


def scaled(weight: float):
    """``poutine.scale(weight)``, or nothing at weight 1 (KL warm-up, likelihood weights)."""
    return contextlib.nullcontext() if weight == 1.0 else poutine.scale(scale=weight)


def site_weight(kl_weight: float | Mapping[str, float], site: str) -> float:
    """The KL weight of latent ``site``: ``kl_weight`` itself, or its entry (default 1) when it
    maps sites to weights (``{"z": w, "c": w·β}``: training's ``continuous_kl_weight``)."""
    return float(kl_weight.get(site, 1.0)) if isinstance(kl_weight, Mapping) else kl_weight
