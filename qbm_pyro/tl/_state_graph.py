"""States, flows and branches of :func:`qbm_pyro.tl.trajectory` (a PAGA-like coarse graph).

States are Leiden clusters (or given groups); between two states the flow is the stationary
probability of one random-walk step, edges point from the earlier state to the later one, and
branches are read off the maximum spanning tree of the connectivities.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import scipy.sparse as sp


def _leiden(affinities: sp.csr_matrix, resolution: float, seed: int) -> np.ndarray:
    import igraph
    import leidenalg

    upper = sp.triu(affinities, k=1).tocoo()
    graph = igraph.Graph(n=affinities.shape[0], edges=list(zip(upper.row, upper.col)))
    partition = leidenalg.find_partition(
        graph,
        leidenalg.RBConfigurationVertexPartition,
        weights=upper.data.tolist(),
        resolution_parameter=resolution,
        seed=seed,
        n_iterations=2,
    )
    return np.asarray(partition.membership).astype(str)


def _state_graph(
    states: np.ndarray,
    kernel: sp.csr_matrix,
    pseudotime: np.ndarray,
    energy: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """Per-state summaries, directed flow edges, the branch tree and each state's branch."""
    names, codes, counts = np.unique(states, return_inverse=True, return_counts=True)
    order = _natural_order(names)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    names, counts, codes = names[order], counts[order], rank[codes]
    m = names.size
    n_obs = codes.size
    indicator = sp.csr_matrix((np.ones(n_obs), (np.arange(n_obs), codes)), shape=(n_obs, m))
    off_diag = kernel - sp.diags(kernel.diagonal())
    flow = np.asarray((indicator.T @ off_diag @ indicator).todense())
    flow = flow / flow.sum()
    pi = flow.sum(axis=1)
    mean_pt = _group_mean(pseudotime, codes, m)
    mean_energy = _group_mean(energy, codes, m) if energy is not None else np.full(m, np.nan)

    src, dst, flows, conns = [], [], [], []
    for a in range(m):
        for b in range(a + 1, m):
            f = flow[a, b]
            if f <= 0:
                continue
            later_b = _is_later(mean_pt[b], mean_pt[a]) if mean_pt[a] != mean_pt[b] else True
            s, t = (a, b) if later_b else (b, a)
            src.append(s)
            dst.append(t)
            flows.append(f)
            conns.append(f / (pi[a] * pi[b]))
    edges = np.array([src, dst], dtype=np.int64).T.reshape(-1, 2)
    conns_arr = np.asarray(conns, dtype=np.float64)
    in_tree = _spanning_tree_mask(edges, conns_arr, m)
    branch, terminal = _branches(edges[in_tree], m, names)
    return {
        "states": names.astype(str),
        "state_n_cells": counts.astype(np.int64),
        "state_mean_pseudotime": mean_pt,
        "state_mean_energy": mean_energy,
        "state_branch": branch,
        "terminal_states": names[terminal].astype(str),
        "edges": edges,
        "edge_flow": np.asarray(flows, dtype=np.float64),
        "edge_connectivity": conns_arr,
        "edge_in_tree": in_tree,
    }


def _is_later(a: float, b: float) -> bool:
    """``a`` after ``b``; NaN (a state off the root's component) counts as latest."""
    if np.isnan(a):
        return True
    if np.isnan(b):
        return False
    return a > b


def _spanning_tree_mask(edges: np.ndarray, conns: np.ndarray, m: int) -> np.ndarray:
    graph = nx.Graph()
    graph.add_nodes_from(range(m))
    for e, (a, b) in enumerate(edges):
        graph.add_edge(int(a), int(b), weight=float(conns[e]), index=e)
    mask = np.zeros(len(edges), dtype=bool)
    for _, _, attrs in nx.maximum_spanning_tree(graph, weight="weight").edges(data=True):
        mask[attrs["index"]] = True
    return mask


def _branches(tree_edges: np.ndarray, m: int, names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Branch label of each state from the terminal states it reaches in the directed tree."""
    tree = nx.DiGraph()
    tree.add_nodes_from(range(m))
    tree.add_edges_from((int(a), int(b)) for a, b in tree_edges)
    terminal = np.array([tree.out_degree(v) == 0 and tree.in_degree(v) > 0 for v in range(m)])
    all_terminal = frozenset(np.flatnonzero(terminal).tolist())
    labels = []
    for v in range(m):
        reach = {v, *nx.descendants(tree, v)} & all_terminal
        if len(all_terminal) > 1 and reach == all_terminal:
            labels.append("trunk")
        elif not reach:  # an isolated state
            labels.append(f"to_{names[v]}")
        else:
            labels.append("to_" + "|".join(str(names[t]) for t in sorted(reach)))
    return np.asarray(labels, dtype=str), terminal


def _cell_branches(summary: dict[str, np.ndarray], states: np.ndarray) -> np.ndarray:
    branch_of = dict(zip(summary["states"].tolist(), summary["state_branch"].tolist()))
    return np.asarray([branch_of[s] for s in states.astype(str)], dtype=object)


def _group_mean(values: np.ndarray, codes: np.ndarray, m: int) -> np.ndarray:
    ok = np.isfinite(values)
    sums = np.bincount(codes[ok], weights=values[ok], minlength=m)
    counts = np.bincount(codes[ok], minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _natural_order(names: np.ndarray) -> np.ndarray:
    """Order state names numerically when they are all integers, else lexicographically."""
    try:
        keys = [int(s) for s in names]
    except ValueError:
        keys = list(names)
    return np.asarray(sorted(range(len(names)), key=lambda i: keys[i]), dtype=np.int64)
