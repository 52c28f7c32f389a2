r"""Barriers between local minima of an :class:`~qbm_pyro.tl._energy_landscape.EnergyLandscape`.

The barrier between two minima ``a`` and ``b`` is the minimax (bottleneck) value over all paths
of single flips from ``a`` to ``b`` of the highest energy on the path,

.. math::
    B(a, b) = \min_{\text{paths } a \to b} \; \max_{z \in \text{path}} E(z),

and the path that attains it is a minimum-energy path. Two ways to get it:

* **exact** (small ``n``, ``2^n`` states enumerated): a union-find sweep over the states sorted by
  energy. Each state joins the components of its already-visited neighbours; the energy at which
  the components holding ``a`` and ``b`` first join is ``B(a, b)`` (the disconnectivity graph).
  The path is a breadth-first search inside the sub-level set ``{z : E(z) <= B(a, b)}``.
* **search** (any ``n``): an upper bound ``U`` from greedy direct paths (flip the differing units,
  each time the one that leads lowest; from both ends), then a bottleneck Dijkstra from ``a`` over
  the hypercube that only enters states below ``U``. If it reaches ``b`` it returns the exact
  minimax value; if it runs out of states below ``U`` the bound ``U`` is exact; if it stops at its
  ``budget`` of expanded states the result is ``U``, an **upper bound** (``exact=False``): the
  true barrier may be lower along a detour the search did not reach.

Between many minima (a trained 64-unit prior's cells descend to hundreds), :func:`pairwise_barriers`
searches only the pairs :func:`near_pairs` gives (each minimum and its nearest minima in Hamming
distance); every other pair gets the lowest chain of searched barriers through other minima
(:func:`minimax_closure`: a path through a third minimum is a path too, so the chain bounds the
barrier from above), and :func:`chained_path` joins the chain's paths.
"""

from __future__ import annotations

import heapq
from collections import deque

import networkx as nx
import numpy as np
from scipy.sparse.csgraph import minimum_spanning_tree
from tqdm.auto import tqdm

from qbm_pyro.tl._energy_landscape import EnergyLandscape
from qbm_pyro.tl._graph_basins import merge_levels

__all__ = [
    "barrier_search",
    "chained_path",
    "elder_rule",
    "enumerate_landscape",
    "group_barriers",
    "merge_by_persistence",
    "merge_heights",
    "minimax_closure",
    "minimax_path",
    "near_pairs",
    "pairwise_barriers",
]

#: Largest ``n`` enumerated exactly by :func:`pairwise_barriers` with ``method="auto"``.
EXACT_MAX_N = 14


#: Default barrier (energy units = kT at the prior's temperature) below which minima or states are
#: merged into one attractor (``tl.attractors``, the root-free potential of ``tl.trajectory``).
MIN_BARRIER = 1.0


def _all_codes(n: int) -> np.ndarray:
    idx = np.arange(2**n, dtype=np.int64)
    return ((idx[:, None] >> np.arange(n)) & 1).astype(np.float64)


def _code_index(z: np.ndarray) -> np.ndarray:
    z = np.atleast_2d(np.asarray(z)).astype(np.int64)
    return (z << np.arange(z.shape[1])).sum(axis=1)


