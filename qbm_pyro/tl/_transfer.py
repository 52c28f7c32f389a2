"""``qbm_pyro.tl.transfer_labels``: k-nearest-neighbour label transfer from reference to query
cells in a shared latent space (scArches' weighted kNN classifier)."""

from __future__ import annotations

import logging
import time

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors

__all__ = ["transfer_labels"]

log = logging.getLogger(__name__)


def _check_data(data, what: str, use_rep: str) -> np.ndarray:
    if not isinstance(data, md.MuData | ad.AnnData):
        raise TypeError(f"{what} must be a MuData or an AnnData, got {type(data).__name__}")
    if use_rep not in data.obsm:
        raise KeyError(
            f"{what}.obsm has no {use_rep!r} (it has {list(data.obsm)}); run qbm_pyro.tl.qbm on "
            f"the reference and map the query (QBMVAE.load_query_data) first, or pass use_rep"
        )
    rep = np.asarray(data.obsm[use_rep], dtype=np.float64)
    if rep.ndim != 2 or not np.isfinite(rep).all():
        raise ValueError(f"{what}.obsm[{use_rep!r}] must be a finite 2-D array, got shape {rep.shape}")
    return rep


def weighted_knn_votes(
    reference_rep: np.ndarray, labels: np.ndarray, query_rep: np.ndarray, n_neighbors: int
) -> tuple[np.ndarray, np.ndarray]:
    """Label probabilities of query cells from their reference neighbours.

    Each of the ``n_neighbors`` nearest reference cells (Euclidean) votes for its label with the
    weight of scArches' kNN classifier: the distance ``d`` is turned into
    ``exp(-d / (2 / σ)²)`` with ``σ`` the standard deviation of the distances to that cell's
    neighbours, then normalised over the neighbours.

    Returns
    -------
    classes : numpy.ndarray
        The sorted distinct labels, shape ``(n_classes,)``.
    probs : numpy.ndarray
        Shape ``(n_query, n_classes)``; rows sum to 1.
    """
    classes, codes = np.unique(labels, return_inverse=True)
    nn = NearestNeighbors(n_neighbors=n_neighbors).fit(reference_rep)
    dist, idx = nn.kneighbors(query_rep)
    std = dist.std(axis=1, keepdims=True)
    std = np.where(std > 0, std, 1.0)
    weights = np.exp(-dist / (2.0 / std) ** 2)
    total = weights.sum(1, keepdims=True)
    weights = np.where(total > 0, weights / np.where(total > 0, total, 1.0), 1.0 / n_neighbors)
    probs = np.zeros((query_rep.shape[0], len(classes)))
    np.add.at(probs, (np.repeat(np.arange(len(idx)), n_neighbors), codes[idx].ravel()), weights.ravel())
    return classes, probs


def transfer_labels(
    query: md.MuData | ad.AnnData,
    reference: md.MuData | ad.AnnData,
    key: str,
    *,
    use_rep: str = "X_qbm",
    n_neighbors: int = 15,
    copy: bool = False,
) -> md.MuData | ad.AnnData | None:
    """Predict the labels ``reference.obs[key]`` for the query cells from their nearest reference
    neighbours in the shared latent ``obsm[use_rep]``.

    Both objects must hold latents of one space: the reference's from its model, the query's from
    a model made by :meth:`~qbm_pyro.QBMVAE.load_query_data` on that reference. Reference cells
    with a missing label do not vote.

    Parameters
    ----------
    query, reference
        MuData or AnnData (global ``obs``/``obsm`` of a MuData).
    key
        Label column of ``reference.obs``.
    use_rep
        The latent in ``obsm`` of both.
    n_neighbors
        Reference neighbours per query cell (at most the number of labelled reference cells).
    copy
        Return a modified copy of ``query`` instead of writing into it.

    Returns
    -------
    ``None``, or the modified copy if ``copy=True``. Writes into ``query.obs``:

    `key + '_pred'` : categorical
        The label with the largest weighted vote (scArches' distance-weighted kNN).
    `key + '_uncertainty'` : float in ``[0, 1)``
        ``1 -`` that label's vote share: 0 when all neighbours agree.

    Raises
    ------
    KeyError
        ``key`` not in ``reference.obs`` or ``use_rep`` not in an ``obsm``.
    ValueError
        Latents of different widths, no labelled reference cell, or a bad ``n_neighbors``.

    Examples
    --------
    >>> import anndata as ad, numpy as np, pandas as pd
    >>> ref = ad.AnnData(np.zeros((4, 1)), obs=pd.DataFrame({"t": ["a", "a", "b", "b"]}, index=list("0123")))
    >>> ref.obsm["X_qbm"] = np.array([[0.0], [0.1], [5.0], [5.1]])
    >>> query = ad.AnnData(np.zeros((2, 1)))
    >>> query.obsm["X_qbm"] = np.array([[0.05], [4.9]])
    >>> transfer_labels(query, ref, "t", n_neighbors=2)
    >>> list(query.obs["t_pred"])
    ['a', 'b']
    """
    start = time.perf_counter()
    log.info("running qbm_pyro.tl.transfer_labels")
    if key not in getattr(reference, "obs", pd.DataFrame()).columns:
        columns = list(reference.obs.columns) if hasattr(reference, "obs") else []
        raise KeyError(f"label column {key!r} not in reference.obs; columns: {columns}")
    ref_rep = _check_data(reference, "reference", use_rep)
    query_rep = _check_data(query, "query", use_rep)
    if ref_rep.shape[1] != query_rep.shape[1]:
        raise ValueError(
            f"reference.obsm[{use_rep!r}] has {ref_rep.shape[1]} columns and the query's "
            f"{query_rep.shape[1]}: they are not latents of one model"
        )
    labels = reference.obs[key]
    labelled = labels.notna().to_numpy()
    n_labelled = int(labelled.sum())
    if n_labelled == 0:
        raise ValueError(f"no reference cell has a label in {key!r}")
    if not isinstance(n_neighbors, int | np.integer) or not 1 <= n_neighbors <= n_labelled:
        raise ValueError(
            f"n_neighbors must be an int in [1, {n_labelled}] (labelled cells), got {n_neighbors!r}"
        )
    query = query.copy() if copy else query
    classes, probs = weighted_knn_votes(
        ref_rep[labelled], labels[labelled].astype(str).to_numpy(), query_rep, int(n_neighbors)
    )
    best = probs.argmax(1)
    order = [str(c) for c in labels.cat.categories] if isinstance(labels.dtype, pd.CategoricalDtype) else None
    categories = [c for c in order if c in set(classes)] if order else list(classes)
    query.obs[f"{key}_pred"] = pd.Categorical(classes[best], categories=categories)
    query.obs[f"{key}_uncertainty"] = np.clip(1.0 - probs[np.arange(len(best)), best], 0.0, 1.0)
    log.info(
        "    finished (%.1fs): added '%s_pred', '%s_uncertainty' (obs)", time.perf_counter() - start, key, key
    )
    return query if copy else None
