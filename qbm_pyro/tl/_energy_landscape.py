"""The energy landscape as the landscape tools see it: an energy over binary codes and its
single-flip neighbourhood.

Everything in :func:`~qbm_pyro.tl.attractors`, the barriers and the energy-based root reads the
learned prior through :class:`EnergyLandscape` only, so that it works with whatever energy the
model exposes: a quadratic Boltzmann machine ``E(z) = -h·z - Σ_{i<j} J_ij z_i z_j`` (fast path:
the energies of all ``n`` single-flip neighbours come from the local fields in ``O(n)`` per
state), or any other energy of the code, e.g. a free energy with hidden units summed out (generic
path: the ``n`` neighbours are evaluated one by one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

__all__ = ["EnergyLandscape"]

#: An energy change smaller than this counts as no change (float ties in descent).
ENERGY_TOL = 1e-9


class EnergyLandscape:
    """An energy over binary codes ``z ∈ {0,1}^n`` and its single-flip neighbourhood.

    Parameters
    ----------
    energy_fn
        ``(B, n)`` float64 array of codes → ``(B,)`` energies (lower = more probable).
    n
        Number of binary units.
    h, J
        Set for a quadratic machine (``E = -h·z - Σ_{i<j} J_ij z_i z_j``): enables the fast flips.
    sample_fn
        ``(num_samples, seed) → (num_samples, n)`` codes drawn from ``p(z) ∝ exp(-E(z))`` (the
        model's sampler); ``None``: a Gibbs sampler on ``h, J`` when they are set.

    Examples
    --------
    >>> import numpy as np
    >>> from qbm_pyro.tl._energy_landscape import EnergyLandscape
    >>> land = EnergyLandscape.from_boltzmann(np.array([1.0, -1.0]), np.zeros((2, 2)))
    >>> land.energy(np.array([[1.0, 0.0]]))
    array([-1.])
    >>> land.descend(np.array([[0.0, 1.0]]))
    array([[1., 0.]])
    """

    def __init__(
        self,
        energy_fn: Callable[[np.ndarray], np.ndarray],
        n: int,
        *,
        h: np.ndarray | None = None,
        J: np.ndarray | None = None,
        sample_fn: Callable[[int, int], np.ndarray] | None = None,
    ):
        self._energy_fn = energy_fn
        self.n = int(n)
        self.h = None if h is None else np.asarray(h, dtype=np.float64)
        self._J_sym = None
        if J is not None:
            upper = np.triu(np.asarray(J, dtype=np.float64), 1)
            self._J_sym = upper + upper.T
        self._sample_fn = sample_fn

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_boltzmann(cls, h, J, *, sample_fn=None) -> EnergyLandscape:
        """The quadratic machine ``E(z) = -h·z - Σ_{i<j} J_ij z_i z_j`` (strict upper triangle of ``J``)."""
        h = np.asarray(h, dtype=np.float64)
        upper = np.triu(np.asarray(J, dtype=np.float64), 1)
        if h.ndim != 1 or upper.shape != (h.size, h.size):
            raise ValueError(f"need h (n,) and J (n, n), got {h.shape} and {upper.shape}")

        def energy(z: np.ndarray) -> np.ndarray:
            return -(z @ h) - ((z @ upper) * z).sum(-1)

        return cls(energy, h.size, h=h, J=upper, sample_fn=sample_fn)

    @classmethod
    def from_model(cls, model) -> EnergyLandscape:
        """The prior of a fitted :class:`~qbm_pyro.QBMVAE` (``model.module.prior.energy``), sampled
        with :meth:`~qbm_pyro.QBMVAE.sample_prior` (the model's own sampler).

        The fast quadratic path is used when the prior exposes ``h`` and ``couplings()`` and its
        energy equals the quadratic form on random codes (so a prior with hidden units, whose
        code energy is a free energy, falls back to the generic path)."""
        module = getattr(model, "module", None)
        if module is None or not getattr(module, "n_binary", 0):
            raise ValueError("the landscape needs a model with a binary code (not prior='gaussian')")
        prior = module.prior
        n = int(module.n_binary)
        device = getattr(model, "device", "cpu")

        @torch.no_grad()
        def energy(z: np.ndarray) -> np.ndarray:
            t = torch.as_tensor(np.asarray(z), dtype=torch.float32, device=device)
            return prior.energy(t).double().cpu().numpy()

        def sample(num_samples: int, seed: int) -> np.ndarray:
            return np.asarray(model.sample_prior(int(num_samples), seed=int(seed)), dtype=np.float64)

        h, J = _quadratic_parameters(prior, n)
        if h is not None:
            probe = (np.random.default_rng(0).random((8, n)) < 0.5).astype(np.float64)
            quad = cls.from_boltzmann(h, J)
            if np.allclose(energy(probe), quad.energy(probe), rtol=1e-4, atol=1e-4):
                return cls.from_boltzmann(h, J, sample_fn=sample)
        return cls(energy, n, sample_fn=sample)

    @classmethod
    def from_data(cls, data, model=None, key: str = "qbm") -> EnergyLandscape:
        """From ``model`` when given, else from the ``h, J`` that :func:`~qbm_pyro.tl.qbm` stored
        in ``data.uns[key]['prior']``."""
        if model is not None:
            return cls.from_model(model)
        entry = data.uns.get(key)
        stored = entry.get("prior") if isinstance(entry, dict) else None
        if stored is None:
            raise KeyError(
                f"no prior parameters in uns[{key!r}]['prior']: run qbm_pyro.tl.qbm (with a binary "
                "code) first, or pass model="
            )
        if "W" in stored:  # hidden units: the code's energy is a free energy, not the quadratic form
            raise NotImplementedError(
                "this prior has hidden units (prior='hidden'): its code's energy is the free energy, "
                "which the stored h and J alone do not give; pass model= (the landscape then uses "
                "the prior's own energy)"
            )
        return cls.from_boltzmann(stored["h"], stored["J"])

    # ------------------------------------------------------------------ queries

    @property
    def is_quadratic(self) -> bool:
        return self._J_sym is not None

    @property
    def J_sym(self) -> np.ndarray | None:  # noqa: N802 (the maths name, as h and J)
        """The symmetric coupling matrix ``J + Jᵀ`` (zero diagonal) of a quadratic landscape, so
        that the field on unit ``i`` is ``h_i + (z @ J_sym)_i``; ``None`` for a generic energy."""
        return self._J_sym

    def energy(self, z: np.ndarray) -> np.ndarray:
        """Energies ``(B,)`` of codes ``(B, n)``."""
        z = np.asarray(z, dtype=np.float64)
        if z.ndim != 2 or z.shape[1] != self.n:
            raise ValueError(f"codes must have shape (B, {self.n}), got {z.shape}")
        return np.asarray(self._energy_fn(z), dtype=np.float64).reshape(-1)

    def flip_deltas(self, z: np.ndarray) -> np.ndarray:
        """Energy change ``(B, n)`` of flipping each unit of each code."""
        z = np.asarray(z, dtype=np.float64)
        if self._J_sym is not None:
            field = self.h + z @ self._J_sym
            return -(1.0 - 2.0 * z) * field
        B = z.shape[0]
        base = self.energy(z)
        flipped = np.repeat(z[:, None, :], self.n, axis=1)
        idx = np.arange(self.n)
        flipped[:, idx, idx] = 1.0 - flipped[:, idx, idx]
        return self.energy(flipped.reshape(B * self.n, self.n)).reshape(B, self.n) - base[:, None]

    def descend(self, z: np.ndarray, *, max_steps: int | None = None) -> np.ndarray:
        """Steepest single-flip descent of each code to a local minimum (no flip lowers it)."""
        z = np.array(z, dtype=np.float64, copy=True)
        max_steps = 10 * self.n if max_steps is None else int(max_steps)
        active = np.arange(z.shape[0])
        for _ in range(max_steps):
            if active.size == 0:
                break
            delta = self.flip_deltas(z[active])
            best = delta.argmin(axis=1)
            move = delta[np.arange(active.size), best] < -ENERGY_TOL
            active, best = active[move], best[move]
            z[active, best] = 1.0 - z[active, best]
        return z

    def is_minimum(self, z: np.ndarray) -> np.ndarray:
        """Whether no single flip lowers each code's energy."""
        return (self.flip_deltas(z) >= -ENERGY_TOL).all(axis=1)

    def sample(self, num_samples: int, seed: int = 0) -> np.ndarray:
        """Codes drawn from ``p(z) ∝ exp(-E(z))``: the model's sampler, else Gibbs on ``h, J``."""
        if self._sample_fn is not None:
            return np.asarray(self._sample_fn(int(num_samples), int(seed)), dtype=np.float64)
        if self._J_sym is None:
            raise ValueError("this landscape has no sampler: build it from a model")
        from qbm_pyro.samplers import GibbsSampler

        h = torch.as_tensor(self.h)
        J = torch.as_tensor(np.triu(self._J_sym, 1))
        sampler = GibbsSampler(num_sweeps=1, burn_in=200, seed=int(seed))
        return sampler.sample(h, J, int(num_samples)).double().numpy()


def _quadratic_parameters(prior: Any, n: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(h, J)`` of a quadratic prior over the ``n``-unit code, or ``(None, None)``."""
    h = getattr(prior, "h", None)
    couplings = getattr(prior, "couplings", None)
    if h is None or couplings is None or not callable(couplings):
        return None, None
    with torch.no_grad():
        h = h.detach().double().cpu().numpy()
        J = couplings().detach().double().cpu().numpy()
    if h.shape != (n,) or J.shape != (n, n):
        return None, None
    return h, J
