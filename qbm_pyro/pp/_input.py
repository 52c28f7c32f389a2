"""What the model does with integer values that are not raw counts (rounded TPM, CPM, FPKM)."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp

__all__ = ["NonCountInputWarning", "check_count_input"]

#: Per-cell totals whose relative spread is below this look normalised (TPM/CPM).
CONSTANT_TOTALS_CV = 0.02
#: A median smallest nonzero value per cell at or above this looks scaled, not counted.
SCALED_MIN_NONZERO = 2.0


class NonCountInputWarning(UserWarning):
    """Integer values that look normalised or scaled rather than counted."""


def check_count_input(x, *, where: str = "the RNA values", max_cells: int = 2000) -> dict[str, float]:
    """Warn when integer expression values look like rounded TPM/CPM/FPKM, not raw counts.

    The RNA likelihood is a negative binomial over counts with each cell's total as its size
    factor. Non-integer values are refused when the data are set up; rounded normalised values
    pass that check, and the model then treats them **as if they were counts**: the NB is fit to
    them as given (its per-gene dispersion absorbs the larger spread of scaled values), the
    encoder reads ``log1p`` of them, and each cell's total stands for its depth. Two signs give
    the input away, and each gives a :class:`NonCountInputWarning` (the fit still runs):

    * per-cell totals that are all the same (relative sd < 2 %): TPM/CPM-like values, so the
      size factor carries no depth information;
    * a median (over cells) smallest nonzero value of 2 or more: raw counts have ones in
      every cell, scaled values (FPKM, counts × a factor) often do not.

    Rounded FPKM with some ones per cell passes both checks silently: nothing in the numbers
    tells it from counts. ``BENCHMARKS.md`` (small-data section) measures the NB on rounded TPM
    built from the a549 counts against the counts themselves.

    Parameters
    ----------
    x
        Cells × genes matrix (dense or sparse).
    where
        Named in the warning.
    max_cells
        Only the first ``max_cells`` rows are read.

    Returns
    -------
    ``{"totals_cv": ..., "median_min_nonzero": ...}``.
    """
    x = x[:max_cells]
    x = sp.csr_matrix(x) if not sp.issparse(x) else x.tocsr()
    totals = np.asarray(x.sum(axis=1)).ravel()
    nonempty = totals > 0
    out = {"totals_cv": float("nan"), "median_min_nonzero": float("nan")}
    if nonempty.sum() < 2:
        return out
    totals = totals[nonempty]
    out["totals_cv"] = float(totals.std() / totals.mean())
    mins = [float(x.data[a:b].min()) for a, b in zip(x.indptr[:-1], x.indptr[1:]) if b > a]
    out["median_min_nonzero"] = float(np.median(mins))
    what = []
    if out["totals_cv"] < CONSTANT_TOTALS_CV:
        what.append(f"every cell sums to about {totals.mean():.0f} (TPM/CPM-like)")
    if out["median_min_nonzero"] >= SCALED_MIN_NONZERO:
        what.append(
            f"the typical cell's smallest nonzero value is {out['median_min_nonzero']:g}, not 1 (scaled)"
        )
    if what:
        warnings.warn(
            f"{where} look normalised rather than counted: {'; '.join(what)}. The model fits a "
            "negative binomial to them as if they were counts, with each cell's total as its depth; "
            "pass raw counts (a layer) if you have them.",
            NonCountInputWarning,
            stacklevel=3,
        )
    return out
