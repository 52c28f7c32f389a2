"""Checks on the data handed to :func:`qbm_pyro.data.setup_data`.

Each check is a small function that raises (or warns) with a message naming the modality, the
layer or column, the problem and an offending value. None of them modifies its input. Matrices
are scanned without loading them whole when they are backed by a file: backed CSR and dense
(``h5py``) matrices are read in blocks of rows, backed CSC matrices in blocks of columns.
In-memory sparse matrices are checked on their stored values directly.

Supported matrices: :class:`numpy.ndarray`, :mod:`scipy.sparse` CSR/CSC (arrays or matrices),
``h5py.Dataset`` and anndata's backed sparse datasets (``anndata.abc.CSRDataset`` /
``anndata.abc.CSCDataset``).

Decisions
---------
* Cells whose counts are all zero in a modality give a :class:`UserWarning` and are reported in
  :attr:`MatrixSummary.empty_cells`; they are never dropped here.
* Features that are zero in every cell give a :class:`UserWarning`.
* A batch level that holds a single cell gives a :class:`UserWarning`, not an error: a
  batch-conditioned decoder can still be fitted, and small real data sets have such levels.
  A batch column with a single level is accepted: it is how a reference of one batch is
  registered, so that query batches can be mapped onto it later (:mod:`qbm_pyro.model`, ``load_query_data``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

from qbm_pyro._constants import REGISTRY_KEYS
from qbm_pyro.data.name_checks import check_batch_column, check_modality_names, check_obs_names

__all__ = [
    "MatrixSummary",
    "check_batch_column",
    "check_matrix",
    "check_modality_names",
    "check_obs_names",
    "find_count_layers",
    "get_matrix",
    "iter_blocks",
]

#: Rows (or columns, for backed CSC) read at a time from a backed matrix.
CHUNK_SIZE = 1024
#: Values within this distance of an integer count as integers.
INTEGER_TOLERANCE = 1e-6


class MatrixSummary(NamedTuple):
    """What :func:`check_matrix` learnt about a matrix.

    Attributes
    ----------
    empty_cells
        Boolean array of shape ``(n_obs,)``: the cell has no nonzero value.
    empty_features
        Boolean array of shape ``(n_vars,)``: the feature has no nonzero value.
    is_binary
        Whether every value is 0 or 1.
    """

    empty_cells: np.ndarray
    empty_features: np.ndarray
    is_binary: bool


_FEATURE_NOUN = {
    REGISTRY_KEYS.RNA: "gene",
    REGISTRY_KEYS.PROTEIN: "protein",
    REGISTRY_KEYS.ATAC: "peak",
}


def _where(modality: str, layer: str | None) -> str:
    return f"modality {modality!r} " + ("X" if layer is None else f"layer {layer!r}")


def get_matrix(adata: ad.AnnData, layer: str | None, *, modality: str = "") -> Any:
    """Return ``adata.X`` or ``adata.layers[layer]`` without copying it.

    Parameters
    ----------
    adata
        The modality.
    layer
        Layer name, or ``None`` for ``X``.
    modality
        Name of the modality, for the error message.

    Returns
    -------
    Any
        The matrix as stored: dense, sparse, or a backed dataset.

    Raises
    ------
    KeyError
        If ``layer`` is not a layer of ``adata`` (the message lists the layers there are).
    ValueError
        If ``layer`` is ``None`` and ``X`` is ``None``.
    """
    if layer is None:
        if adata.X is None:
            raise ValueError(f"modality {modality!r} has X = None; pass a layer that holds counts")
        return adata.X
    if layer not in adata.layers:
        raise KeyError(
            f"modality {modality!r} has no layer {layer!r}; available layers: {sorted(adata.layers.keys())}"
        )
    return adata.layers[layer]


def iter_blocks(x: Any, chunk_size: int = CHUNK_SIZE) -> Iterator[tuple[int, int, Any]]:
    """Yield ``(axis, offset, block)`` pieces that together cover ``x``.

    In-memory matrices come back whole, as a single block with offset 0 and axis 0. Backed CSR
    and ``h5py`` matrices come back as blocks of ``chunk_size`` rows (axis 0); backed CSC
    matrices as blocks of ``chunk_size`` columns (axis 1). Blocks are numpy arrays or
    :mod:`scipy.sparse` matrices.

    Parameters
    ----------
    x
        A matrix of shape ``(n_obs, n_vars)``.
    chunk_size
        Rows (or columns) per block for backed matrices.

    Yields
    ------
    tuple
        ``(axis, offset, block)``: the block covers rows (axis 0) or columns (axis 1)
        ``offset`` to ``offset + block.shape[axis]``.
    """
    if isinstance(x, h5py.Dataset | ad.abc.CSRDataset):
        for start in range(0, x.shape[0], chunk_size):
            yield 0, start, x[start : start + chunk_size]
    elif isinstance(x, ad.abc.CSCDataset):
        for start in range(0, x.shape[1], chunk_size):
            yield 1, start, x[:, start : start + chunk_size]
    else:
        yield 0, 0, x


def _dtype_of(x: Any) -> np.dtype:
    return np.dtype(x.dtype)


def _check_dtype(x: Any, where: str) -> None:
    dtype = _dtype_of(x)
    if dtype.kind not in "biuf":
        raise TypeError(
            f"{where} has dtype {dtype!s}; a numeric matrix (integer, unsigned, float or bool) is required"
        )


def _first_bad(block: Any, bad_values: np.ndarray, values: np.ndarray) -> tuple[int, int, float]:
    """Row, column (within ``block``) and value of the first True entry of ``bad_values``."""
    pos = int(np.flatnonzero(bad_values)[0])
    if sp.issparse(block):
        fmt = block.format
        if fmt in ("csr", "csc"):
            major = int(np.searchsorted(block.indptr, pos, side="right") - 1)
            minor = int(block.indices[pos])
            row, col = (major, minor) if fmt == "csr" else (minor, major)
        else:
            coo = block.tocoo()
            row, col = int(coo.row[pos]), int(coo.col[pos])
    else:
        row, col = divmod(pos, block.shape[1])
    return row, col, float(values[pos])


def _canonical(block: Any) -> Any:
    """``block`` with one stored value per entry, in a fixed order: sparse formats other than
    CSR/CSC become CSR, and duplicated entries (COO, non-canonical CSR/CSC) are summed, as
    scipy defines their value. Copies only when needed; the input is never modified."""
    if not sp.issparse(block):
        return block
    if block.format not in ("csr", "csc"):
        return block.tocsr()
    if not block.has_canonical_format:
        block = block.copy()
        block.sum_duplicates()
    return block


def _stored_values(block: Any) -> np.ndarray:
    """The explicitly stored values of ``block`` (all values if dense), flattened."""
    if sp.issparse(block):
        if block.format not in ("csr", "csc", "coo"):
            block = block.tocsr()
        return np.asarray(block.data)
    return np.asarray(block).reshape(-1)


def _nonzero_rows_cols(block: Any, nonzero: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices (within ``block``) of the stored values flagged in ``nonzero``."""
    if sp.issparse(block):
        if block.format in ("csr", "csc"):
            major = np.repeat(np.arange(len(block.indptr) - 1), np.diff(block.indptr))[nonzero]
            minor = np.asarray(block.indices)[nonzero]
            return (major, minor) if block.format == "csr" else (minor, major)
        coo = block.tocoo()
        return coo.row[nonzero], coo.col[nonzero]
    rows, cols = np.divmod(np.flatnonzero(nonzero), block.shape[1])
    return rows, cols


