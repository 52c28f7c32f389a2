"""Root of :func:`qbm_pyro.tl.trajectory`: check the root arguments and find the root cell."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import rankdata

from qbm_pyro.tl._diffusion import MAX_ROOT_CELLS, _pseudotime

Data = Any  # anndata.AnnData | mudata.MuData; both expose obs, obs_names, n_obs.

AUTO_ROOTS = ("auto_energy", "auto_diffusion")

#: ``root="auto_energy"`` warns when, from the best start, the energy falls along the pseudotime
#: with a Spearman correlation weaker than ``-MIN_ROOT_DESCENT`` (0.5: a large correlation by
#: Cohen's convention; the energy then explains under a quarter of the ordering's rank variance).
MIN_ROOT_DESCENT = 0.5

#: ``root="auto_energy"`` ranks each candidate state from at most this many of its cells.
DESCENT_RANKING_CELLS = 64

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
    if isinstance(root, str) and root == "auto_energy":  # chosen by descent_root_group instead
        raise ValueError("root='auto_energy' is resolved by descent_root_group")
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


def descent_root_group(
    states: np.ndarray,
    energy: np.ndarray,
    psi: np.ndarray,
    weights: np.ndarray,
    comp_labels: np.ndarray,
    seed: int,
    warn: bool = True,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Root group for ``root="auto_energy"``: the state from which the energy falls most along the
    pseudotime, and the evidence.

    Each state of the largest connected component with at least ``max(5, 1%)`` of its cells is
    tried as the root group: the mean diffusion pseudotime from its cells (a seeded sample of at
    most :data:`DESCENT_RANKING_CELLS`) is ranked against the cells' energies over the component
    (Spearman). The root is the state of the most negative correlation: the start from which
    the ordering runs downhill in energy, the reading of the energy as a potential that falls as
    cells differentiate. It uses every cell's energy along the ordering rather than one state's
    mean, so a small high-energy state off the main path (rare cells, an outlying cluster) does
    not take the root. The evidence: each candidate's correlation (``state_spearman``), the
    root's (``spearman``), the runner-up's and the margin, the root state's mean energy and its
    z-score against every cell of the component (``z``: how much higher the start sits);
    :class:`AmbiguousRootWarning` when the root's correlation is weaker than
    ``-MIN_ROOT_DESCENT`` (the energy explains less than a quarter of the ordering's rank
    variance from any start) or only one state competes (``warn=False``: no warning, the
    evidence says the same).
    """
    main = comp_labels == np.bincount(comp_labels).argmax()
    finite = main & np.isfinite(energy)
    if finite.sum() < 3:
        raise ValueError("root='auto_energy' needs finite energies on the main component of the cell graph.")
    names, counts = np.unique(states[finite], return_counts=True)
    min_cells = max(5, int(np.ceil(MIN_ROOT_STATE_FRACTION * finite.sum())))
    eligible = names[counts >= min_cells] if (counts >= min_cells).any() else names
    e_all = energy[finite]
    energy_rank = rankdata(e_all)
    rng = np.random.default_rng(seed)
    rhos = {}
    for name in eligible:
        members = np.flatnonzero(finite & (states == name))
        if members.size > DESCENT_RANKING_CELLS:
            members = np.sort(rng.choice(members, DESCENT_RANKING_CELLS, replace=False))
        pt = _pseudotime(psi, weights, int(members[0]), comp_labels, members)[finite]
        rho = np.corrcoef(rankdata(pt), energy_rank)[0, 1]
        rhos[str(name)] = float(rho) if np.isfinite(rho) else 0.0
    ranked = sorted(rhos, key=lambda k: rhos[k])
    top = ranked[0]
    e_root = energy[finite & (states == top)]
    evidence: dict[str, Any] = {
        "method": "descent",
        "root_state": top,
        "root_mean_energy": float(e_root.mean()),
        "z": float((e_root.mean() - e_all.mean()) / (e_all.std() or 1.0)),
        "spearman": rhos[top],
        "state_spearman": {k: rhos[k] for k in ranked},
        "n_states": len(ranked),
        "runner_up_state": ranked[1] if len(ranked) > 1 else "",
        "runner_up_spearman": rhos[ranked[1]] if len(ranked) > 1 else float("nan"),
    }
    evidence["margin"] = evidence["runner_up_spearman"] - evidence["spearman"]
    evidence["clear"] = bool(len(ranked) > 1 and rhos[top] <= -MIN_ROOT_DESCENT)
    if warn and not evidence["clear"]:
        warn_unclear_root(evidence, stacklevel=4)
    members = np.flatnonzero(finite & (states == top))
    if members.size > MAX_ROOT_CELLS:
        members = np.sort(rng.choice(members, MAX_ROOT_CELLS, replace=False))
    return members, evidence


def warn_unclear_root(evidence: dict[str, Any], stacklevel: int) -> None:
    """:class:`AmbiguousRootWarning` for a root whose descent is weak or has no competitor."""
    top = evidence["root_state"]
    why = (
        "only one state competes"
        if evidence["n_states"] < 2
        else f"from the best start, state {top!r}, the energy falls with Spearman {evidence['spearman']:.2f} "
        f"along the pseudotime, weaker than -{MIN_ROOT_DESCENT}"
    )
    warn_no_clear_root(why, stacklevel)


def warn_no_clear_root(why: str, stacklevel: int) -> None:
    """:class:`AmbiguousRootWarning` that the landscape gives no clear root, because ``why``
    (``stacklevel`` counted from the caller of this function)."""
    warnings.warn(
        f"root='auto_energy': {why}; the landscape gives no clear root. Give a root cell or "
        "group if you know one.",
        AmbiguousRootWarning,
        stacklevel=stacklevel + 1,
    )
