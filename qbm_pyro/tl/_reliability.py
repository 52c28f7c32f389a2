"""``qbm_pyro.tl.modality_reliability``: how well a query's modalities place cells, measured on the
reference itself (its cells encoded with all their modalities and with only the query's)."""

from __future__ import annotations

import logging
import time

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestNeighbors

from qbm_pyro._constants import REGISTRY_KEYS as K

__all__ = ["MODALITIES_KEY", "RELIABILITY_KEY", "modality_reliability", "pattern_accuracy"]

#: ``obs`` column of the query: the reference modalities each cell has (``"prot+rna"``).
MODALITIES_KEY = "qbm_modalities"
#: ``uns`` entry of the query written by :func:`modality_reliability`.
RELIABILITY_KEY = "qbm_modality_reliability"

log = logging.getLogger(__name__)


def _patterns(registry) -> np.ndarray:
    """Per cell, the ``+``-joined sorted names of the modalities it has."""
    names = sorted(registry.modalities)
    has = np.stack([registry.rows[name] >= 0 for name in names], axis=1)
    return np.array(["+".join(n for n, h in zip(names, row) if h) for row in has], dtype=object)


@torch.no_grad()
def _encode(model, indices: np.ndarray, drop_kinds: tuple[str, ...], batch_size: int) -> np.ndarray:
    """The default latent of the model's own cells ``indices``, the kinds ``drop_kinds`` masked
    out exactly as for a cell lacking them (mask 0, counts 0: the product of experts skips them)."""
    module = model.module
    module.eval()
    m = module

    def latent(post):
        probs = torch.sigmoid(post["logits"])
        if m.n_binary and m.n_continuous:
            return torch.cat([probs, post["loc"]], -1)
        return probs if m.n_binary else post["loc"]

    parts = []
    for batch in model._loader(None, indices=indices, batch_size=batch_size):
        batch = dict(batch)
        for kind in drop_kinds:
            batch[K.mask_key(kind)] = torch.zeros_like(batch[K.mask_key(kind)])
            batch[K.x_key(kind)] = torch.zeros_like(batch[K.x_key(kind)])
        parts.append(latent(module.encode(batch)))
    return torch.cat(parts).cpu().numpy()


def modality_reliability(
    query: md.MuData | ad.AnnData,
    query_model,
    reference_model,
    *,
    n_cells: int = 2000,
    seed: int = 0,
    batch_size: int = 512,
) -> None:
    """Encode reference cells with only the modalities that query cells have, for
    :func:`~qbm_pyro.tl.transfer_labels` to estimate how well those modalities place cells.

    For each pattern of modalities among the query cells that lacks one of the reference's, a
    seeded subsample of at most ``n_cells`` reference cells that have every modality is encoded
    twice by the reference model: with all its modalities, and with only the pattern's (the
    others masked out exactly as for a query cell that lacks them). No label is used:
    :func:`~qbm_pyro.tl.transfer_labels` turns the pair into an estimated accuracy, with the
    reference's labels when it has them (label transfer of the reduced latents, a direct
    calibration), else by how far the reduced latent's neighbourhood keeps the full one's.

    Parameters
    ----------
    query
        The query data whose ``obsm`` holds the latent of ``query_model`` (its cells in order).
    query_model
        The model made by :meth:`~qbm_pyro.QBMVAE.load_query_data` for ``query``: it records
        which modalities each cell lacks.
    reference_model
        The fitted reference :class:`~qbm_pyro.QBMVAE`.
    n_cells
        At most this many reference cells are encoded per pattern.
    seed
        Seed of the subsample.
    batch_size
        Cells per minibatch when encoding.

    Returns
    -------
    ``None``. Writes into ``query``:

    ``obs['qbm_modalities']`` : categorical
        The reference modalities each cell has (``"+"``-joined names).
    ``uns['qbm_modality_reliability']`` : dict
        ``reference_obs_names`` (the subsampled reference cells), ``full`` (their latent) and
        ``reduced`` (``{pattern: their latent from that pattern's modalities}``).

    Raises
    ------
    ValueError
        ``query`` and ``query_model`` do not hold the same cells, the models have different
        modalities, or no reference cell has every modality.
    """
    start = time.perf_counter()
    if not isinstance(query, md.MuData | ad.AnnData):
        raise TypeError(f"query must be a MuData or an AnnData, got {type(query).__name__}")
    if not isinstance(n_cells, int | np.integer) or n_cells < 2:
        raise ValueError(f"n_cells must be an int >= 2, got {n_cells!r}")
    qreg, rreg = query_model.registry, reference_model.registry
    if query.n_obs != qreg.n_obs or not pd.Index(query.obs_names).equals(
        pd.Index(query_model.data.obs_names)
    ):
        raise ValueError(
            f"query ({query.n_obs} cells) does not hold query_model's cells ({qreg.n_obs}) in its order"
        )
    if sorted(qreg.modalities) != sorted(rreg.modalities):
        raise ValueError(
            f"query_model has modalities {sorted(qreg.modalities)} and reference_model "
            f"{sorted(rreg.modalities)}: was query_model made by load_query_data on this reference?"
        )
    patterns = _patterns(qreg)
    full_pattern = "+".join(sorted(rreg.modalities))
    complete = np.flatnonzero(_patterns(rreg) == full_pattern)
    reduced_patterns = sorted(set(patterns) - {full_pattern})
    if reduced_patterns and len(complete) < 2:
        raise ValueError("fewer than 2 reference cells have every modality: nothing to measure on")
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(complete, size=min(n_cells, len(complete)), replace=False))
    info: dict = {"reference_obs_names": np.asarray(reference_model.data.obs_names[chosen], dtype=str)}
    info["full"] = _encode(reference_model, chosen, (), batch_size)
    info["reduced"] = {}
    for pattern in reduced_patterns:
        kept = set(pattern.split("+"))
        drop = tuple(spec.kind for name, spec in rreg.modalities.items() if name not in kept)
        info["reduced"][pattern] = _encode(reference_model, chosen, drop, batch_size)
    query.obs[MODALITIES_KEY] = pd.Categorical(patterns)
    query.uns[RELIABILITY_KEY] = info
    log.info(
        "modality_reliability (%.1fs): %d reference cells encoded from %s",
        time.perf_counter() - start,
        len(chosen),
        reduced_patterns,
    )


