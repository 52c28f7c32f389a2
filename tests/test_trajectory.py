"""Trajectory inference on the discrete latent: known-truth synthetic paths, API and I/O."""

from __future__ import annotations

import logging
import time

import anndata as ad
import matplotlib
import mudata as md
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from qbm_pyro.tl._trajectory import (
    cell_graph,
    energy_along_pseudotime,
    trajectory,
    trajectory_graph,
)

matplotlib.use("Agg")

N_CELLS = 900
TRUNK_END = 0.4
WRITTEN_OBS = ("qbm_pseudotime", "qbm_state", "qbm_branch")


def branching_codes(
    n: int = N_CELLS, n_units: int = 24, seed: int = 0, noise: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bernoulli probability codes along a Y: a trunk that splits into branches A and B.

    A third of the units switch on one after the other along the trunk (t < 0.4); the others
    switch on along branch A or along branch B only. Logits get Gaussian noise.
    Returns ``(q, t, branch)`` with ``branch`` in {"trunk", "A", "B"}.
    """
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.0, 1.0, n)
    in_a = rng.integers(0, 2, n).astype(bool)
    n_trunk = n_units // 3
    n_a = (n_units - n_trunk) // 2
    slope = 25.0
    logits = np.empty((n, n_units))
    logits[:, :n_trunk] = slope * (t[:, None] - np.linspace(0.02, TRUNK_END - 0.02, n_trunk))
    for cols, on in ((slice(n_trunk, n_trunk + n_a), in_a), (slice(n_trunk + n_a, None), ~in_a)):
        width = logits[:, cols].shape[1]
        ramp = slope * (t[:, None] - np.linspace(TRUNK_END + 0.02, 0.98, width))
        logits[:, cols] = np.where(on[:, None], ramp, -0.3 * slope)
    logits += noise * rng.normal(size=logits.shape)
    q = 1.0 / (1.0 + np.exp(-logits))
    branch = np.where(t < TRUNK_END, "trunk", np.where(in_a, "A", "B"))
    return q, t, branch


def make_adata(n: int = N_CELLS, seed: int = 0, **kwargs) -> ad.AnnData:
    q, t, branch = branching_codes(n, seed=seed, **kwargs)
    rng = np.random.default_rng(seed + 1)
    obs = pd.DataFrame(
        {"t": t, "true_branch": branch, "qbm_energy": -t + 0.05 * rng.normal(size=n)},
        index=[f"cell{i}" for i in range(n)],
    )
    obs["start"] = np.where(t < 0.05, "early", "later")
    return ad.AnnData(obs=obs, obsm={"X_qbm": q})


def make_mudata(n: int = N_CELLS, seed: int = 0) -> md.MuData:
    adata = make_adata(n, seed=seed)
    rna = ad.AnnData(np.zeros((n, 3), dtype=np.float32), obs=pd.DataFrame(index=adata.obs_names))
    mdata = md.MuData({"rna": rna})
    for column in adata.obs:
        mdata.obs[column] = adata.obs[column].to_numpy()
    mdata.obsm["X_qbm"] = adata.obsm["X_qbm"]
    return mdata


def spearman(a: pd.Series, b: pd.Series) -> float:
    return float(pd.Series(np.asarray(a)).corr(pd.Series(np.asarray(b)), method="spearman"))


def assert_same_graph(a: nx.DiGraph, b: nx.DiGraph) -> None:
    assert a.graph == b.graph
    assert list(a.nodes) == list(b.nodes)
    for v in a.nodes:
        for attr, value in a.nodes[v].items():
            assert b.nodes[v][attr] == pytest.approx(value, nan_ok=True), (v, attr)
    assert sorted(a.edges(data=True)) == sorted(b.edges(data=True))


def earliest(adata: ad.AnnData) -> int:
    return int(np.argmin(adata.obs["t"].to_numpy()))


@pytest.fixture(scope="module")
def fitted() -> ad.AnnData:
    adata = make_adata()
    trajectory(adata, earliest(adata))
    return adata


# --------------------------------------------------------------------------- known truth


@pytest.mark.parametrize("metric", ["hellinger", "hamming", "euclidean"])
def test_pseudotime_follows_true_time_and_branches_are_recovered(metric):
    adata = make_adata()
    trajectory(adata, earliest(adata), metric=metric)
    obs = adata.obs
    assert spearman(obs["qbm_pseudotime"], obs["t"]) > 0.9
    assert obs["qbm_pseudotime"].min() == 0.0 and obs["qbm_pseudotime"].max() == 1.0

    late_a = obs.loc[(obs["true_branch"] == "A") & (obs["t"] > 0.6), "qbm_branch"].astype(str)
    late_b = obs.loc[(obs["true_branch"] == "B") & (obs["t"] > 0.6), "qbm_branch"].astype(str)
    major_a, major_b = late_a.mode()[0], late_b.mode()[0]
    assert major_a != major_b
    assert "trunk" not in (major_a, major_b)
    assert (late_a == major_a).mean() > 0.9 and (late_b == major_b).mean() > 0.9
    early = obs.loc[obs["t"] < 0.25, "qbm_branch"].astype(str)
    assert (early == "trunk").mean() > 0.9


def test_state_graph_is_directed_by_pseudotime(fitted):
    graph = trajectory_graph(fitted)
    assert isinstance(graph, nx.DiGraph)
    assert set(graph.nodes) == set(fitted.obs["qbm_state"].cat.categories)
    for a, b in graph.edges:
        assert graph.nodes[a]["mean_pseudotime"] <= graph.nodes[b]["mean_pseudotime"]
    tree = graph.edge_subgraph([e for e in graph.edges if graph.edges[e]["in_tree"]])
    assert nx.is_tree(tree.to_undirected())
    terminal = [v for v in graph.nodes if graph.nodes[v]["terminal"]]
    assert len(terminal) == 2
    assert graph.graph["root_state"] == fitted.obs["qbm_state"].iloc[earliest(fitted)]


def test_energy_along_pseudotime_measures_the_trend(fitted):
    result = energy_along_pseudotime(fitted)
    assert result["spearman"] < -0.9  # energy = -t here by construction
    assert result["n_cells"] == fitted.n_obs
    states = result["states"]
    assert list(states.columns) == ["n_cells", "mean_pseudotime", "mean_energy", "branch"]
    assert states["mean_pseudotime"].is_monotonic_increasing
    assert set(result["branch_spearman"]) == set(fitted.obs["qbm_branch"].astype(str))


# --------------------------------------------------------------------------- root options


def test_root_by_name_position_and_negative_position_agree():
    adata = make_adata()
    i = earliest(adata)
    results = []
    for root in (adata.obs_names[i], i, i - adata.n_obs):
        trajectory(adata, root)
        results.append(adata.obs["qbm_pseudotime"].to_numpy().copy())
        assert adata.uns["qbm_trajectory"]["root"]["index"] == i
    np.testing.assert_allclose(results[0], results[1])
    np.testing.assert_allclose(results[0], results[2])


def test_root_group_averages_over_its_cells():
    adata = make_adata()
    trajectory(adata, root_key="start", root_value="early")
    root = adata.uns["qbm_trajectory"]["root"]
    assert adata.obs["start"].iloc[root["index"]] == "early"
    assert "start" in root["method"] and "mean" in root["method"]
    assert spearman(adata.obs["qbm_pseudotime"], adata.obs["t"]) > 0.9
    # the definition: mean DPT from the group's cells, shifted to 0, scaled to max 1
    lam = adata.uns["qbm_trajectory"]["eigenvalues"]
    coords = adata.obsm["X_qbm_diffmap"] * (lam / (1 - lam))
    group = np.flatnonzero(adata.obs["start"].to_numpy() == "early")
    mean = np.mean([np.linalg.norm(coords - coords[r], axis=1) for r in group], axis=0)
    expected = (mean - mean.min()) / (mean - mean.min()).max()
    np.testing.assert_allclose(adata.obs["qbm_pseudotime"].to_numpy(), expected, atol=1e-9)
    assert adata.obs["qbm_pseudotime"].iloc[root["index"]] == 0.0


def test_side_weights_definition_and_branches_kept():
    adata = make_adata()
    early = np.flatnonzero(adata.obs["start"].to_numpy() == "early")
    root = int(early[0])
    trajectory(adata, root, root_expand="sides")
    info = adata.uns["qbm_trajectory"]
    assert info["root"]["index"] == root and "side" in info["root"]["method"]
    # the definition: DPT with component k scaled by 1 - (1 - e_k) s_k, e_k = |2 F_k(root) - 1|
    # (F_k: fraction of cells below the root, ties half), s_k = sd over the root's state / sd
    psi, lam = adata.obsm["X_qbm_diffmap"], info["eigenvalues"]
    states = adata.obs["qbm_state"].to_numpy()
    below = (psi < psi[root]).mean(axis=0) + 0.5 * (psi == psi[root]).mean(axis=0)
    spread = np.clip(psi[states == states[root]].std(axis=0) / psi.std(axis=0), 0, 1)
    side = 1 - (1 - np.abs(2 * below - 1)) * spread
    np.testing.assert_allclose(info["root"]["side_weights"], side, atol=1e-12)
    coords = psi * (lam / (1 - lam)) * side
    dpt = np.linalg.norm(coords - coords[root], axis=1)
    np.testing.assert_allclose(adata.obs["qbm_pseudotime"].to_numpy(), dpt / dpt.max(), atol=1e-9)
    # on a Y the trunk cells sit in the middle of the component that separates the branches,
    # but their state is narrow along it: it is no side direction and keeps its weight
    late = adata.obs["t"].to_numpy() > 0.6
    in_a = (adata.obs["true_branch"].to_numpy() == "A").astype(float)
    branch_axis = np.argmax([abs(np.corrcoef(psi[late, k], in_a[late])[0, 1]) for k in range(psi.shape[1])])
    assert abs(2 * below[branch_axis] - 1) < 0.5 and side[branch_axis] > 0.9
    for r in early[::4]:
        plain = trajectory(adata, int(r), root_expand=0, copy=True).obs["qbm_pseudotime"]
        sides = trajectory(adata, int(r), root_expand="sides", copy=True).obs["qbm_pseudotime"]
        assert spearman(sides, adata.obs["t"]) > spearman(plain, adata.obs["t"]) - 0.005


def test_auto_energy_root_is_where_the_energy_starts_to_fall():
    adata = make_adata()  # energy = -t: the earliest cells have the highest energy
    trajectory(adata, "auto_energy")
    root = adata.uns["qbm_trajectory"]["root"]
    assert root["method"] == "auto_energy"
    # the energy falls along the ordering from the state holding the earliest cell
    assert root["state"] == adata.obs["qbm_state"].iloc[int(np.argmin(adata.obs["t"]))]
    assert root["evidence"]["clear"] and root["evidence"]["spearman"] < -0.9
    assert root["evidence"]["spearman_energy_pseudotime"] < -0.9
    assert spearman(adata.obs["qbm_pseudotime"], adata.obs["t"]) > 0.9


def test_auto_diffusion_root_finds_an_end_of_a_linear_path():
    t = np.linspace(0.0, 1.0, 400)
    q = 1.0 / (1.0 + np.exp(-20.0 * (t[:, None] - np.linspace(0.0, 1.0, 16)[None, :])))
    adata = ad.AnnData(obs=pd.DataFrame({"t": t}, index=[f"c{i}" for i in range(400)]))
    adata.obsm["X_qbm"] = q
    trajectory(adata, "auto_diffusion")
    assert abs(spearman(adata.obs["qbm_pseudotime"], t)) > 0.95
    assert adata.uns["qbm_trajectory"]["root"]["index"] in (*range(10), *range(390, 400))


# --------------------------------------------------------------------------- errors


def test_missing_representation_says_which_verb_to_run():
    adata = make_adata(100)
    del adata.obsm["X_qbm"]
    with pytest.raises(ValueError, match=r"qbm_pyro\.tl\.qbm"):
        trajectory(adata, 0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"root": "no_such_cell"}, KeyError, "no_such_cell"),
        ({"root": 10_000}, ValueError, "out of range"),
        ({"root": None}, ValueError, "Give a root"),
        ({"root_key": "missing", "root_value": "x"}, KeyError, "missing"),
        ({"root_key": "start", "root_value": "never"}, ValueError, "never"),
        ({"root": 0, "root_key": "start", "root_value": "early"}, ValueError, "not both"),
        ({"root": 0, "metric": "cosine"}, ValueError, "hellinger"),
        ({"root": 0, "groups_key": "nope"}, KeyError, "nope"),
        ({"root": 0, "n_neighbors": 0}, ValueError, "n_neighbors"),
    ],
)
def test_bad_arguments_raise_actionable_errors(kwargs, error, match):
    adata = make_adata(100)
    with pytest.raises(error, match=match):
        trajectory(adata, **kwargs)


def test_auto_energy_without_energy_raises():
    adata = make_adata(100)
    del adata.obs["qbm_energy"]
    with pytest.raises(KeyError, match="qbm_energy"):
        trajectory(adata, "auto_energy")


def test_prior_key_is_deprecated_and_changes_nothing():
    adata = make_adata(100)
    with pytest.warns(FutureWarning, match="prior_key"):
        given = trajectory(adata, "auto_energy", prior_key="qbm", copy=True)
    plain = trajectory(adata, "auto_energy", copy=True)
    np.testing.assert_array_equal(given.obs["qbm_pseudotime"], plain.obs["qbm_pseudotime"])


def test_values_outside_unit_interval_need_n_binary():
    adata = make_adata(200)
    continuous = np.random.default_rng(0).normal(size=(200, 3)) * 3
    adata.obsm["X_qbm"] = np.hstack([adata.obsm["X_qbm"], continuous])
    with pytest.raises(ValueError, match="n_binary"):
        trajectory(adata, 0)
    adata.uns["qbm"] = {"params": {"n_binary": 24}}  # what tl.qbm records
    trajectory(adata, 0)
    assert adata.uns["qbm_trajectory"]["params"]["n_binary"] == 24
    trajectory(adata, 0, n_binary=24, metric="hamming")


# --------------------------------------------------------------------------- API contract


def test_copy_semantics():
    adata = make_adata(300)
    out = trajectory(adata, 0, copy=True)
    assert isinstance(out, ad.AnnData) and out is not adata
    assert not any(key in adata.obs for key in WRITTEN_OBS)
    assert "qbm_trajectory" not in adata.uns and "qbm_connectivities" not in adata.obsp
    assert all(key in out.obs for key in WRITTEN_OBS)
    assert trajectory(adata, 0) is None
    assert all(key in adata.obs for key in WRITTEN_OBS)


def test_key_added_names_every_output_and_is_deterministic():
    adata = make_adata(300)
    trajectory(adata, 0, key_added="traj", seed=3)
    first = adata.obs["traj_pseudotime"].to_numpy().copy()
    states = adata.obs["traj_state"].to_numpy().copy()
    trajectory(adata, 0, key_added="traj", seed=3)
    np.testing.assert_allclose(adata.obs["traj_pseudotime"], first)
    np.testing.assert_array_equal(adata.obs["traj_state"], states)
    assert {"traj_distances", "traj_connectivities"} <= set(adata.obsp)
    assert adata.obsm["X_traj_diffmap"].shape == (300, 10)
    assert adata.uns["traj_trajectory"]["params"]["seed"] == 3
    assert isinstance(adata.obs["traj_branch"].dtype, pd.CategoricalDtype)
    assert isinstance(trajectory_graph(adata, key="traj"), nx.DiGraph)


def test_given_groups_become_the_states():
    adata = make_adata(400)
    adata.obs["bins"] = pd.cut(adata.obs["t"], 5, labels=list("abcde")).astype(str)
    trajectory(adata, earliest(adata), groups_key="bins")
    np.testing.assert_array_equal(adata.obs["qbm_state"].astype(str), adata.obs["bins"])
    graph = trajectory_graph(adata)
    assert sorted(nx.topological_sort(graph)) == list("abcde")
    assert list(nx.topological_sort(graph)) == list("abcde")


def test_disconnected_components_warn_and_get_nan():
    adata = make_adata(300)
    far = np.clip(adata.obsm["X_qbm"][:40] * 0.0 + 0.999, 0, 1)  # a far-away clump
    far += np.random.default_rng(0).uniform(-1e-3, 0, size=far.shape)
    adata.obsm["X_qbm"] = np.vstack([adata.obsm["X_qbm"][40:], far])
    with pytest.warns(UserWarning, match=r"2 connected components.*40 of 300 cells \(13\.3%\) lie outside"):
        trajectory(adata, 0, n_neighbors=10)
    pseudotime = adata.obs["qbm_pseudotime"].to_numpy()
    assert np.isnan(pseudotime[-40:]).all() and np.isfinite(pseudotime[:-40]).all()
    component = adata.obs["qbm_component"].astype(str).to_numpy()
    root_component = adata.uns["qbm_trajectory"]["root_component"]
    assert (component[:-40] == root_component).all() and (component[-40:] != root_component).all()
    # the state graph draws states without a pseudotime in grey, not in the root's colour
    import matplotlib.pyplot as plt

    from qbm_pyro import pl

    ax = pl.state_graph(adata)
    nan_states = {
        s
        for s, t in zip(
            adata.uns["qbm_trajectory"]["states"], adata.uns["qbm_trajectory"]["state_mean_pseudotime"]
        )
        if np.isnan(t)
    }
    assert nan_states
    grey = [c for c in ax.collections if c.get_label() == "no mean pseudotime"]
    assert len(grey) == 1 and len(grey[0].get_offsets()) == len(nan_states)
    assert np.allclose(grey[0].get_facecolor()[:, :3], matplotlib.colors.to_rgb("lightgrey"))
    plt.close("all")


def test_states_are_not_named_like_leiden_clusters():
    adata = make_adata(150)
    trajectory(adata, 0)
    states = adata.obs["qbm_state"].cat.categories
    assert all(s.startswith("S") and s[1:].isdigit() for s in states)


def test_logs_start_and_added(caplog):
    adata = make_adata(150)
    with caplog.at_level(logging.INFO, logger="qbm_pyro.tl._trajectory"):
        trajectory(adata, 0)
    text = caplog.text
    assert "computing trajectory" in text and "added" in text and "qbm_pseudotime" in text


def test_cell_graph_is_networkx(fitted):
    graph = cell_graph(fitted)
    assert isinstance(graph, nx.Graph)
    assert graph.number_of_nodes() == fitted.n_obs
    assert graph.number_of_edges() == fitted.obsp["qbm_connectivities"].nnz // 2
    assert set(graph.nodes) == set(fitted.obs_names)


@pytest.mark.slow  # 20k cells; its time bound fails on a loaded machine
def test_large_run_stays_sparse():
    """20k cells: the graph is kNN-sparse and nothing n x n is formed (finishes in seconds)."""
    n = 20_000
    adata = make_adata(n, n_units=12)
    start = time.perf_counter()
    trajectory(adata, earliest(adata), knn_method="exact")
    elapsed = time.perf_counter() - start
    conn = adata.obsp["qbm_connectivities"]
    assert sp.issparse(conn) and conn.shape == (n, n)
    assert conn.nnz <= 2 * 15 * n
    assert sp.issparse(adata.obsp["qbm_distances"]) and adata.obsp["qbm_distances"].nnz == 15 * n
    assert spearman(adata.obs["qbm_pseudotime"], adata.obs["t"]) > 0.9
    assert elapsed < 30


# --------------------------------------------------------------------------- MuData and I/O


def test_mudata_writes_global_slots_and_survives_h5mu(tmp_path):
    mdata = make_mudata(400)
    trajectory(mdata, 0)
    assert all(key in mdata.obs for key in WRITTEN_OBS)
    assert "qbm_connectivities" in mdata.obsp and "qbm_trajectory" in mdata.uns
    assert "qbm_pseudotime" not in mdata["rna"].obs
    before = trajectory_graph(mdata)

    path = tmp_path / "traj.h5mu"
    mdata.write_h5mu(path)
    back = md.read_h5mu(path)
    after = trajectory_graph(back)
    assert isinstance(after, nx.DiGraph)
    assert_same_graph(before, after)
    np.testing.assert_allclose(back.obs["qbm_pseudotime"], mdata.obs["qbm_pseudotime"])
    assert (back.obsp["qbm_connectivities"] != mdata.obsp["qbm_connectivities"]).nnz == 0
    energy_along_pseudotime(back)


def test_anndata_survives_h5ad(fitted, tmp_path):
    path = tmp_path / "traj.h5ad"
    fitted.write_h5ad(path)
    back = ad.read_h5ad(path)
    assert_same_graph(trajectory_graph(fitted), trajectory_graph(back))


# --------------------------------------------------------------------------- plots


def test_plots_return_axes(fitted, tmp_path):
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes

    from qbm_pyro import pl

    with pytest.raises(ValueError, match=r"sc\.tl\.umap"):
        pl.trajectory(fitted, basis="umap")
    adata = fitted.copy()
    adata.obsm["X_umap"] = adata.obsm["X_qbm_diffmap"][:, :2]
    assert isinstance(pl.trajectory(adata, save=tmp_path / "traj.png"), Axes)
    assert (tmp_path / "traj.png").exists()
    assert isinstance(pl.trajectory(adata, basis="qbm_diffmap", edges="all"), Axes)
    assert isinstance(pl.pseudotime_energy(adata), Axes)
    assert isinstance(pl.state_graph(adata), Axes)
    assert isinstance(pl.state_graph(adata, layout="spring", color="mean_energy"), Axes)
    plt.close("all")
