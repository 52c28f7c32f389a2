"""Attractors as basins of the cells' energy on their neighbour graph (tl.attractors(method="graph")):
persistence basins and graph barriers against brute force, and the attractors of a known landscape."""

from __future__ import annotations

import anndata as ad
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import qbm_pyro
from qbm_pyro.tl._energy_landscape import EnergyLandscape
from qbm_pyro.tl._graph_attractors import cell_graph_adjacency
from qbm_pyro.tl._graph_basins import graph_barriers, persistence_basins, smooth_on_graph


def random_graph(n: int, seed: int) -> tuple[np.ndarray, sp.csr_matrix, nx.Graph]:
    """A connected random geometric graph with distinct random values on its vertices."""
    rng = np.random.default_rng(seed)
    graph = nx.random_geometric_graph(n, 0.3, seed=seed)
    graph.add_edges_from((i, i + 1) for i in range(n - 1))  # connected
    return rng.normal(size=n), nx.to_scipy_sparse_array(graph, format="csr"), graph


def brute_barrier(f: np.ndarray, graph: nx.Graph, a: set, b: set) -> float:
    """Lowest level whose sub-level set joins a vertex of ``a`` to one of ``b``."""
    for level in np.sort(f):
        keep = [v for v in graph.nodes if f[v] <= level]
        sub = graph.subgraph(keep)
        for comp in nx.connected_components(sub):
            if comp & a and comp & b:
                return float(level)
    return np.inf


def brute_persistent_minima(f: np.ndarray, graph: nx.Graph, tau: float) -> set:
    """Local minima whose basin persists: the global minimum, and each other minimum m whose
    lowest connection to a deeper minimum is at least ``tau`` above f(m) (persistent homology)."""
    minima = [v for v in graph.nodes if all(f[u] > f[v] for u in graph[v])]
    keep = set()
    for m in minima:
        deeper = {u for u in minima if f[u] < f[m]}
        if not deeper or brute_barrier(f, graph, {m}, deeper) - f[m] >= tau:
            keep.add(m)
    return keep


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_persistence_basins_match_brute_force(seed):
    f, adj, graph = random_graph(40, seed)
    minima = {v for v in graph.nodes if all(f[u] > f[v] for u in graph[v])}
    root = persistence_basins(f, adj, 0.0)
    assert set(root.tolist()) == minima  # every local minimum keeps its basin
    for v in graph.nodes:  # steepest descent: a vertex drains where its lowest lower neighbour does
        lower = [u for u in graph[v] if f[u] < f[v]]
        assert root[v] == (v if not lower else root[min(lower, key=lambda u: f[u])])
    for tau in (0.3, 1.0, 3.0):
        assert set(persistence_basins(f, adj, tau).tolist()) == brute_persistent_minima(f, graph, tau)
    assert set(persistence_basins(f, adj, 100.0).tolist()) == {int(np.argmin(f))}


@pytest.mark.parametrize("seed", [0, 4])
def test_graph_barriers_match_brute_force(seed):
    f, adj, graph = random_graph(30, seed)
    labels = persistence_basins(f, adj, 0.0)
    labels = np.unique(labels, return_inverse=True)[1]
    got = graph_barriers(f, adj, labels)
    for g in range(labels.max() + 1):
        assert got[g, g] == f[labels == g].min()
        for h in range(g + 1, labels.max() + 1):
            a, b = set(np.flatnonzero(labels == g)), set(np.flatnonzero(labels == h))
            assert got[g, h] == got[h, g] == brute_barrier(f, graph, a, b)


