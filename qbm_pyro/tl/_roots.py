"""Root of :func:`qbm_pyro.tl.trajectory`: check the root arguments and find the root cell."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from qbm_pyro.tl._diffusion import MAX_ROOT_CELLS

Data = Any  # anndata.AnnData | mudata.MuData; both expose obs, obs_names, n_obs.

AUTO_ROOTS = ("auto_energy", "auto_diffusion")


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
    if isinstance(root, str) and root == "auto_energy":
        assert energy is not None  # checked in _check_root_args
        w = affinities + sp.identity(affinities.shape[0], format="csr")
        smoothed = (w @ energy) / np.asarray(w.sum(axis=1)).ravel()
        return int(np.argmax(smoothed)), "auto_energy"
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
