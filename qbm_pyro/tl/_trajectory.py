"""Trajectory inference by graph diffusion on the discrete latent, with the energy landscape.

The verb :func:`trajectory` builds a sparse k-nearest-neighbour graph of the cells on their
posterior Bernoulli probabilities (``obsm["X_qbm"]``), turns it into a diffusion operator,
computes diffusion components and a diffusion pseudotime from a root cell, and summarises the
cells as a coarse, pseudotime-directed graph of states with branches. The helpers
:func:`trajectory_graph`, :func:`cell_graph` and :func:`energy_along_pseudotime` read the result
back as :mod:`networkx` graphs and as energy-versus-pseudotime statistics.

Nothing here forms a dense ``(n_obs, n_obs)`` array: the neighbour search is a tree/brute-force
search in row chunks (scikit-learn) or an approximate one (pynndescent), the operator is a
:mod:`scipy.sparse` matrix and its eigenvectors come from :func:`scipy.sparse.linalg.eigsh`.

Layout of this file: the verb and its readers first, then the workers (neighbours, kernel,
diffusion, root, states, branches), then small argument checks.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping
from typing import Any, Literal

import anndata as ad
import networkx as nx
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import eigsh
from scipy.stats import spearmanr

try:  # MuData is optional at import time so that AnnData-only users need not have it.
    from mudata import MuData
except ImportError:  # pragma: no cover - mudata is a declared dependency
    MuData = None  # type: ignore[assignment,misc]

__all__ = ["cell_graph", "energy_along_pseudotime", "trajectory", "trajectory_graph"]

logger = logging.getLogger(__name__)

Metric = Literal["hellinger", "hamming", "euclidean"]
KnnMethod = Literal["auto", "exact", "pynndescent"]
_METRICS = ("hellinger", "hamming", "euclidean")
_KNN_METHODS = ("auto", "exact", "pynndescent")
_AUTO_ROOTS = ("auto_energy", "auto_diffusion")
#: Above this many cells, ``knn_method="auto"`` switches from exact to approximate search.
EXACT_KNN_MAX_CELLS = 50_000
#: Eigenvalues closer than this to 1 belong to disconnected components and get zero DPT weight.
_UNIT_EIGENVALUE_TOL = 1e-6

Data = Any  # anndata.AnnData | mudata.MuData; both expose obs, obsm, obsp, uns, obs_names.


################################################################################
# The verb.
################################################################################


def trajectory(
    data: Data,
    root: int | str | None = None,
    *,
    use_rep: str = "X_qbm",
    n_binary: int | None = None,
    metric: Metric = "hellinger",
    n_neighbors: int = 15,
    n_dcs: int = 10,
    root_key: str | None = None,
    root_value: Any = None,
    energy_key: str = "qbm_energy",
    groups_key: str | None = None,
    resolution: float = 1.0,
    knn_method: KnnMethod = "auto",
    key_added: str = "qbm",
    seed: int = 0,
    copy: bool = False,
) -> Data | None:
    r"""Infer a branching trajectory by diffusion on the cells' discrete latent.

    The cells are joined in a k-nearest-neighbour graph on their posterior Bernoulli
    probabilities, the graph is turned into a Markov (random-walk) diffusion operator, and the
    diffusion pseudotime (DPT) of every cell is its diffusion distance from a root cell. The
    cells are then grouped into states (Leiden clusters or given groups) that form a coarse
    graph (PAGA-like) whose edges carry the diffusion flow between states and point from the
    earlier to the later state; the branches are read off that graph's maximum spanning tree.

    **Distance.** With ``metric="hellinger"`` (the default) the distance between two cells with
    probability vectors :math:`q, q' \in [0, 1]^n` is

    .. math::
        d(q, q')^2 = \sum_{i=1}^n \left(\sqrt{q_i} - \sqrt{q'_i}\right)^2
                     + \left(\sqrt{1 - q_i} - \sqrt{1 - q'_i}\right)^2
                   = 2 \sum_{i=1}^n H^2\!\left(\mathrm{Bern}(q_i), \mathrm{Bern}(q'_i)\right),

    twice the summed squared Hellinger distances of the units' Bernoulli posteriors. It is
    chosen because (i) it is a true metric, zero between identical posteriors; (ii) it is the
    Euclidean distance of the embedding :math:`q \mapsto (\sqrt q, \sqrt{1-q})`, so exact
    (tree or chunked brute-force) and approximate (pynndescent) Euclidean neighbour search apply
    unchanged and scale to 100k+ cells; (iii) locally it is the Fisher-Rao metric of the
    Bernoulli family, :math:`dq^2 / (4 q (1-q))`, so a change from 0.01 to 0.1 (the unit
    switches from "surely off" to "maybe on") counts more than one from 0.45 to 0.55, which
    Euclidean distance on :math:`q` treats alike; (iv) on hard codes it is
    :math:`\sqrt{2 \cdot \mathrm{Hamming}}`. The alternative ``metric="hamming"`` is the
    expected Hamming distance between independent draws,
    :math:`\sum_i q_i (1 - q'_i) + q'_i (1 - q_i) = \lVert q - q' \rVert^2 + u(q) + u(q')` with
    :math:`u(q) = \sum_i q_i (1 - q_i)`; it is not zero between a cell and itself, so uncertain
    cells are far from everything and confident cells become hubs (it is searched exactly via an
    asymmetric Euclidean embedding). ``metric="euclidean"`` is plain Euclidean distance. Columns
    of ``use_rep`` after the first ``n_binary`` (continuous latent means) are always compared by
    Euclidean distance and added to the squared distance of the binary part.

    **Diffusion.** Affinities use a Gaussian kernel with an adaptive bandwidth
    (:math:`\sigma_i` is the median distance of cell :math:`i` to its neighbours),
    :math:`W_{ij} = \sqrt{2\sigma_i\sigma_j/(\sigma_i^2+\sigma_j^2)}
    \exp(-d_{ij}^2/(\sigma_i^2+\sigma_j^2))` on the symmetrised kNN graph plus self-loops,
    followed by the density normalisation :math:`K = D^{-1} W D^{-1}` (Coifman-Lafon,
    :math:`\alpha = 1`). The random-walk operator is :math:`T = Z^{-1} K`,
    :math:`Z = \mathrm{diag}(K \mathbf 1)`; its top eigenpairs come from ``eigsh`` on the
    symmetric :math:`Z^{-1/2} K Z^{-1/2}`, and the right eigenvectors
    :math:`\psi_k = Z^{-1/2}\phi_k` (scaled to unit norm in the stationary measure) are the
    diffusion components. The pseudotime of cell :math:`x` from the root :math:`r` is

    .. math::
        \mathrm{dpt}(x) = \Big(\sum_{k=1}^{n_{dcs}}
            \big(\tfrac{\lambda_k}{1-\lambda_k}\big)^2 (\psi_k(x) - \psi_k(r))^2\Big)^{1/2},

    the distance between rows of the accumulated transition matrix
    :math:`\sum_{t \ge 1} T^t` restricted to the leading components [1], divided by its maximum
    so that it lies in :math:`[0, 1]`. Eigenvalues equal to 1 beyond the first (one per extra
    connected component) get weight zero, and cells outside the root's component get ``NaN``.

    **Root.** One of

    * a cell: its name in ``obs_names`` (``str``) or its position (``int``);
    * ``root_key``/``root_value``: the cells with ``obs[root_key] == root_value`` form the root
      group, and the root is the cell of that group that lies furthest from the other cells
      along the line joining the two centroids in the DPT-weighted diffusion space (the group's
      tip, not its medoid, so that the whole group gets a small pseudotime);
    * ``"auto_energy"``: the cell of highest prior energy ``obs[energy_key]`` after one step of
      neighbour averaging (so that a single noisy cell cannot win). Whether progenitors sit
      high in the energy landscape is a hypothesis: check it with
      :func:`energy_along_pseudotime` and against a known root before relying on it;
    * ``"auto_diffusion"``: the extreme cell of the first diffusion component, at the end
      furthest from its median. Its orientation is arbitrary: check it.

    **States and branches.** States are ``obs[groups_key]`` or Leiden clusters of the kNN graph
    (``leidenalg``, RB-configuration model at ``resolution``). Between states :math:`a, b` the
    flow is :math:`F_{ab} = \sum_{i \in a, j \in b} K_{ij} / \sum_{ij} K_{ij}`, the stationary
    probability that one random-walk step goes from :math:`a` to :math:`b`, and the
    connectivity is :math:`F_{ab} / (\pi_a \pi_b)`, the flow divided by its expectation when
    steps land anywhere in proportion to the stationary measure (> 1: more flow than chance).
    Edges point from the state of lower mean pseudotime to the later one. The branch tree is the
    maximum spanning tree of the connectivities, directed the same way; its sinks are the
    terminal states. The branch of a state is the set of terminal states reachable from it in
    that tree: ``"trunk"`` when it reaches all of them (and there are several), otherwise
    ``"to_<state>"`` or ``"to_<state>|<state>"``.

    Parameters
    ----------
    data
        :class:`mudata.MuData` or :class:`anndata.AnnData`. Everything is read from and written
        to this object's own (for MuData: global) ``obs``, ``obsm``, ``obsp`` and ``uns``.
    root
        Root cell (name or position), ``"auto_energy"`` or ``"auto_diffusion"``. Leave ``None``
        to use ``root_key``/``root_value``; one of the two ways must be given.
    use_rep
        Key of the representation in ``obsm``, shape ``(n_obs, d)``.
    n_binary
        Number of leading columns of ``use_rep`` that are Bernoulli probabilities. ``None`` reads
        ``uns[<use_rep without "X_">]["params"]["n_binary"]`` and, if that is absent, takes all
        columns as the representation.
    metric
        ``"hellinger"``, ``"hamming"`` (expected Hamming) or ``"euclidean"`` for the binary part.
    n_neighbors
        Neighbours per cell, not counting the cell itself.
    n_dcs
        Number of non-trivial diffusion components used for the pseudotime.
    root_key, root_value
        An ``obs`` column and one of its values defining the root group.
    energy_key
        ``obs`` column of per-cell prior energies (lower = more probable), used by
        ``root="auto_energy"`` and for the per-state mean energies (``NaN`` when absent).
    groups_key
        ``obs`` column of given states; ``None`` runs Leiden on the kNN graph.
    resolution
        Leiden resolution (ignored with ``groups_key``).
    knn_method
        ``"exact"`` (scikit-learn), ``"pynndescent"`` (approximate) or ``"auto"``: exact up to
        50,000 cells, approximate above when pynndescent is installed.
    key_added
        Prefix of every key written.
    seed
        Seed of the eigensolver start vector, of Leiden and of pynndescent.
    copy
        Return a modified copy instead of writing into ``data``.

    Returns
    -------
    MuData | AnnData | None
        The modified copy if ``copy=True``, else ``None``. Written (on the object itself; for a
        MuData at the global level):

        `obs[f"{key_added}_pseudotime"]` : :class:`pandas.Series` (dtype ``float64``)
            Diffusion pseudotime in ``[0, 1]``, 0 at the root; ``NaN`` off the root's component.
        `obs[f"{key_added}_state"]` : :class:`pandas.Series` (dtype ``category``)
            State of each cell (Leiden cluster or ``groups_key`` value).
        `obs[f"{key_added}_branch"]` : :class:`pandas.Series` (dtype ``category``)
            Branch of each cell (``"trunk"``, ``"to_<state>"``, ...).
        `obsm[f"X_{key_added}_diffmap"]` : :class:`numpy.ndarray` (``float64``, ``(n_obs, n_dcs)``)
            Non-trivial diffusion components :math:`\psi_1, \ldots, \psi_{n_{dcs}}`.
        `obsp[f"{key_added}_distances"]` : :class:`scipy.sparse.csr_matrix` (``float64``)
            Distances to the ``n_neighbors`` nearest neighbours (directed kNN graph).
        `obsp[f"{key_added}_connectivities"]` : :class:`scipy.sparse.csr_matrix` (``float64``)
            Symmetric Gaussian-kernel affinities :math:`W` (no self-loops).
        `uns[f"{key_added}_trajectory"]` : :class:`dict`
            Serialisable summary (arrays, strings and numbers only): ``params``, ``root``
            (``index``, ``name``, ``state``, ``method``), ``eigenvalues``, ``states``,
            ``state_n_cells``, ``state_mean_pseudotime``, ``state_mean_energy``,
            ``state_branch``, ``terminal_states``, ``edges`` (``(n_edges, 2)`` int positions in
            ``states``, earlier to later), ``edge_flow``, ``edge_connectivity``,
            ``edge_in_tree``. Read it as a graph with :func:`trajectory_graph`.

    Raises
    ------
    ValueError
        If ``use_rep`` is missing (run :func:`qbm_pyro.tl.qbm` first), if no root is given, or
        if an option is invalid.
    KeyError
        If the root cell, ``root_key``, ``groups_key`` or (for ``"auto_energy"``) ``energy_key``
        is not found.

    References
    ----------
    [1] Haghverdi, Büttner, Wolf, Buettner, Theis (2016) "Diffusion pseudotime robustly
    reconstructs lineage branching", Nature Methods 13, 845-848.
    [2] Coifman, Lafon (2006) "Diffusion maps", Appl. Comput. Harmon. Anal. 21, 5-30.
    [3] Wolf et al. (2019) "PAGA: graph abstraction reconciles clustering with trajectory
    inference through a topology preserving map of single cells", Genome Biology 20, 59.

    Examples
    --------
    >>> import numpy as np, anndata as ad
    >>> from qbm_pyro.tl._trajectory import trajectory, trajectory_graph
    >>> t = np.linspace(0, 1, 300)
    >>> q = 1 / (1 + np.exp(-20 * (t[:, None] - np.linspace(0, 1, 16)[None, :])))
    >>> adata = ad.AnnData(obs={"t": t}, obsm={"X_qbm": q})
    >>> trajectory(adata, root=0)
    >>> bool(adata.obs["qbm_pseudotime"].corr(adata.obs["t"], method="spearman") > 0.9)
    True
    >>> graph = trajectory_graph(adata)  # networkx.DiGraph of states
    """
    start = time.perf_counter()
    logger.info("computing trajectory on obsm[%r] (metric=%r)", use_rep, metric)
    _check_option("metric", metric, _METRICS)
    _check_option("knn_method", knn_method, _KNN_METHODS)
    _check_positive_int("n_neighbors", n_neighbors)
    _check_positive_int("n_dcs", n_dcs)
    rep = _get_rep(data, use_rep)
    n_obs = rep.shape[0]
    if n_neighbors >= n_obs:
        raise ValueError(f"`n_neighbors` must be smaller than n_obs={n_obs}, got {n_neighbors}.")
    if n_dcs + 1 >= n_obs:
        raise ValueError(f"`n_dcs` must be smaller than n_obs - 1 = {n_obs - 1}, got {n_dcs}.")
    _check_root_args(data, root, root_key, root_value, energy_key)
    if groups_key is not None and groups_key not in data.obs:
        raise KeyError(f"`groups_key` {groups_key!r} not found in `.obs`.")
    n_binary = _resolve_n_binary(data, use_rep, rep, n_binary)
    if n_binary > 0 and metric != "euclidean":
        _check_probabilities(rep[:, :n_binary], use_rep, metric)

    data = data.copy() if copy else data

    # Cell graph and diffusion.
    knn_idx, knn_dist = _knn(rep, n_binary, metric, n_neighbors, knn_method, seed)
    distances = _knn_matrix(knn_idx, knn_dist, n_obs)
    affinities = _gaussian_affinities(knn_idx, knn_dist, n_obs)
    eigvals, psi, kernel = _diffusion_components(affinities, n_dcs, seed)
    weights = _dpt_weights(eigvals)
    n_comp, comp_labels = connected_components(affinities, directed=False)
    if n_comp > 1:
        warnings.warn(
            f"The kNN graph has {n_comp} connected components; cells outside the root's "
            "component get pseudotime NaN. Increase `n_neighbors` to connect them.",
            UserWarning,
            stacklevel=2,
        )

    # Root and pseudotime.
    energy = _get_energy(data, energy_key)
    root_index, root_method = _find_root(data, root, root_key, root_value, energy, psi, weights, affinities)
    pseudotime = _pseudotime(psi, weights, root_index, comp_labels)

    # States, flows and branches.
    if groups_key is None:
        states = _leiden(affinities, resolution, seed)
    else:
        states = data.obs[groups_key].astype(str).to_numpy()
    summary = _state_graph(states, kernel, pseudotime, energy)
    cell_branch = _cell_branches(summary, states)

    obs_names = np.asarray(data.obs_names).astype(str)
    root_state = str(states[root_index])
    data.obs[f"{key_added}_pseudotime"] = pseudotime
    data.obs[f"{key_added}_state"] = pd.Categorical(states, categories=summary["states"].tolist())
    data.obs[f"{key_added}_branch"] = pd.Categorical(
        cell_branch, categories=sorted(set(summary["state_branch"].tolist()))
    )
    data.obsm[f"X_{key_added}_diffmap"] = psi
    data.obsp[f"{key_added}_distances"] = distances
    data.obsp[f"{key_added}_connectivities"] = affinities
    data.uns[f"{key_added}_trajectory"] = {
        "params": {
            "use_rep": use_rep,
            "n_binary": int(n_binary),
            "metric": metric,
            "n_neighbors": int(n_neighbors),
            "n_dcs": int(n_dcs),
            "root": "" if root is None else str(root),
            "root_key": "" if root_key is None else root_key,
            "root_value": "" if root_value is None else str(root_value),
            "energy_key": energy_key,
            "groups_key": "" if groups_key is None else groups_key,
            "resolution": float(resolution),
            "knn_method": knn_method,
            "seed": int(seed),
        },
        "root": {
            "index": int(root_index),
            "name": obs_names[root_index],
            "state": root_state,
            "method": root_method,
        },
        "eigenvalues": eigvals[1:].astype(np.float64),
        "n_components": int(n_comp),
        **summary,
    }
    logger.info(
        "    finished (%.1fs): added\n"
        "    obs[%r], obs[%r], obs[%r],\n"
        "    obsm[%r], obsp[%r], obsp[%r], uns[%r]",
        time.perf_counter() - start,
        f"{key_added}_pseudotime",
        f"{key_added}_state",
        f"{key_added}_branch",
        f"X_{key_added}_diffmap",
        f"{key_added}_distances",
        f"{key_added}_connectivities",
        f"{key_added}_trajectory",
    )
    return data if copy else None


################################################################################
# Readers of the result.
################################################################################


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
    >>> from qbm_pyro.tl._trajectory import trajectory, trajectory_graph
    >>> q = np.random.default_rng(0).uniform(size=(200, 8))
    >>> adata = ad.AnnData(obsm={"X_qbm": q})
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
    >>> from qbm_pyro.tl._trajectory import cell_graph, trajectory
    >>> adata = ad.AnnData(obsm={"X_qbm": np.random.default_rng(0).uniform(size=(100, 8))})
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
    >>> from qbm_pyro.tl._trajectory import energy_along_pseudotime, trajectory
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


################################################################################
# Cell graph: neighbours and affinities.
################################################################################


def _embed(rep: np.ndarray, n_binary: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings (data, query) whose Euclidean distances give the chosen metric.

    For ``"hamming"`` the two differ: ``|[q, 0] - [q', sqrt(u(q'))]|^2 + u(q)`` is the expected
    Hamming distance, so the query side adds ``u(q)`` back afterwards (see :func:`_knn`).
    """
    q, cont = rep[:, :n_binary], rep[:, n_binary:]
    if metric == "hellinger":
        binary = np.hstack([np.sqrt(q), np.sqrt(1.0 - q)])
        emb = np.hstack([binary, cont])
        return emb, emb
    if metric == "hamming":
        u = (q * (1.0 - q)).sum(axis=1, keepdims=True)
        return np.hstack([q, np.sqrt(u), cont]), np.hstack([q, np.zeros_like(u), cont])
    return rep, rep


def _knn(
    rep: np.ndarray, n_binary: int, metric: str, n_neighbors: int, method: str, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and distances ``(n_obs, n_neighbors)`` of each cell's neighbours, self excluded."""
    data_emb, query_emb = _embed(rep, n_binary, metric)
    n_obs = rep.shape[0]
    if method == "auto":
        method = "exact" if n_obs <= EXACT_KNN_MAX_CELLS or not _has_pynndescent() else "pynndescent"
    k = n_neighbors + 1
    if method == "pynndescent":
        from pynndescent import NNDescent

        index = NNDescent(data_emb, n_neighbors=max(k, 16), random_state=seed, n_jobs=-1)
        if metric == "hamming":
            index.prepare()
            idx, dist = index.query(query_emb, k=k)
        else:
            idx, dist = index.neighbor_graph
            idx, dist = idx[:, :k], dist[:, :k]
    else:
        from sklearn.neighbors import NearestNeighbors

        nn = NearestNeighbors(n_neighbors=k).fit(data_emb)
        dist, idx = nn.kneighbors(query_emb)
    idx, dist = _drop_self(np.asarray(idx), np.asarray(dist, dtype=np.float64))
    if metric == "hamming":
        q = rep[:, :n_binary]
        u = (q * (1.0 - q)).sum(axis=1)
        dist = np.sqrt(dist**2 + u[:, None])
    return idx, dist


def _drop_self(idx: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own index (or, if absent, its last neighbour) and sort by distance."""
    n = idx.shape[0]
    is_self = idx == np.arange(n)[:, None]
    no_self = ~is_self.any(axis=1)
    is_self[no_self, -1] = True
    keep = ~is_self
    idx = idx[keep].reshape(n, -1)
    dist = dist[keep].reshape(n, -1)
    order = np.argsort(dist, axis=1, kind="stable")
    return np.take_along_axis(idx, order, 1), np.take_along_axis(dist, order, 1)


def _knn_matrix(idx: np.ndarray, values: np.ndarray, n_obs: int) -> sp.csr_matrix:
    rows = np.repeat(np.arange(n_obs), idx.shape[1])
    return sp.csr_matrix((values.ravel(), (rows, idx.ravel())), shape=(n_obs, n_obs))


def _gaussian_affinities(idx: np.ndarray, dist: np.ndarray, n_obs: int) -> sp.csr_matrix:
    """Symmetric adaptive-bandwidth Gaussian kernel on the kNN pairs, without self-loops."""
    sigma = np.median(dist, axis=1)
    positive = sigma[sigma > 0]
    floor = positive.min() if positive.size else 1.0
    sigma = np.maximum(sigma, floor * 1e-3)
    s_i, s_j = sigma[:, None], sigma[idx]
    denom = s_i**2 + s_j**2
    values = np.sqrt(2.0 * s_i * s_j / denom) * np.exp(-(dist**2) / denom)
    w = _knn_matrix(idx, values, n_obs)
    w = w.maximum(w.T).tocsr()
    w.setdiag(0.0)
    w.eliminate_zeros()
    return w


################################################################################
# Diffusion operator and pseudotime.
################################################################################


def _diffusion_components(
    affinities: sp.csr_matrix, n_dcs: int, seed: int
) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
    """Eigenvalues (descending, trivial first), right eigenvectors ``psi_1..psi_n_dcs`` and K."""
    n_obs = affinities.shape[0]
    w = affinities + sp.identity(n_obs, format="csr")
    d = np.asarray(w.sum(axis=1)).ravel()
    inv_d = sp.diags(1.0 / d)
    kernel = (inv_d @ w @ inv_d).tocsr()  # density normalisation, alpha = 1
    z = np.asarray(kernel.sum(axis=1)).ravel()
    inv_sqrt_z = sp.diags(1.0 / np.sqrt(z))
    sym = (inv_sqrt_z @ kernel @ inv_sqrt_z).tocsr()
    sym = (sym + sym.T) * 0.5  # exact symmetry against round-off
    v0 = np.random.default_rng(seed).uniform(0.5, 1.5, size=n_obs)
    k = n_dcs + 1
    eigvals, phi = eigsh(sym, k=k, which="LA", v0=v0, ncv=min(n_obs, max(2 * k + 1, 24)))
    order = np.argsort(eigvals)[::-1]
    eigvals, phi = np.clip(eigvals[order], -1.0, 1.0), phi[:, order]
    psi = phi[:, 1:] * np.sqrt(z.sum() / z)[:, None]  # unit norm in the stationary measure
    # Deterministic sign: the largest-magnitude entry of each component is positive.
    signs = np.sign(psi[np.abs(psi).argmax(axis=0), np.arange(psi.shape[1])])
    psi = psi * np.where(signs == 0, 1.0, signs)
    return eigvals, psi, kernel


def _dpt_weights(eigvals: np.ndarray) -> np.ndarray:
    """``lambda / (1 - lambda)`` for the non-trivial components; 0 for lambda = 1 or <= 0."""
    lam = eigvals[1:]
    weights = np.zeros_like(lam)
    ok = (lam < 1.0 - _UNIT_EIGENVALUE_TOL) & (lam > 0.0)
    weights[ok] = lam[ok] / (1.0 - lam[ok])
    return weights


def _pseudotime(psi: np.ndarray, weights: np.ndarray, root: int, comp_labels: np.ndarray) -> np.ndarray:
    coords = psi * weights
    pt = np.sqrt(((coords - coords[root]) ** 2).sum(axis=1))
    pt[comp_labels != comp_labels[root]] = np.nan
    top = np.nanmax(pt)
    return pt / top if top > 0 else pt


################################################################################
# Root.
################################################################################


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
        return _group_tip(group, psi * weights), f"tip of {root_key} == {root_value!r}"
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


def _group_tip(group: np.ndarray, coords: np.ndarray) -> int:
    """The group cell furthest from the other cells along the line joining the two centroids."""
    members = np.flatnonzero(group)
    if members.size == group.size:
        raise ValueError("The root group holds every cell; choose a smaller group or give a root cell.")
    direction = coords[group].mean(axis=0) - coords[~group].mean(axis=0)
    return int(members[np.argmax(coords[members] @ direction)])


################################################################################
# States, flows and branches.
################################################################################


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


################################################################################
# Argument checks and accessors.
################################################################################


def _get_rep(data: Data, use_rep: str) -> np.ndarray:
    if not isinstance(data, ad.AnnData) and not (MuData is not None and isinstance(data, MuData)):
        raise TypeError(f"`data` must be an AnnData or a MuData, got {type(data).__name__}.")
    if use_rep not in data.obsm:
        raise ValueError(
            f"You need to run `qbm_pyro.tl.qbm` first: `.obsm[{use_rep!r}]` not found "
            f"(available: {sorted(data.obsm.keys())}). Or pass `use_rep=` naming another "
            "representation."
        )
    rep = data.obsm[use_rep]
    rep = rep.to_numpy() if isinstance(rep, pd.DataFrame) else rep
    rep = rep.toarray() if sp.issparse(rep) else rep
    rep = np.asarray(rep, dtype=np.float64)
    if rep.ndim != 2 or rep.shape[1] == 0:
        raise ValueError(f"`.obsm[{use_rep!r}]` must be 2-D with columns, got {rep.shape}.")
    if not np.isfinite(rep).all():
        raise ValueError(f"`.obsm[{use_rep!r}]` holds NaN or infinite values.")
    return rep


def _resolve_n_binary(data: Data, use_rep: str, rep: np.ndarray, n_binary: int | None) -> int:
    if n_binary is None:
        entry = data.uns.get(use_rep.removeprefix("X_"), {})
        params = entry.get("params", {}) if isinstance(entry, Mapping) else {}
        n_binary = params.get("n_binary") if isinstance(params, Mapping) else None
        n_binary = rep.shape[1] if n_binary is None else int(n_binary)
    if not 0 <= n_binary <= rep.shape[1]:
        raise ValueError(
            f"`n_binary` must lie in [0, {rep.shape[1]}] (columns of `.obsm[{use_rep!r}]`), got {n_binary}."
        )
    return n_binary


def _check_probabilities(q: np.ndarray, use_rep: str, metric: str) -> None:
    lo, hi = float(q.min()), float(q.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"metric={metric!r} needs Bernoulli probabilities in [0, 1], but the binary columns "
            f"of `.obsm[{use_rep!r}]` span [{lo:.3g}, {hi:.3g}]. Set `n_binary=` to the number of "
            "probability columns, or use metric='euclidean'."
        )


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
    if isinstance(root, str) and root in _AUTO_ROOTS:
        return
    if isinstance(root, (bool, np.bool_)):
        raise TypeError(f"`root` must be a cell name, a position or one of {_AUTO_ROOTS}.")
    if isinstance(root, (int, np.integer)):
        if not -data.n_obs <= root < data.n_obs:
            raise ValueError(f"Root position {root} is out of range for n_obs={data.n_obs}.")
        return
    if isinstance(root, str):
        if root not in data.obs_names:
            raise KeyError(
                f"Root cell {root!r} not found in `.obs_names`; give a cell name, a position, "
                f"or one of {_AUTO_ROOTS}."
            )
        return
    raise TypeError(f"`root` must be a cell name, a position or one of {_AUTO_ROOTS}, got {type(root)}.")


def _get_energy(data: Data, energy_key: str) -> np.ndarray | None:
    if energy_key not in data.obs:
        return None
    return data.obs[energy_key].to_numpy(dtype=np.float64)


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


def _check_option(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {allowed}, got {value!r}.")


def _check_positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")


def _has_pynndescent() -> bool:
    try:
        import pynndescent  # noqa: F401
    except ImportError:
        return False
    return True
