"""Decoded outputs of a fitted ``QBMVAE``: denoised expression per modality and differential
expression sampled from the posterior."""

from __future__ import annotations

__all__ = ["ExpressionMixin"]


class ExpressionMixin:
    """Methods of :class:`~qbm_pyro.QBMVAE` that decode the posterior into feature space."""
