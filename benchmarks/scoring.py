"""Latent scores the benchmarks add to :mod:`qbm_pyro.metrics`: a linear probe and scib-metrics.

* :func:`logreg_accuracy`: 5-fold stratified cross-validated logistic regression of the labels
  from the (standardised) latent, accuracy and macro-F1. A linear read-out complements the
  15-NN accuracy of DESIGN §5: it rewards latents where cell types are linearly separable,
  whatever their local neighbourhoods look like.
* :func:`scib_scores`: scib-metrics' ``Benchmarker`` over several latents of the same cells at
  once (bio conservation: NMI/ARI of k-means clusters, silhouette of labels, cLISI, isolated
  labels; batch correction where there are batches: BRAS (the batch silhouette of
  scib-metrics ≥ 0.5), iLISI, kBET, graph connectivity). Runs on CPU jax.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = ["logreg_accuracy", "scib_scores"]

#: scib-metrics' result columns, renamed for our tables.
SCIB_COLUMNS = {
    "Isolated labels": "scib_isolated_labels",
    "KMeans NMI": "scib_nmi",
    "KMeans ARI": "scib_ari",
    "Silhouette label": "scib_silhouette_label",
    "cLISI": "scib_clisi",
    "BRAS": "scib_silhouette_batch",
    "Silhouette batch": "scib_silhouette_batch",
    "iLISI": "scib_ilisi",
    "KBET": "scib_kbet",
    "Graph connectivity": "scib_graph_connectivity",
    "Bio conservation": "scib_bio_conservation",
    "Batch correction": "scib_batch_correction",
    "Total": "scib_total",
}


def logreg_accuracy(latent: np.ndarray, labels, *, n_folds: int = 5, seed: int = 0) -> dict[str, float]:
    """Stratified ``n_folds``-fold CV of an L2 logistic regression (on standardised latents).

    Returns
    -------
    ``{"logreg_accuracy", "logreg_macro_f1"}``: means over the folds.
    """
    latent = np.asarray(latent, dtype=np.float64)
    labels = np.asarray(labels)
    accuracy, f1 = [], []
    folds = StratifiedKFold(n_folds, shuffle=True, random_state=seed)
    for train, test in folds.split(latent, labels):
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(latent[train], labels[train])
        predicted = clf.predict(latent[test])
        accuracy.append(np.mean(predicted == labels[test]))
        f1.append(f1_score(labels[test], predicted, average="macro"))
    return {"logreg_accuracy": float(np.mean(accuracy)), "logreg_macro_f1": float(np.mean(f1))}


def scib_scores(latents: dict[str, np.ndarray], labels, batches=None) -> dict[str, dict[str, float]]:
    """scib-metrics ``Benchmarker`` over ``latents`` (name -> ``(n_cells, d)``) of the same cells.

    Without ``batches`` (or with one batch) only the bio-conservation metrics are computed.
    Returns ``{name: {metric: value}}`` with the keys of :data:`SCIB_COLUMNS` (raw, unscaled
    values, as ``Benchmarker.get_results(min_max_scale=False)`` gives them).
    """
    import anndata as ad
    from scib_metrics.benchmark import BatchCorrection, Benchmarker, BioConservation

    labels = np.asarray(labels).astype(str)
    has_batches = batches is not None and len(np.unique(np.asarray(batches))) > 1
    n = len(labels)
    adata = ad.AnnData(np.zeros((n, 1), dtype=np.float32))
    adata.obs["label"] = labels
    adata.obs["batch"] = np.asarray(batches).astype(str) if has_batches else "one"
    for name, latent in latents.items():
        adata.obsm[name] = np.asarray(latent, dtype=np.float32)
    bio = BioConservation(isolated_labels=has_batches)
    batch = (
        BatchCorrection(
            bras=True, ilisi_knn=True, kbet_per_label=True, graph_connectivity=True, pcr_comparison=False
        )
        if has_batches
        else None
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bm = Benchmarker(
            adata,
            batch_key="batch",
            label_key="label",
            embedding_obsm_keys=list(latents),
            bio_conservation_metrics=bio,
            batch_correction_metrics=batch,
            # only PCR comparison reads it; naming one avoids a PCA of the (dummy) X
            pre_integrated_embedding_obsm_key=next(iter(latents)),
            progress_bar=False,
        )
        bm.benchmark()
        table = bm.get_results(min_max_scale=False)
    out: dict[str, dict[str, float]] = {}
    for name in latents:
        row = table.loc[name]
        out[name] = {
            SCIB_COLUMNS.get(col, "scib_" + col.lower().replace(" ", "_")): float(row[col])
            for col in table.columns
            if _is_number(row[col])
        }
    return out


def _is_number(value) -> bool:
    try:
        return np.isfinite(float(value))
    except (TypeError, ValueError):
        return False
