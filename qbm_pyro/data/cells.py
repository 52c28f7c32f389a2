"""Where each cell is in each modality of a MuData, and its batch labels.

Used by the registry (:mod:`qbm_pyro.data.registry`) and by reference mapping
(:mod:`qbm_pyro.model`), which reads a query's batch columns before registering it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd

__all__ = ["batch_column", "cell_rows"]


def cell_rows(data: md.MuData | ad.AnnData, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Row of each cell in each modality (``-1`` where missing), from ``mdata.obsmap``."""
    if not isinstance(data, md.MuData):
        return {names[0]: np.arange(data.n_obs, dtype=np.int64)}
    rows = {}
    for name in names:
        if name not in data.obsmap:
            raise ValueError(
                f"mdata.obsmap has no entry for modality {name!r}; the MuData is out of sync — "
                "call mdata.update() on it first"
            )
        rows[name] = np.asarray(data.obsmap[name]).reshape(-1).astype(np.int64) - 1
    return rows


def batch_column(
    data: md.MuData | ad.AnnData, key: str, rows: Mapping[str, np.ndarray] | None = None
) -> tuple[pd.Series, str]:
    """The batch column ``key`` over all cells and where it was read from.

    Read from ``data.obs``; for a MuData whose global ``obs`` lacks the column, from the ``obs``
    of the modalities that have it, mapped onto the cells through ``rows``.
    """
    if key in data.obs.columns:
        return data.obs[key], "mdata.obs" if isinstance(data, md.MuData) else "adata.obs"
    if isinstance(data, md.MuData):
        holders = [m for m, a in data.mod.items() if key in a.obs.columns]
        if holders:
            rows = rows if rows is not None else {}
            values = pd.Series(pd.NA, index=data.obs_names, dtype=object)
            for mod in holders:
                mod_rows = rows.get(mod)
                if mod_rows is None:
                    mod_rows = cell_rows(data, [mod])[mod]
                have = mod_rows >= 0
                col = data.mod[mod].obs[key].astype(object).to_numpy()[mod_rows[have]]
                current = values.to_numpy()[have]
                clash = (~pd.isna(current)) & (~pd.isna(col)) & (current.astype(str) != col.astype(str))
                if clash.any():
                    cell = data.obs_names[np.flatnonzero(have)[np.flatnonzero(clash)[0]]]
                    raise ValueError(
                        f"batch column {key!r} disagrees between modalities {holders} "
                        f"(e.g. at cell {str(cell)!r}); put the column in mdata.obs"
                    )
                fill = pd.isna(current)
                current[fill] = col[fill]
                values.iloc[np.flatnonzero(have)] = current
            return values, f"the obs of modalities {holders}"
        per_mod = {m: list(a.obs.columns) for m, a in data.mod.items()}
        raise KeyError(
            f"batch_key {key!r} not found in mdata.obs (columns: {list(data.obs.columns)}) "
            f"nor in any modality's obs (columns: {per_mod})"
        )
    raise KeyError(f"batch_key {key!r} not found in adata.obs; columns: {list(data.obs.columns)}")
