"""Settings that follow the number of cells: the one place where ``None`` defaults are resolved."""

from __future__ import annotations

from typing import Any

__all__ = ["SMALL_DATA_CELLS", "size_defaults"]

#: Below this many cells the data count as small (see :func:`size_defaults`).
SMALL_DATA_CELLS = 1000


def size_defaults(
    n_cells: int,
    *,
    n_latent: int | None = None,
    n_continuous: int | None = None,
    max_epochs: int | None = None,
    validation_fraction: float | None = None,
    early_stopping: bool | None = None,
) -> dict[str, Any]:
    """Resolve the ``None`` settings of :func:`qbm_pyro.tl.qbm` from the number of cells.

    Values given (not ``None``) are kept. The rules:

    ``max_epochs``
        ``clip(round(400,000 / n_cells), 200, 400)``: 400 epochs up to 1,000 cells, falling as
        ``1/n_cells`` to 200 (the fixed default before) from 2,000 cells on. A few hundred cells
        make 2-4 minibatches of 128 per epoch, so 200 epochs are only some 600 gradient steps;
        scvi-tools scales the same way (``min(round(20,000 / n_cells * 400), 400)``). Large data
        keep 200 epochs and early stopping, so their results do not move.
    ``validation_fraction``, ``early_stopping``
        Below ``SMALL_DATA_CELLS`` (1,000) cells: no validation set and no early stopping
        (``0.0``, ``False``). 10 % of 271 cells is 27 cells: their loss is too noisy to stop on,
        and they are worth more as training cells; the fixed epoch count above bounds training
        instead. From 1,000 cells: ``0.1`` and ``True`` (as before). Early stopping is only on
        when there is a validation set.
    ``n_latent``, ``n_continuous``
        64 binary + 16 Gaussian units at every size. A smaller latent (16 + 8) was measured on
        300-cell subsamples and lost: on paul15 the pseudotime's Spearman with the lineage
        pseudotimes fell from 0.92 to 0.85 and the energy no longer followed the pseudotime
        (``BENCHMARKS.md``, small-data section). They are resolved here all the same, so that a
        size rule can be added in this one place.

    Parameters
    ----------
    n_cells
        Cells the model is fit on.
    n_latent, n_continuous, max_epochs, validation_fraction, early_stopping
        Given values, or ``None`` to resolve.

    Returns
    -------
    A dict with the five settings resolved, plus ``n_cells`` and ``small_data`` (bool); it is
    recorded in ``uns['qbm']['params']['size_defaults']`` by :func:`qbm_pyro.tl.qbm`.

    Examples
    --------
    >>> from qbm_pyro.pp import size_defaults
    >>> size_defaults(271)["max_epochs"], size_defaults(271)["validation_fraction"]
    (400, 0.0)
    >>> size_defaults(2641)["n_latent"]
    64
    """
    if isinstance(n_cells, bool) or not isinstance(n_cells, int) or n_cells < 1:
        raise ValueError(f"n_cells must be a positive int, got {n_cells!r}")
    small = n_cells < SMALL_DATA_CELLS
    if max_epochs is None:
        max_epochs = int(min(400, max(200, round(400_000 / n_cells))))
    if validation_fraction is None:
        validation_fraction = 0.0 if small else 0.1
    if early_stopping is None:
        early_stopping = validation_fraction > 0
    if n_latent is None:
        n_latent = 64
    if n_continuous is None:
        n_continuous = 16
    return {
        "n_cells": n_cells,
        "small_data": small,
        "n_latent": n_latent,
        "n_continuous": n_continuous,
        "max_epochs": max_epochs,
        "validation_fraction": validation_fraction,
        "early_stopping": early_stopping,
    }
