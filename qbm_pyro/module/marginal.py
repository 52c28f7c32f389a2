r"""The importance-sampled marginal likelihood ``log p(x)`` of :class:`~qbm_pyro.module.MultiVAE`.

The IWAE estimator over the model's own pieces: the posterior of ``MultiVAE.encode``, the
code's prior ``MultiVAE.code_log_prob``, ``MultiVAE.continuous_prior`` and
``MultiVAE.log_likelihood``.
"""

from __future__ import annotations

import math

import torch

from .. import distributions as dist
from .._constants import REGISTRY_KEYS as K
from .vae import MultiVAE

__all__ = ["log_importance_weights", "log_marginal"]


def log_importance_weights(
    vae: MultiVAE, batch: dict[str, torch.Tensor], n_samples: int, *, max_rows: int = 8192
) -> torch.Tensor:
    """Log importance weights ``(n_samples, B)`` of ``log p(x) = log E_q[w]``.

    With ``z ~ q(z | x)`` (hard codes), ``ζ ~ r(ζ | z)`` and ``c ~ q(c | x)``,
    ``log w = log p(x | ζ, c) + log p_θ(z) + log N(c; Wζ + b, I) - log q(z | x) - log q(c | x)``;
    the smoothing kernel ``r`` appears in both model and proposal and cancels. Samples are
    drawn for up to ``max_rows`` (cell, sample) pairs at a time.
    """
    posterior = vae.encode(batch)
    B = batch[K.BATCH_KEY].shape[0]
    per_pass = max(1, max_rows // max(B, 1))
    rows = []
    for start in range(0, n_samples, per_pass):
        k = min(per_pass, n_samples - start)
        tiled = {key: value.repeat(k, *([1] * (value.dim() - 1))) for key, value in batch.items()}
        post = {key: value.repeat(k, 1) for key, value in posterior.items()}
        log_w = 0.0
        parts = []
        if vae.n_binary:
            code = dist.Bernoulli(logits=post["logits"]).to_event(1)
            z = code.sample()
            zeta = dist.smooth_code(z, vae.relaxation, vae.smoothing)
            log_w = log_w + vae.code_log_prob(z) - code.log_prob(z)
            parts.append(zeta)
        if vae.n_continuous:
            q_c = dist.Normal(post["loc"], post["scale"]).to_event(1)
            c = q_c.sample()
            prior_c = vae.continuous_prior(zeta if vae.n_binary else None, c.shape[0])
            log_w = log_w + prior_c.log_prob(c) - q_c.log_prob(c)
            parts.append(c)
        log_w = log_w + vae.log_likelihood(torch.cat(parts, -1), tiled)
        rows.append(log_w.reshape(k, B))
    return torch.cat(rows)


def log_marginal(vae: MultiVAE, batch: dict[str, torch.Tensor], n_samples: int) -> torch.Tensor:
    """Importance-sampled ``log p(x)`` per cell ``(B,)`` (an IWAE bound, see
    :func:`log_importance_weights`)."""
    log_w = log_importance_weights(vae, batch, n_samples)
    return torch.logsumexp(log_w, 0) - math.log(n_samples)
