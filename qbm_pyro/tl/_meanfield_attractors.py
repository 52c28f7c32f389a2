"""``tl.attractors(method="meanfield")``: the prior's states at its own temperature, by mean field.

A code minimum of ``E(z)`` is a state at temperature zero. The prior is sampled at β = 1, where
two minima that a fraction of kT separates are one state and a broad basin outweighs a deep,
narrow one. The naive mean-field free energy of a quadratic machine over magnetisations
``m ∈ (0, 1)^n``,

    F(m) = -h·m - Σ_{i<j} J_ij m_i m_j + Σ_i [m_i log m_i + (1 - m_i) log(1 - m_i)],

is stationary where ``m = σ(h + J m)``; its local minima are the machine's thermodynamic states at
β = 1 (a weakly coupled machine has one, the paramagnetic state; a Hopfield machine below its
critical temperature has one per stored pattern). Each cell's posterior probabilities are iterated
to the fixed point they flow to (damped parallel updates), and cells that reach the same fixed
point are one state. The temperature merges what is shallow; fixed points that a free-energy
barrier below ``min_barrier`` (1 kT in ``tl.attractors``) separates are merged as well, as the
code minima of ``method="greedy"`` are (a sharper prior has shallow sub-states within one cell
state).

Each state gets its magnetisation, its free energy, the free-energy barriers to the others (the
highest ``F`` on the minimum free-energy path between two magnetisations, found by the string
method: an upper bound on the saddle, and the saddle itself when the string has converged), its
code (``m > 1/2``) and that code's local minimum over codes, with the single-flip barriers and
paths between those minima (as ``"greedy"``), its cells, and its basin weight under the prior (the
fraction of prior samples whose mean-field flow ends in it).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from qbm_pyro.tl._barriers import (
    barrier_to_nearest,
    elder_rule,
    group_barriers,
    minimax_closure,
    pairwise_barriers,
)
from qbm_pyro.tl._energy_landscape import EnergyLandscape
from qbm_pyro.tl._graph_attractors import _tree_and_paths

__all__ = [
    "flow_to_states",
    "free_energy",
    "group_fixed_points",
    "line_barriers",
    "mean_field_flow",
    "mean_field_states",
    "meanfield_attractors",
    "merged_states",
    "MergedStates",
    "path_barriers",
]

#: Weight of the old magnetisation in each damped update (parallel updates of a strongly coupled
#: machine oscillate undamped).
DAMPING = 0.5
#: Updates at most, and the largest change of any magnetisation that counts as converged.
MAX_ITER = 2000
TOL = 1e-6
#: Two fixed points are one state when no magnetisation differs by more than this.
STATE_TOL = 0.05
#: Rows iterated together.
CHUNK = 2048
#: The string method of :func:`path_barriers`: images along each path, steps, step size (in
#: logit space), points evaluated on each segment between two images, pairs moved together,
#: and the largest |logit| an image may reach.
PATH_IMAGES = 24
PATH_STEPS = 600
PATH_STEP = 0.1
PATH_SUBDIVISIONS = 8
PAIR_CHUNK = 256
LOGIT_CLIP = 30.0
#: Strings run from each state to its nearest states (magnetisations) only; the other pairs get
#: the best chain of computed barriers (a path through a third state is a path too).
PATH_NEIGHBOURS = 8


def mean_field_flow(
    h: np.ndarray,
    J_sym: np.ndarray,
    m0: np.ndarray,
    *,
    damping: float = DAMPING,
    max_iter: int = MAX_ITER,
    tol: float = TOL,
) -> tuple[np.ndarray, np.ndarray]:
    """Iterate ``m ← damping · m + (1 - damping) · σ(h + J m)`` from each row of ``m0``.

    Parameters
    ----------
    h, J_sym
        Biases ``(n,)`` and symmetric couplings ``(n, n)`` (zero diagonal) of ``E(z) = -h·z - ½ zᵀJz``.
    m0
        Starting magnetisations ``(B, n)`` in ``[0, 1]`` (posterior probabilities, or codes).
    damping, max_iter, tol
        Damping, the most updates, and the change below which a row has converged.

    Returns
    -------
    The fixed points ``(B, n)`` and whether each row converged ``(B,)``.
    """
    m = np.clip(np.array(m0, dtype=np.float64, ndmin=2), 0.0, 1.0)
    converged = np.zeros(m.shape[0], dtype=bool)
    for start in range(0, m.shape[0], CHUNK):  # rows in cache-sized blocks
        block = m[start : start + CHUNK]
        active = np.ones(block.shape[0], dtype=bool)
        for _ in range(int(max_iter)):
            rows = np.flatnonzero(active)
            if rows.size == 0:
                break
            moving = slice(None) if rows.size == block.shape[0] else rows  # all moving: no gather
            old = block[moving]
            new = damping * old + (1.0 - damping) * expit(h + old @ J_sym)
            change = np.abs(new - old).max(axis=1)
            block[moving] = new
            active[rows[change < tol]] = False
        converged[start : start + CHUNK] = ~active
    return m, converged


def free_energy(h: np.ndarray, J_sym: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Naive mean-field free energy ``F(m)`` (kT) of each row of ``m`` (module docstring)."""
    m = np.array(m, dtype=np.float64, ndmin=2)
    q = np.clip(m, 1e-12, 1 - 1e-12)
    negentropy = (q * np.log(q) + (1 - q) * np.log(1 - q)).sum(axis=1)
    return -m @ h - 0.5 * np.einsum("bi,ij,bj->b", m, J_sym, m) + negentropy


