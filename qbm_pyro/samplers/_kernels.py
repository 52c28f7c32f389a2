"""Compiled (numba) CPU kernel of the sequential Gibbs sweep.

The TorchScript sweep launches a handful of tensor operations per unit, so at ``n = 64`` a
sweep is dominated by per-operation overhead. This kernel runs the same arithmetic as a plain
loop per chain: for each unit ``i``, ``z_i ← [u_i < σ(β F_i)]`` (read as ``β F_i > logit(u_i)``,
the logits taken at once, vectorised) and, only when ``z_i`` changed, ``F ← F + Δz_i J̃_i``.
Its uniforms come from a numpy PCG64 stream seeded, once per sweep, by one
draw of the sampler's ``torch.Generator`` (torch's CPU generator costs more than the sweep
itself at ``n = 64``), so all random state still lives in that generator: seeded runs and
resumed checkpoints repeat exactly. The stream differs from the TorchScript kernel's (GPU), so
the two give different (equally distributed) chains for the same seed.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

__all__ = ["compiled_sweep_applies", "logistic_thresholds", "sequential_sweep_numba"]


@numba.njit(cache=True, nogil=True)
def _sweep(z, field, jt, beta, threshold):  # pragma: no cover - compiled
    """``z``, ``field``, ``threshold``: ``(M, C, n)``; ``jt``: ``(1 or M, n, n)``; ``beta``: ``(1 or M,)``.

    ``threshold = logit(u)``, so ``u < σ(β F)`` reads ``β F > logit(u)`` (no exp per draw)."""
    machines, chains, n = z.shape
    one = z.dtype.type(1.0)
    zero = z.dtype.type(0.0)
    for m in range(machines):
        jm = jt[m if jt.shape[0] > 1 else 0]
        b = z.dtype.type(beta[m if beta.shape[0] > 1 else 0])
        for c in range(chains):
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


def logistic_thresholds(shape, dtype: torch.dtype, generator: torch.Generator) -> np.ndarray:
    """``logit(u)`` of uniforms ``u`` from a PCG64 stream seeded by one draw of ``generator``
    (``u < σ(x)`` exactly when ``x > logit(u)``)."""
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    u = np.random.Generator(np.random.PCG64(seed)).random(tuple(shape), dtype=np_dtype)
    with np.errstate(divide="ignore"):  # u = 0 gives -inf: always below β F, as u < σ(β F)
        return np.log(u / (1 - u))  # one log, not log(u) - log1p(-u): 2-3x faster, same values


def sequential_sweep_numba(
    z: torch.Tensor, field: torch.Tensor, Jt: torch.Tensor, beta: torch.Tensor, threshold: np.ndarray
) -> None:
    """One sequential sweep in place (see :func:`compiled_sweep_applies` for when it applies).

    ``beta``: one value, or one per leading index of ``z`` ``(M, C, n)``; ``Jt``: ``(n, n)`` or
    one ``(n, n)`` per leading index."""
    n = z.shape[-1]
    zn = z.numpy().reshape((-1,) + tuple(z.shape[-2:]))
    fn = field.numpy().reshape(zn.shape)
    un = threshold.reshape(zn.shape)
    jt = Jt.detach().to(z.dtype).contiguous().numpy().reshape(-1, n, n)
    bt = beta.detach().reshape(-1).to(torch.float64).numpy()
    if jt.shape[0] not in (1, zn.shape[0]) or bt.shape[0] not in (1, zn.shape[0]):
        raise ValueError(
            f"sweep: {jt.shape[0]} coupling matrices and {bt.shape[0]} betas for {zn.shape[0]} machines"
        )
    _sweep(zn, fn, jt, bt, un)