def test_graph_basins_of_a_known_double_well_and_disconnected_parts():
    x, y = np.meshgrid(np.linspace(-1.6, 1.6, 33), np.linspace(-1, 1, 11))
    f = ((x**2 - 1) ** 2 + 0.3 * x + y**2).ravel()  # wells at x = ±1, saddle near (0, 0)
    grid = nx.convert_node_labels_to_integers(nx.grid_2d_graph(11, 33), ordering="sorted")
    adj = nx.to_scipy_sparse_array(grid, format="csr")
    labels = persistence_basins(f, adj, 0.0)
    assert len(set(labels.tolist())) == 2
    left = labels[np.argmin(np.where(x.ravel() < 0, f, np.inf))]
    right = labels[np.argmin(np.where(x.ravel() > 0, f, np.inf))]
    assert (labels[x.ravel() < -0.2] == left).all() and (labels[x.ravel() > 0.2] == right).all()
    depth = graph_barriers(f, adj, np.unique(labels, return_inverse=True)[1])
    shallow = depth[0, 1] - max(depth[0, 0], depth[1, 1])  # the higher (right) well's depth
    assert 0.5 < shallow < 1.0
    assert len(set(persistence_basins(f, adj, shallow - 1e-6).tolist())) == 2
    assert len(set(persistence_basins(f, adj, shallow + 1e-6).tolist())) == 1
    # two parts the graph does not join are never merged
    two = sp.block_diag([adj, adj]).tocsr()
    assert len(set(persistence_basins(np.concatenate([f, f]), two, 1e6).tolist())) == 2
    assert np.isinf(graph_barriers(np.concatenate([f, f]), two, np.repeat([0, 1], f.size))[0, 1])


def test_smooth_on_graph_is_the_neighbourhood_mean():
    path = sp.diags([1.0, 1.0], [-1, 1], shape=(4, 4))
    np.testing.assert_allclose(smooth_on_graph(np.array([0.0, 3.0, 6.0, 3.0]), path), [1.5, 3.0, 4.0, 4.5])


def chain_between_wells(n: int = 6, cells: int = 240, seed: int = 0):
    """A symmetric two-well machine (minima 0…0 and 1…1) and cells on the straight line between
    them, q(t) = t: the cells' energy E(q(t)) is a double well in t with the saddle at t = 1/2."""
    J = np.triu(np.full((n, n), 1.0), 1)
    h = np.full(n, -(n - 1) / 2.0)
    land = EnergyLandscape.from_boltzmann(h, J)
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0.02, 0.98, cells))
    q = np.clip(t[:, None] + rng.normal(0, 0.005, (cells, n)), 0.001, 0.999)
    adata = ad.AnnData(obs=pd.DataFrame({"t": t}, index=[f"c{i}" for i in range(cells)]))
    adata.obsm["X_qbm"] = q
    adata.uns["qbm"] = {"prior": {"h": h, "J": J}}
    return land, adata, t


def test_graph_attractors_recover_the_two_wells_and_their_prior_weights():
    land, adata, t = chain_between_wells()
    qbm_pyro.tl.attractors(adata, method="graph", min_barrier=0.5, n_prior_samples=4000, n_markers=0, seed=1)
    info = adata.uns["qbm_attractor"]
    assert info["method"] == "graph" and len(info["states"]) == 2
    labels = adata.obs["qbm_attractor"].astype(str).to_numpy()
    side = np.where(t < 0.5, "left", "right")
    assert pd.crosstab(labels, side).to_numpy().max(axis=1).sum() >= len(t) - 2  # split at the saddle
    assert {tuple(s) for s in info["states"]} == {(0,) * 6, (1,) * 6}
    # the barrier: the lowest level at which the cell graph joins the two basins (brute force)
    smoothed = info["smoothed_energy"]
    graph = nx.from_scipy_sparse_array(cell_graph_adjacency(adata.obsm["X_qbm"], 6, 15, "hellinger", 0))
    a, b = (set(np.flatnonzero(labels == name)) for name in ("A0", "A1"))
    assert info["barriers"][0, 1] == brute_barrier(smoothed, graph, a, b)
    assert info["barriers"][0, 1] > smoothed.min() + 0.5
    np.testing.assert_allclose(info["energies"], [smoothed[labels == a].min() for a in ("A0", "A1")])
    # code barriers and the tree edge's path are the exact single-flip ones
    assert info["code_barrier_exact"].all()
    path = info["paths"]["A0-A1"]
    assert (np.abs(np.diff(path.astype(int), axis=0)).sum(1) == 1).all()
    assert land.energy(path.astype(float)).max() == pytest.approx(info["code_barriers"][0, 1])
    # basin weight: the exact prior mass of the codes whose nearest cell lies in each basin
    codes = ((np.arange(64)[:, None] >> np.arange(6)) & 1).astype(float)
    p = np.exp(-land.energy(codes))
    p /= p.sum()
    q = adata.obsm["X_qbm"]
    nearest = np.argmin(q.sum(1)[None, :] + codes @ (1 - 2 * q).T, axis=1)
    exact = np.array([p[labels[nearest] == a].sum() for a in ("A0", "A1")])
    np.testing.assert_allclose(info["basin_weight"], exact, atol=0.03)
    assert info["prior_unassigned"] == pytest.approx(0.0)
    # a threshold above the wells' depth merges them; the old code-level method stays reachable
    depth = info["table"]["barrier_to_nearest"].min()
    qbm_pyro.tl.attractors(
        adata, method="graph", min_barrier=depth + 0.01, n_prior_samples=0, n_markers=0, key_added="one"
    )
    assert adata.obs["one"].nunique() == 1


