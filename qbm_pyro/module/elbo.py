"""An ELBO with analytic KL terms for every latent site, weighted for KL warm-up.

Like :class:`pyro.infer.TraceMeanField_ELBO`, but it never evaluates ``log_prob`` of the model's
latent sites at the guide's values: a Boltzmann prior scored at a *relaxed* sample ``ζ ∈ [0,1]^n``
has no density there, while its KL to the factorial posterior is exact and analytic
(:mod:`qbm_pyro.distributions.kl`). Observed sites contribute ``log p(x | ·)``; every latent
site contributes ``κ · KL(q ‖ p)``.

.. math::
    \\mathcal{L} = \\mathbb{E}_q[\\log p(x \\mid ζ, z_c)] - κ \\sum_{\\text{latent sites}} KL(q \\| p)
"""

from __future__ import annotations

import torch
from pyro import poutine
from pyro.infer import ELBO
from pyro.infer.util import torch_item
from pyro.poutine.util import prune_subsample_sites
from pyro.util import warn_if_nan
from torch.distributions import kl_divergence

__all__ = ["AnalyticKL_ELBO"]


class AnalyticKL_ELBO(ELBO):  # noqa: N801 (Pyro's estimator naming)
    """ELBO with analytic KLs (required for every latent site) and a KL weight ``kl_weight``.

    After each evaluation, ``terms`` holds the per-site contributions (negative log-likelihood
    per observed site, KL per latent site), summed over the batch and averaged over particles.
    """

    def __init__(self, num_particles: int = 1, kl_weight: float = 1.0):
        super().__init__(num_particles=num_particles)
        self.kl_weight = kl_weight
        self.terms: dict[str, float] = {}

    def _get_trace(self, model, guide, args, kwargs):
        guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
        return prune_subsample_sites(model_trace), prune_subsample_sites(guide_trace)

    def _particle(self, model, guide, args, kwargs):
        model_trace, guide_trace = self._get_trace(model, guide, args, kwargs)
        loss, terms = 0.0, {}
        for name, site in model_trace.nodes.items():
            if site["type"] != "sample":
                continue
            if site["is_observed"]:
                term = -(site["fn"].log_prob(site["value"]) * site["scale"]).sum()
                loss = loss + term
            else:
                q = guide_trace.nodes[name]
                term = (kl_divergence(q["fn"], site["fn"]) * q["scale"]).sum()
                loss = loss + self.kl_weight * term
            terms[name] = torch_item(term)
        return loss, terms

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        loss, totals = 0.0, {}
        for _ in range(self.num_particles):
            particle, terms = self._particle(model, guide, args, kwargs)
            loss = loss + particle / self.num_particles
            for k, v in terms.items():
                totals[k] = totals.get(k, 0.0) + v / self.num_particles
        warn_if_nan(loss, "loss")
        self.terms = totals
        return loss

    def loss(self, model, guide, *args, **kwargs) -> float:
        with torch.no_grad():
            return torch_item(self.differentiable_loss(model, guide, *args, **kwargs))

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return torch_item(loss)
