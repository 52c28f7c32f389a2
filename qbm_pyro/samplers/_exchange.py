"""The replica-exchange step of parallel tempering: one contract, two implementations.

After each sweep, :class:`~qbm_pyro.samplers.ParallelTemperingSampler` tries to swap neighbouring
replicas twice: the pairs ``(k, k+1)`` with ``k`` even, then those with ``k`` odd. The replicas
below the target β hold ``H`` chains each (``hot``, ``(R-1, H, n)``), the target ``C ≥ H``
(``cold``, ``(C, n)``). Chain ``c`` of replica ``k`` swaps with chain ``c`` of replica ``k+1``
with probability ``min(1, exp((β_k - β_{k+1})(E_k - E_{k+1})))``; the last hot replica pairs
its chain ``c`` with the target chain ``pick[c]`` (``H`` distinct target chains at random, which
is a permutation of the chains at one β followed by the usual pairwise swap). A swap moves a
chain's state, its local fields, its energy and its direction label (for round trips) together.
After each of the two rounds, the chains of the hottest replica are labelled "from the hot end"
(``+1``), and every target chain so labelled counts as a round trip and is relabelled ``-1``.

The randomness of one step is drawn by :func:`exchange_draws` from the numpy PCG64 stream of
the sweep before it (:func:`~qbm_pyro.samplers._kernels.sweep_stream`, seeded by one draw of the
sampler's CPU ``torch.Generator``), so all random state lives in that generator.
:func:`exchange_numba` (CPU, compiled: the Python-level indexing of the torch version cost more
than the sweep itself) and :func:`exchange_torch` (any device)
take the same draws and make the same decisions in float64, so one seed gives the same chains
(``tests/test_kernels.py`` checks them state for state). :func:`exchange_` picks one.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

__all__ = ["exchange_", "exchange_applies", "exchange_draws", "exchange_numba", "exchange_torch"]

#: The tensors of a tempering state that the exchange step reads and swaps, in the kernel's order.
_ARRAYS = ("hot", "hot_field", "hot_dir", "e_hot", "cold", "cold_field", "cold_dir", "e_cold")


def exchange_draws(n_replicas: int, hot_chains: int, chains: int, rng: np.random.Generator):
    """The random numbers of one exchange step, from ``rng``: ``log u`` of shape ``(2, R-1, H)``
    (round, pair, chain; float64) and ``pick``, ``H`` distinct target chains (int64)."""
    with np.errstate(divide="ignore"):  # u = 0 gives -inf: always accepted, as u < min(1, r)
        log_u = np.log(rng.random((2, n_replicas - 1, hot_chains)))
    pick = rng.permutation(chains)[:hot_chains].astype(np.int64)
    return log_u, pick


@numba.njit(cache=True, nogil=True)
def _swap_rows(a, i, b, j):  # pragma: no cover - compiled
    for k in range(a.shape[-1]):
        t = a[i, k]
        a[i, k] = b[j, k]
        b[j, k] = t


@numba.njit(cache=True, nogil=True)
def _exchange(
    hot,
    hot_field,
    hot_dir,
    e_hot,
    cold,
    cold_field,
    cold_dir,
    e_cold,
    betas,
    log_u,
    pick,
    accepted,
    attempted,
):  # pragma: no cover - compiled
    """In place; returns the round trips. ``accepted``/``attempted`` ``(R-1,)`` float64 totals."""
    R1, H = hot.shape[0], hot.shape[1]
    R = R1 + 1
    trips = 0
    for first in range(2):
        for lo in range(first, R - 2, 2):
            hi = lo + 1
            db = betas[lo] - betas[hi]
            count = 0
            for c in range(H):
                if log_u[first, lo, c] < db * (np.float64(e_hot[lo, c]) - np.float64(e_hot[hi, c])):
                    _swap_rows(hot[lo], c, hot[hi], c)
                    _swap_rows(hot_field[lo], c, hot_field[hi], c)
                    t = hot_dir[lo, c]
                    hot_dir[lo, c] = hot_dir[hi, c]
                    hot_dir[hi, c] = t
                    e = e_hot[lo, c]
                    e_hot[lo, c] = e_hot[hi, c]
                    e_hot[hi, c] = e
                    count += 1
            accepted[lo] += count / H
            attempted[lo] += 1.0
        if (R - 2) % 2 == first:
            last = R - 2
            db = betas[last] - betas[R - 1]
            count = 0
            for c in range(H):
                j = pick[c]
                if log_u[first, last, c] < db * (np.float64(e_hot[last, c]) - np.float64(e_cold[j])):
                    _swap_rows(hot[last], c, cold, j)
                    _swap_rows(hot_field[last], c, cold_field, j)
                    t = hot_dir[last, c]
                    hot_dir[last, c] = cold_dir[j]
                    cold_dir[j] = t
                    e = e_hot[last, c]
                    e_hot[last, c] = e_cold[j]
                    e_cold[j] = e
                    count += 1
            accepted[last] += count / H
            attempted[last] += 1.0
        for c in range(H):
            hot_dir[0, c] = 1
        for c in range(cold.shape[0]):
            if cold_dir[c] == 1:
                trips += 1
            cold_dir[c] = -1
    return trips


def exchange_numba(state: dict, betas: torch.Tensor, log_u: np.ndarray, pick: np.ndarray) -> int:
    """The exchange step in place on CPU tensors (see :func:`exchange_applies`); returns the
    round trips and adds to ``state["accepted"]``/``state["attempted"]``."""
    arrays = [state[k].numpy() for k in _ARRAYS]
    b = betas.detach().to(torch.float64).cpu().numpy()
    return int(_exchange(*arrays, b, log_u, pick, state["accepted"].numpy(), state["attempted"].numpy()))


def exchange_torch(state: dict, betas: torch.Tensor, log_u: np.ndarray, pick: np.ndarray) -> int:
    """The same step as :func:`exchange_numba` in torch operations (any device)."""
    hot = state["hot"]
    device = hot.device
    R, H = hot.shape[0] + 1, hot.shape[1]
    b = betas.detach().to(device=device, dtype=torch.float64)
    log_u_t = torch.from_numpy(log_u).to(device)
    pick_t = torch.from_numpy(pick).to(device)
    trips = 0
    for first in (0, 1):
        lo = torch.tensor(range(first, R - 2, 2), dtype=torch.long, device=device)
        if lo.numel():
            hi = lo + 1
            e = state["e_hot"].double()
            accept = log_u_t[first, lo] < (b[lo] - b[hi]).unsqueeze(-1) * (e[lo] - e[hi])
            for key in ("hot", "hot_field", "hot_dir", "e_hot"):
                t = state[key]
                mask = accept.view(accept.shape + (1,) * (t.dim() - 2))
                a, c = t[lo], t[hi]
                t[lo] = torch.where(mask, c, a)
                t[hi] = torch.where(mask, a, c)
            state["accepted"][lo.cpu()] += accept.double().sum(-1).cpu() / H
            state["attempted"][lo.cpu()] += 1
        if (R - 2) % 2 == first:
            last = R - 2
            log_ratio = (b[last] - b[-1]) * (state["e_hot"][last].double() - state["e_cold"][pick_t].double())
            accept = log_u_t[first, last] < log_ratio
            idx = pick_t[accept]
            for hk, ck in (
                ("hot", "cold"),
                ("hot_field", "cold_field"),
                ("hot_dir", "cold_dir"),
                ("e_hot", "e_cold"),
            ):
                a = state[hk][last][accept].clone()
                state[hk][last][accept] = state[ck][idx]
                state[ck][idx] = a
            state["accepted"][last] += float(accept.double().sum()) / H
            state["attempted"][last] += 1
        state["hot_dir"][0] = 1
        cold_dir = state["cold_dir"]
        trips += int((cold_dir == 1).sum())
        cold_dir.fill_(-1)
    return trips


def exchange_applies(state: dict) -> bool:
    """Whether :func:`exchange_numba` can run: every array on the CPU and contiguous."""
    return all(
        state[k].device.type == "cpu" and state[k].is_contiguous() and not state[k].requires_grad
        for k in _ARRAYS
    ) and state["hot"].dtype in (torch.float32, torch.float64)


def exchange_(state: dict, betas: torch.Tensor, rng: np.random.Generator) -> int:
    """One exchange step in place (numba on CPU, torch elsewhere), with draws from ``rng``;
    returns the round trips."""
    R1, H = state["hot"].shape[:2]
    log_u, pick = exchange_draws(R1 + 1, H, state["cold"].shape[0], rng)
    if exchange_applies(state):
        return exchange_numba(state, betas, log_u, pick)
    return exchange_torch(state, betas, log_u, pick)
