"""Checks on the names in the data: modalities, cells (unique, shared between modalities) and
batch columns. Part of :mod:`qbm_pyro.data.validation` (re-exported there); none of them
modifies its input."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["check_batch_column", "check_modality_names", "check_obs_names"]


def check_modality_names(available: Sequence[str], requested: Sequence[str]) -> None:
    """Check that every requested modality exists.

    Parameters
    ----------
    available
        Modality names in the data.
    requested
        Modality names asked for.

    Raises
    ------
    KeyError
        Naming the unknown modalities and listing the available ones.
    """
    unknown = [m for m in requested if m not in available]
    if unknown:
        raise KeyError(f"unknown modality name(s) {unknown}; available modalities: {list(available)}")


def check_obs_names(
    obs_names: pd.Index,
    modalities: Mapping[str, pd.Index],
) -> None:
    """Check cell names: unique everywhere, and shared between modalities.

    Parameters
    ----------
    obs_names
        Cell names of the whole object (``mdata.obs_names``).
    modalities
        Cell names of each registered modality.

    Raises
    ------
    ValueError
        If names are duplicated, if a modality holds cells absent from ``obs_names`` (the
        MuData is out of sync: run ``mdata.update()`` on your copy), or if two modalities share
        no cell at all (their names do not match, e.g. ``_rna`` / ``_atac`` suffixes).
    """
    for label, names in [
        ("the data", obs_names),
        *((f"modality {m!r}", n) for m, n in modalities.items()),
    ]:
        if not names.is_unique:
            dup = names[names.duplicated()]
            raise ValueError(
                f"{label} has {len(dup)} duplicated obs name(s) (e.g. {str(dup[0])!r}); make them unique"
            )
    for mod, names in modalities.items():
        missing = names.difference(obs_names)
        if len(missing):
            raise ValueError(
                f"modality {mod!r} has {len(missing)} obs name(s) not in the MuData obs_names "
                f"(e.g. {str(missing[0])!r}); the MuData is out of sync with its modalities — "
                "call mdata.update() on it first"
            )
    mods = list(modalities)
    for i, a in enumerate(mods):
        for b in mods[i + 1 :]:
            if len(modalities[a]) and len(modalities[b]):
                if len(modalities[a].intersection(modalities[b])) == 0:
                    raise ValueError(
                        f"obs names do not match across modalities: {a!r} and {b!r} share no cell "
                        f"(e.g. {str(modalities[a][0])!r} vs {str(modalities[b][0])!r})"
                    )


def check_batch_column(
    values: pd.Series,
    key: str,
    *,
    where: str = "mdata.obs",
    warn: bool = True,
) -> tuple[list[str], np.ndarray]:
    """Check a batch column and encode it.

    Parameters
    ----------
    values
        The column, one entry per cell, indexed by cell name.
    key
        Column name, used in messages.
    where
        Where the column was read from, used in messages.
    warn
        Warn about levels that hold a single cell.

    Returns
    -------
    categories : list of str
        The levels as strings: the categorical order for a categorical column, else sorted.
    codes : numpy.ndarray
        Integer codes of shape ``(n_obs,)`` into ``categories``.

    Raises
    ------
    ValueError
        If the column has missing values (count and first cell given). A single level is
        accepted: a reference of one batch, onto which query batches are mapped later.
    """
    missing = values.isna().to_numpy()
    if missing.any():
        raise ValueError(
            f"batch column {key!r} in {where} has {int(missing.sum())} missing value(s) "
            f"(e.g. cell {str(values.index[np.flatnonzero(missing)[0]])!r}); fill them in"
        )
    if isinstance(values.dtype, pd.CategoricalDtype):
        used = values.cat.remove_unused_categories()
        categories = [str(c) for c in used.cat.categories]
        strings = used.astype(str).to_numpy()
    else:
        strings = values.astype(str).to_numpy()
        categories = sorted(set(strings))
    if len(set(categories)) != len(categories):
        raise ValueError(
            f"batch column {key!r} in {where} has levels that are equal as strings: {categories}"
        )
    codes = pd.Categorical(strings, categories=categories).codes.astype(np.int64)
    counts = np.bincount(codes, minlength=len(categories))
    if warn and (counts == 1).any():
        lonely = [categories[i] for i in np.flatnonzero(counts == 1)]
        warnings.warn(
            f"batch column {key!r} in {where}: level(s) {lonely} hold a single cell",
            UserWarning,
            stacklevel=2,
        )
    return categories, codes
