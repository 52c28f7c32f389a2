"""The one interface every sampler backend implements.

A sampler draws binary states ``z ∈ {0, 1}^n`` from the Boltzmann distribution

.. math::
    p_β(z) = \\exp(-β E(z)) / Z_β, \\qquad E(z) = -h^\\top z - \\sum_{i<j} J_{ij} z_i z_j

(see :mod:`qbm_pyro.energy` for the coupling convention). Samplers with persistent state (PCD
chains, annealer initial states) keep it between calls; ``reset()`` forgets it and
``state_dict()`` / ``load_state_dict()`` save and restore it (with the random generator state,
so that a restored run continues bit-identically).
"""

from __future__ import annotations

import abc
import copy
from numbers import Integral

import torch

__all__ = ["Sampler", "check_sampler_inputs", "make_generator"]


def make_generator(seed: int | None) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed`` (a fresh random seed if ``None``)."""
    if seed is not None and (not isinstance(seed, Integral) or isinstance(seed, bool)):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__} {seed!r}")
    if seed is not None and not 0 <= int(seed) < 2**63:
        raise ValueError(f"seed must be in [0, 2**63), got {seed}")
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(int(seed))
    return generator


def check_sampler_inputs(h: torch.Tensor, J: torch.Tensor, num_samples: int, beta: float) -> int:
    """Validate the arguments of :meth:`~qbm_pyro.samplers.Sampler.sample`; returns ``n``."""
    if h.dim() != 1:
        raise ValueError(f"h must have shape (n,), got {tuple(h.shape)}")
    n = h.shape[0]
    if J.shape != (n, n):
        raise ValueError(f"J must have shape ({n}, {n}) to match h, got {tuple(J.shape)}")
    if not isinstance(num_samples, Integral) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    if not float(beta) > 0:
        raise ValueError(f"beta must be positive, got {beta!r}")
    if not (torch.isfinite(h).all() and torch.isfinite(J).all()):
        raise ValueError("h and J must be finite (found NaN or inf)")
    return n


class Sampler(abc.ABC):
    """Base class of the samplers: ``sample(h, J, num_samples, beta=1.0) -> (num_samples, n)``.

    Subclasses implement ``_sample``; :meth:`sample` validates and detaches the inputs and
    returns a tensor of zeros and ones with ``h``'s dtype and device.
    """

    #: True when the sampler returns exact Boltzmann samples only in a limit (chains, anneals).
    approximate: bool = True

    def sample(
        self, h: torch.Tensor, J: torch.Tensor, num_samples: int, *, beta: float = 1.0
    ) -> torch.Tensor:
        """Draw ``num_samples`` states from ``p_β(z) ∝ exp(-β E(z))``.

        Parameters
        ----------
        h
            Biases, shape ``(n,)``.
        J
            Couplings, shape ``(n, n)``; strict upper triangle used.
        num_samples
            Number of states to return.
        beta
            Inverse temperature the samples are drawn at.

        Returns
        -------
        Tensor of shape ``(num_samples, n)`` with values in ``{0, 1}``, detached.
        """
        check_sampler_inputs(h, J, num_samples, beta)
        with torch.no_grad():
            out = self._sample(h.detach(), J.detach(), int(num_samples), float(beta))
        if out.shape != (num_samples, h.shape[0]):
            raise RuntimeError(
                f"{type(self).__name__} returned shape {tuple(out.shape)}, "
                f"expected ({num_samples}, {h.shape[0]})"
            )
        return out.to(dtype=h.dtype, device=h.device)

    def sample_batched(
        self, h: torch.Tensor, J: torch.Tensor, num_samples: int, *, beta: float = 1.0
    ) -> torch.Tensor:
        """Draw ``num_samples`` states from each of ``B`` different machines ``h (B, n)``,
        ``J (B, n, n)``; returns ``(B, num_samples, n)``.

        Each machine gets its own copy of this sampler (made on first use, with its own random
        stream), so persistent state (chains, initial states) never passes from one machine to
        another. Samplers that can do better (one vectorised sweep for all machines, as
        :class:`~qbm_pyro.samplers.GibbsSampler`) override this.
        """
        if h.dim() != 2 or J.shape != h.shape + h.shape[-1:]:
            raise ValueError(f"need h (B, n) and J (B, n, n), got {tuple(h.shape)} and {tuple(J.shape)}")
        copies = getattr(self, "_machine_copies", None)
        if copies is None or len(copies) != h.shape[0]:
            copies = []
            for b in range(h.shape[0]):
                twin = copy.copy(self)
                twin.__dict__ = copy.deepcopy(
                    {k: v for k, v in self.__dict__.items() if k != "_machine_copies"}
                )
                generator = getattr(twin, "generator", None)
                if isinstance(generator, torch.Generator):
                    generator.manual_seed(int(torch.randint(2**62, (), generator=generator)) + b)
                twin.reset()
                copies.append(twin)
            self._machine_copies = copies
        return torch.stack([c.sample(h[b], J[b], num_samples, beta=beta) for b, c in enumerate(copies)])

    @abc.abstractmethod
    def _sample(self, h: torch.Tensor, J: torch.Tensor, num_samples: int, beta: float) -> torch.Tensor:
        """Backend hook: inputs already validated and detached."""

    def reset(self) -> None:
        """Forget persistent state (chains, initial states). No-op by default."""

    def state_dict(self) -> dict:
        """Persistent state to checkpoint (empty by default)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""
        if state:
            raise ValueError(f"{type(self).__name__} has no state to load, got keys {sorted(state)}")

    def close(self) -> None:
        """Release resources (network clients, hardware). No-op by default."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
