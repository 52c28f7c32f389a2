"""``qbm_pyro.tl.attractors``: cell states as basins of the learned energy, with barriers between them.

A local minimum (attractor) of the prior's energy ``E(z)`` is a code no single flip lowers.
Steepest descent from a cell's code (``method="greedy"``: flip the unit whose flip lowers the
energy most, until none does) ends in the minimum whose basin holds the code. ``method="anneal"``
first runs simulated annealing (dwave-samplers) from the code down to T≈0, then the same descent.

Minima that a small barrier separates are one state at the prior's temperature: the minima are
merged by the elder rule of persistence (:func:`~qbm_pyro.tl._barriers.merge_by_persistence`):
the two groups whose barrier, measured from the higher of their floors, is lowest join first, while
it is below ``min_barrier`` energy units (kT). Each
attractor (group of minima) then gets its code (its lowest minimum), its energy, its member cells,
its basin weight under the prior (the fraction of codes drawn from the prior with the model's
sampler that descend into it), the barriers to the other attractors (minimax paths of single
flips, ``_barriers``), and marker features (its code decoded by the model).

``method="meanfield"`` (the default for a quadratic prior) finds the prior's states at its own
temperature instead: the fixed points of the mean-field equations ``m = σ(h + J m)`` that the
cells' posterior probabilities flow to, those a free-energy barrier below ``min_barrier`` separates
merged as the minima are (``qbm_pyro.tl._meanfield_attractors``).

``method="graph"`` finds the basins on the cells (:mod:`~qbm_pyro.tl._graph_attractors`):
each cell's energy ``E(q)``, averaged over its neighbourhood in the cells' k-nearest-neighbour
graph, and the basins of that smoothed energy on the graph, merged when the saddle between two is
less than ``min_barrier`` above the higher floor (persistence clustering). It does not need the
prior to have separate minima over codes.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from numbers import Real

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import torch

from qbm_pyro.tl._attractor_markers import attractor_profiles, rank_markers
from qbm_pyro.tl._barriers import (
    EXACT_MAX_N,
    MIN_BARRIER,
    barrier_to_nearest,
    chained_path,
    elder_rule,
    group_barriers,
    near_pairs,
    pairwise_barriers,
    spanning_edges,
)
from qbm_pyro.tl._energy_landscape import EnergyLandscape
from qbm_pyro.tl._graph_attractors import graph_attractors
from qbm_pyro.tl._meanfield_attractors import meanfield_attractors

__all__ = ["attractors", "descend"]

log = logging.getLogger(__name__)

#: Above 14 units (``"greedy"``, ``"anneal"``), each code minimum's barriers are searched to its
#: this many nearest minima (Hamming distance); the other pairs get the lowest chain of searched
#: barriers through other minima (``_barriers.minimax_closure``), so the searches grow linearly in
#: the minima, not quadratically (a549's cells descend to up to 684). On a default paul15 fit
#: (101 minima, 64 units) 16 nearest gave every pair a barrier at or below that of searching all
#: 5,050 pairs, in 30 s against 322 s; 8 nearest left 7 % of pairs up to 0.35 kT higher.
SEARCH_NEIGHBOURS = 16

#: Above this many pairs of code minima to search (``"greedy"``, ``"anneal"``), warn first: each
#: search expands up to ``search_budget`` codes (~0.1 s on a trained 64-unit prior).
MANY_PAIRS = 20_000

#: The values of ``method``.
METHODS = ("meanfield", "graph", "greedy", "anneal")


def descend(
    z: torch.Tensor, h: torch.Tensor, J: torch.Tensor, *, max_steps: int | None = None
) -> torch.Tensor:
    """Steepest single-flip descent of the quadratic energy from each row of ``z`` to a local minimum.

    Parameters
    ----------
    z
        Binary codes ``(B, n)``.
    h, J
        Biases ``(n,)`` and couplings ``(n, n)`` (strict upper triangle used).
    max_steps
        Bound on the number of flips (default ``n * 10``).

    Returns
    -------
    The minima ``(B, n)``: no single flip lowers their energy.
    """
    land = EnergyLandscape.from_boltzmann(h.detach().double().numpy(), J.detach().double().numpy())
    out = land.descend(z.detach().double().numpy(), max_steps=max_steps)
    return torch.as_tensor(out, dtype=h.dtype)


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
    samples = result.record.sample[:, [list(result.variables).index(v) for v in order]]
    return samples.astype(np.float64)


def _free_bits_hint(record) -> str:
    """A sentence for the one-state warning when the fit recorded in ``uns[key]`` (by
    :func:`~qbm_pyro.tl.qbm`) trained with free bits on the Gaussian units, else ``""``."""
    params = record.get("params", {}) if isinstance(record, Mapping) else {}
    sizes = params.get("size_defaults", {}) if isinstance(params, Mapping) else {}
    free = sizes.get("continuous_free_bits") if isinstance(sizes, Mapping) else None
    if not isinstance(free, Real) or not free > 0:
        return ""
    return (
        f" This fit trained with free bits on the Gaussian units (continuous_free_bits={free:g}): "
        "they move part of the cells' states out of the code. On a 1,024-cell PBMC set the prior "
        "had one state with 0.5 in every seed and the coarse types (3 states) with 0, the default."
    )


def attractors(
    data: md.MuData | ad.AnnData,
    model=None,
    *,
    use_rep: str = "X_qbm",
    key: str = "qbm",
    method: str | None = None,
    min_barrier: float = MIN_BARRIER,
    n_neighbors: int = 15,
    metric: str = "hellinger",
    barrier_method: str = "auto",
    search_budget: int = 2000,
    n_prior_samples: int = 2000,
    n_markers: int = 10,
    modality: str | None = None,
    num_sweeps: int = 100,
    seed: int = 0,
    key_added: str = "qbm_attractor",
    copy: bool = False,
    progress_bar: bool = True,
) -> md.MuData | ad.AnnData | None:
    """Cell states as attractors of the learned energy: minima, basins, barriers and markers.

    Parameters
    ----------
    data
        Data with ``obsm[use_rep]`` written by :func:`qbm_pyro.tl.qbm` (its first ``n`` columns
        are the code's probabilities; a cell's code is ``q > 1/2``).
    model
        A fitted :class:`~qbm_pyro.QBMVAE`: its prior's energy, its sampler (basin weights) and
        its decoder (markers). Default: the ``h, J`` stored by :func:`~qbm_pyro.tl.qbm` in
        ``uns[key]['prior']`` (Gibbs sampling; markers from member cells).
    use_rep, key
        Where :func:`~qbm_pyro.tl.qbm` wrote the latent and its parameters.
    method
        ``"meanfield"`` (the prior's states at its own temperature: each cell's posterior
        probabilities iterated to the fixed point of the mean-field equations ``m = σ(h + J m)``
        they flow to, one state per fixed point, states a free-energy barrier below
        ``min_barrier`` apart merged, ordered by mean-field free energy;
        ``qbm_pyro.tl._meanfield_attractors``; quadratic priors only), ``"greedy"``
        (steepest single-flip descent over codes from each cell's hard code ``q > 1/2`` to a
        minimum of the prior, minima merged across barriers below ``min_barrier``),
        ``"anneal"`` (simulated annealing from the code down to T≈0, then the descent; quadratic
        priors only) or ``"graph"`` (basins of the cells' energies ``E(q)``, averaged over each
        cell and its ``n_neighbors`` nearest neighbours, on the cells' neighbour graph).
        Default (``None``): ``"meanfield"``, or ``"graph"`` for a prior with hidden units.
        At the training defaults (3 seeds; ``BENCHMARKS.md``, "Energy landscape") the mean-field
        states are mixology's 5 lines exactly in every seed; on the continua (paul15, a549) the
        prior has one or two states at its temperature. With the plain ELBO and straight-line
        barriers they were the closest of the three to paul15's types (ARI 0.46 against 0.36,
        graph, and 0.34, greedy) and the most stable across seeds (0.84 against 0.63 and 0.58).
    min_barrier
        Basins (``"graph"``) or minima (``"greedy"``, ``"anneal"``) whose barrier, counted from
        the higher of the two floors, is below this many energy units (kT at the prior's
        temperature β = 1) are merged into one attractor. At 1 kT a state leaves the shallower
        basin with probability ~e⁻¹ per attempt, so the two are not distinct states at the
        temperature the prior is sampled at; ``0`` keeps every minimum. With ``"meanfield"``
        the barrier is the free energy's over the minimum free-energy path between two fixed
        points (string method; the straight line between them can pass many kT above the
        saddle); a prior with more states (``train(continuous_kl_weight > 1)``) has fixed
        points a fraction of kT apart within one cell state.
    n_neighbors, metric
        The cell graph of ``method="graph"``: each cell's nearest neighbours in ``obsm[use_rep]``
        (``"hellinger"``, ``"hamming"`` or ``"euclidean"``, as in :func:`qbm_pyro.tl.trajectory`),
        made symmetric. Parts of the graph that are not connected are never merged.
    barrier_method
        ``"auto"`` (exact enumeration up to 14 units, search above), ``"exact"`` or ``"search"``
        (see ``qbm_pyro.tl._barriers``; above 14 units a barrier is an upper bound unless
        ``uns[key_added]['barrier_exact']`` says it was proven). With the search, ``"greedy"`` and
        ``"anneal"`` search each code minimum against its ``SEARCH_NEIGHBOURS`` (16) nearest
        minima in Hamming distance (and a spanning tree of them); every other pair gets the lowest
        chain of searched barriers through other minima, and a path of the barrier tree joins the
        chain's paths. The searches grow linearly with the minima.
    search_budget
        States the bottleneck search may expand per pair of minima.
    n_prior_samples
        Codes drawn from the prior for the basin weights (``0``: skip).
    n_markers
        Marker features per attractor (``0``: skip).
    modality
        Modality whose features are ranked (default the model's first).
    num_sweeps, seed
        Annealing length (``method="anneal"``); seed of the annealer, the prior samples and the
        decoder draws.
    key_added
        Name of the outputs.
    copy
        Return a modified copy instead of writing into ``data``.
    progress_bar
        Show a progress bar over the barrier searches between code minima (``"greedy"``,
        ``"anneal"``; above 14 units, where ~100 minima of a trained prior take minutes).

    Returns
    -------
    ``None``, or the copy. Writes

    `obs[key_added]` : categorical
        Each cell's attractor, ``"A0"`` the deepest.
    `obs[key_added + '_energy']` : float
        The attractor's energy: the energy of its code (``"greedy"``, ``"anneal"``) or the floor
        of its basin, the lowest smoothed cell energy in it (``"graph"``).
    `obs[key_added + '_minimum']` : categorical
        The minimum the cell descends to before coarse-graining (``"m0"`` the deepest): a code
        minimum, or (``"graph"``) a local minimum of the smoothed energy on the cell graph.
    `uns[key_added]` : dict
        ``table`` (DataFrame, one row per attractor: ``energy``, ``n_cells``, ``basin_weight``,
        ``n_minima``, ``barrier_to_nearest``), ``states`` ``(k, n)`` codes, ``energies``,
        ``n_cells``, ``basin_weight``, ``prior_unassigned`` (fraction of prior samples that
        descend to no attractor of the cells), ``barriers`` ``(k, k)`` (minimax barrier between
        attractors, the diagonal their energies), ``barrier_exact`` ``(k, k)``, ``edges``
        ``(e, 2)`` (the barrier tree: minimum spanning tree of the barriers), ``edge_barrier``,
        ``paths`` (``"Ai-Aj"`` → the path's codes), ``minima`` / ``minima_energies`` /
        ``minimum_attractor`` (before merging), ``merge_heights`` (the barrier of each join of
        the elder rule, from the higher floor, lowest first; not with ``"graph"``), ``markers``
        (long table: attractor, rank, feature, log2_ratio, value), ``profiles`` (attractor ×
        feature), ``params``.

        With ``method="graph"`` the attractor's code is the hard code of its floor cell;
        ``energies`` and ``barriers`` are levels of the smoothed cell energy (the barrier between
        two basins is the lowest level at which the graph joins them, exact; ``inf`` if it never
        does), ``code_barriers`` / ``code_barrier_exact`` are the minimax single-flip barriers
        between the attractors' codes and ``paths`` the single-flip paths of the barrier tree's
        edges over codes; a prior sample belongs to the basin of the cell nearest to it
        (expected Hamming distance to the cell's posterior); ``floor_cells`` are the floor cells'
        indices and ``smoothed_energy`` every cell's smoothed energy.

        With ``method="meanfield"`` ``energies`` are the states' mean-field free energies,
        ``barriers`` the highest free energy on the minimum free-energy path between two
        states' ``magnetisations`` (string method; an upper bound on the saddle, the saddle
        when the path has converged: ``barrier_exact`` is false off the diagonal), ``states``
        the codes ``m > 1/2``, ``code_minima`` those codes descended to
        their minima over codes, with ``code_barriers`` / ``code_barrier_exact`` and ``paths``
        between them; a prior sample belongs to the state its mean-field flow ends in. ``minima``
        are the mean-field states before states below ``min_barrier`` are merged (their codes;
        ``state_magnetisations``, ``state_barriers``), and an attractor is represented by its
        lowest state. ``merge_heights`` is their persistence: the barrier (kT, from the higher
        floor) of each join of the elder rule, lowest first; ``min_barrier=t`` leaves one state
        more than the heights below ``t``. A wide gap in the heights is a scale at which the
        prior has distinct states (mixology's five lines: joins under 0.9 kT, then 4-9 kT);
        heights that rise evenly with none above ~1 kT are a continuum (paul15).

    Examples
    --------
    >>> import qbm_pyro
    >>> mdata = qbm_pyro.datasets.pbmc_cite_2batch()
    >>> qbm_pyro.tl.qbm(mdata, batch_key="batch", n_latent=16, max_epochs=2, progress_bar=False)
    >>> qbm_pyro.tl.attractors(mdata, n_markers=0, n_prior_samples=200)
    >>> bool(mdata.obs["qbm_attractor"].str.startswith("A").all())
    True
    """
    if method is not None and method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    if not np.isfinite(min_barrier) or min_barrier < 0:
        raise ValueError(f"min_barrier must be a finite number >= 0, got {min_barrier!r}")
    landscape = EnergyLandscape.from_data(data, model, key)
    if method is None:
        method = "meanfield" if landscape.is_quadratic else "graph"
    if method == "graph" and (int(n_neighbors) != n_neighbors or n_neighbors < 1):
        raise ValueError(f"n_neighbors must be a positive integer, got {n_neighbors!r}")
    if method == "graph" and metric not in ("hellinger", "hamming", "euclidean"):
        raise ValueError(f"metric must be 'hellinger', 'hamming' or 'euclidean', got {metric!r}")
    if use_rep not in data.obsm:
        raise KeyError(f"obsm[{use_rep!r}] not found: run qbm_pyro.tl.qbm first")
    n = landscape.n
    probs = np.asarray(data.obsm[use_rep])[:, :n]
    if probs.shape[1] != n:
        raise ValueError(f"obsm[{use_rep!r}] has {probs.shape[1]} columns; the prior has {n} units")
    data = data.copy() if copy else data
    if method == "meanfield":
        out, cell_group, inverse = meanfield_attractors(
            landscape, probs, search_budget, n_prior_samples, seed, float(min_barrier)
        )
        out["params"]["use_rep"] = use_rep
        if len(out["table"]) == 1:
            log.warning(
                "tl.attractors: the prior has one state at its temperature (%d mean-field fixed "
                "point(s), joined by passes under min_barrier=%g kT; the joins' heights, uns[%r]"
                "['merge_heights']: %s): the cells' types are not separate attractors here (a "
                "continuum?). Cluster them with Leiden, order them with tl.trajectory, or lower "
                "min_barrier to see the sub-states.%s",
                len(out["minima"]),
                min_barrier,
                key_added,
                np.array2string(out["merge_heights"], precision=2, separator=", "),
                _free_bits_hint(data.uns.get(key, {})),
            )
        return _write(data, model, out, cell_group, inverse, key_added, n_markers, modality, seed, copy)
    if method == "graph":
        rep = np.asarray(data.obsm[use_rep], dtype=np.float64)
        if rep.shape[0] <= n_neighbors:
            raise ValueError(
                f"method='graph' needs more than n_neighbors={n_neighbors} cells, got {rep.shape[0]}"
            )
        out, cell_group, inverse = graph_attractors(
            landscape,
            probs,
            rep,
            int(n_neighbors),
            metric,
            float(min_barrier),
            search_budget,
            n_prior_samples,
            seed,
        )
        out["params"] |= {"use_rep": use_rep, "metric": metric, "n_neighbors": int(n_neighbors)}
        return _write(data, model, out, cell_group, inverse, key_added, n_markers, modality, seed, copy)
    codes = (probs > 0.5).astype(np.float64)
    if method == "anneal":
        if not landscape.is_quadratic:
            raise ValueError("method='anneal' needs a quadratic prior (h, J)")
        codes = _anneal(codes, landscape.h, np.triu(landscape.J_sym, 1), seed, num_sweeps)
    minima = landscape.descend(codes).astype(np.int8)
    raw, inverse = np.unique(minima, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    raw_energy = landscape.energy(raw)
    order = np.argsort(raw_energy, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    raw, raw_energy, inverse = raw[order], raw_energy[order], rank[inverse]

    searched = barrier_method == "search" or (barrier_method == "auto" and n > EXACT_MAX_N)
    todo = near_pairs(raw, SEARCH_NEIGHBOURS) if searched else None
    n_pairs = len(todo) if searched else 0
    if n_pairs > MANY_PAIRS:
        warnings.warn(
            f"tl.attractors(method={method!r}): the cells descend to {raw.shape[0]} code minima, "
            f"{n_pairs:,} barrier searches (up to search_budget={search_budget} codes each; "
            "hours on a trained prior). method='meanfield' (the default) reads the prior's "
            "states at its temperature in seconds.",
            UserWarning,
            stacklevel=2,
        )
    pair = pairwise_barriers(
        landscape,
        raw,
        method=barrier_method,
        budget=search_budget,
        pairs=todo,
        progress_bar=progress_bar,
    )
    group, heights = elder_rule(raw_energy, pair["barriers"], min_barrier)
    k = int(group.max()) + 1
    reps = np.array([np.flatnonzero(group == g)[0] for g in range(k)])  # lowest minimum of each group
    barriers = group_barriers(pair["barriers"], group)
    exact = np.ones((k, k), dtype=bool)
    for g in range(k):
        for f in range(k):
            if g != f:
                sub = pair["barriers"][np.ix_(group == g, group == f)]
                i, j = np.unravel_index(np.argmin(sub), sub.shape)
                exact[g, f] = pair["exact"][np.flatnonzero(group == g)[i], np.flatnonzero(group == f)[j]]
    names = [f"A{g}" for g in range(k)]
    cell_group = group[inverse]
    n_cells = np.bincount(cell_group, minlength=k)

    edges, edge_barrier, paths = _barrier_tree(landscape, raw, group, pair, barriers, names, search_budget)
    weight, unassigned = _basin_weights(landscape, raw, group, n_prior_samples, seed)
    nearest = barrier_to_nearest(barriers)
    table = pd.DataFrame(
        {
            "energy": barriers.diagonal(),
            "n_cells": n_cells,
            "basin_weight": weight,
            "n_minima": np.bincount(group, minlength=k),
            "barrier_to_nearest": nearest,
        },
        index=pd.Index(names, name="attractor"),
    )
    out = {
        "table": table,
        "states": raw[reps],
        "energies": barriers.diagonal().copy(),
        "n_cells": n_cells,
        "basin_weight": weight,
        "prior_unassigned": float(unassigned),
        "barriers": barriers,
        "barrier_exact": exact,
        "edges": edges,
        "edge_barrier": edge_barrier,
        "paths": paths,
        "minima": raw,
        "minima_energies": raw_energy,
        "minimum_attractor": group,
        "merge_heights": heights,
        "method": method,
        "params": {
            "min_barrier": float(min_barrier),
            "barrier_method": "exact" if bool(pair["exact"].all()) and n <= EXACT_MAX_N else barrier_method,
            "search_budget": int(search_budget),
            "n_prior_samples": int(n_prior_samples),
            "seed": int(seed),
            "use_rep": use_rep,
        },
    }
    return _write(data, model, out, cell_group, inverse, key_added, n_markers, modality, seed, copy)


def _write(data, model, out, cell_group, inverse, key_added, n_markers, modality, seed, copy):
    """Write the attractors into ``data`` (labels, energies, minima, markers, ``uns``)."""
    names = list(out["table"].index)
    data.obs[key_added] = pd.Categorical([names[g] for g in cell_group], categories=names)
    data.obs[f"{key_added}_energy"] = out["energies"][cell_group]
    data.obs[f"{key_added}_minimum"] = pd.Categorical(
        [f"m{i}" for i in inverse], categories=[f"m{i}" for i in range(out["minima"].shape[0])]
    )
    if n_markers > 0:
        labels = data.obs[key_added].astype(str).to_numpy()
        profiles = attractor_profiles(data, out["states"], labels, names, model, modality=modality, seed=seed)
        if profiles is not None:
            out["profiles"] = profiles
            out["markers"] = rank_markers(profiles, n_markers)
    data.uns[key_added] = out
    log.info(
        "tl.attractors (%s): %d cells, %d minima, %d attractors",
        out["method"], len(inverse), out["minima"].shape[0], len(names),
    )  # fmt: skip
    return data if copy else None


def _barrier_tree(landscape, raw, group, pair, barriers, names, budget):
    """Minimum spanning tree of the attractor barriers, with the path of each tree edge."""
    edges, values, paths = [], [], {}
    for g, f in spanning_edges(barriers):
        ig, jf = np.flatnonzero(group == g), np.flatnonzero(group == f)
        sub = pair["barriers"][np.ix_(ig, jf)]
        i, j = np.unravel_index(np.argmin(sub), sub.shape)
        paths[f"{names[g]}-{names[f]}"] = chained_path(landscape, raw, pair, ig[i], jf[j], budget=budget)
        edges.append((g, f))
        values.append(barriers[g, f])
    return np.asarray(edges, dtype=np.int64).reshape(-1, 2), np.asarray(values, dtype=np.float64), paths


def _basin_weights(landscape, raw, group, n_samples: int, seed: int) -> tuple[np.ndarray, float]:
    """Fraction of prior samples whose descent ends in each attractor, and the rest."""
    k = int(group.max()) + 1
    if n_samples <= 0:
        return np.full(k, np.nan), float("nan")
    samples = landscape.sample(n_samples, seed)
    ends = landscape.descend(samples).astype(np.int8)
    where = {r.tobytes(): int(group[i]) for i, r in enumerate(raw)}
    hits = np.array([where.get(e.tobytes(), -1) for e in ends])
    weight = np.bincount(hits[hits >= 0], minlength=k) / n_samples
    return weight.astype(np.float64), float((hits < 0).mean())
