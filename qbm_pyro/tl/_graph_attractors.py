"""``tl.attractors(method="graph")``: attractors as basins of the cells' smoothed energy on their graph.

Each cell carries its energy under the prior, ``E(q)`` at its posterior probabilities (for a
quadratic prior and a factorial posterior, exactly ``E_q[E(z)]``), averaged over the cell and its
neighbours in the cells' k-nearest-neighbour graph. The attractors are the basins of this smoothed
energy on the graph, with the shallow ones merged (:func:`~qbm_pyro.tl._graph_basins.persistence_basins`).
Each gets its floor (the lowest smoothed energy in it), the hard code of its floor cell, the
barriers to the others on the graph (exact) and over codes (:mod:`~qbm_pyro.tl._barriers`), and
its basin weight under the prior: the fraction of prior samples whose nearest cell belongs to it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from qbm_pyro.tl._barriers import barrier_to_nearest, chained_path, pairwise_barriers, spanning_edges
from qbm_pyro.tl._energy_landscape import EnergyLandscape
from qbm_pyro.tl._graph_basins import graph_barriers, persistence_basins, smooth_on_graph
from qbm_pyro.tl._neighbors import _knn

__all__ = ["cell_graph_adjacency", "graph_attractors"]


def cell_graph_adjacency(
    rep: np.ndarray, n_binary: int, n_neighbors: int, metric: str, seed: int
) -> sp.csr_matrix:
    """Symmetric 0/1 adjacency of the cells' ``n_neighbors``-nearest-neighbour graph (self excluded)."""
    idx, _ = _knn(rep, n_binary, metric, n_neighbors, "auto", seed)
    n_obs = rep.shape[0]
    rows = np.repeat(np.arange(n_obs), idx.shape[1])
    adj = sp.csr_matrix((np.ones(idx.size), (rows, idx.ravel())), shape=(n_obs, n_obs))
    adj = adj.maximum(adj.T).tocsr()
    adj.setdiag(0.0)
    adj.eliminate_zeros()
    return adj


def _rank(values: np.ndarray) -> np.ndarray:
    """Position of each entry when sorted ascending (stable)."""
    order = np.argsort(values, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank


def graph_attractors(
    landscape: EnergyLandscape,
    probs: np.ndarray,
    rep: np.ndarray,
    n_neighbors: int,
    metric: str,
    min_barrier: float,
    search_budget: int,
    n_prior_samples: int,
    seed: int,
) -> tuple[dict, np.ndarray, np.ndarray]:
    """The attractors of ``method="graph"``.

    Returns ``(uns entry, attractor of each cell, graph minimum of each cell)``."""
    adj = cell_graph_adjacency(rep, landscape.n, n_neighbors, metric, seed)
    smoothed = smooth_on_graph(landscape.energy(probs), adj)
    raw_root = persistence_basins(smoothed, adj, 0.0)
    root = persistence_basins(smoothed, adj, min_barrier)
    # graph minima before merging, deepest first, and the attractors they belong to
    minima_cells = np.unique(raw_root)
    minima_cells = minima_cells[np.argsort(smoothed[minima_cells], kind="stable")]
    floors = np.unique(root)
    floors = floors[np.argsort(smoothed[floors], kind="stable")]
    k = floors.size
    group_of_floor = {int(c): g for g, c in enumerate(floors)}
    cell_group = np.array([group_of_floor[int(r)] for r in root], dtype=np.int64)
    minimum_of_cell = {int(c): i for i, c in enumerate(minima_cells)}
    inverse = np.array([minimum_of_cell[int(r)] for r in raw_root], dtype=np.int64)
    minimum_attractor = cell_group[minima_cells]
    names = [f"A{g}" for g in range(k)]

    barriers = graph_barriers(smoothed, adj, cell_group)
    states = (probs[floors] > 0.5).astype(np.int8)
    pair = pairwise_barriers(landscape, states, method="auto", budget=search_budget)
    edges, edge_barrier, paths = _tree_and_paths(landscape, states, barriers, pair, names, search_budget)
    weight, unassigned = _nearest_cell_weights(landscape, probs, cell_group, k, n_prior_samples, seed)
    nearest = barrier_to_nearest(barriers)
    energies = barriers.diagonal().copy()
    table = pd.DataFrame(
        {
            "energy": energies,
            "code_energy": landscape.energy(states.astype(np.float64)),
            "n_cells": np.bincount(cell_group, minlength=k),
            "basin_weight": weight,
            "n_minima": np.bincount(minimum_attractor, minlength=k),
            "barrier_to_nearest": nearest,
        },
        index=pd.Index(names, name="attractor"),
    )
    out = {
        "table": table,
        "states": states,
        "energies": energies,
        "n_cells": table["n_cells"].to_numpy(),
        "basin_weight": weight,
        "prior_unassigned": float(unassigned),
        "barriers": barriers,
        "barrier_exact": np.ones((k, k), dtype=bool),
        "code_barriers": pair["barriers"],
        "code_barrier_exact": pair["exact"],
        "edges": edges,
        "edge_barrier": edge_barrier,
        "paths": paths,
        "minima": (probs[minima_cells] > 0.5).astype(np.int8),
        "minima_energies": smoothed[minima_cells],
        "minimum_attractor": minimum_attractor,
        "floor_cells": floors,
        "smoothed_energy": smoothed,
        "method": "graph",
        "params": {
            "min_barrier": float(min_barrier),
            "search_budget": int(search_budget),
            "n_prior_samples": int(n_prior_samples),
            "seed": int(seed),
        },
    }
    return out, cell_group, inverse


def _tree_and_paths(landscape, states, barriers, pair, names, budget):
    """Minimum spanning tree of the graph barriers; each tree edge's single-flip path over codes
    (the searched path, or the chain of paths behind a chained barrier: ``_barriers.chained_path``)."""
    edges, values, paths = [], [], {}
    for g, f in spanning_edges(barriers):
        paths[f"{names[g]}-{names[f]}"] = chained_path(landscape, states, pair, g, f, budget=budget)
        edges.append((g, f))
        values.append(barriers[g, f])
    return np.asarray(edges, dtype=np.int64).reshape(-1, 2), np.asarray(values, dtype=np.float64), paths


def _nearest_cell_weights(landscape, probs, cell_group, k, n_samples, seed, chunk=512):
    """Fraction of prior samples whose nearest cell (expected Hamming distance) is in each basin,
    and the fraction of samples whose descent ends in a code minimum no cell's code reaches."""
    if n_samples <= 0:
        return np.full(k, np.nan), float("nan")
    samples = landscape.sample(n_samples, seed)
    q = np.asarray(probs, dtype=np.float64)
    nearest = np.empty(samples.shape[0], dtype=np.int64)
    base = q.sum(axis=1)  # E|z - q|_1 = sum_k q_k + z_k (1 - 2 q_k)
    for s in range(0, samples.shape[0], chunk):
        z = samples[s : s + chunk]
        nearest[s : s + chunk] = np.argmin(base[None, :] + z @ (1.0 - 2.0 * q).T, axis=1)
    weight = np.bincount(cell_group[nearest], minlength=k) / samples.shape[0]
    cells_min = {m.tobytes() for m in landscape.descend((q > 0.5).astype(np.float64)).astype(np.int8)}
    ends = landscape.descend(samples).astype(np.int8)
    unassigned = float(np.mean([e.tobytes() not in cells_min for e in ends]))
    return weight.astype(np.float64), unassigned
