"""Reference mapping (scArches-style): prepare query data and fit query-specific parameters of a
reference ``QBMVAE``.

A *reference* is a fitted :class:`~qbm_pyro.QBMVAE` (or the folder it was saved to). *Query*
cells come from new batches (studies, donors, protocols). Mapping them follows scArches [1]:

1. :meth:`~ReferenceMappingMixin.prepare_query_data` puts the query's features in the reference's
   order; reference features the query lacks are zero-filled and flagged in
   ``var["qbm_padded"]`` (they are then left out of the likelihood). A reference modality the
   query lacks entirely becomes a modality with no cell (the product-of-experts encoder needs no
   input from it).
2. ``load_query_data`` builds a model for the query whose batch
   covariates are the reference's levels followed by the query's new ones. Every weight is
   copied from the reference; the weights of new levels (their columns in every layer that sees
   the one-hot batch, their rows of the protein background) start at the mean over the
   reference's levels. With ``freeze=True`` only those new-level weights are trained, so the
   encoder, the prior and the reference batches' decoder stay exactly as they were and the query
   lands in the reference's latent space.

**References:** [1] Lotfollahi et al. (2022) "Mapping single-cell data to reference atlases by
transfer learning", Nat. Biotechnol. 40, 121.
"""

from __future__ import annotations

import logging
import warnings

import anndata as ad
import mudata as md
import numpy as np
import torch

from ..data import batch_column, cell_rows
from ..data.validation import check_batch_column
from ..module import MultiVAE
from ..module.nets import MLP
from ._base import ModelBase
from ._query import MIN_FEATURE_OVERLAP, PADDED_KEY, _is_prepared, _prepare, _read_reference, _Reference

__all__ = ["MIN_FEATURE_OVERLAP", "PADDED_KEY", "MissingModalityWarning", "ReferenceMappingMixin"]

log = logging.getLogger(__name__)

################################################################################
# Extending the batch covariates and freezing.
################################################################################


def _extended_categories(data, ref: _Reference) -> dict[str, list[str]]:
    """Reference levels, then the query's new levels, for every batch key."""
    rows = cell_rows(data, list(ref.kinds)) if isinstance(data, md.MuData) else None
    out = {}
    for key in ref.batch_keys:
        try:
            values, where = batch_column(data, key, rows)
        except KeyError as err:
            raise KeyError(
                f"the reference was fitted with batch_key {key!r}; the query needs that column "
                f"too (one new level per query batch). {err.args[0]}"
            ) from None
        levels, _ = check_batch_column(values, key, where=where, warn=False)
        old = list(ref.batch_categories[key])
        out[key] = old + [level for level in levels if level not in old]
    return out


