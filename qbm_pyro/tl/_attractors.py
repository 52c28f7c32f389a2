"""``qbm_pyro.tl.attractors``: each cell's code mapped to a local minimum of the learned energy.

A local minimum (attractor) of ``E(z) = -h·z - Σ_{i<j} J_ij z_i z_j`` is a code no single flip
lowers. Steepest descent from a cell's code (``method="greedy"``: flip the unit whose flip lowers
the energy most, until none does) ends in the attractor whose basin holds the code; cells that
share an attractor form a discrete cell state defined by the prior alone. ``method="anneal"``
first runs simulated annealing (dwave-samplers) from the code with a schedule cooling to T≈0 —
an annealer used as an optimiser — then polishes with the same descent, so basins can merge
across shallow barriers.
"""

from __future__ import annotations

import logging

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import torch

__all__ = ["attractors", "descend"]

log = logging.getLogger(__name__)


def descend(
    z: torch.Tensor, h: torch.Tensor, J: torch.Tensor, *, max_steps: int | None = None
) -> torch.Tensor:
    """Steepest single-flip descent of the energy from each row of ``z`` to a local minimum.

    Parameters
    ----------
    z
        Binary codes ``(B, n)``.
    h, J
        Biases ``(n,)`` and couplings ``(n, n)`` (strict upper triangle used).
    max_steps
        Bound on the number of flips (default ``n * 10``; each flip lowers the energy, so descent
        always ends; the bound only guards against float ties).

    Returns
    -------
    The minima ``(B, n)``: no single flip lowers their energy.
    """
    z = z.detach().to(h.dtype).clone()
    Jt = torch.triu(J.detach(), 1)
    Jsym = Jt + Jt.T
    max_steps = 10 * z.shape[1] if max_steps is None else int(max_steps)
    for _ in range(max_steps):
        field = h.detach() + z @ Jsym  # F_i = h_i + Σ_j J̃_ij z_j
        delta = -(1 - 2 * z) * field  # energy change of flipping unit i
        best, idx = delta.min(-1)
        move = best < -1e-9
        if not bool(move.any()):
            break
        rows = torch.nonzero(move).squeeze(-1)
        z[rows, idx[rows]] = 1 - z[rows, idx[rows]]
    return z


def _anneal(z: np.ndarray, h: np.ndarray, J: np.ndarray, seed: int, num_sweeps: int) -> np.ndarray:
    from dwave.samplers import SimulatedAnnealingSampler

    from ..samplers import bqm_from_boltzmann

    bqm = bqm_from_boltzmann(torch.as_tensor(h), torch.as_tensor(J))
    result = SimulatedAnnealingSampler().sample(
        bqm,
        initial_states=(z.astype(np.int8), list(range(len(h)))),
        num_reads=z.shape[0],
        beta_range=(1.0, 50.0),
        num_sweeps=num_sweeps,
        seed=seed,
        initial_states_generator="none",
    )
    order = sorted(result.variables)
    records = result.record  # keep read order: one read per initial state
    samples = records.sample[:, [list(result.variables).index(v) for v in order]]
    return samples.astype(np.float64)


