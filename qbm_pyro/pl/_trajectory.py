"""Plots of the trajectory computed by :func:`qbm_pyro.tl.trajectory`.

Three scanpy-style plots, each taking the data object first and returning the
:class:`matplotlib.axes.Axes` it drew on: the cells on a 2-D embedding coloured by pseudotime
with the state graph drawn at the state centroids (:func:`trajectory`), the prior energy against
the pseudotime with a running mean (:func:`pseudotime_energy`), and the state graph alone
(:func:`state_graph`). ``show=True`` calls :func:`matplotlib.pyplot.show`; ``save=`` writes the
figure to that path.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import networkx as nx
import numpy as np
import pandas as pd

from qbm_pyro._checks import check_choice
from qbm_pyro.pl._style import axes, finish
from qbm_pyro.tl import trajectory_graph

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["pseudotime_energy", "state_graph", "trajectory"]


def trajectory(
    data: Any,
    *,
    basis: str = "umap",
    key: str = "qbm",
    color: str | None = None,
    edges: Literal["tree", "all"] = "tree",
    min_connectivity: float = 0.0,
    size: float | None = None,
    cmap: str = "viridis",
    ax: Axes | None = None,
    show: bool = False,
    save: str | Path | None = None,
) -> Axes:
    """Cells on a 2-D embedding, coloured by pseudotime, with the state graph on top.

    Each state is drawn at the centroid of its cells in the embedding, and each edge of the
    state graph as an arrow from the earlier to the later state, its width proportional to
    the connectivity.

    Parameters
    ----------
    data
        MuData or AnnData on which :func:`qbm_pyro.tl.trajectory` ran, with
        ``obsm[f"X_{basis}"]``.
    basis
        Embedding to draw on: ``obsm[f"X_{basis}"]`` (first two columns), e.g. ``"umap"`` or
        ``"qbm_diffmap"``.
    key
        The ``key_added`` given to :func:`qbm_pyro.tl.trajectory`.
    color
        ``obs`` column to colour the cells by; default ``obs[f"{key}_pseudotime"]``.
    edges
        ``"tree"`` draws the branch tree only, ``"all"`` every edge.
    min_connectivity
        Edges of lower connectivity are not drawn.
    size
        Marker size of the cells; default ``120000 / n_obs`` clipped to ``[1, 50]``.
    cmap
        Colour map for a numeric ``color``.
    ax
        Axes to draw on; a new figure if ``None``.
    show
        Call :func:`matplotlib.pyplot.show` at the end.
    save
        Path to save the figure to.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np, anndata as ad
    >>> from qbm_pyro.tl import trajectory as tl_trajectory
    >>> from qbm_pyro.pl import trajectory
    >>> q = np.random.default_rng(0).uniform(size=(200, 8))
    >>> adata = ad.AnnData(q, obsm={"X_qbm": q})  # anndata < 0.12 takes n_obs from X, not obsm
    >>> tl_trajectory(adata, root=0)
    >>> ax = trajectory(adata, basis="qbm_diffmap")
    """
    coords = _embedding(data, basis)
    graph = trajectory_graph(data, key)
    color = f"{key}_pseudotime" if color is None else color
    if color not in data.obs:
        raise KeyError(f"`color` {color!r} not found in `.obs`.")
    check_choice("edges", edges, ("tree", "all"))
    ax = axes(ax, (5.5, 4.5))
    size = float(np.clip(120_000 / max(data.n_obs, 1), 1, 50)) if size is None else size
    _scatter(ax, coords, data.obs[color], size=size, cmap=cmap, label=color)

    states = data.obs[f"{key}_state"].astype(str).to_numpy()
    centroids = {s: coords[states == s].mean(axis=0) for s in graph.nodes if (states == s).any()}
    drawn = [
        (a, b, d)
        for a, b, d in graph.edges(data=True)
        if (edges == "all" or d["in_tree"]) and d["connectivity"] >= min_connectivity
    ]
    top = max((d["connectivity"] for _, _, d in drawn), default=1.0) or 1.0
    for a, b, d in drawn:
        if a in centroids and b in centroids:
            ax.annotate(
                "",
                xy=centroids[b],
                xytext=centroids[a],
                arrowprops={
                    "arrowstyle": "-|>",
                    "color": "black",
                    "lw": 0.5 + 2.5 * d["connectivity"] / top,
                    "shrinkA": 4,
                    "shrinkB": 4,
                },
            )
    for s, (x, y) in centroids.items():
        ax.scatter([x], [y], s=60, c="white", edgecolors="black", zorder=3)
        ax.text(x, y, s, ha="center", va="center", fontsize=7, zorder=4)
    ax.set_xlabel(f"{basis}1")
    ax.set_ylabel(f"{basis}2")
    ax.set_title(f"trajectory on {basis}")
    return finish(ax, show, save)


def pseudotime_energy(
    data: Any,
    *,
    key: str = "qbm",
    energy_key: str = "qbm_energy",
    color: str | None = None,
    window: int | None = None,
    size: float | None = None,
    ax: Axes | None = None,
    show: bool = False,
    save: str | Path | None = None,
) -> Axes:
    """Prior energy of each cell against its pseudotime, with a running mean.

    Whether the energy falls along the trajectory is an empirical question; see
    :func:`qbm_pyro.tl.energy_along_pseudotime` for the numbers.

    Parameters
    ----------
    data
        MuData or AnnData on which :func:`qbm_pyro.tl.trajectory` ran, with ``obs[energy_key]``.
    key
        The ``key_added`` given to :func:`qbm_pyro.tl.trajectory`.
    energy_key
        ``obs`` column of per-cell prior energies.
    color
        ``obs`` column to colour the cells by; default ``obs[f"{key}_branch"]``.
    window
        Number of cells (in pseudotime order) in the running mean; default ``max(n / 50, 10)``.
    size
        Marker size of the cells.
    ax
        Axes to draw on; a new figure if ``None``.
    show
        Call :func:`matplotlib.pyplot.show` at the end.
    save
        Path to save the figure to.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np, anndata as ad
    >>> from qbm_pyro.tl import trajectory
    >>> from qbm_pyro.pl import pseudotime_energy
    >>> q = np.random.default_rng(0).uniform(size=(200, 8))
    >>> adata = ad.AnnData(obs={"qbm_energy": q.sum(1)}, obsm={"X_qbm": q})
    >>> trajectory(adata, root=0)
    >>> ax = pseudotime_energy(adata)
    """
    pt_key = f"{key}_pseudotime"
    if pt_key not in data.obs:
        raise ValueError(f"You need to run `qbm_pyro.tl.trajectory` first: `.obs[{pt_key!r}]` not found.")
    if energy_key not in data.obs:
        raise KeyError(
            f"`energy_key` {energy_key!r} not found in `.obs`; `qbm_pyro.tl.qbm` writes `obs['qbm_energy']`."
        )
    color = f"{key}_branch" if color is None else color
    if color not in data.obs:
        raise KeyError(f"`color` {color!r} not found in `.obs`.")
    frame = pd.DataFrame(
        {
            "pt": data.obs[pt_key].to_numpy(dtype=float),
            "energy": data.obs[energy_key].to_numpy(dtype=float),
        }
    )
    ok = np.isfinite(frame["pt"]) & np.isfinite(frame["energy"])
    ax = axes(ax, (5.5, 4.5))
    size = float(np.clip(60_000 / max(data.n_obs, 1), 1, 30)) if size is None else size
    _scatter(ax, frame[["pt", "energy"]].to_numpy(), data.obs[color], size=size, label=color)
    ordered = frame[ok].sort_values("pt")
    window = max(len(ordered) // 50, 10) if window is None else int(window)
    running = ordered["energy"].rolling(window, center=True, min_periods=1).mean()
    ax.plot(ordered["pt"], running, color="black", lw=2, label=f"running mean ({window} cells)")
    ax.legend(loc="best", fontsize=7)
    ax.set_xlabel("pseudotime")
    ax.set_ylabel(f"energy ({energy_key})")
    return finish(ax, show, save)


def state_graph(
    data: Any,
    *,
    key: str = "qbm",
    color: Literal["mean_pseudotime", "mean_energy"] = "mean_pseudotime",
    layout: Literal["pseudotime", "spring"] = "pseudotime",
    edges: Literal["tree", "all"] = "all",
    cmap: str = "viridis",
    seed: int = 0,
    ax: Axes | None = None,
    show: bool = False,
    save: str | Path | None = None,
) -> Axes:
    """The coarse state graph, drawn with networkx.

    Node size grows with the number of cells, node colour is the state's mean pseudotime or
    mean energy (grey for states without one, e.g. off the root's component), edge width is
    the connectivity; branch-tree edges are drawn solid, the others
    dashed.

    Parameters
    ----------
    data
        MuData or AnnData on which :func:`qbm_pyro.tl.trajectory` ran.
    key
        The ``key_added`` given to :func:`qbm_pyro.tl.trajectory`.
    color
        Node attribute to colour by.
    layout
        ``"pseudotime"``: x is the mean pseudotime, y separates the branches; ``"spring"``:
        :func:`networkx.spring_layout` weighted by connectivity.
    edges
        ``"tree"`` draws the branch tree only, ``"all"`` every edge.
    cmap
        Colour map of the nodes.
    seed
        Seed of the spring layout.
    ax
        Axes to draw on; a new figure if ``None``.
    show
        Call :func:`matplotlib.pyplot.show` at the end.
    save
        Path to save the figure to.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np, anndata as ad
    >>> from qbm_pyro.tl import trajectory
    >>> from qbm_pyro.pl import state_graph
    >>> q = np.random.default_rng(0).uniform(size=(200, 8))
    >>> adata = ad.AnnData(q, obsm={"X_qbm": q})  # anndata < 0.12 takes n_obs from X, not obsm
    >>> trajectory(adata, root=0)
    >>> ax = state_graph(adata)
    """
    check_choice("color", color, ("mean_pseudotime", "mean_energy"))
    check_choice("layout", layout, ("pseudotime", "spring"))
    check_choice("edges", edges, ("tree", "all"))
    graph = trajectory_graph(data, key)
    ax = axes(ax, (5.5, 4.5))
    pos = _state_layout(graph, layout, seed)
    names = list(graph.nodes)
    n_cells = np.array([graph.nodes[v]["n_cells"] for v in names], dtype=float)
    values = np.array([graph.nodes[v][color] for v in names], dtype=float)
    sizes = 100 + 900 * n_cells / max(n_cells.max(), 1)
    finite = np.isfinite(values)
    nodes = None
    # states without a value (off the root's component: no pseudotime) in grey, never in the
    # colour of the root's end of the scale
    for chosen in (finite, ~finite):
        if not chosen.any():
            continue
        listed = [v for v, keep in zip(names, chosen) if keep]
        drawn = nx.draw_networkx_nodes(
            graph,
            pos,
            nodelist=listed,
            ax=ax,
            node_size=sizes[chosen],
            node_color=values[chosen] if chosen is finite else "lightgrey",
            cmap=cmap if chosen is finite else None,
            edgecolors=["red" if graph.nodes[v]["root"] else "black" for v in listed],
            label=None if chosen is finite else f"no {color.replace('_', ' ')}",
        )
        if chosen is finite:
            nodes = drawn
    nx.draw_networkx_labels(graph, pos, ax=ax, font_size=7)
    top = max((d["connectivity"] for _, _, d in graph.edges(data=True)), default=1.0) or 1.0
    for in_tree in (True, False):
        if in_tree is False and edges == "tree":
            continue
        chosen = [(a, b) for a, b, d in graph.edges(data=True) if d["in_tree"] is in_tree]
        widths = [0.5 + 3.0 * graph.edges[e]["connectivity"] / top for e in chosen]
        nx.draw_networkx_edges(
            graph,
            pos,
            edgelist=chosen,
            width=widths,
            style="solid" if in_tree else "dashed",
            alpha=1.0 if in_tree else 0.4,
            ax=ax,
            arrows=True,
        )
    if nodes is not None:
        ax.figure.colorbar(nodes, ax=ax, label=color.replace("_", " "))
    if not finite.all():
        ax.legend(loc="best", fontsize=7)
    ax.set_title("state graph (red: root state)")
    return finish(ax, show, save)


################################################################################
# Helpers.
################################################################################


def _embedding(data: Any, basis: str) -> np.ndarray:
    name = f"X_{basis}"
    if name not in data.obsm:
        hint = (
            "run `sc.tl.umap` (AnnData) or `mu.tl.umap` (MuData) first"
            if basis == "umap"
            else f"compute `.obsm[{name!r}]` first"
        )
        raise ValueError(
            f"`.obsm[{name!r}]` not found: {hint}, or pass `basis=` naming another embedding "
            f"(available: {sorted(k.removeprefix('X_') for k in data.obsm.keys())})."
        )
    coords = np.asarray(data.obsm[name], dtype=float)
    if coords.ndim != 2 or coords.shape[1] < 2:
        raise ValueError(f"`.obsm[{name!r}]` needs at least 2 columns, got {coords.shape}.")
    return coords[:, :2]


def _scatter(
    ax: Axes, xy: np.ndarray, values: pd.Series, *, size: float, label: str, cmap: str = "viridis"
) -> None:
    """Scatter coloured by a numeric (colour bar) or categorical (legend) column."""
    if isinstance(values.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(values):
        cats = values.astype("category")
        for i, cat in enumerate(cats.cat.categories):
            mask = (cats == cat).to_numpy()
            ax.scatter(xy[mask, 0], xy[mask, 1], s=size, color=f"C{i % 10}", label=str(cat), lw=0)
        ax.legend(loc="best", fontsize=7, markerscale=2, title=label, title_fontsize=7)
        return
    v = values.to_numpy(dtype=float)
    nan = ~np.isfinite(v)
    ax.scatter(xy[nan, 0], xy[nan, 1], s=size, color="lightgrey", lw=0)
    points = ax.scatter(xy[~nan, 0], xy[~nan, 1], s=size, c=v[~nan], cmap=cmap, lw=0)
    ax.figure.colorbar(points, ax=ax, label=label)


def _state_layout(graph: nx.DiGraph, layout: str, seed: int) -> dict[str, np.ndarray]:
    if layout == "spring":
        return nx.spring_layout(graph.to_undirected(), weight="connectivity", seed=seed)
    branches = sorted({graph.nodes[v]["branch"] for v in graph.nodes} - {"trunk"})
    offset = {b: i - (len(branches) - 1) / 2 for i, b in enumerate(branches)}
    offset["trunk"] = 0.0
    pos = {}
    by_branch: dict[str, int] = {}
    for v in sorted(graph.nodes, key=lambda v: graph.nodes[v]["mean_pseudotime"]):
        b = graph.nodes[v]["branch"]
        jitter = 0.15 * (by_branch.get(b, 0) % 2)
        by_branch[b] = by_branch.get(b, 0) + 1
        x = graph.nodes[v]["mean_pseudotime"]
        pos[v] = np.array([x if np.isfinite(x) else 1.1, offset[b] + jitter])
    return pos