def group_fixed_points(m: np.ndarray, tol: float = STATE_TOL) -> tuple[np.ndarray, np.ndarray]:
    """Group fixed points that agree within ``tol`` in every unit; returns each row's group and
    the groups' mean magnetisations, in order of first appearance."""
    m = np.asarray(m, dtype=np.float64)
    label = np.full(m.shape[0], -1, dtype=np.int64)
    centres = []
    while (label < 0).any():
        first = int(np.flatnonzero(label < 0)[0])
        member = (label < 0) & (np.abs(m - m[first]).max(axis=1) < tol)
        label[member] = len(centres)
        centres.append(m[member].mean(axis=0))
    return label, np.asarray(centres).reshape(-1, m.shape[1])


def mean_field_states(
    h: np.ndarray, J_sym: np.ndarray, probs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The states the rows of ``probs`` flow to, lowest free energy first.

    Returns each row's state, the states' magnetisations ``(k, n)`` and free energies ``(k,)``,
    and whether each row's flow converged."""
    fixed, converged = mean_field_flow(h, J_sym, probs)
    label, centres = group_fixed_points(fixed)
    energy_f = free_energy(h, J_sym, centres)
    order = np.argsort(energy_f, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[label], centres[order], energy_f[order], converged


def line_barriers(h: np.ndarray, J_sym: np.ndarray, centres: np.ndarray, n_points: int = 101) -> np.ndarray:
    """Free-energy barriers between states: for each pair, the highest ``F`` on the straight line
    between their magnetisations (an upper bound on the saddle between them); the diagonal holds
    the states' own free energies."""
    k = centres.shape[0]
    out = np.diag(free_energy(h, J_sym, centres)) if k else np.zeros((0, 0))
    t = np.linspace(0.0, 1.0, n_points)[:, None]
    for g in range(k):
        for f in range(g + 1, k):
            line = (1 - t) * centres[g] + t * centres[f]
            out[g, f] = out[f, g] = max(free_energy(h, J_sym, line).max(), out[g, g], out[f, f])
    return out


class MergedStates(NamedTuple):
    """The mean-field states of a set of rows and their grouping (:func:`merged_states`)."""

    #: Each row's state, the states' magnetisations and free energies, whether each row's flow
    #: converged, the states' barriers (:func:`path_barriers`), each state's group, and the
    #: heights of the elder rule's joins (:func:`~qbm_pyro.tl._barriers.merge_heights`).
    cell_state: np.ndarray
    centres: np.ndarray
    energy_f: np.ndarray
    converged: np.ndarray
    state_barriers: np.ndarray
    group: np.ndarray
    heights: np.ndarray

    @property
    def representatives(self) -> np.ndarray:
        """Each group's lowest-free-energy state (groups are numbered by it, so the first)."""
        k = int(self.group.max()) + 1 if self.group.size else 0
        return np.array([np.flatnonzero(self.group == g)[0] for g in range(k)], dtype=np.int64)

    @property
    def group_energy(self) -> np.ndarray:
        """Each group's free energy: its lowest state's."""
        return self.energy_f[self.representatives]


def _equal_arc_length(X: np.ndarray) -> np.ndarray:
    """Each path's images ``(P, K, n)`` moved along it to equal arc length, the ends fixed."""
    P, K, _ = X.shape
    seg = np.linalg.norm(np.diff(X, axis=1), axis=2)
    s = np.concatenate([np.zeros((P, 1)), np.cumsum(seg, axis=1)], axis=1)
    s /= np.maximum(s[:, -1:], 1e-12)
    target = np.linspace(0.0, 1.0, K)
    idx = np.clip((s[:, :, None] <= target[None, None, :]).sum(axis=1) - 1, 0, K - 2)
    lo, hi = np.take_along_axis(s, idx, 1), np.take_along_axis(s, idx + 1, 1)
    w = np.clip((target[None] - lo) / np.maximum(hi - lo, 1e-12), 0.0, 1.0)[..., None]
    a = np.take_along_axis(X, idx[..., None], 1)
    b = np.take_along_axis(X, idx[..., None] + 1, 1)
    return (1 - w) * a + w * b


def path_barriers(h: np.ndarray, J_sym: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Free-energy barriers between states over the minimum free-energy path: for each pair, the
    highest ``F`` on a path found by the string method (E, Ren and Vanden-Eijnden 2002), or on
    the straight line (:func:`line_barriers`) where that is lower; the diagonal holds the states'
    own free energies.

    The path lives in logit space (``m = σ(x)``): ``PATH_IMAGES`` images start on the straight
    line between the two states, move down ``∇ₓF = (x - h - J m) ⊙ m(1 - m)`` and are spread back
    to equal arc length after every step, the ends fixed. ``F`` is then evaluated on every
    segment between images. Any path's highest ``F`` bounds the saddle between two states from
    above, so the result is an upper bound at most the straight line's; a converged string
    passes through the saddle, where the straight line can sit many kT above it (a valley that
    bends). Strings run from each state to its ``PATH_NEIGHBOURS`` nearest (the cost grows with
    the pairs); every pair then gets the lowest chain of barriers through other states, also a
    path between them."""
    out = line_barriers(h, J_sym, centres)
    k, n = centres.shape
    distance = np.linalg.norm(centres[:, None] - centres[None], axis=2)
    near = np.argsort(distance, axis=1)[:, 1 : PATH_NEIGHBOURS + 1]
    pairs = np.array(
        sorted({(min(g, int(f)), max(g, int(f))) for g in range(k) for f in near[g]}), dtype=np.int64
    )
    pairs = pairs.reshape(-1, 2)
    ends = logit(np.clip(centres, expit(-LOGIT_CLIP), expit(LOGIT_CLIP)))
    t = np.linspace(0.0, 1.0, PATH_IMAGES)[None, :, None]
    u = np.linspace(0.0, 1.0, PATH_SUBDIVISIONS, endpoint=False)[None, None, :, None]
    for start in range(0, len(pairs), PAIR_CHUNK):
        g, f = pairs[start : start + PAIR_CHUNK].T
        X = (1 - t) * ends[g][:, None] + t * ends[f][:, None]
        for _ in range(PATH_STEPS):
            inner = X[:, 1:-1]  # a view: the ends stay
            m = expit(inner)
            inner -= PATH_STEP * (inner - h - m @ J_sym) * m * (1 - m)
            np.clip(inner, -LOGIT_CLIP, LOGIT_CLIP, out=inner)
            X = _equal_arc_length(X)
        dense = ((1 - u) * X[:, :-1, None] + u * X[:, 1:, None]).reshape(len(g), -1, n)
        dense = np.concatenate([dense, X[:, -1:]], axis=1)
        top = free_energy(h, J_sym, expit(dense.reshape(-1, n))).reshape(len(g), -1).max(axis=1)
        top = np.maximum(top, np.maximum(out[g, g], out[f, f]))
        out[g, f] = out[f, g] = np.minimum(out[g, f], top)
    return minimax_closure(out)[0]  # the best chain of paths through other states


def merged_states(h: np.ndarray, J_sym: np.ndarray, probs: np.ndarray, min_barrier: float) -> MergedStates:
    """The mean-field states of the rows of ``probs`` (:func:`mean_field_states`) and their
    grouping: groups of states joined while the barrier between two (:func:`path_barriers`) is
    less than ``min_barrier`` above the higher of their lowest states
    (:func:`~qbm_pyro.tl._barriers.merge_by_persistence`), numbered by their lowest free energy,
    0 first."""
    cell_state, centres, energy_f, converged = mean_field_states(h, J_sym, probs)
    state_barriers = path_barriers(h, J_sym, centres)
    group, heights = elder_rule(energy_f, state_barriers, min_barrier)
    return MergedStates(cell_state, centres, energy_f, converged, state_barriers, group, heights)


def meanfield_attractors(
    landscape: EnergyLandscape,
    probs: np.ndarray,
    search_budget: int,
    n_prior_samples: int,
    seed: int,
    min_barrier: float = 0.0,
) -> tuple[dict, np.ndarray, np.ndarray]:
    """The attractors of ``method="meanfield"``: the mean-field states the cells flow to, with the
    states that a free-energy barrier below ``min_barrier`` (kT) separates merged into one.

    The barrier of two states is the highest ``F`` on the minimum free-energy path between them
    (:func:`path_barriers`; an upper bound on the saddle), counted from the higher of the two
    groups' lowest states; the lowest such pair is joined first, and joins repeat while one is
    below ``min_barrier`` (the elder rule of topological persistence: a shallow state joins the
    deeper one it escapes to, without chaining two deep states through it). A merged attractor
    is represented by its lowest-``F`` state (magnetisation, code, free energy); its cells and
    basin weight are those of all its states (``table["n_minima"]``: how many), and its barrier
    to another attractor is the lowest between their states.

    Returns ``(uns entry, attractor of each cell, mean-field state of each cell)``."""
    if not landscape.is_quadratic:
        raise ValueError("method='meanfield' needs a quadratic prior (h, J), not one with hidden units")
    h, J_sym = landscape.h, landscape.J_sym
    merged = merged_states(h, J_sym, probs, min_barrier)
    cell_state, centres, energy_f, converged, state_barriers, group, heights = merged
    reps = merged.representatives
    k = len(reps)
    cell_group = group[cell_state]
    names = [f"A{g}" for g in range(k)]
    states = (centres[reps] > 0.5).astype(np.int8)
    barriers = group_barriers(state_barriers, group)
    # over codes, as method="greedy": each state's code descended to its minimum, the single-flip
    # barriers between those minima and the paths of the barrier tree's edges
    minima = landscape.descend(states.astype(np.float64)).astype(np.int8)
    pair = pairwise_barriers(landscape, minima, method="auto", budget=search_budget)
    edges, edge_barrier, paths = _tree_and_paths(landscape, minima, barriers, pair, names, search_budget)
    state_weight, unassigned = _flow_weights(landscape, centres, n_prior_samples, seed)
    weight = np.bincount(group, weights=state_weight, minlength=k) if k else state_weight
    table = pd.DataFrame(
        {
            "energy": merged.group_energy,
            "code_energy": pair["barriers"].diagonal().copy(),
            "n_cells": np.bincount(cell_group, minlength=k),
            "basin_weight": weight,
            "n_minima": np.bincount(group, minlength=k),
            "barrier_to_nearest": barrier_to_nearest(barriers),
        },
        index=pd.Index(names, name="attractor"),
    )
    out = {
        "table": table,
        "states": states,
        "magnetisations": centres[reps],
        "energies": merged.group_energy,
        "n_cells": table["n_cells"].to_numpy(),
        "basin_weight": weight,
        "prior_unassigned": float(unassigned),
        "barriers": barriers,
        "barrier_exact": np.eye(k, dtype=bool),
        "code_barriers": pair["barriers"],
        "code_barrier_exact": pair["exact"],
        "edges": edges,
        "edge_barrier": edge_barrier,
        "paths": paths,
        # the mean-field states before merging (the "minima" of this method)
        "minima": (centres > 0.5).astype(np.int8),
        "minima_energies": energy_f.copy(),
        "minimum_attractor": group,
        "code_minima": minima,
        "state_magnetisations": centres,
        "state_barriers": state_barriers,
        "merge_heights": heights,
        "method": "meanfield",
        "params": {
            "min_barrier": float(min_barrier),
            "damping": DAMPING,
            "tol": TOL,
            "state_tol": STATE_TOL,
            "n_unconverged": int((~converged).sum()),
            "search_budget": int(search_budget),
            "n_prior_samples": int(n_prior_samples),
            "seed": int(seed),
        },
    }
    return out, cell_group, cell_state


def flow_to_states(h: np.ndarray, J_sym: np.ndarray, starts: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """The state (a row of ``centres``) the mean-field flow of each row of ``starts`` ends at,
    within ``STATE_TOL`` in every unit; -1 where it ends at none of them."""
    ends, _ = mean_field_flow(h, J_sym, starts)
    distance = np.stack([np.abs(ends - c).max(axis=1) for c in centres], axis=1)
    return np.where(distance.min(axis=1) < STATE_TOL, distance.argmin(axis=1), -1)


def _flow_weights(landscape, centres, n_samples: int, seed: int) -> tuple[np.ndarray, float]:
    """Fraction of prior samples whose mean-field flow ends in each state, and the rest (flows to
    a fixed point no cell reaches)."""
    k = centres.shape[0]
    if n_samples <= 0:
        return np.full(k, np.nan), float("nan")
    state = flow_to_states(landscape.h, landscape.J_sym, landscape.sample(n_samples, seed), centres)
    found = state >= 0
    return np.bincount(state[found], minlength=k) / state.size, float(1.0 - found.mean())