def attractors(
    data: md.MuData | ad.AnnData,
    model=None,
    *,
    use_rep: str = "X_qbm",
    key: str = "qbm",
    method: str = "greedy",
    num_sweeps: int = 100,
    seed: int = 0,
    key_added: str = "qbm_attractor",
    copy: bool = False,
) -> md.MuData | ad.AnnData | None:
    """Map each cell's binary code to the local minimum of the learned energy it descends to.

    Parameters
    ----------
    data
        Data with ``obsm[use_rep]`` written by :func:`qbm_pyro.tl.qbm` (its first ``n_binary``
        columns are the code's probabilities; the code is ``q > 1/2``).
    model
        A fitted :class:`~qbm_pyro.QBMVAE` whose prior to use; default: the prior stored by
        :func:`~qbm_pyro.tl.qbm` in ``uns[key]['prior']``.
    use_rep, key
        Where :func:`~qbm_pyro.tl.qbm` wrote the latent and its parameters.
    method
        ``"greedy"`` (steepest single-flip descent) or ``"anneal"`` (simulated annealing from the
        code down to T≈0, then the descent).
    num_sweeps, seed
        Annealing length and seed (``method="anneal"``).
    key_added
        Name of the outputs.
    copy
        Return a modified copy instead of writing into ``data``.

    Returns
    -------
    ``None``, or the copy. Writes ``obs[key_added]`` (categorical: ``"A0"`` is the attractor of
    lowest energy), ``obs[key_added + '_energy']`` and ``uns[key_added]`` with ``states``
    ``(k, n)``, ``energies`` ``(k,)``, ``n_cells`` ``(k,)`` and ``method``.

    Examples
    --------
    >>> import qbm_pyro
    >>> mdata = qbm_pyro.datasets.pbmc_cite_2batch()
    >>> qbm_pyro.tl.qbm(mdata, batch_key="batch", n_latent=16, max_epochs=2, progress_bar=False)
    >>> qbm_pyro.tl.attractors(mdata)
    >>> bool(mdata.obs["qbm_attractor"].str.startswith("A").all())
    True
    """
    if method not in ("greedy", "anneal"):
        raise ValueError(f"method must be 'greedy' or 'anneal', got {method!r}")
    data = data.copy() if copy else data
    h, J, n = _prior_parameters(data, model, key)
    if use_rep not in data.obsm:
        raise KeyError(f"obsm[{use_rep!r}] not found: run qbm_pyro.tl.qbm first")
    probs = np.asarray(data.obsm[use_rep])[:, :n]
    codes = torch.as_tensor((probs > 0.5).astype(np.float64))
    h_t, J_t = torch.as_tensor(h, dtype=torch.float64), torch.as_tensor(J, dtype=torch.float64)
    if method == "anneal":
        codes = torch.as_tensor(_anneal(codes.numpy(), h, J, seed, num_sweeps))
    minima = descend(codes, h_t, J_t).numpy().astype(np.int8)
    states, inverse, counts = np.unique(minima, axis=0, return_inverse=True, return_counts=True)
    inverse = np.asarray(inverse).reshape(-1)
    states_t = torch.as_tensor(states, dtype=torch.float64)
    energies = (-(states_t @ h_t) - ((states_t @ torch.triu(J_t, 1)) * states_t).sum(-1)).numpy()
    order = np.argsort(energies, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    names = [f"A{i}" for i in range(len(order))]
    data.obs[key_added] = pd.Categorical([names[r] for r in rank[inverse]], categories=names)
    data.obs[f"{key_added}_energy"] = energies[inverse]
    data.uns[key_added] = {
        "states": states[order],
        "energies": energies[order],
        "n_cells": counts[order],
        "method": method,
    }
    log.info("tl.attractors: %d cells in %d attractors", len(inverse), len(order))
    return data if copy else None


def _prior_parameters(data, model, key: str) -> tuple[np.ndarray, np.ndarray, int]:
    """``(h, J, n)`` of the learned prior, from the model or from ``uns[key]['prior']``."""
    if model is not None:
        if not model.module.n_binary:
            raise ValueError("attractors need a binary code; this model has a Gaussian prior only")
        prior = model.module.prior
        if getattr(prior, "n_hidden", 0):
            raise NotImplementedError(_HIDDEN_UNITS)
        return prior.h.detach().double().numpy(), prior.couplings().detach().double().numpy(), prior.n_latent
    stored = data.uns.get(key, {}).get("prior") if isinstance(data.uns.get(key), dict) else None
    if stored is None:
        raise KeyError(
            f"no prior parameters in uns[{key!r}]['prior']: run qbm_pyro.tl.qbm (with a binary code) "
            "first, or pass model="
        )
    if "W" in stored:
        raise NotImplementedError(_HIDDEN_UNITS)
    h = np.asarray(stored["h"], dtype=np.float64)
    return h, np.asarray(stored["J"], dtype=np.float64), h.shape[0]


_HIDDEN_UNITS = (
    "tl.attractors descends the pairwise energy; this prior has hidden units (prior='hidden'), "
    "whose code's energy is the free energy: use model.module.prior.distribution().descend(codes)"
)
