"""What every plot in :mod:`qbm_pyro.pl` shares: a fresh Axes when none is given, and the
``show=`` / ``save=`` ending."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

__all__ = ["axes", "finish"]


def axes(ax: Axes | None, size: tuple[float, float] = (5, 3.5)) -> Axes:
    """``ax`` itself, or the Axes of a new figure of ``size`` inches when it is ``None``."""
    return ax if ax is not None else plt.subplots(figsize=size)[1]


def finish(ax: Axes, show: bool, save: str | Path | None) -> Axes:
    """Write the figure to ``save`` (when given; 150 dpi, tight box), show it if asked, return ``ax``."""
    if save is not None:
        ax.figure.savefig(save, bbox_inches="tight", dpi=150)
    if show:
        plt.show()
    return ax
