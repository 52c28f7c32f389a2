"""Parallel tempering (replica exchange) with persistent replicas.

``R`` replicas run Gibbs sweeps at inverse temperatures ``β_min·β = β_0 < … < β_{R-1} = β``
(geometric ladder). After every sweep, neighbouring replicas ``k, k+1`` (even pairs, then odd
pairs, alternately) swap states with probability

.. math::
    \\min\\left(1, \\exp\\big((β_k - β_{k+1})(E_k - E_{k+1})\\big)\\right),

which keeps the product of the replicas' Boltzmann distributions invariant. The hot replicas cross
energy barriers that trap a single Gibbs chain; the samples returned are those of the replica at
the target β.

**References:** [1] Swendsen, Wang (1986) "Replica Monte Carlo simulation of spin glasses",
Phys. Rev. Lett. 57, 2607. [2] Earl, Deem (2005) "Parallel tempering: theory, applications,
and new perspectives", Phys. Chem. Chem. Phys. 7, 3910.
"""

from __future__ import annotations

import torch

from ..energy import symmetric_couplings
from .base import Sampler, make_generator
from .gibbs import gibbs_sweep_

__all__ = ["ParallelTemperingSampler"]


class ParallelTemperingSampler(Sampler):
    """Replica-exchange Gibbs sampler; returns the replica at the target β.

    Parameters
    ----------
    n_replicas
        Number of temperatures in the ladder (``≥ 2``).
    beta_min
        Lowest inverse temperature, as a fraction of the target β.
    num_sweeps
        Sweeps (each followed by a round of swaps) per call for existing replicas.
    burn_in
        Sweeps for new replicas.
    seed
        Seed of the sampler's random generator.

    Attributes
    ----------
    swap_acceptance
        Mean swap acceptance per neighbouring pair over the last call, shape ``(R-1,)``: accepted
        swaps over attempted swaps of that pair (pairs alternate, so each is tried about every
        other sweep).
    """

    def __init__(
        self,
        n_replicas: int = 8,
        beta_min: float = 0.1,
        num_sweeps: int = 10,
        burn_in: int = 100,
        *,
        seed: int | None = None,
    ):
        if n_replicas < 2:
            raise ValueError(f"n_replicas must be >= 2, got {n_replicas}")
        if not 0 < beta_min < 1:
            raise ValueError(f"beta_min must be in (0, 1), got {beta_min}")
        if num_sweeps < 1 or burn_in < 0:
            raise ValueError(f"need num_sweeps >= 1 and burn_in >= 0, got {num_sweeps}, {burn_in}")
        self.n_replicas = int(n_replicas)
        self.beta_min = float(beta_min)
        self.num_sweeps = int(num_sweeps)
        self.burn_in = int(burn_in)
        self.seed = seed
        self.generator = make_generator(seed)
        self.replicas: torch.Tensor | None = None
        self.swap_acceptance: torch.Tensor | None = None
        self._parity = 0

    def ladder(self, beta: float) -> torch.Tensor:
        """The inverse temperatures ``(R,)``, geometric from ``beta_min·β`` to ``β``."""
        return beta * torch.logspace(
            torch.log10(torch.tensor(self.beta_min)), 0.0, self.n_replicas, dtype=torch.float64
        )

    def _swap_(self, z, field, energies, betas, accepted, attempted):
        first = self._parity
        self._parity ^= 1
        lo = torch.arange(first, self.n_replicas - 1, 2)
        if lo.numel() == 0:
            return
        hi = lo + 1
        log_ratio = (betas[lo] - betas[hi]).unsqueeze(-1) * (energies[lo] - energies[hi])
        u = torch.rand(log_ratio.shape, generator=self.generator, dtype=log_ratio.dtype).to(log_ratio.device)
        accept = u.log() < log_ratio  # (pairs, C)
        accepted[lo] += accept.to(accepted.dtype).mean(-1)
        attempted[lo] += 1
        for tensor in (z, field, energies):
            mask = accept.view(accept.shape + (1,) * (tensor.dim() - 2))
            a, b = tensor[lo], tensor[hi]
            tensor[lo] = torch.where(mask, b, a)
            tensor[hi] = torch.where(mask, a, b)

    def _sample(self, h, J, num_samples, beta):
        n = h.shape[0]
        R = self.n_replicas
        z = self.replicas
        new = z is None or z.shape[1:] != (num_samples, n)
        if new:
            z = (torch.rand(R, num_samples, n, generator=self.generator) < 0.5).to(h.dtype)
        z = z.to(h.dtype).to(h.device)
        Jt = symmetric_couplings(J)
        betas = self.ladder(beta).to(h.dtype).to(h.device)
        field = h + z @ Jt
        accepted = torch.zeros(R - 1, dtype=torch.float64, device=h.device)
        attempted = torch.zeros(R - 1, dtype=torch.float64, device=h.device)
        sweeps = self.num_sweeps + (self.burn_in if new else 0)
        for _ in range(sweeps):
            gibbs_sweep_(z, field, Jt, betas.view(R, 1, 1), None, self.generator)
            energies = -0.5 * ((z * (h + field)).sum(-1))
            self._swap_(z, field, energies, betas, accepted, attempted)
        self.replicas = z.clone()
        # each pair is tried only in the rounds of its parity, which alternates across calls
        self.swap_acceptance = (accepted / attempted.clamp_min(1)).cpu()
        return z[-1].clone()

    def reset(self) -> None:
        self.replicas = None
        self.swap_acceptance = None

    def state_dict(self) -> dict:
        return {
            "replicas": self.replicas,
            "generator": self.generator.get_state(),
            "parity": self._parity,
        }

    def load_state_dict(self, state: dict) -> None:
        self.replicas = state["replicas"]
        self.generator.set_state(state["generator"])
        self._parity = int(state["parity"])
