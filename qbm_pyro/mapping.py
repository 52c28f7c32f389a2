"""Reference mapping (scArches-style): prepare query data and fit query-specific parameters of a
reference ``QBMVAE``."""

from __future__ import annotations

__all__ = ["ReferenceMappingMixin"]


class ReferenceMappingMixin:
    """Methods of :class:`~qbm_pyro.QBMVAE` that map query cells onto a fitted reference."""
