"""Register a MuData/AnnData for the model: which modalities, layers and batch columns to use.

:func:`setup_data` checks the data (see :mod:`qbm_pyro.data.validation`) and returns a
:class:`DataRegistry`, which records what the model will read and how cells map onto each
modality. Setup never modifies the data: no columns are added and nothing is reordered.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd

from qbm_pyro._constants import MODALITY_ALIASES, REGISTRY_KEYS
from qbm_pyro.data.cells import batch_column, cell_rows
from qbm_pyro.data.validation import (
    check_batch_column,
    check_matrix,
    check_modality_names,
    check_obs_names,
    find_count_layers,
    get_matrix,
)

__all__ = ["DataRegistry", "ModalitySpec", "resolve_layers", "resolve_modalities", "setup_data"]

ModalitiesArg = Mapping[str, str] | Sequence[str] | str | None
LayersArg = Mapping[str, str | None] | str | None
BatchKeyArg = Sequence[str] | str | None


@dataclass(frozen=True)
class ModalitySpec:
    """One registered modality.

    Attributes
    ----------
    name
        Modality name in the MuData (for an AnnData, the kind).
    kind
        ``"rna"``, ``"protein"`` or ``"atac"``.
    layer
        Layer holding the data, ``None`` for ``X``.
    n_vars
        Number of features.
    var_names
        Feature names, in order.
    """

    name: str
    kind: str
    layer: str | None
    n_vars: int
    var_names: tuple[str, ...]


@dataclass(eq=False, repr=False)
class DataRegistry:
    """What :func:`setup_data` registered.

    Attributes
    ----------
    modalities
        ``{modality name: ModalitySpec}``, at most one modality per kind.
    batch_keys
        Batch columns, in the order of the columns of the ``batch`` minibatch entry.
    batch_categories
        ``{batch key: levels}``; a cell's code in a minibatch is the position of its level.
    n_obs
        Number of cells.
    obs_names
        Cell names.
    rows
        ``{modality name: int array of shape (n_obs,)}``: the row of each cell in that
        modality's AnnData, ``-1`` where the cell lacks the modality.
    batch_codes
        Integer array of shape ``(n_obs, len(batch_keys))``.
    empty_cells
        ``{modality name: bool array of shape (n_obs,)}``: the cell has the modality but all of
        its values are zero.
    setup_args
        The keyword arguments that reproduce this setup, as a plain dict:
        ``setup_data(data, **registry.setup_args)``.
    is_mudata
        Whether the registered data was a MuData (else an AnnData).
    """

    modalities: dict[str, ModalitySpec]
    batch_keys: tuple[str, ...]
    batch_categories: dict[str, tuple[str, ...]]
    n_obs: int
    obs_names: pd.Index
    rows: dict[str, np.ndarray]
    batch_codes: np.ndarray
    empty_cells: dict[str, np.ndarray]
    setup_args: dict[str, Any]
    is_mudata: bool = field(default=True)

    @property
    def kinds(self) -> dict[str, str]:
        """``{kind: modality name}`` for the registered modalities."""
        return {spec.kind: name for name, spec in self.modalities.items()}

    @property
    def n_batch(self) -> tuple[int, ...]:
        """Number of levels of each batch key."""
        return tuple(len(self.batch_categories[k]) for k in self.batch_keys)

    def nonempty_cells(self) -> np.ndarray:
        """Cells that are not all-zero in any modality they have.

        Returns
        -------
        numpy.ndarray
            Boolean array of shape ``(n_obs,)``. Pass ``np.flatnonzero(mask)`` as ``indices``
            to :class:`~qbm_pyro.data.MinibatchLoader` to leave the all-zero cells out.
        """
        keep = np.ones(self.n_obs, dtype=bool)
        for empty in self.empty_cells.values():
            keep &= ~empty
        return keep

    def summary(self) -> str:
        """A human-readable description of the registration.

        Returns
        -------
        str
            Several lines: cells, each modality with its kind, layer, features and coverage,
            and each batch key with its levels.
        """
        kind = "MuData" if self.is_mudata else "AnnData"
        n_mod = len(self.modalities)
        lines = [
            f"DataRegistry: {self.n_obs} cells ({kind}), {n_mod} "
            + ("modality" if n_mod == 1 else "modalities")
        ]
        for name, spec in self.modalities.items():
            where = "X" if spec.layer is None else f"layer {spec.layer!r}"
            n_have = int((self.rows[name] >= 0).sum())
            n_empty = int(self.empty_cells[name].sum())
            lines.append(
                f"  {name!r}: kind {spec.kind!r}, {where}, {spec.n_vars} features, "
                f"{n_have} cells with data, {n_empty} all-zero"
            )
        if not self.batch_keys:
            lines.append("  batch keys: none")
        for key in self.batch_keys:
            levels = self.batch_categories[key]
            shown = ", ".join(levels[:6]) + (", ..." if len(levels) > 6 else "")
            lines.append(f"  batch key {key!r}: {len(levels)} levels ({shown})")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    def check_compatible(self, data: md.MuData | ad.AnnData) -> None:
        """Check that ``data`` can be read with this registration (e.g. to load a model).

        Parameters
        ----------
        data
            New data.

        Raises
        ------
        ValueError
            Listing every mismatch: missing modalities or layers, different features per
            modality (missing, extra or reordered), missing batch columns and batch levels the
            registration does not know.
        """
        problems: list[str] = []
        if isinstance(data, md.MuData) != self.is_mudata:
            want = "MuData" if self.is_mudata else "AnnData"
            problems.append(f"expected a {want}, got {type(data).__name__}")
            raise ValueError("data is not compatible with the registry:\n - " + problems[0])
        for name, spec in self.modalities.items():
            try:
                adata = _modality(data, name)
            except KeyError:
                problems.append(f"modality {name!r} is missing; available: {_modality_names(data)}")
                continue
            if spec.layer is not None and spec.layer not in adata.layers:
                problems.append(f"modality {name!r} has no layer {spec.layer!r}")
            new = adata.var_names
            if tuple(new) != spec.var_names:
                old = pd.Index(spec.var_names)
                missing, extra = old.difference(new), new.difference(old)
                if len(missing) == 0 and len(extra) == 0 and len(new) == len(old):
                    problems.append(f"modality {name!r}: same features in a different order")
                else:
                    problems.append(
                        f"modality {name!r}: {len(missing)} feature(s) missing "
                        f"{list(missing[:5])}, {len(extra)} unexpected {list(extra[:5])}"
                    )
        rows = cell_rows(data, list(self.modalities)) if not problems else None
        for key in self.batch_keys:
            try:
                values, _ = batch_column(data, key, rows)
            except (KeyError, ValueError) as err:
                problems.append(str(err).strip("'\""))
                continue
            if values.isna().any():
                problems.append(f"batch column {key!r} has missing values")
                continue
            unknown = sorted(set(values.astype(str)) - set(self.batch_categories[key]))
            if unknown:
                problems.append(f"batch column {key!r} has levels unknown to the registry: {unknown[:10]}")
        if problems:
            raise ValueError("data is not compatible with the registry:\n - " + "\n - ".join(problems))

    def transfer(self, data: md.MuData | ad.AnnData) -> DataRegistry:
        """Register new data with this registration's modalities, layers and batch levels.

        Parameters
        ----------
        data
            New data with the same features (see :meth:`check_compatible`).

        Returns
        -------
        DataRegistry
            A registry of ``data`` whose batch codes use this registry's levels.
        """
        self.check_compatible(data)
        return self.with_batch_levels(data, self.batch_categories)

    def with_batch_levels(
        self, data: md.MuData | ad.AnnData, categories: Mapping[str, Sequence[str]]
    ) -> DataRegistry:
        """Register ``data`` with this registration's modalities, layers and batch keys, its batch
        levels numbered as in ``categories`` (``{batch key: levels in code order}``).

        For a model trained on more levels than ``data`` has, or a reference extended by a
        query's new levels. Every level of ``data`` must be in ``categories`` (the caller checks:
        :meth:`transfer` does through :meth:`check_compatible`).
        """
        return _build(
            data,
            kinds={n: s.kind for n, s in self.modalities.items()},
            layers={n: s.layer for n, s in self.modalities.items()},
            batch_keys=list(self.batch_keys),
            categories=categories,
        )


def _modality_names(data: md.MuData | ad.AnnData) -> list[str]:
    return list(data.mod) if isinstance(data, md.MuData) else []


def _modality(data: md.MuData | ad.AnnData, name: str) -> ad.AnnData:
    if isinstance(data, md.MuData):
        if name not in data.mod:
            raise KeyError(name)
        return data.mod[name]
    return data


def _infer_kind(name: str) -> str | None:
    return MODALITY_ALIASES.get(name.lower())


def resolve_modalities(data: md.MuData | ad.AnnData, modalities: ModalitiesArg) -> dict[str, str]:
    """``{modality name: kind}`` from ``setup_data``'s ``modalities`` argument (see there); raises
    ``KeyError``/``ValueError``/``TypeError`` naming the problem."""
    kinds_text = f"one of {list(REGISTRY_KEYS.KINDS)}"
    if isinstance(data, ad.AnnData):
        if modalities is None:
            return {REGISTRY_KEYS.RNA: REGISTRY_KEYS.RNA}
        if isinstance(modalities, str):
            kind = _infer_kind(modalities)
            if kind is None:
                raise ValueError(f"unknown modality kind {modalities!r} for an AnnData; use {kinds_text}")
            return {kind: kind}
        if isinstance(modalities, Mapping) and len(modalities) == 1:
            ((name, kind),) = modalities.items()
            if kind not in REGISTRY_KEYS.KINDS:
                raise ValueError(f"unknown modality kind {kind!r} for {name!r}; use {kinds_text}")
            return {str(name): kind}
        raise ValueError(
            "for an AnnData, modalities must be None (rna), a kind such as 'protein', or a "
            f"one-entry dict {{name: kind}}; got {modalities!r}"
        )

    available = list(data.mod)
    if modalities is None:
        out = {m: k for m in available if (k := _infer_kind(m)) is not None}
        skipped = [m for m in available if m not in out]
        if not out:
            raise ValueError(
                f"could not infer the kind of any modality from its name {available}; pass "
                f"modalities={{name: kind}} with kind {kinds_text}"
            )
        if skipped:
            warnings.warn(
                f"modalities {skipped} are not registered: their kind cannot be inferred from "
                "their names; pass modalities={name: kind} to use them",
                UserWarning,
                stacklevel=3,
            )
    elif isinstance(modalities, Mapping):
        check_modality_names(available, list(modalities))
        out = {}
        for name, kind in modalities.items():
            if kind not in REGISTRY_KEYS.KINDS:
                raise ValueError(f"unknown modality kind {kind!r} for {name!r}; use {kinds_text}")
            out[name] = kind
    else:
        if not isinstance(modalities, str | Sequence):
            raise TypeError(
                "modalities must be None, a name, a list of names or a dict {name: kind}, "
                f"got {modalities!r}"
            )
        names = [modalities] if isinstance(modalities, str) else list(modalities)
        check_modality_names(available, names)
        out = {}
        for name in names:
            kind = _infer_kind(name)
            if kind is None:
                raise ValueError(
                    f"cannot infer the kind of modality {name!r} from its name; pass "
                    f"modalities={{{name!r}: kind}} with kind {kinds_text}"
                )
            out[name] = kind
    if not out:
        raise ValueError("no modality to register (modalities is empty)")
    by_kind: dict[str, list[str]] = {}
    for name, kind in out.items():
        by_kind.setdefault(kind, []).append(name)
    for kind, names in by_kind.items():
        if len(names) > 1:
            raise ValueError(
                f"at most one modality per kind is supported; modalities {names} are all of "
                f"kind {kind!r} — register only one of them"
            )
    return out


def resolve_layers(kinds: Mapping[str, str], layers: LayersArg) -> dict[str, str | None]:
    """``{modality name: layer or None}`` from ``setup_data``'s ``layers`` argument (see there)."""
    if layers is None:
        return dict.fromkeys(kinds)
    if isinstance(layers, str):
        return {n: (layers if k in REGISTRY_KEYS.COUNT_KINDS else None) for n, k in kinds.items()}
    if isinstance(layers, Mapping):
        unknown = [m for m in layers if m not in kinds]
        if unknown:
            raise KeyError(
                f"layers given for modality name(s) {unknown} that are not registered; "
                f"registered modalities: {list(kinds)}"
            )
        out = dict.fromkeys(kinds)
        for name, layer in layers.items():
            if layer is not None and not isinstance(layer, str):
                raise TypeError(f"layer for modality {name!r} must be a str or None, got {layer!r}")
            out[name] = layer
        return out
    raise TypeError(f"layers must be None, a str or a dict {{modality: layer}}, got {layers!r}")


