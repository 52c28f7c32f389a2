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

Layout: this file holds the verb and its argument checks; the workers live beside it in
:mod:`._neighbors` (kNN graph, affinities), :mod:`._diffusion` (components, pseudotime),
:mod:`._roots` (root cell), :mod:`._state_graph` (states, flows, branches) and the readers of
the result in :mod:`._trajectory_readers`.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from mudata import MuData
from scipy.sparse.csgraph import connected_components

from qbm_pyro._checks import check_choice, check_positive_int
from qbm_pyro.tl._diffusion import _diffusion_components, _dpt_weights, _pseudotime
from qbm_pyro.tl._neighbors import EXACT_KNN_MAX_CELLS, _gaussian_affinities, _knn, _knn_matrix
from qbm_pyro.tl._root_fits import consensus_root_group, energy_keys, ensemble_energy
from qbm_pyro.tl._roots import (
    _check_root_args,
    _find_root,
    descent_root_group,
    expand_root,
    root_group,
    side_weights,
)
from qbm_pyro.tl._state_graph import _cell_branches, _leiden, _state_graph
from qbm_pyro.tl._trajectory_readers import cell_graph, energy_along_pseudotime, trajectory_graph

# The readers are re-exported so that ``from qbm_pyro.tl._trajectory import trajectory_graph`` still works.
__all__ = ["EXACT_KNN_MAX_CELLS", "cell_graph", "energy_along_pseudotime", "trajectory", "trajectory_graph"]

logger = logging.getLogger(__name__)

