"""Generation from the learned model and held-out likelihood: ``QBMVAE`` methods that sample the
prior (with the model's sampler, annealer included), generate cells, draw posterior-predictive
counts and estimate ``log p(x)`` by importance sampling."""

from __future__ import annotations

__all__ = ["GenerationMixin"]


class GenerationMixin:
    """Methods of :class:`~qbm_pyro.QBMVAE` that sample from the generative model."""
