"""Plots of a fitted model: training curves, the learned couplings, energy per cell."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import mudata as md
import numpy as np
from matplotlib.axes import Axes

from ._style import axes, finish

__all__ = ["couplings", "energy", "training_curve"]


def _uns(data, key: str, entry: str, what: str):
    """``data.uns[key][entry]``, or a ``KeyError`` saying how to get it."""
    try:
        return data.uns[key][entry]
    except (KeyError, TypeError):
        raise KeyError(
            f"data.uns[{key!r}][{entry!r}] not found: run qbm_pyro.tl.qbm(data, key_added={key!r}) first, "
            f"or pass the fitted model as model= for its {what}"
        ) from None


def _is_model(obj) -> bool:
    return hasattr(obj, "module") and hasattr(obj, "history_")


def training_curve(
    data=None,
    *,
    model=None,
    key: str = "qbm",
    ax: Axes | None = None,
    show: bool = False,
    save: str | Path | None = None,
) -> Axes:
    """Training and validation loss (negative ELBO per cell) and the KL weight per epoch.

    Parameters
    ----------
    data
        The MuData/AnnData :func:`qbm_pyro.tl.qbm` wrote into (its ``uns[key]["history"]``), or a
        history dict (``model.history_``).
    model
        A fitted :class:`~qbm_pyro.QBMVAE` to read the history from instead.
    key
        ``key_added`` of :func:`~qbm_pyro.tl.qbm`.
    """
    if model is None and _is_model(data):  # pl.training_curve(model)
        data, model = None, data
    if model is not None:
        history = model.history_
    elif isinstance(data, (md.MuData, ad.AnnData)):
        history = _uns(data, key, "history", "history")
    elif isinstance(data, dict):
        history = data
    else:
        raise TypeError(
            f"training_curve takes a MuData/AnnData, a history dict or model=, got {type(data).__name__}"
        )
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


def couplings(
    data=None,
    *,
    model=None,
    key: str = "qbm",
    ax: Axes | None = None,
    show: bool = False,
    save: str | Path | None = None,
) -> Axes:
    """Heat map of the learned prior's couplings ``J`` (symmetrised) with the biases ``h`` on the
    diagonal.

    Parameters
    ----------
    data
        The MuData/AnnData :func:`qbm_pyro.tl.qbm` wrote into (the prior it stored in
        ``uns[key]["prior"]``).
    model
        A fitted :class:`~qbm_pyro.QBMVAE` to read the prior from instead (also accepted as the
        first argument).
    key
        ``key_added`` of :func:`~qbm_pyro.tl.qbm`.

    Examples
    --------
    After :func:`qbm_pyro.tl.qbm` (tested in ``tests/test_pl_model.py``):

    >>> qbm_pyro.tl.qbm(mdata, batch_key="batch")  # doctest: +SKIP
    >>> qbm_pyro.pl.couplings(mdata)  # doctest: +SKIP
    """
    if model is None and _is_model(data):  # pl.couplings(model)
        data, model = None, data
    if model is not None:
        prior = model.module.prior
        if prior is None:
            raise ValueError("this model has no Boltzmann prior (prior='gaussian')")
        h, J = prior.h.detach().cpu().numpy(), prior.couplings().detach().cpu().numpy()
    elif isinstance(data, (md.MuData, ad.AnnData)):
        if key in data.uns and "history" in data.uns[key] and "prior" not in data.uns[key]:
            raise ValueError(f"data.uns[{key!r}] holds no prior: the model had none (prior='gaussian')")
        stored = _uns(data, key, "prior", "prior")
        h, J = np.asarray(stored["h"]), np.asarray(stored["J"])
    else:
        raise TypeError(f"couplings takes a MuData/AnnData or model=, got {type(data).__name__}")
    J = J + J.T
    np.fill_diagonal(J, h)
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
