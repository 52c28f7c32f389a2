r"""Basins of a function on the cells' neighbour graph: persistence clustering and graph barriers.

The cells are the vertices of an undirected k-nearest-neighbour graph and each carries a value
``f`` (here the smoothed energy; lower = deeper). A cell with no lower neighbour is a local minimum
of ``f`` on the graph, and every cell belongs to the basin it drains into. Basins whose separating
saddle is shallow are merged, as in topological mode analysis (ToMATo; Chazal, Guibas, Oudot &
Skraba, *J. ACM* 60, 2013):

* the cells are swept by rising ``f``; a cell without lower neighbours starts a basin (its root);
  otherwise it joins the basin of its lowest lower neighbour (steepest descent on the graph);
* when a cell touches a second basin, the two are merged if the cell (the saddle) is less than
  ``min_persistence`` above the higher of the two roots: ``f(saddle) - max(f(r_1), f(r_2)) <
  min_persistence``. Otherwise both persist.

The barrier between two final basins is the graph analogue of the minimax barrier over codes:
the lowest level ``b`` at which the sub-level set ``{cells : f <= b}`` joins them (``inf`` when the
graph does not connect them).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["graph_barriers", "merge_levels", "persistence_basins", "smooth_on_graph"]


def _check(f: np.ndarray, graph: sp.spmatrix) -> tuple[np.ndarray, sp.csr_matrix]:
    f = np.asarray(f, dtype=np.float64).reshape(-1)
    if not np.isfinite(f).all():
        raise ValueError("the function on the graph has non-finite values")
    graph = sp.csr_matrix(graph)
    if graph.shape != (f.size, f.size):
        raise ValueError(f"graph must be ({f.size}, {f.size}), got {graph.shape}")
    graph = (graph + graph.T).tocsr()  # undirected
    return f, graph


def _find(parent: np.ndarray, x: int) -> int:
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:
        parent[x], x = root, parent[x]
    return root


def persistence_basins(f: np.ndarray, graph: sp.spmatrix, min_persistence: float = 0.0) -> np.ndarray:
    """Basin of each vertex of ``graph`` under ``f`` (lower = deeper), shallow basins merged.

    Parameters
    ----------
    f
        Values ``(n,)`` on the vertices.
    graph
        ``(n, n)`` sparse adjacency (any non-zero is an edge; made symmetric).
    min_persistence
        Basins whose saddle is less than this above the higher of their two minima are merged
        (``0``: every local minimum keeps its basin).

    Returns
    -------
    ``(n,)`` int: the vertex index of each vertex's basin minimum (its root).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> path = sp.diags([1.0, 1.0], [-1, 1], shape=(5, 5))  # a path graph 0-1-2-3-4
    >>> f = np.array([0.0, 1.0, 2.0, 0.5, 1.5])
    >>> persistence_basins(f, path).tolist()  # cell 2 drains to its lower neighbour, 3
    [0, 0, 3, 3, 3]
    >>> persistence_basins(f, path, min_persistence=2.0).tolist()
    [0, 0, 0, 0, 0]
    """
    if not np.isfinite(min_persistence) or min_persistence < 0:
        raise ValueError(f"min_persistence must be a finite number >= 0, got {min_persistence!r}")
    f, graph = _check(f, graph)
    n = f.size
    order = np.argsort(f, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    parent = np.full(n, -1, dtype=np.int64)
    indptr, indices = graph.indptr, graph.indices
    for v in order:
        v = int(v)
        nbrs = indices[indptr[v] : indptr[v + 1]]
        lower = nbrs[rank[nbrs] < rank[v]]
        if lower.size == 0:
            parent[v] = v
            continue
        steepest = int(lower[np.argmin(rank[lower])])
        parent[v] = _find(parent, steepest)
        for u in lower:
            a, b = _find(parent, int(u)), _find(parent, v)
            if a == b:
                continue
            low, high = (a, b) if rank[a] < rank[b] else (b, a)
            if f[v] - f[high] < min_persistence:
                parent[high] = low
    return np.array([_find(parent, v) for v in range(n)], dtype=np.int64)


def merge_levels(f: np.ndarray, neighbours, labels: np.ndarray) -> np.ndarray:
    """Union-find sweep over vertices by rising ``f``: the level at which labelled groups connect.

    ``neighbours(v)`` gives the vertices adjacent to ``v`` (any graph: a kNN graph's rows, the
    single flips of a code); ``labels`` is each vertex's group ``0 .. k-1``, or ``-1`` for a vertex
    of no group. Returns ``(k, k)``: off the diagonal the lowest ``b`` such that
    ``{v : f(v) <= b}`` joins the two groups (``inf`` if nothing does), on the diagonal each
    group's minimum of ``f``. Shared by :func:`graph_barriers` and the exact barriers between
    code minima (:mod:`qbm_pyro.tl._barriers`).
    """
    k = int(labels.max()) + 1 if labels.size else 0
    out = np.full((k, k), np.inf)
    for g in range(k):
        out[g, g] = f[labels == g].min()
    parent = np.arange(f.size)
    groups: dict[int, set[int]] = {}  # component root -> the groups it holds
    visited = np.zeros(f.size, dtype=bool)
    for v in np.argsort(f, kind="stable"):
        v = int(v)
        visited[v] = True
        if labels[v] >= 0:
            groups[v] = {int(labels[v])}
        for u in neighbours(v):
            if not visited[u]:
                continue
            a, b = _find(parent, int(u)), _find(parent, v)
            if a == b:
                continue
            ga, gb = groups.pop(a, set()), groups.pop(b, set())
            for g in ga:
                for h in gb:
                    if g != h and not np.isfinite(out[g, h]):
                        out[g, h] = out[h, g] = f[v]
            parent[b] = a
            if ga or gb:
                groups[a] = ga | gb
    return out


def graph_barriers(f: np.ndarray, graph: sp.spmatrix, labels: np.ndarray) -> np.ndarray:
    """Barrier between labelled groups of vertices: the lowest level of ``f`` that connects them.

    Parameters
    ----------
    f, graph
        As in :func:`persistence_basins`.
    labels
        ``(n,)`` group of each vertex, ``0 .. k-1``.

    Returns
    -------
    ``(k, k)``: off the diagonal, the lowest ``b`` such that ``{v : f(v) <= b}`` contains a path
    between the two groups (``inf`` if none); on the diagonal, each group's minimum of ``f``.
    """
    f, graph = _check(f, graph)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    indptr, indices = graph.indptr, graph.indices
    return merge_levels(f, lambda v: indices[indptr[v] : indptr[v + 1]], labels)


def smooth_on_graph(values: np.ndarray, graph: sp.spmatrix) -> np.ndarray:
    """Mean of each vertex's value and its neighbours' (one step of neighbourhood averaging)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    adj = (sp.csr_matrix(graph) != 0).astype(np.float64)
    adj = (adj.maximum(adj.T) + sp.identity(values.size, format="csr")).tocsr()
    adj.data[:] = 1.0
    return np.asarray(adj @ values).reshape(-1) / np.asarray(adj.sum(axis=1)).reshape(-1)