def _resolve_batch_keys(batch_key: BatchKeyArg) -> list[str]:
    if batch_key is None:
        return []
    if not isinstance(batch_key, str | Sequence):
        raise TypeError(f"batch_key must be a str or a list of str, got {batch_key!r}")
    keys = [batch_key] if isinstance(batch_key, str) else list(batch_key)
    for key in keys:
        if not isinstance(key, str):
            raise TypeError(f"batch_key must be a str or a list of str, got {key!r}")
    if len(set(keys)) != len(keys):
        raise ValueError(f"batch_key lists a column twice: {keys}")
    return keys


def _check_cells(data: md.MuData | ad.AnnData, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Step 1 of :func:`_build`: shared, uniquely named cells, ``obsmap`` in sync; each cell's rows."""
    if isinstance(data, md.MuData) and getattr(data, "axis", 0) != 0:
        raise ValueError(f"only MuData with shared cells (axis=0) are supported, got axis={data.axis}")
    if data.n_obs == 0:
        raise ValueError("the data has 0 cells")
    obs_names = data.obs_names
    rows = cell_rows(data, names)
    if not isinstance(data, md.MuData):
        check_obs_names(obs_names, {})
        return rows
    check_obs_names(obs_names, {n: data.mod[n].obs_names for n in names})
    for name in names:
        have = rows[name] >= 0
        mod_names = data.mod[name].obs_names
        if (rows[name][have] >= len(mod_names)).any() or not np.array_equal(
            obs_names[have], mod_names[rows[name][have]]
        ):
            raise ValueError(
                f"mdata.obsmap[{name!r}] does not match the cells of modality {name!r}; "
                "the MuData is out of sync — call mdata.update() on it first"
            )
    return rows


def _register_modality(
    data: md.MuData | ad.AnnData, name: str, kind: str, layer: str | None, rows: np.ndarray
) -> tuple[ModalitySpec, np.ndarray]:
    """Step 2 of :func:`_build`: check one modality's matrix; its spec and all-zero cells (over all cells)."""
    adata = _modality(data, name)
    x = get_matrix(adata, layer, modality=name)
    count_layers = find_count_layers(adata, exclude=layer) if kind in REGISTRY_KEYS.COUNT_KINDS else []
    names = {"obs_names": adata.obs_names, "var_names": adata.var_names}
    if isinstance(data, md.MuData) and adata.n_obs == 0 and adata.n_vars > 0:
        # a modality no cell has (a mapped query without it): every cell lacks it
        cell_empty = np.zeros(0, dtype=bool)
    else:
        summary = check_matrix(x, modality=name, kind=kind, layer=layer, count_layers=count_layers, **names)
        cell_empty = summary.empty_cells
    if not adata.var_names.is_unique:
        dup = adata.var_names[adata.var_names.duplicated()]
        raise ValueError(f"modality {name!r} has {len(dup)} duplicated var name(s) (e.g. {str(dup[0])!r})")
    var_names = tuple(str(v) for v in adata.var_names)
    spec = ModalitySpec(name=name, kind=kind, layer=layer, n_vars=int(adata.n_vars), var_names=var_names)
    empty = np.zeros(data.n_obs, dtype=bool)
    have = rows >= 0
    empty[have] = cell_empty[rows[have]]
    return spec, empty


def _register_batches(
    data: md.MuData | ad.AnnData,
    batch_keys: Sequence[str],
    rows: Mapping[str, np.ndarray],
    categories: Mapping[str, Sequence[str]] | None,
) -> tuple[dict[str, tuple[str, ...]], np.ndarray]:
    """Step 3 of :func:`_build`: each batch column's levels (fixed by ``categories``) and codes."""
    batch_categories: dict[str, tuple[str, ...]] = {}
    codes = np.zeros((data.n_obs, len(batch_keys)), dtype=np.int64)
    for j, key in enumerate(batch_keys):
        values, where = batch_column(data, key, rows)
        if categories is None:
            levels, codes[:, j] = check_batch_column(values, key, where=where)
        else:
            levels = list(categories[key])
            codes[:, j] = pd.Categorical(values.astype(str), categories=levels).codes
        batch_categories[key] = tuple(levels)
    return batch_categories, codes


def _build(
    data: md.MuData | ad.AnnData,
    *,
    kinds: Mapping[str, str],
    layers: Mapping[str, str | None],
    batch_keys: list[str],
    categories: Mapping[str, Sequence[str]] | None = None,
) -> DataRegistry:
    """Check the cells, each modality and the batch columns, and record them in a registry."""
    names = list(kinds)
    rows = _check_cells(data, names)
    specs: dict[str, ModalitySpec] = {}
    empty_cells: dict[str, np.ndarray] = {}
    for name in names:
        specs[name], empty_cells[name] = _register_modality(data, name, kinds[name], layers[name], rows[name])
    batch_categories, codes = _register_batches(data, batch_keys, rows, categories)
    return DataRegistry(
        modalities=specs,
        batch_keys=tuple(batch_keys),
        batch_categories=batch_categories,
        n_obs=int(data.n_obs),
        obs_names=data.obs_names,  # pandas Index objects are immutable: share it, no copy
        rows=rows,
        batch_codes=codes,
        empty_cells=empty_cells,
        setup_args={"modalities": dict(kinds), "layers": dict(layers), "batch_key": list(batch_keys) or None},
        is_mudata=isinstance(data, md.MuData),
    )


def setup_data(
    data: md.MuData | ad.AnnData,
    *,
    modalities: ModalitiesArg = None,
    layers: LayersArg = None,
    batch_key: BatchKeyArg = None,
) -> DataRegistry:
    """Check ``data`` and register the modalities, layers and batch columns the model reads.

    Parameters
    ----------
    data
        A MuData with shared cells (``axis=0``; cells may lack some modalities) or an AnnData.
        In-memory or backed. It is not modified.
    modalities
        Which modalities to use and their kinds (``"rna"``, ``"protein"``, ``"atac"``); at most
        one modality per kind.

        * ``None``: every modality whose name is recognised (``rna``/``gex`` → rna,
          ``prot``/``protein``/``adt`` → protein, ``atac``/``peaks``/``chromatin`` → atac, case
          ignored); others are skipped with a warning. An AnnData is taken as rna.
        * a list of modality names: kinds inferred from the names as above.
        * a dict ``{modality name: kind}``.
        * for an AnnData: a kind (``"protein"``) or a one-entry dict ``{name: kind}``.
    layers
        Where the values are: ``None`` (``X`` everywhere), a layer name used for every count
        modality (rna, protein; ATAC keeps ``X``), or a dict ``{modality name: layer or None}``.
        RNA and protein must hold non-negative integer counts; ATAC may hold binary values or
        counts (binarised when minibatches are made).
    batch_key
        ``None``, a column name or a list of column names (several categorical batch
        covariates). Columns are read from ``mdata.obs`` (``adata.obs``). For a MuData, a
        column found only in the modalities' ``obs`` is read from there and mapped onto the
        cells; modalities that both have it must agree.

    Returns
    -------
    DataRegistry
        The registration; ``registry.summary()`` describes it.

    Raises
    ------
    KeyError
        Unknown modality names, missing layers or batch columns (the message lists what exists).
    ValueError
        Invalid values (NaN/inf, negative or non-integer counts), empty matrices, duplicated or
        mismatched cell names, two modalities of one kind, a batch column with missing values.
        (A batch column with a single level is accepted: a one-batch reference for mapping.)
    TypeError
        Non-numeric matrices or arguments of the wrong type.

    Warns
    -----
    UserWarning
        Cells or features that are all zero in a modality (kept; see
        :meth:`DataRegistry.nonempty_cells`), batch levels with one cell, modalities skipped.

    Examples
    --------
    >>> from qbm_pyro import datasets
    >>> from qbm_pyro.data import setup_data
    >>> mdata = datasets.pbmc_cite_2batch()
    >>> registry = setup_data(mdata, batch_key="batch")
    >>> registry.kinds
    {'rna': 'rna', 'protein': 'prot'}
    """
    if not isinstance(data, md.MuData | ad.AnnData):
        raise TypeError(f"data must be a MuData or an AnnData, got {type(data).__name__}")
    kinds = resolve_modalities(data, modalities)
    return _build(
        data,
        kinds=kinds,
        layers=resolve_layers(kinds, layers),
        batch_keys=_resolve_batch_keys(batch_key),
    )