def _nonzero_lines(block: Any, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which rows and which columns of ``block`` hold a nonzero value (one pass over ``values``)."""
    nonzero = values != 0
    if not sp.issparse(block):
        nz = nonzero.reshape(block.shape)
        return nz.any(axis=1), nz.any(axis=0)
    if block.format in ("csr", "csc") and nonzero.all():  # no explicit zeros: the indices say it all
        major = np.diff(block.indptr) > 0
        minor = np.zeros(block.shape[1 if block.format == "csr" else 0], dtype=bool)
        minor[block.indices] = True
        return (major, minor) if block.format == "csr" else (minor, major)
    rows, cols = _nonzero_rows_cols(block, nonzero)
    rows_any, cols_any = np.zeros(block.shape[0], dtype=bool), np.zeros(block.shape[1], dtype=bool)
    rows_any[rows] = True
    cols_any[cols] = True
    return rows_any, cols_any


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def check_matrix(
    x: Any,
    *,
    modality: str,
    kind: str,
    layer: str | None = None,
    obs_names: Sequence[str] | pd.Index | None = None,
    var_names: Sequence[str] | pd.Index | None = None,
    count_layers: Sequence[str] = (),
    chunk_size: int = CHUNK_SIZE,
    warn: bool = True,
) -> MatrixSummary:
    """Check one modality's matrix and summarise its empty cells and features.

    Parameters
    ----------
    x
        The matrix, shape ``(n_obs, n_vars)``: dense, sparse or backed.
    modality
        Modality name, used in messages.
    kind
        Modality kind: ``"rna"`` and ``"protein"`` need non-negative integer counts; ``"atac"``
        accepts binary or count data (it is binarised by the loader).
    layer
        Layer that ``x`` came from (``None`` for ``X``), used in messages.
    obs_names, var_names
        Cell and feature names, used to name the offending entry in messages.
    count_layers
        Layers of the same modality that look like raw counts (see :func:`find_count_layers`);
        named in the message when ``x`` is not integer.
    chunk_size
        Rows (columns for backed CSC) read at a time from backed matrices.
    warn
        Warn about all-zero cells and features.

    Returns
    -------
    MatrixSummary
        Which cells and features are all zero, and whether the matrix is binary.

    Raises
    ------
    ValueError
        On 0 cells or 0 features, NaN or infinite values, negative values, or (for ``rna`` and
        ``protein``) non-integer values. The message names the first offending cell and feature
        and its value.
    TypeError
        If the matrix is not numeric (object, string, complex, ...).
    """
    where = _where(modality, layer)
    n_obs, n_vars = _check_shape_and_dtype(x, kind, where)
    labels = _Labels(where, modality, _FEATURE_NOUN[kind], obs_names, var_names, tuple(count_layers), x.shape)
    nonzero_cells = np.zeros(n_obs, dtype=bool)
    nonzero_features = np.zeros(n_vars, dtype=bool)
    is_binary = True
    for axis, off, block in iter_blocks(x, chunk_size):
        block = _canonical(block)
        values = _stored_values(block)
        lo, hi = _check_values(block, values, kind in REGISTRY_KEYS.COUNT_KINDS, labels, axis, off)
        if is_binary and values.dtype.kind != "b" and values.size:
            is_binary = lo >= 0 and hi <= 1 and bool(np.all((values == 0) | (values == 1)))
        rows_any, cols_any = _nonzero_lines(block, values)
        if axis == 0:
            nonzero_cells[off : off + len(rows_any)] |= rows_any
            nonzero_features |= cols_any
        else:
            nonzero_cells |= rows_any
            nonzero_features[off : off + len(cols_any)] |= cols_any
    empty_cells, empty_features = ~nonzero_cells, ~nonzero_features
    if warn:
        _warn_empty(empty_cells, empty_features, labels)
    return MatrixSummary(empty_cells=empty_cells, empty_features=empty_features, is_binary=is_binary)


class _Labels(NamedTuple):
    """What :func:`check_matrix`'s messages name: the matrix, its cells and its features."""

    where: str
    modality: str
    feature: str
    obs_names: Sequence[str] | pd.Index | None
    var_names: Sequence[str] | pd.Index | None
    count_layers: tuple[str, ...]
    shape: tuple[int, ...]

    def cell(self, i: int) -> str:
        return _name(self.obs_names, i, "cell")

    def var(self, j: int) -> str:
        return _name(self.var_names, j, self.feature)


def _name(axis_names: Sequence[str] | pd.Index | None, i: int, what: str) -> str:
    if axis_names is None:
        return f"{what} {i}"
    return f"{what} {str(axis_names[i])!r}"


def _check_shape_and_dtype(x: Any, kind: str, where: str) -> tuple[int, int]:
    """Step 1 of :func:`check_matrix`: a known kind, a non-empty 2-D numeric matrix; its shape."""
    if kind not in REGISTRY_KEYS.KINDS:
        raise ValueError(f"unknown modality kind {kind!r} for {where}; use one of {REGISTRY_KEYS.KINDS}")
    if len(x.shape) != 2:
        raise ValueError(f"{where} must be 2-D, got shape {tuple(x.shape)}")
    n_obs, n_vars = (int(s) for s in x.shape)
    if n_obs == 0 or n_vars == 0:
        raise ValueError(f"{where} is empty: {n_obs} cells x {n_vars} features")
    _check_dtype(x, where)
    return n_obs, n_vars


#: Values scanned at a time by the fast path of :func:`_check_values` (bounds its temporaries).
VALUE_CHUNK = 1 << 22


def _check_values(
    block: Any, values: np.ndarray, needs_counts: bool, labels: _Labels, axis: int, off: int
) -> tuple[float, float]:
    """Step 2 of :func:`check_matrix`, per block: finite, non-negative, integer where counts are
    needed; returns the smallest and largest value (``(0, 0)`` when nothing is stored).

    One pass over ``values`` in slices of :data:`VALUE_CHUNK`: the minimum and maximum (NaN
    propagates through them, so they also find NaN and infinities) and, for counts in a float
    dtype, the distance to the nearest integer in one reused buffer. Only when a slice fails
    are the full masks built, to name the first offending entry and count them.
    """
    if values.size == 0:
        return 0.0, 0.0
    kind = values.dtype.kind
    lo, hi = math.inf, -math.inf
    buffer = None
    for start in range(0, values.size, VALUE_CHUNK):
        part = values[start : start + VALUE_CHUNK]
        part_lo, part_hi = part.min(), part.max()
        if kind == "f" and not (np.isfinite(part_lo) and np.isfinite(part_hi)):
            break
        if kind in "if" and part_lo < 0:
            break
        if needs_counts and kind == "f":
            buffer = np.empty_like(part) if buffer is None or buffer.size != part.size else buffer
            np.rint(part, out=buffer)
            np.subtract(part, buffer, out=buffer)
            np.abs(buffer, out=buffer)
            if buffer.max() > INTEGER_TOLERANCE:
                break
        lo, hi = min(lo, float(part_lo)), max(hi, float(part_hi))
    else:
        return lo, hi
    _check_values_in_full(block, values, needs_counts, labels, axis, off)
    raise AssertionError("unreachable: a slice failed but the whole values passed")  # pragma: no cover


def _check_values_in_full(
    block: Any, values: np.ndarray, needs_counts: bool, labels: _Labels, axis: int, off: int
) -> None:
    """The failure path of :func:`_check_values`: the full masks, in the order of the problems."""
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values)
        if bad.any():
            _fail("NaN or infinite values", block, bad, values, labels, axis, off)
    if values.dtype.kind in "if":
        bad = values < 0
        if bad.any():
            _fail("negative values", block, bad, values, labels, axis, off)
    if needs_counts and values.dtype.kind == "f":
        bad = np.abs(values - np.round(values)) > INTEGER_TOLERANCE
        if bad.any():
            _fail("non-integer values", block, bad, values, labels, axis, off)


