"""Root of :func:`qbm_pyro.tl.trajectory`: check the root arguments and find the root cell."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from qbm_pyro.tl._barriers import MIN_BARRIER
from qbm_pyro.tl._diffusion import MAX_ROOT_CELLS
from qbm_pyro.tl._energy_landscape import EnergyLandscape
from qbm_pyro.tl._meanfield_attractors import merged_states

Data = Any  # anndata.AnnData | mudata.MuData; both expose obs, obs_names, n_obs.

AUTO_ROOTS = ("auto_energy", "auto_diffusion")

#: ``root="auto_energy"`` warns when the highest-energy state's mean energy exceeds the runner-up's
#: by less than this many pooled standard deviations (Cohen's d): no clear answer.
MIN_ROOT_EFFECT = 0.5

#: ``root="auto_energy"`` from the prior's mean-field states warns when the highest free energy
#: exceeds the runner-up's by less than this (kT): the two states' weights within a factor e, the
#: scale below which ``tl.attractors`` does not even count two states as distinct (``MIN_BARRIER``).
MIN_ROOT_FREE_ENERGY_MARGIN = 1.0

#: States smaller than this fraction of the root component (and than 5 cells) cannot be the root.
MIN_ROOT_STATE_FRACTION = 0.01


class AmbiguousRootWarning(UserWarning):
    """The energy landscape does not single out a root state (``root="auto_energy"``)."""


def _check_root_args(data: Data, root: Any, root_key: str | None, root_value: Any, energy_key: str) -> None:
    if root is None:
        if root_key is None:
            raise ValueError(
                "Give a root: a cell name or position (`root=`), `root_key=` and `root_value=` "
                "(an obs column and its value for the root group), root='auto_energy' or "
                "root='auto_diffusion'."
            )
        if root_key not in data.obs:
            raise KeyError(f"`root_key` {root_key!r} not found in `.obs`.")
        if not (data.obs[root_key] == root_value).any():
            values = pd.unique(data.obs[root_key].astype(str))[:20].tolist()
            raise ValueError(f"No cell has `.obs[{root_key!r}] == {root_value!r}`; values include {values}.")
        return
    if root_key is not None:
        raise ValueError("Give either `root` or `root_key`/`root_value`, not both.")
    if isinstance(root, str) and root == "auto_energy":
        if energy_key not in data.obs:
            raise KeyError(
                f"root='auto_energy' needs per-cell energies, but `.obs[{energy_key!r}]` was not "
                "found. Run `qbm_pyro.tl.qbm` first or pass `energy_key=`."
            )
        return
    if isinstance(root, str) and root in AUTO_ROOTS:
        return
    if isinstance(root, (bool, np.bool_)):
        raise TypeError(f"`root` must be a cell name, a position or one of {AUTO_ROOTS}.")
    if isinstance(root, (int, np.integer)):
        if not -data.n_obs <= root < data.n_obs:
            raise ValueError(f"Root position {root} is out of range for n_obs={data.n_obs}.")
        return
    if isinstance(root, str):
        if root not in data.obs_names:
            raise KeyError(
                f"Root cell {root!r} not found in `.obs_names`; give a cell name, a position, "
                f"or one of {AUTO_ROOTS}."
            )
        return
    raise TypeError(f"`root` must be a cell name, a position or one of {AUTO_ROOTS}, got {type(root)}.")


def _find_root(
    data: Data,
    root: int | str | None,
    root_key: str | None,
    root_value: Any,
    energy: np.ndarray | None,
    psi: np.ndarray,
    weights: np.ndarray,
    affinities: sp.csr_matrix,
) -> tuple[int, str]:
    """Position of the root cell and the rule that chose it."""
    if root is None:
        group = (data.obs[root_key] == root_value).to_numpy()
        return _group_tip(group, psi * weights), f"mean over {root_key} == {root_value!r}"
    if isinstance(root, str) and root == "auto_diffusion":
        dc1 = psi[:, 0]
        return int(np.abs(dc1 - np.median(dc1)).argmax()), "auto_diffusion"
    if isinstance(root, str) and root == "auto_energy":  # chosen by energy_root_group instead
        raise ValueError("root='auto_energy' is resolved by energy_root_group")
    if isinstance(root, str):
        return int(data.obs_names.get_loc(root)), "cell"
    return int(root) % data.n_obs, "cell"


def root_group(data: Data, root_key: str | None, root_value: Any, seed: int) -> np.ndarray | None:
    """Positions of the root group's cells (a seeded sample of at most
    :data:`~qbm_pyro.tl._diffusion.MAX_ROOT_CELLS`), or ``None`` for a single root cell."""
    if root_key is None:
        return None
    members = np.flatnonzero((data.obs[root_key] == root_value).to_numpy())
    if members.size > MAX_ROOT_CELLS:
        members = np.sort(np.random.default_rng(seed).choice(members, MAX_ROOT_CELLS, replace=False))
    return members


def _group_tip(group: np.ndarray, coords: np.ndarray) -> int:
    """The group cell furthest from the other cells along the line joining the two centroids."""
    members = np.flatnonzero(group)
    if members.size == group.size:
        raise ValueError("The root group holds every cell; choose a smaller group or give a root cell.")
    direction = coords[group].mean(axis=0) - coords[~group].mean(axis=0)
    return int(members[np.argmax(coords[members] @ direction)])


def expand_root(root: int, how, knn_idx: np.ndarray, states: np.ndarray, seed: int) -> np.ndarray | None:
    """A single root cell made robust: the cells of its state (``how="state"``, a seeded sample of at
    most :data:`MAX_ROOT_CELLS`, the root cell always in), itself and its ``how`` nearest
    neighbours (an int), or ``None`` (``how=0``: the cell alone)."""
    if how == "state":
        members = np.flatnonzero(states == states[root])
        if members.size > MAX_ROOT_CELLS:
            members = np.random.default_rng(seed).choice(members, MAX_ROOT_CELLS - 1, replace=False)
        return np.unique(np.concatenate([[root], members])).astype(np.int64)
    if int(how) <= 0:
        return None
    return np.unique(np.concatenate([[root], knn_idx[root, : int(how)]])).astype(np.int64)


def side_weights(psi: np.ndarray, root: int, states: np.ndarray, component: np.ndarray) -> np.ndarray:
    """Per diffusion component, how much it is a direction of progress from a single root cell
    (``root_expand="sides"``): ``1 - (1 - e) * s``, in ``[0, 1]``.

    ``e = |2 F(psi_k(root)) - 1|`` is how extreme the root is on the component (``F``: the
    empirical CDF over the cells of the root's connected ``component``; 1 at either end, 0 in
    the middle) and ``s`` the spread (standard deviation) of the component over the root's
    state divided by its spread over the component's cells, clipped to ``[0, 1]``. A *side
    direction* of the root, one that its own state already spans (``s`` near 1) and along which
    it sits in the middle (``e`` near 0), gets a weight near 0: the variation along it is there
    at the start, so it does not measure progress from the root (a root group spread along it
    averages it out in the same way). A direction along which the root is at an end (``e = 1``)
    or its state is narrow (``s = 0``: variation that arises later, such as two branches
    opening from the root) keeps its full weight.
    """
    cells = np.flatnonzero(component)
    values = psi[cells]
    at_root = psi[root]
    quantile = ((values < at_root).sum(axis=0) + 0.5 * (values == at_root).sum(axis=0)) / cells.size
    extreme = np.abs(2.0 * quantile - 1.0)
    members = cells[states[cells] == states[root]]
    spread_all = values.std(axis=0)
    ratio = np.divide(
        psi[members].std(axis=0), spread_all, out=np.zeros_like(spread_all), where=spread_all > 0
    )
    return 1.0 - (1.0 - extreme) * np.clip(ratio, 0.0, 1.0)


def energy_root_group(
    states: np.ndarray, energy: np.ndarray, comp_labels: np.ndarray, seed: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """Root group for ``root="auto_energy"``: the state of highest mean cell energy, and the evidence.

    Only states of the largest connected component with at least ``max(5, 1%)`` of its cells
    compete. The evidence: the root state's mean energy, the runner-up's, their margin, the margin
    in pooled standard deviations (``effect_size``, Cohen's d) and the root state's z-score
    against all cells of the component; :class:`AmbiguousRootWarning` when the effect size is
    below :data:`MIN_ROOT_EFFECT` (or only one state competes).
    """
    main = comp_labels == np.bincount(comp_labels).argmax()
    finite = main & np.isfinite(energy)
    names, counts = np.unique(states[finite], return_counts=True)
    min_cells = max(5, int(np.ceil(MIN_ROOT_STATE_FRACTION * finite.sum())))
    eligible = names[counts >= min_cells] if (counts >= min_cells).any() else names
    stats = []
    for name in eligible:
        e = energy[finite & (states == name)]
        stats.append((float(e.mean()), float(e.var(ddof=1)) if e.size > 1 else 0.0, e.size, str(name)))
    stats.sort(key=lambda s: -s[0])
    top = stats[0]
    e_all = energy[finite]
    sd_all = float(e_all.std()) or 1.0
    evidence: dict[str, Any] = {
        "root_state": top[3],
        "root_mean_energy": top[0],
        "z": (top[0] - float(e_all.mean())) / sd_all,
        "n_states": len(stats),
    }
    if len(stats) > 1:
        second = stats[1]
        pooled = np.sqrt(
            ((top[2] - 1) * top[1] + (second[2] - 1) * second[1]) / max(top[2] + second[2] - 2, 1)
        )
        evidence |= {
            "runner_up_state": second[3],
            "runner_up_mean_energy": second[0],
            "margin": top[0] - second[0],
            "effect_size": (top[0] - second[0]) / pooled if pooled > 0 else float("inf"),
        }
    else:
        evidence |= {"runner_up_state": "", "runner_up_mean_energy": float("nan"), "margin": float("nan")}
        evidence["effect_size"] = float("nan")
    evidence["clear"] = bool(
        np.isfinite(evidence["effect_size"]) and evidence["effect_size"] >= MIN_ROOT_EFFECT
    )
    if not evidence["clear"]:
        warnings.warn(
            f"root='auto_energy': the highest-energy state {top[3]!r} is not clearly above the next "
            f"(effect size {evidence['effect_size']:.2f} < {MIN_ROOT_EFFECT}); the landscape gives no "
            "clear root. Give a root cell or group if you know one.",
            AmbiguousRootWarning,
            stacklevel=3,
        )
    members = np.flatnonzero(finite & (states == top[3]))
    if members.size > MAX_ROOT_CELLS:
        members = np.sort(np.random.default_rng(seed).choice(members, MAX_ROOT_CELLS, replace=False))
    return members, evidence


def free_energy_root_group(
    data: Data, probs: np.ndarray, prior_key: str, comp_labels: np.ndarray, seed: int
) -> tuple[np.ndarray, dict[str, Any]] | None:
    """Root group for ``root="auto_energy"`` from the prior's states at its temperature: the cells
    of the mean-field state (``tl.attractors(method="meanfield")``) of highest free energy, the
    least stable state of the landscape.

    Only states of the largest connected component with at least ``max(5, 1%)`` of its cells
    compete. ``None`` when ``uns[prior_key]`` holds no quadratic prior over ``probs``' units or
    the prior has fewer than two such states at its temperature (the caller then falls back to
    :func:`energy_root_group`). The evidence: the states' free energies, the root's margin over
    the runner-up (kT) and its cells; :class:`AmbiguousRootWarning` below
    :data:`MIN_ROOT_FREE_ENERGY_MARGIN`.
    """
    try:  # the prior tl.qbm stored; none, one with hidden units, or malformed: no landscape root
        landscape = EnergyLandscape.from_data(data, None, prior_key)
    except (KeyError, NotImplementedError, ValueError):
        return None
    if probs.shape[1] != landscape.n:
        return None
    # the states of tl.attractors' default: mean-field states less than MIN_BARRIER apart merged,
    # each group at the free energy of its lowest state
    merged = merged_states(landscape.h, landscape.J_sym, probs, MIN_BARRIER)
    label = merged.group[merged.cell_state]
    energy_f = merged.group_energy
    main = comp_labels == np.bincount(comp_labels).argmax()
    counts = np.bincount(label[main], minlength=len(energy_f))
    min_cells = max(5, int(np.ceil(MIN_ROOT_STATE_FRACTION * main.sum())))
    eligible = np.flatnonzero(counts >= min_cells)
    if eligible.size < 2:
        warnings.warn(
            f"root='auto_energy': the prior has {eligible.size} state(s) at its temperature (mean "
            "field), so its landscape gives no root; falling back to the cell state of highest "
            "mean energy. Give a root cell or group if you know one.",
            AmbiguousRootWarning,
            stacklevel=3,
        )
        return None
    ranked = eligible[np.argsort(-energy_f[eligible], kind="stable")]
    top, second = int(ranked[0]), int(ranked[1])
    margin = float(energy_f[top] - energy_f[second])
    evidence: dict[str, Any] = {
        "method": "free_energy",
        "root_state": f"mean-field state of free energy {energy_f[top]:.2f}",
        "free_energies": [float(f) for f in np.sort(energy_f[eligible])[::-1]],
        "root_free_energy": float(energy_f[top]),
        "runner_up_free_energy": float(energy_f[second]),
        "margin": margin,
        "n_states": int(eligible.size),
        "root_cells": int(counts[top]),
        "clear": bool(margin >= MIN_ROOT_FREE_ENERGY_MARGIN),
    }
    if not evidence["clear"]:
        warnings.warn(
            f"root='auto_energy': the prior's least stable state is not clearly above the next "
            f"(free energy margin {margin:.2f} kT < {MIN_ROOT_FREE_ENERGY_MARGIN}); the landscape "
            "gives no clear root. Give a root cell or group if you know one.",
            AmbiguousRootWarning,
            stacklevel=3,
        )
    members = np.flatnonzero(main & (label == top))
    if members.size > MAX_ROOT_CELLS:
        members = np.sort(np.random.default_rng(seed).choice(members, MAX_ROOT_CELLS, replace=False))
    return members, evidence