def enumerate_landscape(landscape: EnergyLandscape, *, chunk: int = 1 << 16) -> dict[str, np.ndarray]:
    """Every state of a small landscape: energies, local minima, basins and the barrier matrix.

    Returns
    -------
    dict with ``codes`` ``(2^n, n)``, ``energies`` ``(2^n,)``, ``minima`` (state indices, lowest
    energy first), ``basin`` ``(2^n,)`` (position in ``minima`` each state descends to),
    ``basin_weight`` (Boltzmann probability of each basin) and ``barriers`` ``(k, k)`` (exact
    minimax barriers between the minima; the diagonal is each minimum's energy).
    """
    n = landscape.n
    if n > 22:
        raise ValueError(f"exact enumeration of 2^{n} states is too large; use the search")
    codes = _all_codes(n)
    energies = np.concatenate([landscape.energy(codes[i : i + chunk]) for i in range(0, len(codes), chunk)])
    bits = 1 << np.arange(n)
    idx = np.arange(codes.shape[0])
    nbr_energy = energies[idx[:, None] ^ bits[None, :]]
    is_min = (nbr_energy >= energies[:, None] - 1e-9).all(axis=1)
    minima = np.flatnonzero(is_min)
    minima = minima[np.argsort(energies[minima], kind="stable")]
    position = {int(m): i for i, m in enumerate(minima)}
    descended = np.concatenate([landscape.descend(codes[i : i + chunk]) for i in range(0, len(codes), chunk)])
    basin = np.array([position[int(s)] for s in _code_index(descended)], dtype=np.int64)
    weights = np.exp(-(energies - energies.min()))
    basin_weight = np.bincount(basin, weights=weights, minlength=minima.size) / weights.sum()
    return {
        "codes": codes,
        "energies": energies,
        "minima": minima,
        "basin": basin,
        "basin_weight": basin_weight,
        "barriers": _sweep_barriers(energies, minima, n),
    }


def barrier_to_nearest(barriers: np.ndarray) -> np.ndarray:
    """For each of ``k`` attractors, the barrier to the nearest other one above its own energy
    (``barriers``: ``(k, k)``, energies on the diagonal); ``inf`` for a lone attractor."""
    k = barriers.shape[0]
    return np.array([np.delete(barriers[g], g).min() - barriers[g, g] if k > 1 else np.inf for g in range(k)])


def _sweep_barriers(energies: np.ndarray, minima: np.ndarray, n: int) -> np.ndarray:
    """Union-find sweep over states by rising energy (:func:`merge_levels` on the hypercube of
    single flips): the level at which two minima connect."""
    labels = np.full(energies.size, -1, dtype=np.int64)
    labels[minima] = np.arange(minima.size)
    return merge_levels(energies, lambda s: [s ^ (1 << bit) for bit in range(n)], labels)


def _sublevel_path(landscape: EnergyLandscape, a: np.ndarray, b: np.ndarray, level: float) -> np.ndarray:
    """Shortest single-flip path from ``a`` to ``b`` inside ``{z : E(z) <= level}`` (exact, small n)."""
    n = landscape.n
    start, goal = int(_code_index(a)[0]), int(_code_index(b)[0])
    energies = landscape.energy(_all_codes(n))
    parent = {start: -1}
    queue = deque([start])
    while queue:
        s = queue.popleft()
        if s == goal:
            break
        for bit in range(n):
            t = s ^ (1 << bit)
            if t not in parent and energies[t] <= level + 1e-9:
                parent[t] = s
                queue.append(t)
    return _unwind(parent, goal, n)


def _unwind(parent: dict[int, int], goal: int, n: int) -> np.ndarray:
    path = [goal]
    while parent[path[-1]] != -1:
        path.append(parent[path[-1]])
    idx = np.asarray(path[::-1], dtype=np.int64)
    return ((idx[:, None] >> np.arange(n)) & 1).astype(np.int8)