def _fail(
    problem: str, block: Any, bad: np.ndarray, values: np.ndarray, labels: _Labels, axis: int, off: int
) -> None:
    """Raise the :class:`ValueError` that names the first bad entry of ``block``."""
    n_bad = int(bad.sum())
    row, col, value = _first_bad(block, bad, values)
    row, col = (row + off, col) if axis == 0 else (row, col + off)
    example = f"{_fmt(value)} at {labels.cell(row)}, {labels.var(col)}"
    more = "" if tuple(block.shape) == tuple(labels.shape) else " in the first block read"
    msg = f"{labels.where} has {problem} ({n_bad} value(s){more}, e.g. {example})"
    if problem.startswith("non-integer"):
        msg += "; counts are required"
        if labels.count_layers:
            hint = labels.count_layers[0]
            msg += f" — layer {hint!r} looks like raw counts: pass layers={{{labels.modality!r}: {hint!r}}}"
        else:
            msg += " (normalised, log-transformed, scaled or ambient-corrected values are not counts)"
    raise ValueError(msg)


def _warn_empty(empty_cells: np.ndarray, empty_features: np.ndarray, labels: _Labels) -> None:
    """Step 3 of :func:`check_matrix`: warn about all-zero cells and features (they are kept)."""
    if empty_cells.any():
        i = int(np.flatnonzero(empty_cells)[0])
        warnings.warn(
            f"{labels.where}: {int(empty_cells.sum())} of {empty_cells.size} cells have all-zero values "
            f"(e.g. {labels.cell(i)}); they are kept. Use "
            "DataRegistry.nonempty_cells() to select the others.",
            UserWarning,
            stacklevel=3,
        )
    if empty_features.any():
        i = int(np.flatnonzero(empty_features)[0])
        warnings.warn(
            f"{labels.where}: {int(empty_features.sum())} of {empty_features.size} features are zero in "
            f"every cell (e.g. {labels.var(i)})",
            UserWarning,
            stacklevel=3,
        )