def _covariate_columns(old_levels: list[int], new_levels: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the old one-hot columns among the new ones, and of the added columns."""
    old_pos, added = [], []
    offset = 0
    for n_old, n_new in zip(old_levels, new_levels):
        old_pos += list(range(offset, offset + n_old))
        added += list(range(offset + n_old, offset + n_new))
        offset += n_new
    return np.asarray(old_pos, dtype=np.int64), np.asarray(added, dtype=np.int64)


def _transplant(module: MultiVAE, state: dict, old_levels: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """Load the reference ``state`` into ``module``, whose batch covariates have more levels.

    A new level's weights start at the mean of that batch key's reference levels. Returns
    ``{parameter name: bool mask of the entries of new levels}`` for every parameter with such
    entries (the covariate columns of each layer that sees the batch, the protein background).
    """
    new_levels = module.n_batch
    old_pos, added = _covariate_columns(list(old_levels), list(new_levels))
    fresh = module.state_dict()
    state = dict(state)
    masks: dict[str, torch.Tensor] = {}
    for name, mlp in module.named_modules():
        if not isinstance(mlp, MLP) or mlp.n_covariates == 0:
            continue
        for key in _linear_weights(name, mlp):
            old, new = state[key], fresh[key].clone()
            n_in = new.shape[1] - mlp.n_covariates
            new[:, :n_in] = old[:, :n_in]
            new[:, n_in + old_pos] = old[:, n_in:]
            start_old = start_new = 0
            for n_old, n_new in zip(old_levels, new_levels):
                if n_new > n_old:
                    mean = old[:, n_in + start_old : n_in + start_old + n_old].mean(1, keepdim=True)
                    new[:, n_in + start_new + n_old : n_in + start_new + n_new] = mean
                start_old, start_new = start_old + n_old, start_new + n_new
            mask = torch.zeros_like(new, dtype=torch.bool)
            mask[:, n_in + added] = True
            state[key], masks[key] = new, mask
    if "protein_background" in fresh and new_levels:
        old, new = state["protein_background"], fresh["protein_background"].clone()
        n_old = old.shape[0]
        new[:n_old] = old
        new[n_old:] = old.mean(0, keepdim=True)
        mask = torch.zeros_like(new, dtype=torch.bool)
        mask[n_old:] = True
        state["protein_background"], masks["protein_background"] = new, mask
    module.load_state_dict(state)
    return masks


def _linear_weights(prefix: str, mlp: MLP) -> list[str]:
    """State-dict names of the weights of ``mlp``'s linear layers (each sees the covariates)."""
    return [
        f"{prefix}.{name}.weight" if prefix else f"{name}.weight"
        for name, layer in mlp.named_modules()
        if isinstance(layer, torch.nn.Linear)
    ]


def _freeze(module: MultiVAE, masks: dict[str, torch.Tensor]) -> int:
    """Train only the entries of new batch levels: a gradient hook zeroes the gradient of every
    other entry.

    Returns the number of trainable entries. Adam (without weight decay) leaves an entry whose
    gradient is always zero exactly where it was. (``requires_grad=False`` would also do, but
    Pyro's ``pyro.module`` then warns about every such parameter at every step.)
    """
    n_trainable = 0
    for name, param in module.named_parameters():
        keep = masks.get(name)
        if keep is None or not keep.any():
            param.register_hook(torch.zeros_like)
            continue
        param.register_hook(lambda grad, keep=keep.to(param.device): grad * keep)
        n_trainable += int(keep.sum())
    return n_trainable


################################################################################
# The user API.
################################################################################


class ReferenceMappingMixin(ModelBase):
    """Methods of :class:`~qbm_pyro.QBMVAE` that map query cells onto a fitted reference."""

    @classmethod
    def prepare_query_data(cls, query: md.MuData | ad.AnnData, reference) -> md.MuData | ad.AnnData:
        """The query with the reference's modalities and features, in the reference's order.

        Like scvi-tools' ``prepare_query_anndata``/``prepare_query_mudata``, but never in place:
        ``query`` is not modified.

        Parameters
        ----------
        query
            Query cells: a MuData, or an AnnData when the reference has one modality. Features
            are matched by name; a reference modality missing from a MuData query is looked for
            under another name of the same kind (``adt`` for ``prot``...).
        reference
            A fitted :class:`~qbm_pyro.QBMVAE`, or the folder it was saved to.

        Returns
        -------
        A new MuData (AnnData for an AnnData query), cells in the query's order, with per modality:

        * the reference's features in its order; ``X`` and the reference's layer hold the query's
          values, zero for features the query lacks (extra query features are dropped);
        * ``var["qbm_padded"]`` (bool): the feature was missing from the query. A model from
          ``load_query_data`` leaves these features out of the likelihood;
        * a reference modality the query lacks is a modality with no cell (every cell is then
          encoded from its other modalities).

        The global ``obs`` columns of a MuData query (the batch key) are kept.

        Raises
        ------
        ValueError
            The query shares no feature with the reference in some modality, has none of its
            modalities, is an AnnData for a multi-modal reference, or has cells with none of the
            reference's modalities.

        Warns
        -----
        UserWarning
            Fewer than 80% of the reference's features of a modality are in the query.

        Examples
        --------
        >>> import qbm_pyro
        >>> adata = qbm_pyro.datasets.paul15_myeloid()
        >>> reference = qbm_pyro.QBMVAE(adata[:200].copy(), n_latent=8, n_continuous=2)
        >>> _ = reference.train(max_epochs=1, progress_bar=False)
        >>> query = adata[200:300, ::-1].copy()  # features in another order
        >>> prepared = qbm_pyro.QBMVAE.prepare_query_data(query, reference)
        >>> bool((prepared.var_names == adata.var_names).all())
        True
        """
        return _prepare(query, _read_reference(reference, cls))

    @classmethod
    def load_query_data(
        cls,
        query: md.MuData | ad.AnnData,
        reference,
        *,
        freeze: bool = True,
        sampler=None,
        sampler_fallback: bool = True,
        seed: int | None = None,
        accelerator: str = "auto",
        device=None,
    ):
        """A model of the query cells in the reference's latent space (scArches).

        Parameters
        ----------
        query
            Query cells (prepared by ``prepare_query_data`` or not: it is done here when the
            features are not yet the reference's). It must have the reference's batch column(s);
            levels the reference does not know are new batches.
        reference
            A fitted :class:`~qbm_pyro.QBMVAE`, or the folder it was saved to.
        freeze
            ``True`` (scArches): train only the weights of the new batch levels, i.e. their
            columns in every layer that receives the one-hot batch (decoder; encoders too with
            ``encode_covariates=True``) and their rows of the protein background. Everything else
            (encoders, prior, decoder weights, dispersions, the reference levels' weights) stays
            exactly as in the reference, so a reference cell is encoded as before. scvi-tools'
            scArches also trains the affine parameters of the decoder's BatchNorm; our decoder
            uses LayerNorm, whose parameters are shared by every batch, so they stay frozen. With
            no new level nothing is trainable. ``False``: fine-tune every weight.
        sampler, sampler_fallback
            As for :class:`~qbm_pyro.QBMVAE` (default: the reference's kind of sampler, with its
            persistent chains' state).
        seed
            Seed of the query training (default: the reference's).
        accelerator, device
            Where the query model computes, as for :class:`~qbm_pyro.QBMVAE` (default: CUDA
            when available).

        Returns
        -------
        QBMVAE
            Not yet trained (``is_trained_`` is ``False``): call ``train(...)``, then
            ``get_latent_representation()`` (the query's latent; ``model.data`` is the prepared
            query). ``model.mapping_`` records the new levels and the number of trainable weights.

        Raises
        ------
        KeyError
            The query lacks the reference's batch column.
        ValueError, TypeError
            See ``prepare_query_data``; or the reference is not trained.

        Warns
        -----
        MissingModalityWarning
            Query cells lack a modality of the reference: they are encoded from their other
            modalities alone, which the reference's encoders were not trained to do (measured on
            the bundled CITE-seq set, ``BENCHMARKS.md`` "Queries that lack a modality": a
            protein-only query maps near chance). :func:`qbm_pyro.tl.modality_reliability`
            measures how well the query's modalities place reference cells, and
            :func:`qbm_pyro.tl.transfer_labels` then calibrates these cells' uncertainty.

        Examples
        --------
        >>> import qbm_pyro
        >>> adata = qbm_pyro.datasets.paul15_myeloid()
        >>> adata.obs["batch"] = "ref"
        >>> reference = qbm_pyro.QBMVAE(adata[:200].copy(), batch_key="batch", n_latent=8, n_continuous=2)
        >>> _ = reference.train(max_epochs=1, progress_bar=False)
        >>> query = adata[200:300].copy()
        >>> query.obs["batch"] = "new"
        >>> model = qbm_pyro.QBMVAE.load_query_data(query, reference)
        >>> _ = model.train(max_epochs=1, progress_bar=False)
        >>> model.get_latent_representation().shape
        (100, 10)
        """
        ref = _read_reference(reference, cls)
        data = query if _is_prepared(query, ref) else _prepare(query, ref)
        categories = _extended_categories(data, ref)
        init_args = dict(ref.init_args)
        if seed is not None:
            init_args["seed"] = int(seed)
        with warnings.catch_warnings():  # the query's own levels: replaced just below
            warnings.simplefilter("ignore", UserWarning)
            model = cls(
                data,
                sampler=sampler,
                sampler_fallback=sampler_fallback,
                accelerator=accelerator,
                device=device,
                **ref.setup_args,
                **init_args,
            )
        with warnings.catch_warnings():  # zero-padded features are zero in every cell
            warnings.filterwarnings("ignore", message=r".*features are zero in every cell")
            model._use_batch_levels(categories)  # registry and module (on model.device) for them
        _warn_missing_modalities(model.registry, ref.lacking)
        module = model.module
        old_levels = tuple(len(ref.batch_categories[k]) for k in ref.batch_keys)
        masks = _transplant(module, ref.state_dict, old_levels)
        if module.n_binary and ref.sampler_state and sampler is None:
            module.prior.sampler.load_state_dict(ref.sampler_state)
        module.feature_masks = _feature_masks(data, model.registry, model.device)
        n_trainable = _freeze(module, masks) if freeze else sum(p.numel() for p in module.parameters())
        if module.n_binary and freeze:
            module.prior.frozen = True  # the reference's prior: no last fit after the query's training
        module.eval()
        new_levels = {k: list(v[len(ref.batch_categories[k]) :]) for k, v in categories.items()}
        if freeze and n_trainable == 0:
            warnings.warn(
                "the query has no batch level the reference lacks: with freeze=True nothing is "
                "trained, and the query is encoded by the reference as it is",
                UserWarning,
                stacklevel=2,
            )
        model.mapping_ = {"new_levels": new_levels, "freeze": bool(freeze), "n_trainable": int(n_trainable)}
        model.is_trained_ = False
        log.info("query model: new batch levels %s, %d trainable weights", new_levels, n_trainable)
        return model


class MissingModalityWarning(UserWarning):
    """Query cells lack a modality of the reference (see ``load_query_data``)."""


#: A reference in which at least this fraction of cells lacked a modality was trained to encode
#: cells without it: its query cells lacking it are not warned about.
TRAINED_WITHOUT_FRACTION = 0.1


def _warn_missing_modalities(registry, trained_without: dict[str, float] | None) -> None:
    """Warn when query cells lack a modality that (nearly) every reference cell had."""
    trained_without = trained_without or {}
    lacking = {name: int((registry.rows[name] < 0).sum()) for name in registry.modalities}
    lacking = {
        name: n
        for name, n in lacking.items()
        if n and trained_without.get(name, 0.0) < TRAINED_WITHOUT_FRACTION
    }
    if not lacking:
        return
    shown = ", ".join(f"{n} of {registry.n_obs} lack {name!r}" for name, n in lacking.items())
    warnings.warn(
        f"query cells lack modalities of the reference ({shown}): they are encoded from their other "
        "modalities alone, which the reference's encoders were not trained to do, and may map far "
        "off the reference (a protein-only query of an RNA + protein reference maps near chance); "
        "run qbm_pyro.tl.modality_reliability(query, query_model, reference) before "
        "qbm_pyro.tl.transfer_labels to calibrate their uncertainty, or train the reference with "
        "train(modality_dropout=0.25), which teaches its encoders to place cells from each "
        "modality alone (protein-only CITE-seq queries: 0.89 accuracy instead of 0.52)",
        MissingModalityWarning,
        stacklevel=3,
    )


def _use_saved_levels(model, categories: dict | None) -> None:
    """Make a loaded ``model`` read its data with the batch levels it was trained with.

    ``setup_data`` numbers the levels the data has; a model trained on more levels (or saved by
    ``load_query_data``) needs its own numbering, else a cell of its
    second batch would be read as its first. Also restores the likelihood masks of zero-padded
    features (``var["qbm_padded"]``) of a saved query model.

    Raises
    ------
    ValueError
        The data has batch levels the model was not trained on.
    """
    registry = model.registry
    if categories is not None:
        saved = {k: tuple(v) for k, v in categories.items()}
        for key in registry.batch_keys:
            unknown = sorted(set(registry.batch_categories[key]) - set(saved.get(key, ())))
            if unknown:
                raise ValueError(
                    f"batch column {key!r} has levels the model was not trained on: {unknown[:10]}; "
                    f"map such cells with {type(model).__name__}.load_query_data(data, model)"
                )
        if saved != dict(registry.batch_categories):
            model._use_batch_levels(saved)
    model.module.feature_masks = _feature_masks(model.data, model.registry, model.device)


def _feature_masks(data, registry, device: torch.device) -> dict[str, torch.Tensor]:
    """``{kind: observed-feature mask}`` on ``device`` for modalities with zero-padded features."""
    out = {}
    for name, spec in registry.modalities.items():
        adata = data.mod[name] if isinstance(data, md.MuData) else data
        if PADDED_KEY in adata.var.columns:
            padded = adata.var[PADDED_KEY].to_numpy(dtype=bool)
            if padded.any():
                out[spec.kind] = torch.from_numpy(~padded).to(device)
    return out