Metric = Literal["hellinger", "hamming", "euclidean"]
KnnMethod = Literal["auto", "exact", "pynndescent"]
_METRICS = ("hellinger", "hamming", "euclidean")
_KNN_METHODS = ("auto", "exact", "pynndescent")

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
    energy_key: str | Sequence[str] = "qbm_energy",
    prior_key: str | None = None,
    groups_key: str | None = None,
    resolution: float = 1.0,
    knn_method: KnnMethod = "auto",
    root_expand: int | Literal["sides", "state"] = "sides",
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

    * a cell: its name in ``obs_names`` (``str``) or its position (``int``). By default
      (``root_expand="sides"``) the DPT from it weights component :math:`k` (on top of
      :math:`\lambda_k / (1 - \lambda_k)`) by :math:`1 - (1 - e_k) s_k`, where
      :math:`e_k = |2 F_k(\psi_k(r)) - 1|` says how extreme the root is on the component
      (:math:`F_k`: its empirical CDF over the cells of the root's component; 1 at either end,
      0 in the middle) and :math:`s_k \in [0, 1]` is the component's spread (standard
      deviation) over the root's state divided by its spread over all cells. A *side
      direction* of the root, one its own state already spans and along which it sits in the
      middle, counts less: its variation is there at the start, so it does not measure progress
      from the root, and a root group spread along it would average it out. Directions the root
      sits at an end of, or along which its state is narrow (variation that arises later, such
      as two branches opening from a trunk), keep their full weight. The weights are written to
      ``uns[...]["root"]["side_weights"]``. Why: a single cell is a worse start than its group
      where the start population is wide (on a549 the 0 h cells split into 2-4 separate states
      plus cells scattered among later ones, and a cell's DPT mixes its distance along those
      side directions into the pseudotime). On the default fits (``benchmarks/root_expansion.py``,
      3 seeds, 20 cells of the root group each) this raised one cell's Spearman with time on
      a549 from 0.376 ± 0.196 to 0.415 ± 0.195 (+0.03 to +0.04 on every seed; the root group:
      0.556 ± 0.125) and left paul15 at 0.813 ± 0.054 / 0.923 ± 0.004 (myeloid / erythroid;
      plain DPT 0.811 / 0.923, group 0.838 / 0.927); on synthetic paths with a nuisance as wide
      as the time course it narrowed the gap to the group by 10-40% and never widened it, and
      on a Y it changed nothing (``tests/test_landscape.py``,
      ``tests/test_trajectory.py``). It narrows the gap, it does not close it: give the root
      group when the start is a known group. ``root_expand=0`` is the plain DPT from the cell;
      an int or ``"state"`` expands the cell to its nearest neighbours or its state and
      averages the pseudotime over them as for a root group (the reported root stays the given
      cell); neither helped (a549: 0.373 and 0.390; paul15 myeloid: 0.813 and 0.785);
    * ``root_key``/``root_value``: the cells with ``obs[root_key] == root_value`` form the root
      group, and a cell's pseudotime is its mean DPT from the group's cells (a seeded sample of
      at most 256), shifted to start at 0; the reported root is the group cell where it is 0.
      Every cell of a group is an equally valid start: averaging over them removes the
      dependence on one cell. On 300-cell subsamples of the QBM-VAE latent (5 draws) this
      raised the Spearman with the reference pseudotime from 0.856 ± 0.064 (one cell: the
      group's tip along the line joining the centroids) to 0.897 ± 0.018 on paul15, and with
      the time from 0.641 ± 0.077 to 0.659 ± 0.040 on a549;
    * ``"auto_energy"``: the root group is read from the energy landscape, not one cell: the
      state (Leiden cluster or ``groups_key`` group of the main component, of at least 5 cells
      and 1% of it) from which the prior energy ``obs[energy_key]`` falls most along the
      pseudotime. Each state is tried as the root group and the mean DPT from its cells is
      ranked against the cells' energies; the root is the state of the most negative Spearman
      correlation, the reading of the energy as a potential that falls as cells differentiate
      (high for progenitors, low for differentiated cells). It uses the energy of every cell
      along the ordering, so a small high-energy state off the main path does not take the
      root (the rule before 2026-12-04, the state of highest mean energy, did: on paul15 it
      reversed a lineage in every seed). The evidence (``uns[...]["root"]["evidence"]``) holds
      every candidate's correlation, the root's, the runner-up's and their margin, and the root
      state's mean energy with its z-score against all cells (how much higher it sits); an
      :class:`~qbm_pyro.tl._roots.AmbiguousRootWarning` says when the best correlation is
      weaker than -0.5 (``MIN_ROOT_DESCENT``): the energy is then no potential along this
      graph. Measured at the defaults on 6 seeds (``benchmarks/landscape.py``,
      ``benchmarks/root_fits.py``, ``docs/landscape.rst``): on paul15 it follows the myeloid
      lineage (0.84-0.95) but reversed or half-reversed the erythroid one on two seeds whose
      evidence was clear (-0.28 and 0.49; the rooted pseudotime: 0.90); on a549 it started in
      the 0 h state in three seeds and elsewhere in three (-0.34 to 0.13), warning every time
      (the energy barely falls along time). One fit's ``clear`` is not enough: check the
      direction with :func:`energy_along_pseudotime` and a known marker, and with several
      fits. Given a list of ``energy_key`` columns, one per fit (seed), each fit's energy picks
      its own root state on this graph, the root is picked from their consensus energy, and
      the evidence adds ``fits``, ``fit_root_states``, ``fit_spearman``,
      ``fit_pseudotime_spearman`` (each fit's ordering against the consensus one) and
      ``fits_agree``; the root is ``clear`` only when every fit roots in the consensus state
      and descends from it at -0.5 or below on its own, and a warning says which condition
      failed. On the same 6 seeds (two sets of three) it warned on all 12 graphs and passed
      none of the wrong directions as clear; it reversed no paul15 lineage (erythroid 0.38 to
      0.91), and on a549 it was as right or wrong as the fits (three agreed on a wrong start);
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
        Neighbours per cell, not counting the cell itself. 15 (and ``n_dcs=10``) are scanpy's
        defaults; on 300-cell subsamples (``BENCHMARKS.md``, small data) 30 neighbours or 3
        components did slightly better on a549 and no worse on paul15, 5 neighbours worse on
        both; two data sets are too few to move a default on.
    n_dcs
        Number of non-trivial diffusion components used for the pseudotime.
    root_key, root_value
        An ``obs`` column and one of its values defining the root group. Prefer it to a single
        root cell when the start is a known group (a first time point, a progenitor type): one
        cell can be an unlucky start (on 300-cell a549 subsamples, single cells of the 0 h group
        gave Spearman 0.48 ± 0.09 with time, the group 0.66 ± 0.04).
    energy_key
        ``obs`` column of per-cell prior energies (lower = more probable), used by
        ``root="auto_energy"`` and for the per-state mean energies (``NaN`` when absent). A
        list of columns holds the energies of several fits of the same cells (e.g. other seeds,
        written by :func:`qbm_pyro.tl.qbm` with ``key_added``): ``root="auto_energy"`` then
        roots from their consensus, each cell's energy quantile averaged over the fits (also
        the per-state mean energies, in ``[0, 1]``), and checks that every fit alone roots in
        the same state (see **Root**).
    prior_key
        Deprecated and unused: ``root="auto_energy"`` no longer reads the prior's states (see
        **Root**). Passing it warns; it will be removed.
    groups_key
        ``obs`` column of given states; ``None`` runs Leiden on the kNN graph.
    resolution
        Leiden resolution (ignored with ``groups_key``).
    knn_method
        ``"exact"`` (scikit-learn), ``"pynndescent"`` (approximate) or ``"auto"``: exact up to
        50,000 cells (``EXACT_KNN_MAX_CELLS``), approximate above.
    root_expand
        What is done with a single root cell (ignored for root groups and automatic roots):
        ``"sides"`` (default: DPT from the cell with its side directions down-weighted, see
        **Root**), ``0`` (the cell alone, plain DPT: the default before this option), a number
        of nearest neighbours or ``"state"`` (the cells of its state) to average the DPT over.
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
            State of each cell: ``"S0"``, ``"S1"``, ... (from Leiden clusters of the cell graph,
            renamed so as not to be read as ``sc.tl.leiden``'s numbers) or the ``groups_key``
            value.
        `obs[f"{key_added}_component"]` : :class:`pandas.Series` (dtype ``category``)
            Connected component of the cell graph (``"C0"``, ...); cells outside the root's
            (``uns[...]["root_component"]``) get pseudotime ``NaN``, with a warning giving their
            number and fraction.
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
            (``index``, ``name``, ``state``, ``method``), ``eigenvalues``, ``n_components``,
            ``root_component``, ``states``,
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
    >>> from qbm_pyro.tl import trajectory, trajectory_graph
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
    check_choice("metric", metric, _METRICS)
    check_choice("knn_method", knn_method, _KNN_METHODS)
    check_positive_int("n_neighbors", n_neighbors)
    check_positive_int("n_dcs", n_dcs)
    if root_expand not in ("state", "sides") and (
        isinstance(root_expand, bool) or not isinstance(root_expand, (int, np.integer)) or root_expand < 0
    ):
        raise ValueError(f"`root_expand` must be 'sides', 'state' or an int >= 0, got {root_expand!r}.")
    rep = _get_rep(data, use_rep)
    n_obs = rep.shape[0]
    if n_neighbors >= n_obs:
        raise ValueError(f"`n_neighbors` must be smaller than n_obs={n_obs}, got {n_neighbors}.")
    if n_dcs + 1 >= n_obs:
        raise ValueError(f"`n_dcs` must be smaller than n_obs - 1 = {n_obs - 1}, got {n_dcs}.")
    auto_energy = isinstance(root, str) and root == "auto_energy"
    keys = energy_keys(data, energy_key, required=auto_energy)
    _check_root_args(data, root, root_key, root_value, keys[0])
    if prior_key is not None:
        warnings.warn(
            "`prior_key` is unused and will be removed: root='auto_energy' now roots where the "
            "energy falls most along the pseudotime, not at the prior's least stable state.",
            FutureWarning,
            stacklevel=2,
        )
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

    # States (before the root: root="auto_energy" chooses among them).
    if groups_key is None:  # "S0", "S1", ...: states, not to be read as Leiden cluster numbers
        states = np.char.add("S", _leiden(affinities, resolution, seed).astype(str))
    else:
        states = data.obs[groups_key].astype(str).to_numpy()

    # Root and pseudotime.
    energies = {key: _get_energy(data, key) for key in keys}
    energy = energies[keys[0]] if len(keys) == 1 else ensemble_energy(list(energies.values()))
    evidence = None
    if auto_energy:
        group, evidence = (
            descent_root_group(states, energy, psi, weights, comp_labels, seed)
            if len(keys) == 1
            else consensus_root_group(states, energies, psi, weights, comp_labels, seed)
        )
        root_index, root_method = int(group[0]), "auto_energy"
    else:
        root_index, root_method = _find_root(
            data, root, root_key, root_value, energy, psi, weights, affinities
        )
        group = root_group(data, root_key, root_value, seed)
    expanded, sides = None, None
    if group is None and root_method == "cell" and root_expand == "sides":
        sides = side_weights(psi, root_index, states, comp_labels == comp_labels[root_index])
        root_method = "cell, side directions down-weighted"
    elif group is None and root_method == "cell":
        expanded = expand_root(root_index, root_expand, knn_idx, states, seed)
        if expanded is not None:
            what = "its state" if root_expand == "state" else f"{expanded.size - 1} neighbours"
            root_method = f"cell + {what}"
    pseudotime = _pseudotime(
        psi,
        weights if sides is None else weights * sides,
        root_index,
        comp_labels,
        group if expanded is None else expanded,
    )
    if group is not None:  # the group cell the mean pseudotime starts from
        root_index = int(group[np.nanargmin(pseudotime[group])])
    if n_comp > 1:
        _warn_components(comp_labels, root_index, key_added)
    if evidence is not None:
        ok = np.isfinite(pseudotime) & np.isfinite(energy)
        evidence["spearman_energy_pseudotime"] = float(
            pd.Series(energy[ok]).corr(pd.Series(pseudotime[ok]), method="spearman")
        )

    # Flows and branches.
    summary = _state_graph(states, kernel, pseudotime, energy)
    cell_branch = _cell_branches(summary, states)

    obs_names = np.asarray(data.obs_names).astype(str)
    root_state = str(states[root_index])
    data.obs[f"{key_added}_pseudotime"] = pseudotime
    data.obs[f"{key_added}_state"] = pd.Categorical(states, categories=summary["states"].tolist())
    data.obs[f"{key_added}_component"] = pd.Categorical(
        np.char.add("C", comp_labels.astype(str)), categories=[f"C{i}" for i in range(n_comp)]
    )
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
            "energy_key": keys[0] if len(keys) == 1 else np.asarray(keys, dtype=str),
            "groups_key": "" if groups_key is None else groups_key,
            "resolution": float(resolution),
            "knn_method": knn_method,
            "root_expand": str(root_expand),
            "seed": int(seed),
        },
        "root": {
            "index": int(root_index),
            "name": obs_names[root_index],
            "state": root_state,
            "method": root_method,
            **({} if sides is None else {"side_weights": sides.astype(np.float64)}),
            **({} if evidence is None else {"evidence": evidence}),
        },
        "eigenvalues": eigvals[1:].astype(np.float64),
        "n_components": int(n_comp),
        "root_component": f"C{int(comp_labels[root_index])}",
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
# Argument checks and accessors.
################################################################################


def _warn_components(comp_labels: np.ndarray, root_index: int, key_added: str) -> None:
    """Warn, with the numbers, that cells off the root's component get no pseudotime."""
    n_comp = int(comp_labels.max()) + 1
    off = comp_labels != comp_labels[root_index]
    sizes = np.bincount(comp_labels, minlength=n_comp)
    warnings.warn(
        f"The kNN graph has {n_comp} connected components (sizes {sorted(sizes.tolist(), reverse=True)}): "
        f"{int(off.sum())} of {len(off)} cells ({100 * off.mean():.1f}%) lie outside the root's "
        f"component and get pseudotime NaN. obs['{key_added}_component'] names each cell's "
        "component; increase `n_neighbors`, or run tl.trajectory on each component with its own root.",
        UserWarning,
        stacklevel=3,
    )


def _get_rep(data: Data, use_rep: str) -> np.ndarray:
    if not isinstance(data, (ad.AnnData, MuData)):
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


def _get_energy(data: Data, energy_key: str) -> np.ndarray | None:
    if energy_key not in data.obs:
        return None
    return data.obs[energy_key].to_numpy(dtype=np.float64)
