"""Cell graph of :func:`qbm_pyro.tl.trajectory`: k nearest neighbours and Gaussian affinities.

The neighbour search runs on an embedding whose Euclidean distances give the chosen metric
(Hellinger, expected Hamming or Euclidean), exactly (scikit-learn, row chunks) or approximately
(pynndescent); nothing forms a dense ``(n_obs, n_obs)`` array.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..device import keep_torch_threads

#: Above this many cells, ``knn_method="auto"`` switches from exact to approximate search.
EXACT_KNN_MAX_CELLS = 50_000


def _embed(rep: np.ndarray, n_binary: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings (data, query) whose Euclidean distances give the chosen metric.

    For ``"hamming"`` the two differ: ``|[q, 0] - [q', sqrt(u(q'))]|^2 + u(q)`` is the expected
    Hamming distance, so the query side adds ``u(q)`` back afterwards (see :func:`_knn`).
    """
    q, cont = rep[:, :n_binary], rep[:, n_binary:]
    if metric == "hellinger":
        binary = np.hstack([np.sqrt(q), np.sqrt(1.0 - q)])
        emb = np.hstack([binary, cont])
        return emb, emb
    if metric == "hamming":
        u = (q * (1.0 - q)).sum(axis=1, keepdims=True)
        return np.hstack([q, np.sqrt(u), cont]), np.hstack([q, np.zeros_like(u), cont])
    return rep, rep


def _knn(
    rep: np.ndarray, n_binary: int, metric: str, n_neighbors: int, method: str, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and distances ``(n_obs, n_neighbors)`` of each cell's neighbours, self excluded."""
    data_emb, query_emb = _embed(rep, n_binary, metric)
    n_obs = rep.shape[0]
    if method == "auto":
        method = "exact" if n_obs <= EXACT_KNN_MAX_CELLS else "pynndescent"
    k = n_neighbors + 1
    if method == "pynndescent":
        from pynndescent import NNDescent

        with keep_torch_threads():  # pynndescent's numba code resets torch's thread count
            index = NNDescent(data_emb, n_neighbors=max(k, 16), random_state=seed, n_jobs=-1)
            if metric == "hamming":
                index.prepare()
                idx, dist = index.query(query_emb, k=k)
            else:
                idx, dist = index.neighbor_graph
                idx, dist = idx[:, :k], dist[:, :k]
    else:
        from sklearn.neighbors import NearestNeighbors

        nn = NearestNeighbors(n_neighbors=k).fit(data_emb)
        dist, idx = nn.kneighbors(query_emb)
    idx, dist = _drop_self(np.asarray(idx), np.asarray(dist, dtype=np.float64))
    if metric == "hamming":
        q = rep[:, :n_binary]
        u = (q * (1.0 - q)).sum(axis=1)
        dist = np.sqrt(dist**2 + u[:, None])
    return idx, dist


def _drop_self(idx: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own index (or, if absent, its last neighbour) and sort by distance."""
    n = idx.shape[0]
    is_self = idx == np.arange(n)[:, None]
    no_self = ~is_self.any(axis=1)
    is_self[no_self, -1] = True
    keep = ~is_self
    idx = idx[keep].reshape(n, -1)
    dist = dist[keep].reshape(n, -1)
    order = np.argsort(dist, axis=1, kind="stable")
    return np.take_along_axis(idx, order, 1), np.take_along_axis(dist, order, 1)


def _knn_matrix(idx: np.ndarray, values: np.ndarray, n_obs: int) -> sp.csr_matrix:
    rows = np.repeat(np.arange(n_obs), idx.shape[1])
    return sp.csr_matrix((values.ravel(), (rows, idx.ravel())), shape=(n_obs, n_obs))


def _gaussian_affinities(idx: np.ndarray, dist: np.ndarray, n_obs: int) -> sp.csr_matrix:
    """Symmetric adaptive-bandwidth Gaussian kernel on the kNN pairs, without self-loops."""
    sigma = np.median(dist, axis=1)
    positive = sigma[sigma > 0]
    floor = positive.min() if positive.size else 1.0
    sigma = np.maximum(sigma, floor * 1e-3)
    s_i, s_j = sigma[:, None], sigma[idx]
    denom = s_i**2 + s_j**2
    values = np.sqrt(2.0 * s_i * s_j / denom) * np.exp(-(dist**2) / denom)
    w = _knn_matrix(idx, values, n_obs)
    w = w.maximum(w.T).tocsr()
    w.setdiag(0.0)
    w.eliminate_zeros()
    return w
