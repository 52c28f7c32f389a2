"""Readers of the result of :func:`qbm_pyro.tl.trajectory`: graphs and energy statistics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import spearmanr

__all__ = ["cell_graph", "energy_along_pseudotime", "trajectory_graph"]

Data = Any  # anndata.AnnData | mudata.MuData; both expose obs, obsp, uns, obs_names.


def trajectory_graph(data: Data, key: str = "qbm") -> nx.DiGraph:
    """The coarse state graph written by :func:`trajectory`, as a :class:`networkx.DiGraph`.

    Parameters
    ----------
    data
        MuData or AnnData on which :func:`trajectory` ran.
    key
        The ``key_added`` given to :func:`trajectory`.

    Returns
    -------
    networkx.DiGraph
        One node per state (named as in ``obs[f"{key}_state"]``) with attributes ``n_cells``,
        ``mean_pseudotime``, ``mean_energy``, ``branch``, ``terminal`` and ``root``; one edge per
        pair of states joined in the kNN graph, from the earlier to the later state, with
        attributes ``flow``, ``connectivity`` (also as ``weight``) and ``in_tree``. Graph
        attributes: ``root`` (the root cell's name) and ``root_state``.

    Examples
    --------
    >>> import numpy as np, anndata as ad
    >>> from qbm_pyro.tl import trajectory, trajectory_graph
    >>> q = np.random.default_rng(0).uniform(size=(200, 8))
    >>> adata = ad.AnnData(q, obsm={"X_qbm": q})  # anndata < 0.12 takes n_obs from X, not obsm
    >>> trajectory(adata, root=0)
    >>> graph = trajectory_graph(adata)
    >>> sorted(graph.nodes) == sorted(adata.obs["qbm_state"].cat.categories)
    True
    """
    result = _get_result(data, key)
    states = [str(s) for s in np.asarray(result["states"])]
    terminal = {str(s) for s in np.asarray(result["terminal_states"])}
    root = result["root"]
    graph = nx.DiGraph(root=str(root["name"]), root_state=str(root["state"]))
    for i, name in enumerate(states):
        graph.add_node(
            name,
            n_cells=int(result["state_n_cells"][i]),
            mean_pseudotime=float(result["state_mean_pseudotime"][i]),
            mean_energy=float(result["state_mean_energy"][i]),
            branch=str(result["state_branch"][i]),
            terminal=name in terminal,
            root=name == str(root["state"]),
        )
    edges = np.asarray(result["edges"]).reshape(-1, 2)
    for (a, b), flow, conn, in_tree in zip(
        edges, result["edge_flow"], result["edge_connectivity"], result["edge_in_tree"]
    ):
        graph.add_edge(
            states[a],
            states[b],
            flow=float(flow),
            connectivity=float(conn),
            weight=float(conn),
            in_tree=bool(in_tree),
        )
    return graph


def cell_graph(data: Data, key: str = "qbm") -> nx.Graph:
    """The cell-level kNN graph written by :func:`trajectory`, as a :class:`networkx.Graph`.

    Meant for inspection of small data: networkx holds one Python object per edge, so for
    100k+ cells work on the sparse ``obsp[f"{key}_connectivities"]`` instead.

    Parameters
    ----------
    data
        MuData or AnnData on which :func:`trajectory` ran.
    key
        The ``key_added`` given to :func:`trajectory`.

    Returns
    -------
    networkx.Graph
        Nodes are the cell names; edge attribute ``weight`` is the Gaussian-kernel affinity.

    Examples
    --------
    >>> import numpy as np, anndata as ad
    >>> from qbm_pyro.tl import cell_graph, trajectory
    >>> q = np.random.default_rng(0).uniform(size=(100, 8))
    >>> adata = ad.AnnData(q, obsm={"X_qbm": q})  # anndata < 0.12 takes n_obs from X, not obsm
    >>> trajectory(adata, root=0)
    >>> cell_graph(adata).number_of_nodes()
    100
    """
    name = f"{key}_connectivities"
    if name not in data.obsp:
        raise ValueError(f"You need to run `qbm_pyro.tl.trajectory` first: `.obsp[{name!r}]` not found.")
    graph = nx.from_scipy_sparse_array(sp.csr_array(data.obsp[name]), edge_attribute="weight")
    return nx.relabel_nodes(graph, dict(enumerate(np.asarray(data.obs_names).astype(str))))


def energy_along_pseudotime(
    data: Data, key: str = "qbm", *, energy_key: str = "qbm_energy"
) -> dict[str, Any]:
    """Does the prior energy change along the pseudotime?

    Whether differentiation runs downhill in the learned energy landscape (progenitors in
    high-energy, improbable regions, mature cells in deep wells) is an empirical question, not
    a property of the model: the prior is fitted to how many cells occupy each code, so abundant
    mature types get low energy, but a large progenitor pool or a trajectory whose end states
    are rare can reverse the trend. This helper measures it; it assumes nothing.

    Parameters
    ----------
    data
        MuData or AnnData on which :func:`trajectory` ran, with ``obs[energy_key]``.
    key
        The ``key_added`` given to :func:`trajectory`.
    energy_key
        ``obs`` column of per-cell prior energies.

    Returns
    -------
    dict
        ``"spearman"`` (Spearman's rho of energy vs pseudotime over the cells where both are
        finite; negative = downhill), ``"pvalue"``, ``"n_cells"``, ``"branch_spearman"``
        (``{branch: rho}``) and ``"states"``, a :class:`pandas.DataFrame` indexed by state with
        columns ``n_cells``, ``mean_pseudotime``, ``mean_energy``, ``branch``, sorted by mean
        pseudotime.

    Examples
    --------
    >>> import numpy as np, anndata as ad
    >>> from qbm_pyro.tl import energy_along_pseudotime, trajectory
    >>> t = np.linspace(0, 1, 300)
    >>> q = 1 / (1 + np.exp(-20 * (t[:, None] - np.linspace(0, 1, 16)[None, :])))
    >>> adata = ad.AnnData(obs={"qbm_energy": -t}, obsm={"X_qbm": q})
    >>> trajectory(adata, root=0)
    >>> bool(energy_along_pseudotime(adata)["spearman"] < -0.9)
    True
    """
    result = _get_result(data, key)
    pt_key = f"{key}_pseudotime"
    if energy_key not in data.obs:
        raise KeyError(
            f"`energy_key` {energy_key!r} not found in `.obs`; `qbm_pyro.tl.qbm` writes `obs['qbm_energy']`."
        )
    pseudotime = data.obs[pt_key].to_numpy(dtype=float)
    energy = data.obs[energy_key].to_numpy(dtype=float)
    branch = data.obs[f"{key}_branch"].astype(str).to_numpy()
    ok = np.isfinite(pseudotime) & np.isfinite(energy)
    rho, pvalue = _spearman(pseudotime[ok], energy[ok])
    branch_rho = {
        b: _spearman(pseudotime[ok & (branch == b)], energy[ok & (branch == b)])[0]
        for b in sorted(set(branch[ok]))
    }
    states = data.obs[f"{key}_state"].astype(str).to_numpy()
    frame = pd.DataFrame({"state": states, "pseudotime": pseudotime, "energy": energy})
    per_state = frame.groupby("state", sort=False).agg(
        n_cells=("pseudotime", "size"),
        mean_pseudotime=("pseudotime", "mean"),
        mean_energy=("energy", "mean"),
    )
    branch_of = dict(zip(map(str, result["states"]), map(str, result["state_branch"])))
    per_state["branch"] = [branch_of.get(s, "") for s in per_state.index]
    return {
        "spearman": rho,
        "pvalue": pvalue,
        "n_cells": int(ok.sum()),
        "branch_spearman": branch_rho,
        "states": per_state.sort_values("mean_pseudotime"),
    }


def _get_result(data: Data, key: str) -> Mapping[str, Any]:
    name = f"{key}_trajectory"
    if name not in data.uns:
        raise ValueError(f"You need to run `qbm_pyro.tl.trajectory` first: `.uns[{name!r}]` not found.")
    return data.uns[name]


def _spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    res = spearmanr(x, y)
    return float(res.statistic), float(res.pvalue)
