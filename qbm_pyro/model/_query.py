"""Preparing query cells for reference mapping (:mod:`._mapping`): what mapping reads from the
reference (a fitted model or a saved folder), and the query with the reference's modalities and
features in its order (missing features zero-filled and flagged in ``var["qbm_padded"]``).
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._constants import MODALITY_ALIASES
from ..data.validation import get_matrix
from ._save import read_model_file

__all__ = ["MIN_FEATURE_OVERLAP", "PADDED_KEY"]

log = logging.getLogger(__name__)

#: ``var`` column of a prepared query: the feature was missing and is zero-filled.
PADDED_KEY = "qbm_padded"
#: Below this fraction of the reference's features present in the query, a warning is given.
MIN_FEATURE_OVERLAP = 0.8


@dataclass(frozen=True)
class _Reference:
    """What mapping needs from a reference model (fitted object or saved folder)."""

    init_args: dict
    setup_args: dict
    var_names: dict[str, list[str]]
    batch_categories: dict[str, tuple[str, ...]]
    state_dict: dict
    sampler_state: dict
    #: Per modality, the fraction of the reference's cells that lacked it (``None``: unknown, a
    #: saved folder).
    lacking: dict[str, float] | None = None

    @property
    def kinds(self) -> dict[str, str]:
        return dict(self.setup_args["modalities"])

    @property
    def layers(self) -> dict[str, str | None]:
        return dict(self.setup_args["layers"])

    @property
    def batch_keys(self) -> list[str]:
        return list(self.setup_args.get("batch_key") or [])


def _read_reference(reference, cls) -> _Reference:
    """The parts of ``reference`` (a fitted model or a folder written by ``save``)."""
    if isinstance(reference, cls):
        if not reference.is_trained_:
            raise ValueError("the reference model is not trained; call reference.train() first")
        prior = reference.module.prior
        return _Reference(
            init_args=dict(reference.init_args),
            setup_args=dict(reference.registry.setup_args),
            var_names={n: list(s.var_names) for n, s in reference.registry.modalities.items()},
            batch_categories=dict(reference.registry.batch_categories),
            state_dict={k: v.detach().clone() for k, v in reference.module.state_dict().items()},
            sampler_state=prior.sampler.state_dict() if prior is not None else {},
            lacking={n: float((rows < 0).mean()) for n, rows in reference.registry.rows.items()},
        )
    if not isinstance(reference, str | os.PathLike):
        raise TypeError(
            f"reference must be a fitted {cls.__name__} or the folder it was saved to, got "
            f"{type(reference).__name__}"
        )
    saved = read_model_file(reference, cls.__name__)
    if saved.batch_categories is None and saved.setup_args.get("batch_key"):
        raise ValueError(
            f"{saved.path} was saved without its batch levels (by an older qbm_pyro), so new levels "
            f"cannot be told from the reference's; load it with {cls.__name__}.load(folder, "
            "reference_data) and pass the model as reference"
        )
    return _Reference(
        init_args=saved.init_args,
        setup_args=saved.setup_args,
        var_names=saved.var_names,
        batch_categories=saved.batch_categories or {},
        state_dict=saved.state_dict,
        sampler_state=saved.sampler_state,
    )


################################################################################
# Preparing the query: feature order, zero-padding, missing modalities.
################################################################################


def _match_modalities(query, ref: _Reference) -> dict[str, str | None]:
    """``{reference modality: query modality or None}`` (same name, else the one of that kind)."""
    kinds = ref.kinds
    if isinstance(query, ad.AnnData):
        if len(kinds) != 1:
            raise ValueError(
                f"the query is an AnnData but the reference has {len(kinds)} modalities "
                f"{list(kinds)}; pass a MuData whose modalities are named as the reference's"
            )
        return {next(iter(kinds)): None}
    if not isinstance(query, md.MuData):
        raise TypeError(f"query must be a MuData or an AnnData, got {type(query).__name__}")
    if getattr(query, "axis", 0) != 0:
        raise ValueError(f"only MuData with shared cells (axis=0) are supported, got axis={query.axis}")
    out: dict[str, str | None] = {}
    for name, kind in kinds.items():
        if name in query.mod:
            out[name] = name
            continue
        same_kind = [m for m in query.mod if MODALITY_ALIASES.get(m.lower()) == kind]
        if len(same_kind) > 1:
            raise ValueError(
                f"the reference's modality {name!r} ({kind}) is not in the query, and several "
                f"query modalities could be it: {same_kind}; rename one to {name!r}"
            )
        out[name] = same_kind[0] if same_kind else None
    if all(v is None for v in out.values()):
        raise ValueError(
            f"the query has none of the reference's modalities {kinds} (query modalities: {list(query.mod)})"
        )
    return out


def _select(x, positions: np.ndarray, n_out: int):
    """Columns ``positions`` of ``x`` (``-1``: a zero column), sparse stays sparse (CSR)."""
    present = positions >= 0
    if not sp.issparse(x):
        x = np.asarray(x)
    dtype = x.dtype
    pick = sp.csr_matrix(
        (np.ones(int(present.sum()), dtype=dtype), (positions[present], np.flatnonzero(present))),
        shape=(x.shape[1], n_out),
    )
    out = x @ pick
    return sp.csr_matrix(out) if sp.issparse(out) else np.asarray(out)


def _pad_modality(adata: ad.AnnData, var_names: list[str], layer: str | None, name: str) -> ad.AnnData:
    """A new AnnData with the reference's features in its order (missing ones zero-filled)."""
    if adata.isbacked:
        adata = adata.to_memory()
    if not adata.var_names.is_unique:
        dup = adata.var_names[adata.var_names.duplicated()]
        raise ValueError(f"query modality {name!r} has duplicated feature names (e.g. {str(dup[0])!r})")
    ref = pd.Index(var_names)
    positions = adata.var_names.get_indexer(ref)
    present = positions >= 0
    n_common = int(present.sum())
    if n_common == 0:
        raise ValueError(
            f"query modality {name!r} has none of the reference's {len(ref)} features (reference "
            f"{list(ref[:3])}..., query {list(adata.var_names[:3])}...): are they named alike "
            "(gene symbols vs Ensembl IDs)?"
        )
    if n_common < MIN_FEATURE_OVERLAP * len(ref):
        warnings.warn(
            f"query modality {name!r} has {n_common} of the reference's {len(ref)} features "
            f"({n_common / len(ref):.0%} < {MIN_FEATURE_OVERLAP:.0%}); the others are zero-filled "
            "and left out of the likelihood, but the mapping may be poor",
            UserWarning,
            stacklevel=4,
        )
    get_matrix(adata, layer, modality=name)  # a clear error if the layer is missing
    x = None if adata.X is None else _select(adata.X, positions, len(ref))
    layers = {} if layer is None else {layer: _select(adata.layers[layer], positions, len(ref))}
    var = pd.DataFrame({PADDED_KEY: ~present}, index=ref)
    return ad.AnnData(X=x, obs=adata.obs.copy(), var=var, layers=layers)