def test_graph_attractors_bad_input_and_seeded():
    _, adata, _ = chain_between_wells(cells=60)
    with pytest.raises(ValueError, match="n_neighbors"):
        qbm_pyro.tl.attractors(adata, method="graph", n_neighbors=0)
    with pytest.raises(ValueError, match="metric"):
        qbm_pyro.tl.attractors(adata, method="graph", metric="cosine")
    with pytest.raises(ValueError, match="method"):
        qbm_pyro.tl.attractors(adata, method="watershed")
    with pytest.raises(ValueError, match="more than n_neighbors"):
        qbm_pyro.tl.attractors(adata[:10].copy(), method="graph", n_neighbors=15)
    before = adata.obsm["X_qbm"].copy()
    a = qbm_pyro.tl.attractors(adata, method="graph", n_prior_samples=300, n_markers=0, seed=3, copy=True)
    b = qbm_pyro.tl.attractors(adata, method="graph", n_prior_samples=300, n_markers=0, seed=3, copy=True)
    np.testing.assert_array_equal(adata.obsm["X_qbm"], before)
    assert "qbm_attractor" not in adata.obs
    pd.testing.assert_frame_equal(a.uns["qbm_attractor"]["table"], b.uns["qbm_attractor"]["table"])


def test_graph_attractors_plot_and_survive_h5ad(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    land, adata, t = chain_between_wells(cells=120)
    rng = np.random.default_rng(0)
    x = rng.poisson(2.0, (adata.n_obs, 4)).astype(float)
    x[t < 0.5, 0] += 20.0  # g0 marks the left well's cells
    adata = ad.AnnData(x, obs=adata.obs, obsm=dict(adata.obsm), uns=adata.uns)
    adata.var_names = [f"g{i}" for i in range(4)]
    adata.obsm["X_umap"] = np.column_stack([t, rng.normal(0, 0.01, t.size)])
    adata.obs["qbm_energy"] = land.energy(adata.obsm["X_qbm"])
    qbm_pyro.tl.attractors(adata, method="graph", min_barrier=0.5, n_prior_samples=200, n_markers=1)
    ax = qbm_pyro.pl.landscape(adata)
    assert len(ax.lines) == 1  # the one barrier-tree edge
    ax = qbm_pyro.pl.attractors(adata, n_markers=1)
    assert ax.images[0].get_array().shape[0] == 2
    plt.close("all")
    left = adata.obs.loc[adata.obs["t"] < 0.2, "qbm_attractor"].iloc[0]
    assert adata.uns["qbm_attractor"]["markers"].set_index("attractor").loc[left, "feature"] == "g0"
    adata.write_h5ad(tmp_path / "graph.h5ad")
    back = ad.read_h5ad(tmp_path / "graph.h5ad")
    np.testing.assert_allclose(back.uns["qbm_attractor"]["barriers"], adata.uns["qbm_attractor"]["barriers"])
    assert (back.obs["qbm_attractor"] == adata.obs["qbm_attractor"]).all()
