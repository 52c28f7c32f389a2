"""The sequential Gibbs sweep: one kernel contract, two implementations.

For each unit ``i`` in turn, ``z_i ← [u_i < σ(β F_i)]`` and, when ``z_i`` changed,
``F ← F + Δz_i J̃_i`` (the local fields ``F = h + z J̃`` stay current). Both implementations read
the draw as ``β F_i > t_i`` with thresholds ``t = logit(u)`` given to them, so:

- the thresholds come from one stream, :func:`sweep_thresholds`: a numpy PCG64 generator seeded,
  once per sweep, by one draw of the sampler's CPU ``torch.Generator`` (torch's CPU generator
  costs more than the sweep itself at ``n = 64``), so all random state lives in that generator
  and seeded runs and resumed checkpoints repeat exactly;
- :func:`sequential_sweep_numba` (CPU, compiled with numba: one plain loop per chain, the fields
  updated only when a unit flips) and :func:`sequential_sweep_torch` (plain torch operations, any
  device, the thresholds copied to it) do the same arithmetic on the same thresholds, so one seed
  gives the same chains on every device (``tests/test_kernels.py`` checks that they agree
  state for state on CPU, and both against exact enumeration).

:func:`sequential_sweep_` picks the numba kernel where it applies and the torch one elsewhere.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

__all__ = [
    "compiled_sweep_applies",
    "sequential_sweep_",
    "sequential_sweep_numba",
    "sequential_sweep_torch",
    "sweep_stream",
    "sweep_thresholds",
    "sweep_with_",
    "thresholds_from",
]


@numba.njit(cache=True, nogil=True)
def _sweep(z, field, jt, beta, threshold):  # pragma: no cover - compiled
    """``z``, ``field``, ``threshold``: ``(M, C, n)``; ``jt``: ``(1 or M, n, n)``; ``beta``:
    ``(1 or M, 1 or C)``."""
    machines, chains, n = z.shape
    one = z.dtype.type(1.0)
    zero = z.dtype.type(0.0)
    for m in range(machines):
        jm = jt[m if jt.shape[0] > 1 else 0]
        bm = beta[m if beta.shape[0] > 1 else 0]
        for c in range(chains):
            b = z.dtype.type(bm[c if bm.shape[0] > 1 else 0])
            zc = z[m, c]
            fc = field[m, c]
            tc = threshold[m, c]
            for i in range(n):
                new = one if b * fc[i] > tc[i] else zero
                delta = new - zc[i]
                if delta != zero:
                    zc[i] = new
                    row = jm[i]
                    for j in range(n):
                        fc[j] += delta * row[j]


def sweep_stream(generator: torch.Generator) -> np.random.Generator:
    """A numpy PCG64 stream seeded by one draw of ``generator`` (a sampler's CPU generator)."""
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    return np.random.Generator(np.random.PCG64(seed))


def thresholds_from(rng: np.random.Generator, shape, dtype: torch.dtype) -> np.ndarray:
    """The thresholds ``logit(u)`` of one sweep of states of ``shape``, ``u`` drawn from ``rng``
    in ``dtype`` (float32 or float64)."""
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    u = rng.random(tuple(shape), dtype=np_dtype)
    with np.errstate(divide="ignore"):  # u = 0 gives -inf: always below β F, as u < σ(β F)
        return np.log(u / (1 - u))  # one log, not log(u) - log1p(-u): 2-3x faster, same values


def sweep_thresholds(shape, dtype: torch.dtype, generator: torch.Generator) -> np.ndarray:
    """The thresholds ``logit(u)`` of one sweep (``u < σ(x)`` exactly when ``x > logit(u)``).

    ``u`` are uniforms from a PCG64 stream seeded by one draw of ``generator``
    (:func:`sweep_stream`); a numpy array of ``shape`` in ``dtype`` (float32 or float64)."""
    return thresholds_from(sweep_stream(generator), shape, dtype)


def compiled_sweep_applies(z: torch.Tensor, field: torch.Tensor) -> bool:
    """Whether :func:`sequential_sweep_numba` can run on these states: CPU, float32/64,
    contiguous ``z`` and ``field`` of shape ``(C, n)`` or ``(M, C, n)``."""
    return (
        z.device.type == "cpu"
        and z.dtype in (torch.float32, torch.float64)
        and z.dim() in (2, 3)
        and z.is_contiguous()
        and field.is_contiguous()
        and field.dtype == z.dtype
        and not z.requires_grad
    )


def _beta_per_chain(beta, z: torch.Tensor) -> torch.Tensor:
    """``beta`` (a float, or a tensor broadcastable to ``z[..., :1]``) as ``(M or 1, C or 1)``."""
    b = torch.as_tensor(beta, dtype=torch.float64)
    if b.numel() == 1:
        return b.reshape(1, 1)
    lead = z.shape[:-1] if z.dim() == 3 else (1,) + tuple(z.shape[:-1])
    b = b.reshape(b.shape[:-1]) if b.dim() == z.dim() else b  # drop the trailing unit axis
    while b.dim() < 2:
        b = b.unsqueeze(0)
    if b.dim() != 2 or any(s not in (1, t) for s, t in zip(b.shape, lead)):
        raise ValueError(
            f"sweep: beta of shape {tuple(torch.as_tensor(beta).shape)} for states {tuple(z.shape)}"
        )
    return b.contiguous()


def sequential_sweep_numba(
    z: torch.Tensor, field: torch.Tensor, Jt: torch.Tensor, beta, threshold: np.ndarray
) -> None:
    """One sequential sweep in place with the compiled kernel (see :func:`compiled_sweep_applies`).

    ``beta``: a float, one value per leading index of ``z`` ``(M, C, n)`` (shape ``(M, 1, 1)``)
    or one per chain (``(M, C, 1)``, or ``(C, 1)`` for ``z (C, n)``); ``Jt``: ``(n, n)`` or one
    ``(n, n)`` per leading index."""
    n = z.shape[-1]
    zn = z.numpy().reshape((-1,) + tuple(z.shape[-2:]))
    fn = field.numpy().reshape(zn.shape)
    un = np.ascontiguousarray(threshold).reshape(zn.shape)
    jt = Jt.detach().to(z.dtype).contiguous().numpy().reshape(-1, n, n)
    bt = _beta_per_chain(beta, z).numpy()
    if jt.shape[0] not in (1, zn.shape[0]) or bt.shape[0] not in (1, zn.shape[0]):
        raise ValueError(
            f"sweep: {jt.shape[0]} coupling matrices and {bt.shape[0]} betas for {zn.shape[0]} machines"
        )
    _sweep(zn, fn, jt, bt, un)


def sequential_sweep_torch(
    z: torch.Tensor, field: torch.Tensor, Jt: torch.Tensor, beta, threshold: np.ndarray
) -> None:
    """The same sweep as :func:`sequential_sweep_numba` in plain torch operations (any device,
    any shape ``(..., C, n)``; ``beta`` a float or a tensor broadcastable to ``z[..., :1]``)."""
    t = torch.from_numpy(np.ascontiguousarray(threshold)).to(device=z.device, dtype=z.dtype).reshape(z.shape)
    b = torch.as_tensor(beta, dtype=z.dtype, device=z.device)
    b = b.reshape(1) if b.dim() == 0 else b[..., 0]
    rows = Jt.to(z.dtype)
    for i in range(z.shape[-1]):
        new = (b * field[..., i] > t[..., i]).to(z.dtype)
        delta = new - z[..., i]
        z[..., i] = new
        field.add_(delta.unsqueeze(-1) * rows[..., i, :].unsqueeze(-2))


def sweep_with_(z: torch.Tensor, field: torch.Tensor, Jt: torch.Tensor, beta, threshold: np.ndarray) -> None:
    """One sequential sweep in place on given thresholds: the numba kernel where it applies,
    torch elsewhere."""
    if compiled_sweep_applies(z, field):
        sequential_sweep_numba(z, field, Jt, beta, threshold)
    else:
        sequential_sweep_torch(z, field, Jt, beta, threshold)


def sequential_sweep_(
    z: torch.Tensor, field: torch.Tensor, Jt: torch.Tensor, beta, generator: torch.Generator
) -> None:
    """One sequential sweep in place: the numba kernel where it applies, torch elsewhere; both draw
    the same thresholds from ``generator``."""
    sweep_with_(z, field, Jt, beta, sweep_thresholds(z.shape, z.dtype, generator))