def _empty_modality(var_names: list[str], layer: str | None) -> ad.AnnData:
    """A modality with the reference's features and no cell (the query lacks it)."""
    empty = sp.csr_matrix((0, len(var_names)), dtype=np.float32)
    var = pd.DataFrame({PADDED_KEY: np.ones(len(var_names), dtype=bool)}, index=pd.Index(var_names))
    layers = {} if layer is None else {layer: empty.copy()}
    return ad.AnnData(X=empty, var=var, layers=layers)


def _prepare(query, ref: _Reference):
    """The query with the reference's modalities and features (a new object)."""
    matches = _match_modalities(query, ref)
    if isinstance(query, ad.AnnData):
        ((name, _),) = matches.items()
        return _pad_modality(query, ref.var_names[name], ref.layers[name], name)
    mods = {}
    for name, source in matches.items():
        if source is None:
            log.info("the query lacks modality %r: its cells are mapped from the others", name)
            mods[name] = _empty_modality(ref.var_names[name], ref.layers[name])
        else:
            mods[name] = _pad_modality(query.mod[source], ref.var_names[name], ref.layers[name], name)
    out = md.MuData(mods)
    if not out.obs_names.equals(query.obs_names):
        lacking = query.obs_names.difference(out.obs_names)
        if len(lacking):
            raise ValueError(
                f"{len(lacking)} query cell(s) have none of the reference's modalities "
                f"{list(matches)} (e.g. {str(lacking[0])!r}); drop them first"
            )
        out = out[query.obs_names].copy()
    for column in query.obs.columns:  # global columns (the batch key) travel with the cells
        if column not in out.obs.columns:
            out.obs[column] = query.obs[column].to_numpy()
    return out


def _is_prepared(query, ref: _Reference) -> bool:
    """Whether ``query`` already has the reference's modality names and features, in order."""
    if isinstance(query, ad.AnnData):
        return len(ref.var_names) == 1 and list(query.var_names) == next(iter(ref.var_names.values()))
    return isinstance(query, md.MuData) and all(
        name in query.mod and list(query.mod[name].var_names) == names
        for name, names in ref.var_names.items()
    )