def _looks_like_counts(x: Any, n_rows: int = 256) -> bool:
    """Whether the first ``n_rows`` rows of ``x`` are finite non-negative integers."""
    try:
        dtype = _dtype_of(x)
    except (AttributeError, TypeError):
        return False
    if dtype.kind not in "biuf" or len(x.shape) != 2 or x.shape[0] == 0:
        return False
    if isinstance(x, ad.abc.CSCDataset):
        return False  # reading rows of a backed CSC matrix means reading all of it
    head = x[: min(n_rows, x.shape[0])]
    values = _stored_values(head)
    if values.dtype.kind != "f":
        return bool(np.all(values >= 0))
    return bool(
        np.all(np.isfinite(values))
        and np.all(values >= 0)
        and np.all(np.abs(values - np.round(values)) <= INTEGER_TOLERANCE)
    )


def find_count_layers(adata: ad.AnnData, *, exclude: str | None = None) -> list[str]:
    """Layers of ``adata`` whose first rows look like raw counts.

    Parameters
    ----------
    adata
        The modality.
    exclude
        A layer to leave out (the one already being checked).

    Returns
    -------
    list of str
        Layer names, in the order stored; layers named ``"counts"`` or ``"raw"`` first.
    """
    names = [k for k in adata.layers.keys() if k != exclude]
    names.sort(key=lambda k: (k not in ("counts", "raw"),))
    return [k for k in names if _looks_like_counts(adata.layers[k])]
