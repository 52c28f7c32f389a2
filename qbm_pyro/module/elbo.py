"""An ELBO with analytic KL terms for every latent site, on Pyro's ``TraceMeanField_ELBO``.

:class:`pyro.infer.TraceMeanField_ELBO` already uses the analytic ``KL(q ‖ p)`` of a latent site
when one is registered, scaled and masked as the guide's site (``scale_and_mask``), with Pyro's
particle loop (sequential or vectorised). Its trace, though, also scores every latent site of the
model at the guide's value and every guide site for a score-function fallback. Both are wasted
work here, and the first is wrong: a Boltzmann prior scored at a *relaxed* sample
``ζ ∈ [0,1]^n`` has no density there. :class:`AnalyticKL_ELBO` keeps Pyro's estimator and replaces
only the trace and the particle's loss: observed sites are scored, latent sites are left to their
analytic KL (:mod:`qbm_pyro.distributions.kl`) scaled and masked by Pyro's ``scale_and_mask``,
which every latent site must have. The particle loop (``num_particles``, vectorised or not),
``loss``, ``differentiable_loss`` and ``loss_and_grads`` are Pyro's.

.. math::
    \\mathcal{L} = \\mathbb{E}_q[\\log p(x \\mid ζ, z_c)] - \\sum_{\\text{latent sites}} s \\cdot KL(q \\| p)

with ``s`` the site's scale: KL warm-up is ``poutine.scale`` around the latent sites in the model
and guide (as :class:`~qbm_pyro.module.MultiVAE` does with its ``kl_weight`` argument), not
state of the estimator.
"""

from __future__ import annotations

from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.infer import TraceMeanField_ELBO
from pyro.infer.trace_mean_field_elbo import _check_mean_field_requirement
from pyro.infer.util import is_validation_enabled, torch_item
from pyro.poutine.util import prune_subsample_sites
from pyro.util import check_model_guide_match, check_site_shape
from torch.distributions import kl_divergence
from torch.distributions.kl import _dispatch_kl

__all__ = ["AnalyticKL_ELBO"]


class AnalyticKL_ELBO(TraceMeanField_ELBO):  # noqa: N801 (Pyro's estimator naming)
    """:class:`~pyro.infer.TraceMeanField_ELBO` that scores only observed sites; every latent
    site contributes its analytic ``KL(q ‖ p)`` (required: a latent site without one is an error).

    Parameters
    ----------
    num_particles, vectorize_particles, max_plate_nesting
        As for :class:`pyro.infer.TraceMeanField_ELBO`.
    """

    def _get_trace(self, model, guide, args, kwargs):
        guide_trace = poutine.trace(guide, graph_type="flat").get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace), graph_type="flat").get_trace(
            *args, **kwargs
        )
        validate = is_validation_enabled()
        if validate:
            check_model_guide_match(model_trace, guide_trace, self.max_plate_nesting)
        guide_trace = prune_subsample_sites(guide_trace)
        model_trace = prune_subsample_sites(model_trace)
        for name, site in model_trace.nodes.items():
            if site["type"] == "sample" and not site["is_observed"]:
                q = guide_trace.nodes[name]["fn"]
                if _dispatch_kl(type(q), type(site["fn"])) is NotImplemented:
                    raise ValueError(
                        f"AnalyticKL_ELBO needs an analytic KL for every latent site; site {name!r} "
                        f"has none from {type(q).__name__} to {type(site['fn']).__name__} "
                        "(use pyro.infer.TraceMeanField_ELBO to fall back on sampling)"
                    )
        model_trace.compute_log_prob(site_filter=lambda name, site: site["is_observed"])
        if validate:
            for site in model_trace.nodes.values():
                if site["type"] == "sample" and site["is_observed"]:
                    check_site_shape(site, self.max_plate_nesting)
            _check_mean_field_requirement(model_trace, guide_trace)
        return model_trace, guide_trace

    def _differentiable_loss_particle(self, model_trace, guide_trace):
        """``(loss, surrogate_loss)`` of one particle: ``-Σ log p(x) + Σ scale·KL(q ‖ p)``."""
        elbo = 0.0
        for name, site in model_trace.nodes.items():
            if site["type"] != "sample":
                continue
            if site["is_observed"]:
                elbo = elbo + site["log_prob_sum"]
                continue
            q = guide_trace.nodes[name]
            if is_validation_enabled() and not q["fn"].has_rsample:
                raise ValueError(f"AnalyticKL_ELBO needs a reparameterised guide; site {name!r} is not")
            kl = scale_and_mask(kl_divergence(q["fn"], site["fn"]), scale=q["scale"], mask=q["mask"])
            elbo = elbo - kl.sum()
        return -torch_item(elbo), -elbo
