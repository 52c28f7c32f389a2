"""Describe a data object before modelling it: modalities, count layers, batch-key candidates and
the qbm outputs it already holds (what ``qbm-pyro info`` prints)."""

from __future__ import annotations

import anndata as ad
import mudata as md
import pandas as pd

from qbm_pyro._constants import MODALITY_ALIASES
from qbm_pyro.data.validation import _looks_like_counts, find_count_layers

__all__ = ["BATCH_HINTS", "LABEL_HINTS", "batch_key_candidates", "describe", "label_columns"]

#: obs columns with these words in their names are listed first as batch keys.
BATCH_HINTS = ("batch", "sample", "donor", "library", "lane", "protocol", "run", "plate", "patient", "study")
#: obs columns with these words in their names hold labels, not batches.
LABEL_HINTS = (
    "type",
    "label",
    "cluster",
    "leiden",
    "louvain",
    "annotation",
    "lineage",
    "phase",
    "fate",
    "state",
    "branch",
    "attractor",
    "pred",
)
#: Suffixes of the obs columns that qbm_pyro writes (after ``key_added + "_"``).
OUTPUT_SUFFIXES = ("energy", "state", "branch", "attractor", "minimum", "pseudotime", "pred", "uncertainty")


def _categorical(series: pd.Series) -> bool:
    return (
        isinstance(series.dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(series)
        or pd.api.types.is_string_dtype(series)
    )


def _output_prefixes(data) -> set[str]:
    prefixes = {"qbm"}
    for key, value in data.uns.items():
        if isinstance(value, dict) and "params" in value:
            prefixes.add(str(key))
        if str(key).endswith("_trajectory"):
            prefixes.add(str(key)[: -len("_trajectory")])
    return prefixes


def _is_output(column: str, prefixes: set[str]) -> bool:
    head, sep, tail = column.rpartition("_")
    return bool(sep) and head in prefixes and tail in OUTPUT_SUFFIXES


def _plain_obs(data) -> pd.DataFrame:
    """``obs`` without the copies MuData pulls from its modalities (``"rna:batch"``)."""
    obs = data.obs
    if isinstance(data, md.MuData):
        obs = obs[[c for c in obs.columns if str(c).partition(":")[0] not in data.mod]]
    return obs


def label_columns(data) -> list[tuple[str, int]]:
    """Categorical obs columns that hold labels (cell types, clusters, qbm states): name, levels."""
    obs = _plain_obs(data)
    prefixes = _output_prefixes(data)
    out = []
    for col in obs.columns:
        name = str(col).lower()
        if _categorical(obs[col]) and (_is_output(str(col), prefixes) or any(h in name for h in LABEL_HINTS)):
            out.append((str(col), int(obs[col].nunique(dropna=True))))
    return out


def batch_key_candidates(data) -> list[tuple[str, int]]:
    """Categorical obs columns that may be batch keys, batch-like names first.

    Left out: columns with label-like names (cell types, clusters: ``LABEL_HINTS``), the
    outputs of qbm_pyro (``qbm_state``, ``qbm_branch``...), columns with fewer than 2 levels,
    and columns with more levels than a fifth of the cells (at most 200): identifiers.

    Parameters
    ----------
    data
        A MuData or AnnData.

    Returns
    -------
    list of (str, int)
        Column name and number of levels.
    """
    obs = _plain_obs(data)
    labels = {c for c, _ in label_columns(data)}
    found = []
    for col in obs.columns:
        if str(col) in labels or not _categorical(obs[col]):
            continue
        n_levels = int(obs[col].nunique(dropna=True))
        if 2 <= n_levels <= max(2, min(200, len(obs) // 5)):
            found.append((str(col), n_levels))
    found.sort(key=lambda item: not any(h in item[0].lower() for h in BATCH_HINTS))
    return found


def describe(data: md.MuData | ad.AnnData, *, name: str = "data", cli: bool = True) -> list[str]:
    """Lines of text describing ``data`` (what ``qbm-pyro info`` prints).

    Parameters
    ----------
    data
        A :class:`mudata.MuData` or :class:`anndata.AnnData`.
    name
        How to call it in the first line.
    cli
        Write the hints in command-line syntax (``--layer rna:counts``), else in Python syntax
        (``layers={"rna": "counts"}``).

    Returns
    -------
    list of str
        One line per item, without trailing newlines.
    """
    is_mudata = isinstance(data, md.MuData)
    kind = "MuData" if is_mudata else "AnnData"
    lines = [f"{name}: {kind}, {data.n_obs} cells x {data.n_vars} features"]
    modalities = dict(data.mod) if is_mudata else {"(X)": data}
    lines.append("modalities:")
    for mod_name, adata in modalities.items():
        inferred = MODALITY_ALIASES.get(mod_name.lower()) if is_mudata else "rna (AnnData default)"
        how = "pass --modalities NAME:KIND" if cli else "pass modalities={name: kind}"
        usable = (
            f"usable as {inferred!r}"
            if inferred
            else f"kind not inferred from its name; {how} (rna, protein, atac)"
        )
        x_counts = _looks_like_counts(adata.X)
        count_layers = find_count_layers(adata)
        layers = ", ".join(f"{k}{' (counts)' if k in count_layers else ''}" for k in adata.layers.keys())
        x_kind = "count-like" if x_counts else "not count-like"
        lines.append(f"  {mod_name}: {adata.n_obs} x {adata.n_vars}; {usable}; X {x_kind}")
        if adata.layers.keys():
            lines.append(f"    layers: {layers}")
        if not x_counts and count_layers:
            layer = count_layers[0]
            if cli:
                hint = f"--layer {mod_name}:{layer}" if is_mudata else f"--layer {layer}"
            else:
                hint = f"layers={{{mod_name!r}: {layer!r}}}" if is_mudata else f"layers={layer!r}"
            lines.append(f"    hint: use {hint} (X is not raw counts)")
    batch_like = batch_key_candidates(data)
    lines.append("obs columns that look like batch keys:" + ("" if batch_like else " none"))
    lines += [f"  {col}: {n} levels" for col, n in batch_like]
    labels = label_columns(data)
    if labels:
        lines.append("obs columns that look like labels (not batches; groupby for differential_expression):")
        lines += [f"  {col}: {n} levels" for col, n in labels]
    lines += _qbm_outputs(data)
    return lines


def _qbm_outputs(data) -> list[str]:
    lines = []
    for key, value in data.uns.items():
        if isinstance(value, dict) and "params" in value and f"X_{key}" in data.obsm:
            shape = data.obsm[f"X_{key}"].shape
            params = value["params"]
            lines.append(
                f"  {key}: obsm['X_{key}'] {shape[0]} x {shape[1]} "
                f"(prior={params.get('prior')}, n_binary={params.get('n_binary')}, "
                f"n_continuous={params.get('n_continuous')})"
            )
        if key.endswith("_trajectory") and f"{key[: -len('_trajectory')]}_pseudotime" in data.obs:
            lines.append(f"  {key}: obs['{key[: -len('_trajectory')]}_pseudotime'] and states")
    return ["existing qbm outputs:" + ("" if lines else " none")] + lines
