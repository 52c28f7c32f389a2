"""Exact enumeration of small Boltzmann machines: states, probabilities, log Z, exact draws.

Everything here is exact and differentiable, costs ``O(2^n n)`` and is the ground truth the
tests compare the samplers and estimators against (``n`` up to about 20).
"""

from __future__ import annotations

import torch

from ..energy import energy
from .base import Sampler, make_generator

__all__ = [
    "MAX_ENUMERATION_N",
    "ExactSampler",
    "enumerate_states",
    "exact_log_partition",
    "exact_log_probs",
    "exact_moments",
    "state_index",
]

#: Largest n for which enumeration is allowed (2^24 states).
MAX_ENUMERATION_N = 24


def _check_enumerable(n: int) -> None:
    if n > MAX_ENUMERATION_N:
        raise ValueError(
            f"exact enumeration needs 2^n states; n={n} exceeds the limit {MAX_ENUMERATION_N} "
            "(use a sampler and AIS instead)"
        )


def enumerate_states(n: int, *, start: int = 0, stop: int | None = None, dtype=torch.float32):
    """States ``start … stop-1`` of ``{0,1}^n`` in binary order (unit 0 is the most significant bit).

    Returns
    -------
    Tensor of shape ``(stop - start, n)``.
    """
    _check_enumerable(n)
    stop = 2**n if stop is None else stop
    codes = torch.arange(start, stop, dtype=torch.long)
    shifts = torch.arange(n - 1, -1, -1, dtype=torch.long)
    return ((codes.unsqueeze(-1) >> shifts) & 1).to(dtype)


def state_index(z: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`enumerate_states`: the integer code of each state in ``z`` (``(..., n)``)."""
    n = z.shape[-1]
    weights = 2 ** torch.arange(n - 1, -1, -1, dtype=torch.long, device=z.device)
    return (z.round().long() * weights).sum(-1)


def exact_log_partition(
    h: torch.Tensor, J: torch.Tensor, *, beta: float = 1.0, chunk_size: int = 2**16
) -> torch.Tensor:
    """``log Z = logsumexp_z(-β E(z))`` by chunked enumeration; differentiable in ``h`` and ``J``.

    Parameters
    ----------
    h
        Biases ``(..., n)``.
    J
        Couplings ``(..., n, n)`` (strict upper triangle used); batch dims broadcast with ``h``.

    Returns
    -------
    Tensor of shape ``broadcast(h[..., 0], J[..., 0, 0])``.
    """
    n = h.shape[-1]
    _check_enumerable(n)
    batch_dims = max(h.dim() - 1, J.dim() - 2)
    parts = []
    for start in range(0, 2**n, chunk_size):
        z = enumerate_states(n, start=start, stop=min(2**n, start + chunk_size), dtype=h.dtype)
        z = z.to(h.device).reshape((-1,) + (1,) * batch_dims + (n,))
        parts.append(torch.logsumexp(-beta * energy(z, h, J), dim=0))
    return torch.logsumexp(torch.stack(parts), dim=0)


def exact_log_probs(h: torch.Tensor, J: torch.Tensor, *, beta: float = 1.0) -> torch.Tensor:
    """``log p(z)`` of every state in :func:`enumerate_states` order, shape ``(2^n,)``."""
    z = enumerate_states(h.shape[-1], dtype=h.dtype).to(h.device)
    minus_e = -beta * energy(z, h, J)
    return minus_e - torch.logsumexp(minus_e, dim=0)


def exact_moments(h: torch.Tensor, J: torch.Tensor, *, beta: float = 1.0):
    """Exact ``E[z_i]`` (``(n,)``) and ``E[z_i z_j]`` (``(n, n)``) by enumeration."""
    z = enumerate_states(h.shape[-1], dtype=h.dtype).to(h.device)
    p = exact_log_probs(h, J, beta=beta).exp()
    return p @ z, (z * p.unsqueeze(-1)).transpose(0, 1) @ z


class ExactSampler(Sampler):
    """Independent exact draws by enumerating all ``2^n`` states (``n ≤ 24``).

    Examples
    --------
    >>> import torch
    >>> from qbm_pyro.samplers import ExactSampler
    >>> ExactSampler(seed=0).sample(torch.zeros(3), torch.zeros(3, 3), 5).shape
    torch.Size([5, 3])
    """

    def __init__(self, *, seed: int | None = None):
        self.seed = seed
        self.generator = make_generator(seed)

    def _sample(self, h, J, num_samples, beta):
        _check_enumerable(h.shape[0])
        probs = exact_log_probs(h.double().cpu(), J.double().cpu(), beta=beta).exp()
        index = torch.multinomial(probs, num_samples, replacement=True, generator=self.generator)
        return enumerate_states(h.shape[0], dtype=h.dtype)[index]

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
