"""Minimum-energy states of Boltzmann machines too large to enumerate: Gibbs annealing to T ≈ 0
followed by a greedy single-flip descent.

Each of ``num_reads`` chains makes ``num_sweeps`` Gibbs sweeps along a geometric ladder of inverse
temperatures ending at ``β_max`` (high enough that the last sweeps are nearly deterministic), then
flips the single unit that lowers the energy most until no flip does. The result is a local
minimum under single flips; the lowest over the reads is returned. For small ``n`` compare with
exact enumeration (:meth:`qbm_pyro.distributions.Boltzmann.mode` does so up to ``exact_max_n``).
"""

from __future__ import annotations

import math

import torch

from ..energy import energy, symmetric_couplings
from .base import make_generator
from .gibbs import gibbs_sweep_

__all__ = ["greedy_descent_", "minimum_energy_state"]


def greedy_descent_(z: torch.Tensor, h: torch.Tensor, Jt: torch.Tensor, max_flips: int | None = None) -> None:
    """Flip, chain by chain, the unit that lowers ``E`` most until no single flip lowers it.

    ``z`` ``(C, n)`` is changed in place; ``Jt`` is the symmetric zero-diagonal coupling matrix.
    Flipping unit ``i`` changes the energy by ``-(1 - 2 z_i) F_i`` with ``F = h + z J̃``.
    """
    field = h + z @ Jt
    rows = torch.arange(z.shape[0], device=z.device)
    for _ in range(max_flips or 4 * z.shape[-1] * z.shape[-1]):
        delta_e = -(1 - 2 * z) * field
        best, unit = delta_e.min(-1)
        improving = best < -1e-12
        if not improving.any():
            return
        rows_i, unit_i = rows[improving], unit[improving]
        step = 1 - 2 * z[rows_i, unit_i]
        z[rows_i, unit_i] += step
        field[rows_i] += step.unsqueeze(-1) * Jt[unit_i]


def minimum_energy_state(
    h: torch.Tensor,
    J: torch.Tensor,
    *,
    num_reads: int = 64,
    num_sweeps: int = 200,
    beta_max: float | None = None,
    seed: int | None = 0,
) -> torch.Tensor:
    """A low-energy state of ``E(z) = -h·z - Σ_{i<j} J_ij z_i z_j`` (annealing + greedy descent).

    Parameters
    ----------
    h, J
        Biases ``(n,)`` and couplings ``(n, n)`` (strict upper triangle used).
    num_reads
        Independent annealing chains; the best is returned.
    num_sweeps
        Gibbs sweeps per chain along the ladder.
    beta_max
        Final inverse temperature; default ``20 / min|nonzero local field scale|``-like: 20 over
        the smallest nonzero ``|h_i|``/``|J_ij|`` (1 if all are zero), so the last sweeps freeze.
    seed
        Seed of the chains.

    Returns
    -------
    Tensor ``(n,)`` with values in ``{0, 1}``: the lowest-energy state found (exact minimum not
    guaranteed above enumeration sizes).
    """
    if h.dim() != 1 or J.shape != (h.shape[0], h.shape[0]):
        raise ValueError(f"need h (n,) and J (n, n), got {tuple(h.shape)} and {tuple(J.shape)}")
    generator = make_generator(seed)
    with torch.no_grad():
        h = h.detach().double().cpu()
        Jt = symmetric_couplings(J.detach().double().cpu())
        n = h.shape[0]
        if beta_max is None:
            scales = torch.cat([h.abs().flatten(), Jt.abs().flatten()])
            scales = scales[scales > 0]
            beta_max = 20.0 / float(scales.min()) if scales.numel() else 1.0
        betas = torch.logspace(math.log10(0.1), math.log10(beta_max), num_sweeps, dtype=torch.float64)
        z = (torch.rand(num_reads, n, generator=generator, dtype=torch.float64) < 0.5).double()
        field = h + z @ Jt
        for beta in betas.tolist():
            gibbs_sweep_(z, field, Jt, beta, None, generator)
        greedy_descent_(z, h, Jt)
        best = energy(z, h, Jt.triu(1)).argmin()
    return z[best]