def _greedy_path(landscape: EnergyLandscape, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Direct path: flip the units where ``a`` and ``b`` differ, each time the one leading lowest."""
    z = np.asarray(a, dtype=np.float64).copy()
    path = [z.copy()]
    todo = np.flatnonzero(z != b)
    while todo.size:
        delta = landscape.flip_deltas(z[None, :])[0, todo]
        pick = todo[int(np.argmin(delta))]
        z[pick] = 1.0 - z[pick]
        path.append(z.copy())
        todo = todo[todo != pick]
    return np.asarray(path, dtype=np.int8)


def barrier_search(
    landscape: EnergyLandscape, a: np.ndarray, b: np.ndarray, *, budget: int = 5000
) -> tuple[float, np.ndarray, bool]:
    """Minimax barrier and path between two codes by search (any ``n``).

    Parameters
    ----------
    landscape
        The energy.
    a, b
        Codes ``(n,)``.
    budget
        Most states the bottleneck Dijkstra expands.

    Returns
    -------
    ``(barrier, path, exact)``: the highest energy on the path found, the path ``(L, n)`` (int8,
    ``a`` first, ``b`` last, one flip per step) and whether the value is proven minimal (otherwise
    it is an upper bound on the true barrier).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    n = landscape.n
    forward = _greedy_path(landscape, a, b)
    backward = _greedy_path(landscape, b, a)[::-1]
    candidates = [(float(landscape.energy(p.astype(np.float64)).max()), p) for p in (forward, backward)]
    upper, best_path = min(candidates, key=lambda c: c[0])
    start, goal = int(_code_index(a)[0]), int(_code_index(b)[0])
    if start == goal:
        return float(landscape.energy(a[None])[0]), best_path, True
    bits = 1 << np.arange(n)
    goal_bits = b.astype(bool)
    e_start = float(landscape.energy(a[None])[0])
    best = {start: e_start}
    parent = {start: -1}
    heap = [(e_start, 0, start)]
    expanded = 0
    while heap:
        level, _, s = heapq.heappop(heap)
        if level > best.get(s, np.inf):
            continue
        if s == goal:
            return level, _unwind(parent, goal, n), True
        expanded += 1
        if expanded > budget:
            return upper, best_path, False
        z = ((s >> np.arange(n)) & 1).astype(np.float64)
        e_s = float(landscape.energy(z[None])[0])
        nbr_e = e_s + landscape.flip_deltas(z[None])[0]
        hamming = int((z.astype(bool) != goal_bits).sum())
        for bit in np.flatnonzero(nbr_e < upper - 1e-12):
            t = s ^ int(bits[bit])
            value = max(level, float(nbr_e[bit]))
            if value < best.get(t, np.inf):
                best[t] = value
                parent[t] = s
                step = hamming - 1 if z[bit] != b[bit] else hamming + 1
                heapq.heappush(heap, (value, step, t))
    return upper, best_path, True  # nothing below the greedy bound connects a to b


def pairwise_barriers(
    landscape: EnergyLandscape,
    minima: np.ndarray,
    *,
    method: str = "auto",
    budget: int = 5000,
    pairs: list[tuple[int, int]] | None = None,
    progress_bar: bool = False,
) -> dict[str, np.ndarray]:
    """Barrier matrix between given minima.

    Parameters
    ----------
    landscape
        The energy.
    minima
        Codes ``(k, n)``: local minima, or any codes (the barrier between two codes is the
        lowest maximum energy over single-flip paths joining them, at least the higher of their
        own energies).
    method
        ``"exact"`` (enumeration, ``n <= 22``), ``"search"`` (:func:`barrier_search`) or ``"auto"``
        (exact up to :data:`EXACT_MAX_N` units).
    budget
        Search budget per pair.
    pairs
        The pairs ``(i, j)`` to search, e.g. :func:`near_pairs` (each minimum and its nearest
        minima: about ``k * neighbours / 2`` searches instead of ``k (k - 1) / 2``); default every
        pair. Either way each pair then gets the lower of its search and the lowest
        chain of searched barriers through other minima (:func:`minimax_closure`: a search that
        stopped at its budget is often beaten by a chain). Ignored by the exact sweep, which gets
        every pair at once.
    progress_bar
        Show a progress bar over the pairs searched (minutes for ~100 minima of 64 units).

    Returns
    -------
    dict with ``barriers`` ``(k, k)`` (the diagonal holds the minima's energies), ``exact``
    ``(k, k)`` bool (proven minimal; a chain is an upper bound) and ``via`` ``(k, k)`` int (the
    minimum a chained barrier passes through, :func:`minimax_closure`; ``-1`` for a pair whose own
    search or the exact sweep stands).
    """
    if method not in ("auto", "exact", "search"):
        raise ValueError(f"method must be 'auto', 'exact' or 'search', got {method!r}")
    minima = np.atleast_2d(np.asarray(minima, dtype=np.float64))
    k = minima.shape[0]
    energies = landscape.energy(minima) if k else np.zeros(0)
    if method == "exact" or (method == "auto" and landscape.n <= EXACT_MAX_N):
        # the union-find sweep tracks any states, minima or not (e.g. the floor cells' codes of
        # method="graph"): the level at which two of them first share a sublevel component
        n = landscape.n
        if n > 22:
            raise ValueError(f"exact enumeration of 2^{n} states is too large; use the search")
        codes = _all_codes(n)
        chunk = 1 << 16
        every = np.concatenate([landscape.energy(codes[i : i + chunk]) for i in range(0, len(codes), chunk)])
        unique, position = np.unique(_code_index(minima), return_inverse=True)
        barriers = _sweep_barriers(every, unique, n)[np.ix_(position, position)]
        return {"barriers": barriers, "exact": np.ones((k, k), dtype=bool), "via": np.full((k, k), -1)}
    barriers = np.full((k, k), np.inf)
    barriers[np.arange(k), np.arange(k)] = energies
    exact = np.eye(k, dtype=bool)
    todo = [(i, j) for i in range(k) for j in range(i + 1, k)] if pairs is None else pairs
    for i, j in tqdm(todo, desc="barriers between minima", disable=not progress_bar, leave=False):
        value, _, proven = barrier_search(landscape, minima[i], minima[j], budget=budget)
        barriers[i, j] = barriers[j, i] = value
        exact[i, j] = exact[j, i] = proven
    barriers, via = minimax_closure(barriers)
    exact &= via < 0
    return {"barriers": barriers, "exact": exact, "via": via}


def near_pairs(codes: np.ndarray, neighbours: int) -> list[tuple[int, int]]:
    """The pairs ``(i, j)``, ``i < j``, where ``j`` is among ``i``'s ``neighbours`` nearest codes
    in Hamming distance or ``i`` among ``j``'s (ties broken by index), and the edges of the
    minimum spanning tree of the Hamming distances, so that the pairs connect every code."""
    if int(neighbours) != neighbours or neighbours < 1:
        raise ValueError(f"neighbours must be a positive integer, got {neighbours!r}")
    codes = np.atleast_2d(np.asarray(codes, dtype=np.float32))
    k = codes.shape[0]
    if k < 2:
        return []
    ones = codes.sum(axis=1)
    # Hamming distances from one (k, k) product, not a (k, k, n) comparison: thousands of minima fit
    distance = np.rint(ones[:, None] + ones[None, :] - 2.0 * (codes @ codes.T)).astype(np.int32)
    np.fill_diagonal(distance, codes.shape[1] + 1)
    near = np.argsort(distance, axis=1, kind="stable")[:, : min(neighbours, k - 1)]
    pairs = {(min(i, int(j)), max(i, int(j))) for i in range(k) for j in near[i]}
    np.fill_diagonal(distance, 0)
    tree = minimum_spanning_tree(distance + 1 - np.eye(k, dtype=np.int32)).tocoo()  # 1 + Hamming > 0
    pairs |= {(min(int(a), int(b)), max(int(a), int(b))) for a, b in zip(tree.row, tree.col, strict=True)}
    return sorted(pairs)


def minimax_closure(barriers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lowest chains of barriers: ``B[i, j] <- min(B[i, j], max(B[i, v], B[v, j]))`` over every
    chain of intermediates (the bottleneck closure; ``inf`` for pairs not computed).

    A path from ``i`` to ``v`` followed by one from ``v`` to ``j`` is a path from ``i`` to ``j``,
    so each chained value bounds the barrier from above. The closure of a symmetric matrix is the
    largest barrier on the path of its minimum spanning tree: the pairs are joined in order of
    their barrier (Kruskal), and when the pair ``(u, v)`` at level ``b`` first joins two groups,
    every pair across them gets ``b``, O(k²) in all. Returns the closed matrix and ``via``
    ``(k, k)``: for a chained pair ``(a, b)`` across ``(u, v)``, ``u`` (or ``v`` when ``a`` is
    ``u``), so that the chain splits into a pair within a group and one nearer the joining pair;
    ``-1`` where the given value stands (:func:`chained_path` unrolls it).
    """
    given = np.array(barriers, dtype=np.float64)
    k = given.shape[0]
    out = given.copy()
    via = np.full((k, k), -1, dtype=np.int64)
    rows, cols = np.triu_indices(k, 1)
    level = np.minimum(given[rows, cols], given[cols, rows])
    finite = np.isfinite(level)
    order = np.argsort(level[finite], kind="stable")
    group = np.arange(k)
    members = [np.array([v]) for v in range(k)]
    for u, v, height in zip(rows[finite][order], cols[finite][order], level[finite][order], strict=True):
        gu, gv = group[u], group[v]
        if gu == gv:
            continue
        A, B = members[gu], members[gv]
        chained = given[np.ix_(A, B)] > height
        out[np.ix_(A, B)] = np.where(chained, height, given[np.ix_(A, B)])
        out[np.ix_(B, A)] = out[np.ix_(A, B)].T
        via[np.ix_(A, B)] = np.where(chained, np.where(A == u, v, u)[:, None], -1)
        via[np.ix_(B, A)] = np.where(chained.T, np.where(B == v, u, v)[:, None], -1)
        members[gu] = np.concatenate([A, B])
        group[B] = gu
    return out, via


def chained_path(
    landscape: EnergyLandscape,
    minima: np.ndarray,
    pair: dict[str, np.ndarray],
    i: int,
    j: int,
    *,
    budget: int = 5000,
) -> np.ndarray:
    """The single-flip path from minimum ``i`` to ``j`` behind ``pair["barriers"][i, j]``
    (:func:`pairwise_barriers`): the searched path, or the paths of its chain
    (``pair["via"]``) joined end to end. int8 ``(L, n)``."""
    via = pair.get("via")
    hops, stack, seen = [], [(i, j)], set()
    while stack:
        a, b = stack.pop()
        v = -1 if via is None else int(via[a, b])
        if v < 0 or (a, b) in seen:
            hops.append((a, b))
            continue
        seen.add((a, b))
        stack.extend([(v, b), (a, v)])  # (a, v) is unrolled first
    parts = [
        minimax_path(
            landscape,
            minima[a],
            minima[b],
            pair["barriers"][a, b],
            exact=bool(pair["exact"][a, b]),
            budget=budget,
        )
        for a, b in hops
    ]
    return np.concatenate([parts[0]] + [p[1:] for p in parts[1:]], axis=0)


def minimax_path(landscape: EnergyLandscape, a, b, barrier: float, *, exact: bool, budget: int = 5000):
    """The path attaining ``barrier`` between codes ``a`` and ``b`` (int8 ``(L, n)``)."""
    if exact and landscape.n <= EXACT_MAX_N:
        return _sublevel_path(landscape, np.asarray(a), np.asarray(b), barrier)
    return barrier_search(landscape, a, b, budget=budget)[1]


def _elder_joins(energies: np.ndarray, barriers: np.ndarray):
    """The joins of the elder rule, lowest first: ``(label, height)`` after each join, where
    ``label`` is each minimum's group so far (the id of a group's first member) and ``height``
    the join's barrier counted from the higher of the two groups' floors. Heights never
    decrease: a join makes no barrier lower relative to the higher floor."""
    energies = np.asarray(energies, dtype=np.float64)
    k = energies.size
    label = np.arange(k)
    floor = energies.copy()
    between = np.array(barriers, dtype=np.float64).reshape(k, k)
    active = list(range(k))
    while len(active) > 1:
        height = between[np.ix_(active, active)] - np.maximum.outer(floor[active], floor[active])
        np.fill_diagonal(height, np.inf)
        i, j = np.unravel_index(np.argmin(height), height.shape)
        if not np.isfinite(height[i, j]):
            return  # the rest are not connected
        a, b = active[i], active[j]
        label[label == b] = a
        floor[a] = min(floor[a], floor[b])
        between[a] = between[:, a] = np.minimum(between[a], between[b])
        active.remove(b)
        yield label.copy(), float(height[i, j])


def elder_rule(
    energies: np.ndarray, barriers: np.ndarray, min_barrier: float
) -> tuple[np.ndarray, np.ndarray]:
    """One pass of the elder rule: ``(group, heights)``, :func:`merge_by_persistence`'s groups at
    ``min_barrier`` and every join's height (:func:`merge_heights`), for callers that need both."""
    energies = np.asarray(energies, dtype=np.float64)
    label = np.arange(energies.size)
    heights = []
    merging = True
    for joined, height in _elder_joins(energies, barriers):
        merging = merging and height < min_barrier  # the joins below it come first
        if merging:
            label = joined
        heights.append(height)
    order = sorted(set(label.tolist()), key=lambda g: energies[label == g].min())  # by floor
    out = np.empty(energies.size, dtype=np.int64)
    for rank, g in enumerate(order):
        out[label == g] = rank
    return out, np.array(heights, dtype=np.float64)


def merge_by_persistence(energies: np.ndarray, barriers: np.ndarray, min_barrier: float) -> np.ndarray:
    """Group minima by the elder rule of topological persistence: join the two groups whose
    barrier (the lowest between their members), counted from the higher of the two groups' floors
    (each group's lowest member), is the lowest, and repeat while it is below ``min_barrier``.

    A shallow minimum joins a deeper neighbour it escapes to; two deep minima it lies between stay
    apart unless the barrier between them is low (single linkage, joining every pair whose barrier
    is below ``min_barrier`` above the higher of the two, would chain them through it).
    Returns the group of each minimum, numbered by the group's floor (0 = deepest).
    """
    return elder_rule(energies, barriers, min_barrier)[0]


def merge_heights(energies: np.ndarray, barriers: np.ndarray) -> np.ndarray:
    """The persistence of the minima: the barrier (counted from the higher floor) at which each
    join of the elder rule (:func:`merge_by_persistence`) happens, lowest first; ``k - 1`` values
    for ``k`` connected minima. ``merge_by_persistence(..., t)`` leaves one group more than the
    number of heights below ``t``. A gap in the heights is a scale at which the states are
    distinct; heights that rise evenly are a continuum with no such scale."""
    return elder_rule(energies, barriers, 0.0)[1]


def group_barriers(barriers: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Barrier between groups of minima: the lowest barrier between any of their members."""
    m = int(label.max()) + 1 if label.size else 0
    out = np.full((m, m), np.inf)
    for g in range(m):
        for f in range(m):
            sub = barriers[np.ix_(label == g, label == f)]
            out[g, f] = sub.min() if g != f else np.diag(barriers)[label == g].min()
    return out


def spanning_edges(barriers: np.ndarray) -> list[tuple[int, int]]:
    """The barrier tree: minimum spanning tree (forest, where barriers are infinite) of a barrier
    matrix, as sorted ``(g, f)`` pairs with ``g < f``."""
    k = barriers.shape[0]
    graph = nx.Graph()
    graph.add_nodes_from(range(k))
    for g in range(k):
        for f in range(g + 1, k):
            if np.isfinite(barriers[g, f]):
                graph.add_edge(g, f, weight=float(barriers[g, f]))
    return sorted((min(e), max(e)) for e in nx.minimum_spanning_edges(graph, data=False))
