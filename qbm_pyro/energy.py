"""The Boltzmann-machine energy and the coupling convention shared by the whole package.

Convention
----------
States are binary, ``z ∈ {0, 1}^n``. Couplings are passed as a square ``(n, n)`` matrix ``J`` of
which **only the strict upper triangle is used**:

.. math::
    E(z) = -\\sum_i h_i z_i - \\sum_{i<j} J_{ij} z_i z_j

A symmetric ``J`` with zero diagonal gives the same energy (each pair is counted once), so both
the "upper-triangular" and the "symmetric" habits work. The diagonal is ignored: since
``z_i^2 = z_i``, a self-coupling belongs in ``h``.
"""

from __future__ import annotations

import torch

__all__ = ["energy", "local_fields", "symmetric_couplings", "upper_couplings"]


def upper_couplings(J: torch.Tensor) -> torch.Tensor:
    """The strict upper triangle of ``J`` (``(..., n, n)``), zero elsewhere."""
    return torch.triu(J, diagonal=1)


def symmetric_couplings(J: torch.Tensor) -> torch.Tensor:
    """``J̃ = triu(J, 1) + triu(J, 1)ᵀ``: symmetric, zero diagonal, used for local fields."""
    upper = upper_couplings(J)
    return upper + upper.transpose(-1, -2)


def energy(z: torch.Tensor, h: torch.Tensor, J: torch.Tensor) -> torch.Tensor:
    """Energy ``E(z) = -h·z - Σ_{i<j} J_ij z_i z_j`` for binary or relaxed ``z ∈ [0, 1]^n``.

    Parameters
    ----------
    z
        States of shape ``(..., n)``; values in ``[0, 1]`` are allowed (relaxations). For a
        factorial Bernoulli ``q``, ``energy(q, h, J) == E_q[E(z)]`` exactly, because ``E`` is
        multilinear.
    h
        Biases of shape ``(..., n)``, broadcastable against ``z``.
    J
        Couplings of shape ``(..., n, n)``; only the strict upper triangle is used.

    Returns
    -------
    Tensor of shape ``broadcast(z, h)[:-1]``.
    """
    upper = upper_couplings(J)
    if upper.dim() == 2:
        pair = ((z @ upper) * z).sum(-1)
    else:
        pair = (torch.matmul(z.unsqueeze(-2), upper).squeeze(-2) * z).sum(-1)
    return -(z * h).sum(-1) - pair


def local_fields(z: torch.Tensor, h: torch.Tensor, J: torch.Tensor) -> torch.Tensor:
    """Local fields ``F_i = h_i + Σ_j J̃_ij z_j`` (``p(z_i = 1 | z_rest) = σ(β F_i)``)."""
    return h + torch.matmul(z, symmetric_couplings(J))
