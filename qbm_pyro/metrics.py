"""Scores of a latent space against known labels (the evaluation protocol of DESIGN §5).

Light, dependency-free versions used by the tests, the demo and the benchmarks; the benchmarks
add scib-metrics' full suite when the ``[bench]`` extra is installed.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import adjusted_rand_score, f1_score, normalized_mutual_info_score
from sklearn.model_selection import StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from .device import keep_torch_threads

__all__ = [
    "active_units",
    "batch_mixing_entropy",
    "clustering_scores",
    "knn_accuracy",
    "leiden_clusters",
    "neighbour_graph",
]


def knn_accuracy(
    latent: np.ndarray, labels, *, k: int = 15, n_folds: int = 5, seed: int = 0
) -> dict[str, float]:
    """Stratified ``n_folds``-fold cross-validated ``k``-NN classification of ``labels``.

    Returns
    -------
    ``{"accuracy": mean accuracy, "macro_f1": mean macro-F1}`` over the folds.
    """
    labels = np.asarray(labels)
    accuracy, f1 = [], []
    for train, test in StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(latent, labels):
        clf = KNeighborsClassifier(n_neighbors=k).fit(latent[train], labels[train])
        predicted = clf.predict(latent[test])
        accuracy.append(np.mean(predicted == labels[test]))
        f1.append(f1_score(labels[test], predicted, average="macro"))
    return {"accuracy": float(np.mean(accuracy)), "macro_f1": float(np.mean(f1))}


def active_units(posterior_means: np.ndarray, *, threshold: float = 0.01) -> np.ndarray:
    """Which latent units the encoder uses: the variance across cells of each unit's posterior
    mean above ``threshold`` (Burda, Grosse and Salakhutdinov 2016, "active units").

    A unit whose posterior mean is the same for every cell carries no information about the cell
    (its posterior has collapsed to the prior). For the Gaussian units pass the posterior means,
    for the binary ones the posterior probabilities ``q``.

    Returns
    -------
    Boolean mask ``(n_units,)``.
    """
    means = np.asarray(posterior_means, dtype=np.float64)
    if means.ndim != 2 or means.shape[0] < 2:
        raise ValueError(
            f"active_units needs a (cells, units) array with at least 2 cells, got shape {means.shape}"
        )
    if not np.isfinite(means).all():
        raise ValueError("active_units: the posterior means contain NaN or infinite values")
    return means.var(axis=0) > threshold


def batch_mixing_entropy(latent: np.ndarray, batches, *, k: int = 30) -> float:
    """Mean entropy of the batch labels among each cell's ``k`` nearest neighbours, divided by
    the entropy of the global batch frequencies (1: perfectly mixed, 0: fully separated).

    An iLISI-like score without extra dependencies.
    """
    batches = np.asarray(batches)
    levels, codes = np.unique(batches, return_inverse=True)
    if len(levels) < 2:
        raise ValueError("batch mixing needs at least two batches")
    idx = NearestNeighbors(n_neighbors=k + 1).fit(latent).kneighbors(latent, return_distance=False)[:, 1:]
    counts = np.stack([(codes[idx] == b).sum(1) for b in range(len(levels))], 1) / k
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.nansum(np.where(counts > 0, counts * np.log(counts), 0.0), 1)
    freq = np.bincount(codes) / len(codes)
    return float(entropy.mean() / -(freq * np.log(freq)).sum())


def neighbour_graph(latent: np.ndarray, *, k: int = 15, seed: int = 0):
    """The protocol's graph: scanpy's ``k``-NN graph (UMAP connectivities) of ``latent``.

    Returns
    -------
    An :class:`~anndata.AnnData` with one empty column per cell, ``latent`` in
    ``obsm["X_latent"]`` and the graph in ``obsp``; cluster it with :func:`leiden_clusters`.
    """
    import anndata as ad
    import scanpy as sc

    graph = ad.AnnData(np.zeros((latent.shape[0], 1), dtype=np.float32))
    graph.obsm["X_latent"] = np.asarray(latent, dtype=np.float32)
    with keep_torch_threads():  # scanpy's graph runs numba code that resets torch's thread count
        sc.pp.neighbors(graph, n_neighbors=k, use_rep="X_latent", random_state=seed)
    return graph


def leiden_clusters(graph, resolution: float, *, seed: int = 0) -> np.ndarray:
    """Leiden labels on a :func:`neighbour_graph` at ``resolution`` (the protocol's settings:
    igraph, two iterations, undirected); also written to ``graph.obs["leiden"]``."""
    import scanpy as sc

    sc.tl.leiden(
        graph, resolution=resolution, random_state=seed, flavor="igraph", n_iterations=2, directed=False
    )
    return graph.obs["leiden"].to_numpy()


def clustering_scores(
    latent: np.ndarray,
    labels,
    *,
    resolutions=(0.1, 0.2, 0.3, 0.5, 0.7, 1.0),
    k: int = 15,
    seed: int = 0,
) -> dict[str, float]:
    """Leiden clusters on the ``k``-NN graph of ``latent`` (scanpy), scored against ``labels``.

    As in scib-metrics, the Leiden resolution is chosen from ``resolutions`` to maximise the NMI,
    so that methods are not compared at one arbitrary cluster count.

    Returns
    -------
    ``{"ari", "nmi", "n_clusters", "resolution"}`` at the chosen resolution.
    """
    graph = neighbour_graph(latent, k=k, seed=seed)
    labels = np.asarray(labels)
    best = None
    for resolution in resolutions:
        clusters = leiden_clusters(graph, resolution, seed=seed)
        result = {
            "ari": float(adjusted_rand_score(labels, clusters)),
            "nmi": float(normalized_mutual_info_score(labels, clusters)),
            "n_clusters": int(len(set(clusters))),
            "resolution": float(resolution),
        }
        if best is None or result["nmi"] > best["nmi"]:
            best = result
    return best
