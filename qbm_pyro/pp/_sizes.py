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
    continuous_free_bits: float | None = None,
) -> dict[str, Any]:
    """Resolve the ``None`` settings of :func:`qbm_pyro.tl.qbm` from the number of cells.

    Values given (not ``None``) are kept. The rules:

    ``max_epochs``
        ``clip(round(8,000,000 / n_cells), 200, 400)``: 400 epochs up to 20,000 cells (scvi-tools'
        cap and threshold: ``min(round(20,000 / n_cells * 400), 400)``), then falling as
        ``1/n_cells`` to 200 from 40,000 cells on. The KL warm-up spans half of them, and early
        stopping watches the validation -ELBO from the first epoch, keeping the best state (see
        :meth:`qbm_pyro.QBMVAE.train`). What the longer training gains (3 seeds,
        ``BENCHMARKS.md``, "Training length and KL warm-up"): on paul15 validation -ELBO per
        cell 448 at 100 epochs, 439 at 200, 436-438 at 400, and Leiden ARI 0.43, 0.47, 0.50-0.52;
        on mixology batch mixing 0.60 at 100 epochs, 0.75-0.77 at 400. The rule before (200 epochs
        from 2,000 cells on) left such fits far from converged. Large data keep at least 200
        epochs.
    ``validation_fraction``, ``early_stopping``
        Below ``SMALL_DATA_CELLS`` (1,000) cells: no validation set and no early stopping
        (``0.0``, ``False``). 10 % of 271 cells is 27 cells: their loss is too noisy to stop on,
        and they are worth more as training cells; the fixed epoch count above bounds training
        instead. From 1,000 cells: ``0.1`` and ``True`` (as before). Early stopping is only on
        when there is a validation set; ``early_stopping=True`` asked for on small data brings
        its 10 % validation set.
    ``continuous_free_bits``
        ``0.0`` (none) at every size, unless given. A floor of 0.5 nats per Gaussian unit (the
        first 0.5 nats of each unit's KL free) was the default for stops 18-20 (2026-12-04), at
        every size and then from 1,000 cells only: on paul15 (2,660 cells) the Gaussian units had
        collapsed under the 3x KL weight (1 of 16 active) and the floor mended its Leiden clusters
        at a fixed resolution (0.437 against 0.343 averaged over resolutions 0.1-1.0); below 1,000
        cells it cost CITE-seq's held-out log p(x) 5-8 nats per cell and 300-cell paul15
        subsamples' 15-NN accuracy 0.03-0.06. But it moves the cells' states out of the binary
        code: on a 1,024-cell PBMC set no setting was chosen on, the prior had one state in every
        seed with it and the 3 coarse types without it (attractor ARI 0 against 0.78). Refitted on
        one machine with and without it (3 seeds; ``BENCHMARKS.md``, "Free bits against the
        landscape"), the landscape kept or gained states on every set and the main table's scores
        stayed within a seed's spread; the costs are paul15's fixed-resolution Leiden and a549's
        held-out log p(x), about 8 nats per cell in the mean.
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
    n_latent, n_continuous, max_epochs, validation_fraction, early_stopping, continuous_free_bits
        Given values, or ``None`` to resolve.

    Returns
    -------
    A dict with the six settings resolved, plus ``n_cells`` and ``small_data`` (bool); it is
    recorded in ``uns['qbm']['params']['size_defaults']`` by :func:`qbm_pyro.tl.qbm`.

    Examples
    --------
    >>> from qbm_pyro.pp import size_defaults
    >>> size_defaults(271)["max_epochs"], size_defaults(271)["validation_fraction"]
    (400, 0.0)
    >>> size_defaults(2641)["n_latent"], size_defaults(2641)["continuous_free_bits"]
    (64, 0.0)
    """
    if isinstance(n_cells, bool) or not isinstance(n_cells, int) or n_cells < 1:
        raise ValueError(f"n_cells must be a positive int, got {n_cells!r}")
    small = n_cells < SMALL_DATA_CELLS
    if max_epochs is None:
        max_epochs = int(min(400, max(200, round(8_000_000 / n_cells))))
    if validation_fraction is None:
        # early stopping asked for needs cells to stop on, at any size
        validation_fraction = 0.0 if small and not early_stopping else 0.1
    if early_stopping is None:
        early_stopping = validation_fraction > 0
    if continuous_free_bits is None:
        continuous_free_bits = 0.0
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
        "continuous_free_bits": continuous_free_bits,
    }
