"""Plots of a fitted model: training curves, the learned couplings, energy per cell."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import mudata as md
import numpy as np
from matplotlib.axes import Axes

from ._style import axes, finish

__all__ = ["couplings", "energy", "training_curve"]


def training_curve(
    history, *, ax: Axes | None = None, show: bool = False, save: str | Path | None = None
) -> Axes:
    """Training and validation loss (negative ELBO per cell) and the KL weight per epoch.

    Parameters
    ----------
    history
        ``model.history_`` or ``data.uns["qbm"]["history"]``.
    """
    ax = axes(ax)
    epochs = np.asarray(history["epoch"])
    ax.plot(epochs, history["train_loss"], label="train")
    if np.isfinite(np.asarray(history["validation_loss"], dtype=float)).any():
        ax.plot(epochs, history["validation_loss"], label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("negative ELBO per cell")
    twin = ax.twinx()
    twin.plot(epochs, history["kl_weight"], color="grey", ls=":", label="KL weight")
    twin.set_ylabel("KL weight")
    ax.legend(loc="upper right")
    return finish(ax, show, save)


def couplings(model, *, ax: Axes | None = None, show: bool = False, save: str | Path | None = None) -> Axes:
    """Heat map of the learned prior's couplings ``J`` (symmetrised) with the biases ``h`` on the
    diagonal."""
    prior = model.module.prior
    if prior is None:
        raise ValueError("this model has no Boltzmann prior (prior='gaussian')")
    J = prior.couplings().detach().numpy()
    J = J + J.T
    np.fill_diagonal(J, prior.h.detach().numpy())
    bound = np.abs(J).max() or 1.0
    ax = axes(ax, (4.5, 4))
    image = ax.imshow(J, cmap="RdBu_r", vmin=-bound, vmax=bound)
    ax.figure.colorbar(image, ax=ax, label="J (off-diagonal), h (diagonal)")
    ax.set_xlabel("unit")
    ax.set_ylabel("unit")
    ax.set_title("learned Boltzmann prior")
    return finish(ax, show, save)


def energy(
    data: md.MuData | ad.AnnData,
    groupby: str,
    *,
    key: str = "qbm_energy",
    ax: Axes | None = None,
    show: bool = False,
    save: str | Path | None = None,
) -> Axes:
    """Box plot of each cell's prior energy (``obs[key]``) per group of ``obs[groupby]``."""
    for column in (key, groupby):
        if column not in data.obs:
            hint = " (run qbm_pyro.tl.qbm first)" if column == key else ""
            raise KeyError(f"{column!r} not found in data.obs{hint}")
    groups = data.obs[groupby].astype("category")
    levels = list(groups.cat.categories)
    values = [data.obs.loc[groups == g, key].to_numpy() for g in levels]
    ax = axes(ax, (max(4, 0.6 * len(levels) + 2), 3.5))
    ax.boxplot(values, showfliers=False)
    ax.set_xticks(range(1, len(levels) + 1), [str(g) for g in levels], rotation=45, ha="right")
    ax.set_ylabel("prior energy E(q)")
    ax.set_xlabel(groupby)
    return finish(ax, show, save)
