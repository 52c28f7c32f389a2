"""Plots of the energy landscape computed by :func:`qbm_pyro.tl.attractors`.

:func:`landscape` draws the cells on a 2-D embedding coloured by their prior energy, each
attractor's basin (an ellipse over its member cells) and the barrier tree between attractors;
:func:`attractors` draws the attractor × marker heat map; :func:`persistence` the number of states
left at each merging threshold. Each takes the data object first and returns the
:class:`matplotlib.axes.Axes` drawn on.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from qbm_pyro.pl._style import axes, finish

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["attractors", "landscape", "persistence"]


def _attractor_info(data: Any, key: str) -> dict:
    if key not in data.obs or key not in data.uns:
        raise KeyError(f"{key!r} not found in data.obs / data.uns: run qbm_pyro.tl.attractors first")
    return data.uns[key]


def landscape(
    data: Any,
    *,
    basis: str = "umap",
    key: str = "qbm_attractor",
    energy_key: str = "qbm_energy",
    size: float | None = None,
    cmap: str = "viridis",
    ax: Axes | None = None,
    show: bool = False,
    save: str | Path | None = None,
) -> Axes:
    """The energy landscape on an embedding: cells coloured by energy, basins, barrier tree.

    Each attractor's basin is drawn as the 2-sd ellipse of its member cells in the embedding
    with its name at the centroid; each edge of the barrier tree (``uns[key]['edges']``) joins
    two centroids, labelled with its barrier height above the higher of the two attractors (kT:
    ``ΔE`` over codes, or ``ΔF`` in free energy for the mean-field states; ``≤`` marks an upper
    bound).

    Parameters
    ----------
    data
        MuData or AnnData on which :func:`qbm_pyro.tl.attractors` ran, with ``obsm[f"X_{basis}"]``.
    basis
        Embedding: ``obsm[f"X_{basis}"]`` (first two columns), e.g. ``"umap"``.
    key
        The ``key_added`` of :func:`qbm_pyro.tl.attractors`.
    energy_key
        ``obs`` column of the cells' energies.
    size
        Marker size; default ``120000 / n_obs`` clipped to ``[1, 50]``.
    cmap
        Colour map of the energy.
    ax, show, save
        As in every :mod:`qbm_pyro.pl` plot.

    Returns
    -------
    matplotlib.axes.Axes
    """
    from matplotlib.patches import Ellipse

    info = _attractor_info(data, key)
    if f"X_{basis}" not in data.obsm:
        raise KeyError(f"obsm['X_{basis}'] not found: compute the embedding first (e.g. sc.tl.umap)")
    if energy_key not in data.obs:
        raise KeyError(f"{energy_key!r} not found in data.obs (run qbm_pyro.tl.qbm first)")
    xy = np.asarray(data.obsm[f"X_{basis}"])[:, :2]
    energy = data.obs[energy_key].to_numpy(dtype=float)
    labels = data.obs[key].astype(str).to_numpy()
    names = list(data.obs[key].cat.categories)
    size = float(np.clip(120000 / max(len(xy), 1), 1, 50)) if size is None else size
    ax = axes(ax, (6, 5))
    points = ax.scatter(xy[:, 0], xy[:, 1], c=energy, s=size, cmap=cmap, linewidths=0, rasterized=True)
    ax.figure.colorbar(points, ax=ax, label="prior energy E(q)")
    palette = _palette(len(names))
    centre = {}
    for i, name in enumerate(names):
        member = xy[labels == name]
        if member.shape[0] == 0:
            continue
        centre[i] = member.mean(axis=0)
        if member.shape[0] > 2:
            values, vectors = np.linalg.eigh(np.cov(member.T))
            angle = float(np.degrees(np.arctan2(vectors[1, -1], vectors[0, -1])))
            width, height = 4 * np.sqrt(np.maximum(values[::-1], 0))
            ax.add_patch(Ellipse(centre[i], width, height, angle=angle, fill=False, lw=1.5, color=palette[i]))
    energies = np.asarray(info["energies"])
    exact = np.asarray(info.get("barrier_exact", np.ones((len(names),) * 2, dtype=bool)))
    for (g, f), value in zip(np.asarray(info["edges"]), np.asarray(info["edge_barrier"]), strict=True):
        if g not in centre or f not in centre:
            continue
        (x0, y0), (x1, y1) = centre[g], centre[f]
        ax.plot([x0, x1], [y0, y1], color="black", lw=1.2, alpha=0.7)
        height = value - max(energies[g], energies[f])
        text = f"{'' if exact[g, f] else '≤'}{height:.1f}"
        ax.annotate(text, ((x0 + x1) / 2, (y0 + y1) / 2), fontsize=8, ha="center", va="center",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "alpha": 0.8, "lw": 0})  # fmt: skip
    for i, (x, y) in centre.items():
        ax.scatter([x], [y], s=80, color=palette[i], edgecolors="black", zorder=3)
        ax.annotate(names[i], (x, y), xytext=(4, 4), textcoords="offset points", fontsize=9, weight="bold")
    ax.set_xlabel(f"{basis}1")
    ax.set_ylabel(f"{basis}2")
    ax.set_xticks([])
    ax.set_yticks([])
    delta = "ΔF, free energy" if info.get("method") == "meanfield" else "ΔE"
    ax.set_title(f"energy landscape: basins and barriers ({delta}, kT)")
    return finish(ax, show, save)


def attractors(
    data: Any,
    *,
    key: str = "qbm_attractor",
    n_markers: int = 5,
    ax: Axes | None = None,
    show: bool = False,
    save: str | Path | None = None,
) -> Axes:
    """Heat map of attractors × their top marker features: each decoded profile's log2 fold
    change against the mean over attractors (a pseudocount of 1% of the median value).

    Parameters
    ----------
    data
        Data on which :func:`qbm_pyro.tl.attractors` ran with ``n_markers > 0``.
    key
        Its ``key_added``.
    n_markers
        Top markers drawn per attractor (at most as many as were ranked).
    ax, show, save
        As in every :mod:`qbm_pyro.pl` plot.

    Returns
    -------
    matplotlib.axes.Axes
    """
    info = _attractor_info(data, key)
    if "profiles" not in info or "markers" not in info:
        raise KeyError(f"uns[{key!r}] has no markers: run qbm_pyro.tl.attractors with n_markers > 0")
    profiles, markers = info["profiles"], info["markers"]
    chosen = list(dict.fromkeys(markers.loc[markers["rank"] < n_markers, "feature"]))
    values = profiles[chosen].to_numpy(dtype=float)
    values = np.log2(values + 0.01 * np.nanmedian(values) + 1e-12)
    centred = values - np.nanmean(values, axis=0)
    bound = float(np.nanmax(np.abs(centred))) or 1.0
    ax = axes(ax, (max(4, 0.28 * len(chosen) + 2), max(2.5, 0.4 * len(profiles) + 1.2)))
    image = ax.imshow(centred, aspect="auto", cmap="RdBu_r", vmin=-bound, vmax=bound)
    ax.figure.colorbar(image, ax=ax, label="log2 fold vs the attractors' mean")
    ax.set_xticks(range(len(chosen)), chosen, rotation=90, fontsize=8)
    ax.set_yticks(range(len(profiles)), list(profiles.index))
    ax.set_xlabel("marker")
    ax.set_ylabel("attractor")
    return finish(ax, show, save)


def persistence(
    data: Any,
    *,
    key: str = "qbm_attractor",
    ax: Axes | None = None,
    show: bool = False,
    save: str | Path | None = None,
) -> Axes:
    """How many states (mean-field states, or code minima) are left when those a barrier below ``t``
    separates are merged,
    for every threshold ``t`` (kT): a step down at each of ``uns[key]['merge_heights']``, the
    threshold :func:`qbm_pyro.tl.attractors` used dashed. A long plateau is a scale at which the
    prior has that many distinct states; short even steps are a continuum.

    Parameters
    ----------
    data
        Data on which :func:`qbm_pyro.tl.attractors` ran with ``method="meanfield"`` (the
        default), ``"greedy"`` or ``"anneal"``.
    key
        Its ``key_added``.
    ax, show, save
        As in every :mod:`qbm_pyro.pl` plot.

    Returns
    -------
    matplotlib.axes.Axes
    """
    info = _attractor_info(data, key)
    if "merge_heights" not in info:
        raise KeyError(
            f"uns[{key!r}] has no merge_heights: run qbm_pyro.tl.attractors with method='meanfield', "
            "'greedy' or 'anneal' (graph basins have none)"
        )
    heights = np.sort(np.asarray(info["merge_heights"], dtype=float))
    n_states = len(info["minima"])
    used = float(info["params"]["min_barrier"])
    right = 1.15 * max(heights.max() if heights.size else 0.0, used, 1.0)
    # states left at threshold t: n_states minus the joins below t (a join at t happens for t > it)
    edges = np.concatenate([[0.0], heights, [right]])
    counts = n_states - np.arange(heights.size + 1)
    ax = axes(ax, (5, 3.2))
    ax.stairs(counts, edges, baseline=None, color="k", linewidth=1.5)
    ax.axvline(used, color="tab:red", linestyle="--", linewidth=1, label=f"min_barrier = {used:g} kT")
    ax.set_xlim(0, right)
    ax.set_ylim(0, n_states + 0.5)
    ax.set_xlabel("merging threshold (kT)")
    ax.set_ylabel("states")
    ax.legend(frameon=False, loc="upper right")
    return finish(ax, show, save)


def _palette(k: int) -> list:
    import matplotlib as mpl

    cmap = mpl.colormaps["tab10" if k <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(k)]
