"""Checks on the input before anything touches it: the whole data (:func:`check_input`) and
integer values that are not raw counts (rounded TPM, CPM, FPKM: :func:`check_count_input`)."""

from __future__ import annotations

import warnings

import anndata as ad
import mudata as md
import numpy as np
import scipy.sparse as sp

from qbm_pyro._constants import REGISTRY_KEYS
from qbm_pyro.data.registry import DataRegistry, setup_data
from qbm_pyro.data.validation import get_matrix

__all__ = ["NonCountInputWarning", "check_count_input", "check_input", "warn_non_counts"]

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


def warn_non_counts(data: md.MuData | ad.AnnData, registry: DataRegistry, *, max_cells: int = 2000) -> None:
    """Run :func:`check_count_input` on every RNA modality of ``registry`` (its first cells).

    Backed matrices are read for their first ``max_cells`` rows only (a backed CSC matrix, whose
    rows cannot be read without reading all of it, is skipped). Nothing is modified.

    Parameters
    ----------
    data
        The data ``registry`` was made from.
    registry
        From :func:`qbm_pyro.data.setup_data`.
    max_cells
        Rows read per modality.
    """
    for name, spec in registry.modalities.items():
        if spec.kind != REGISTRY_KEYS.RNA:
            continue
        adata = data if isinstance(data, ad.AnnData) else data.mod[name]
        if adata.n_obs < 2:
            continue
        x = get_matrix(adata, spec.layer, modality=name)
        if isinstance(x, ad.abc.CSCDataset):
            continue
        source = "X" if spec.layer is None else f"layer {spec.layer!r}"
        where = f"the values of modality {name!r} ({source})"
        check_count_input(x[: min(max_cells, adata.n_obs)], where=where, max_cells=max_cells)


def check_input(
    data: md.MuData | ad.AnnData, *, modalities=None, layers=None, batch_key=None
) -> DataRegistry:
    """Check the whole input of every modality before any selection or normalisation.

    This is the first step of :func:`qbm_pyro.tl.qbm` and of ``qbm-pyro fit``: every value of
    every registered modality (all genes, not only those a gene selection would keep) is read
    once, in blocks for backed data, and checked for NaN, infinite, negative and (RNA, protein)
    non-integer values; cell and feature names must be unique, modalities must have features
    and share their cells; batch columns must be complete. Rounded TPM/CPM/FPKM in the RNA
    modality give a :class:`NonCountInputWarning`. ``data`` is not modified.

    Parameters
    ----------
    data
        MuData or AnnData (in memory or backed).
    modalities, layers, batch_key
        As for :class:`~qbm_pyro.QBMVAE`.

    Returns
    -------
    DataRegistry
        The registration of ``data`` (as :func:`qbm_pyro.data.setup_data`).

    Raises
    ------
    ValueError, KeyError, TypeError
        As :func:`qbm_pyro.data.setup_data`: the message names the modality, the cell and the
        feature of the first offending value, and how many there are.

    Examples
    --------
    >>> import numpy as np, qbm_pyro
    >>> mdata = qbm_pyro.datasets.pbmc_cite_2batch()
    >>> x = mdata.mod["rna"].X.toarray().astype(np.float32)
    >>> x[0, 1] = np.nan
    >>> mdata.mod["rna"].X = x
    >>> qbm_pyro.pp.check_input(mdata)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: modality 'rna' X has NaN or infinite values (1 value(s), e.g. nan at cell ..., gene ...)
    """
    registry = setup_data(data, modalities=modalities, layers=layers, batch_key=batch_key)
    warn_non_counts(data, registry)
    return registry