def _platt(confidence: np.ndarray, correct: np.ndarray):
    """The increasing map ``v -> P(correct | v)`` (logistic in ``logit(v)``, Platt scaling) fitted
    to vote shares ``confidence`` of cells right or wrong (``correct``)."""
    n, k = len(correct), int(correct.sum())
    if k in (0, n):  # nothing to fit: at most the (smoothed) accuracy
        ceiling = (k + 1) / (n + 2)
        return lambda v: np.minimum(v, ceiling)
    fit = LogisticRegression(C=1e4).fit(_logit(confidence), correct.astype(int))
    slope, intercept = max(float(fit.coef_[0, 0]), 0.0), float(fit.intercept_[0])
    return lambda v: 1.0 / (1.0 + np.exp(-(slope * _logit(v)[:, 0] + intercept)))


def _logit(v: np.ndarray) -> np.ndarray:
    v = np.clip(np.asarray(v, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(v / (1 - v))[:, None]


def pattern_accuracy(
    info: dict, reference_rep: np.ndarray, reference_obs_names, labels, n_neighbors: int, votes
) -> dict:
    """Estimated label-transfer accuracy of each reduced modality pattern in ``info``, and a map
    from a query cell's vote share to its calibrated confidence.

    With labels (``labels``: the reference cells' labels, ``None`` where unlabelled), the reduced
    latents of the labelled subsampled reference cells are labelled by ``votes`` (the weighted kNN
    of :func:`~qbm_pyro.tl.transfer_labels`, the cell itself left out) against the labelled
    reference cells in ``reference_rep``. The estimate is the share labelled as they are
    (``"label_transfer"``); the map is the logistic fit of being right on the vote share's logit
    over these cells (Platt scaling: increasing, so it keeps the order of the query cells'
    uncertainties). Without labels (or when the subsampled cells are not among
    ``reference_obs_names``), the estimate is the mean share of each subsampled cell's
    ``n_neighbors`` nearest neighbours (among the subsample) in its reduced latent that are among
    them in its full latent (``"neighbour_agreement"``: stricter than agreeing on a label, so a
    lower bound), and the map caps the confidence at it.

    Returns
    -------
    ``{pattern: (estimate in [0, 1], method, map)}``.
    """
    full = np.asarray(info["full"], dtype=np.float64)
    names = pd.Index(np.asarray(info["reference_obs_names"], dtype=str))
    out = {}
    positions = None
    if labels is not None and pd.Index(reference_obs_names).is_unique:
        positions = pd.Index(np.asarray(reference_obs_names, dtype=str)).get_indexer(names)
        labelled = np.asarray(pd.notna(labels))
        keep = positions >= 0
        keep[keep] = labelled[positions[keep]]
        if keep.sum() < 2 or labelled.sum() <= n_neighbors:
            positions = None
    for pattern, reduced in info["reduced"].items():
        reduced = np.asarray(reduced, dtype=np.float64)
        if reduced.shape != full.shape or reduced.shape[1] != reference_rep.shape[1]:
            raise ValueError(
                f"uns[{RELIABILITY_KEY!r}] holds latents of shape {reduced.shape}, the reference's "
                f"are {reference_rep.shape[1]} wide: was it written with this model's latent?"
            )
        if positions is not None:
            pool = np.flatnonzero(labelled)
            pool_labels = np.asarray(labels, dtype=object)[pool].astype(str)
            rows = np.flatnonzero(keep)
            own = np.searchsorted(pool, positions[rows])  # each cell's place in the pool
            predicted, share = votes(reference_rep[pool], pool_labels, reduced[rows], n_neighbors, own)
            correct = predicted == pool_labels[own]
            out[pattern] = (float(correct.mean()), "label_transfer", _platt(share, correct))
            continue
        k = min(n_neighbors, len(full) - 1)
        nn = NearestNeighbors(n_neighbors=k + 1).fit(full)
        _, full_idx = nn.kneighbors(full)
        _, red_idx = nn.kneighbors(reduced)
        agreement = []
        for i, (f, r) in enumerate(zip(full_idx, red_idx)):
            f = [j for j in f if j != i][:k]
            r = [j for j in r if j != i][:k]
            agreement.append(len(set(f) & set(r)) / k)
        estimate = float(np.mean(agreement))
        out[pattern] = (estimate, "neighbour_agreement", lambda v, e=estimate: np.minimum(v, e))
    return out
