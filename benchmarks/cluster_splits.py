"""What the extra Leiden clusters split: the diagnosis behind issue 24's fixed-resolution ARI.

At scanpy's default resolution (1.0) Leiden finds about twice as many clusters on QBM-VAE's latent
as on scVI's (paul15 19 against 11, mixology 12 against 7: ``leiden_resolutions.py``). This
study asks what the extra clusters split. For each saved fit, on the protocol's 15-NN graph
(scanpy, ``random_state=seed``) and Leiden at resolution 1.0 (one run, ``flavor="igraph"``), and
within each labelled group of at least ``MIN_CELLS`` cells:

- ``clusters_per_label``: the clusters holding at least ``MIN_CELLS`` of its cells;
- ``eta2_<covariate>``: the share of the group's variance in a covariate that its clusters explain
  (η², between-cluster over total sum of squares, over the clusters of ``MIN_CELLS`` or more):
  ``log_depth`` (log10 of the RNA counts per cell) and, where the data set has them, the known
  lineage pseudotimes (paul15's ``pseudotime_lineage1/2``, on the cells that have one);
- ``batch_nmi``: NMI of the clusters with the batches inside the group (0: the clusters cut
  across the batches).

Each is averaged over the groups weighted by their cells. Also per fit: ``depth_r2`` and
``depth_residual_r2``, the 5-fold 15-NN regression R² of log depth, and of what is left of it
after a ridge fit on the labels, the lineage pseudotimes (a cubic each) and the batches, from the
latent: how much of the cells' sequencing depth the latent carries beyond the biology the labels
know. The same on scVI's latent of the same cells (``baselines.fit_latent``, 400 epochs, its own
defaults; saved under ``--latents`` and reused).

The CITE-seq set (``cite``) is scored against its coarse protein-gated types (T, B, monocyte, NK;
``benchmarks/mapping.py``), as in the landscape table; scVI sees its RNA only.

Usage: ``python benchmarks/cluster_splits.py --fits DIR [--datasets paul15 mixology cite]
[--seeds 0 1 2] [--latents DIR] [--note TEXT]``; ``DIR/<set>/seed<k>`` as ``quality.py --reuse``
reads (saved default fits).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` importable as a script

import numpy as np  # noqa: E402

import qbm_pyro  # noqa: E402
from benchmarks.landscape import _types, baseline_latent  # noqa: E402
from benchmarks.quality import load  # noqa: E402
from benchmarks.tables import mean_sd, note_lines, read_results  # noqa: E402
from qbm_pyro.metrics import leiden_clusters, neighbour_graph  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "cluster_splits.json"
LATENTS = Path(__file__).resolve().parent / "results" / "latents"
#: Groups and clusters smaller than this are left out of the per-label measures.
MIN_CELLS = 10
#: Known continuous covariates of a data set (obs columns), besides the depth.
PSEUDOTIMES = {"paul15": ("pseudotime_lineage1", "pseudotime_lineage2")}
#: Resolution of the study: scanpy's default.
RESOLUTION = 1.0
#: Resolutions searched for scVI's clusters at QBM-VAE's count (bisection steps over the range).
MATCH_RANGE, MATCH_STEPS = (0.05, 5.0), 12


def eta_squared(values: np.ndarray, clusters: np.ndarray, min_cells: int = MIN_CELLS) -> float:
    """Share of the variance of ``values`` that ``clusters`` explain (η²), over the clusters of at
    least ``min_cells`` finite values; NaN when fewer than two such clusters or no variance."""
    values = np.asarray(values, dtype=float)
    clusters = np.asarray(clusters)
    ok = np.isfinite(values)
    names, counts = np.unique(clusters[ok], return_counts=True)
    kept = names[counts >= min_cells]
    if len(kept) < 2:
        return float("nan")
    mask = ok & np.isin(clusters, kept)
    v, c = values[mask], clusters[mask]
    total = ((v - v.mean()) ** 2).sum()
    if total == 0:
        return float("nan")
    between = sum((c == k).sum() * (v[c == k].mean() - v.mean()) ** 2 for k in kept)
    return float(between / total)


def within_label(clusters, labels, covariates: dict[str, np.ndarray], batches=None) -> dict[str, float]:
    """Per labelled group (of ``MIN_CELLS`` or more cells): clusters holding ``MIN_CELLS`` of its
    cells, η² of each covariate, NMI of the clusters with the batches; each averaged over the
    groups weighted by their cells (NaN groups left out of that measure)."""
    from sklearn.metrics import normalized_mutual_info_score

    measures: dict[str, list[tuple[float, int]]] = {}
    for label in np.unique(labels):
        members = labels == label
        if members.sum() < MIN_CELLS:
            continue
        _, counts = np.unique(clusters[members], return_counts=True)
        found = {"clusters_per_label": float((counts >= MIN_CELLS).sum())}
        for name, values in covariates.items():
            found[f"eta2_{name}"] = eta_squared(values[members], clusters[members])
        if batches is not None:
            found["batch_nmi"] = float(normalized_mutual_info_score(batches[members], clusters[members]))
        for key, value in found.items():
            measures.setdefault(key, []).append((value, int(members.sum())))
    out = {}
    for key, pairs in measures.items():
        kept = [(v, n) for v, n in pairs if np.isfinite(v)]
        if not kept:
            out[key] = float("nan")
            continue
        out[key] = float(np.average([v for v, _ in kept], weights=[n for _, n in kept]))
    return out


def _covariates(data, dataset: str) -> dict[str, np.ndarray]:
    rna = data["rna"] if hasattr(data, "mod") else data
    counts = rna.layers["counts"] if "counts" in rna.layers else rna.X
    out = {"log_depth": np.log10(np.asarray(counts.sum(1)).ravel())}
    for column in PSEUDOTIMES.get(dataset, ()):
        out[column] = data.obs[column].to_numpy(dtype=float)
    return out


def depth_r2(latent, data, dataset: str, label_key: str | None, batch_key: str | None, seed: int) -> dict:
    """15-NN regression R² (5-fold) of log depth from ``latent``, and of its residual after a ridge
    fit on the labels, the known pseudotimes (a cubic each, and whether a cell has one) and the
    batches."""
    import pandas as pd
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.neighbors import KNeighborsRegressor

    covariates = _covariates(data, dataset)
    depth = covariates.pop("log_depth")
    design = [pd.get_dummies(_types(data, dataset, label_key)).to_numpy(float)]
    for values in covariates.values():
        has = np.isfinite(values)
        v = np.where(has, values, 0.0)
        design.append(np.column_stack([has, v, v**2, v**3]))
    if batch_key:
        design.append(pd.get_dummies(data.obs[batch_key].astype(str)).to_numpy(float))
    design = np.column_stack(design)
    residual = depth - RidgeCV().fit(design, depth).predict(design)
    folds = KFold(5, shuffle=True, random_state=seed)
    out = {}
    for name, target in (("depth_r2", depth), ("depth_residual_r2", residual)):
        predicted = cross_val_predict(KNeighborsRegressor(15), latent, target, cv=folds)
        out[name] = float(1 - ((target - predicted) ** 2).mean() / target.var())
    return out


def leiden_at(graph, seed: int, resolution: float = RESOLUTION, n_clusters=None):
    """Leiden labels on ``graph`` (``qbm_pyro.metrics.neighbour_graph``: the protocol's 15-NN
    graph; one run) and the resolution used: ``resolution``, or with ``n_clusters`` the resolution
    found by bisection (``MATCH_STEPS`` halvings of ``MATCH_RANGE``) whose cluster count is
    nearest it."""
    if n_clusters is None:
        return leiden_clusters(graph, resolution, seed=seed).astype(str), resolution
    low, high = MATCH_RANGE
    best = None
    for _ in range(MATCH_STEPS):
        middle = (low + high) / 2
        labels = leiden_clusters(graph, middle, seed=seed).astype(str)
        k = len(set(labels))
        if best is None or abs(k - n_clusters) < abs(best[2] - n_clusters):
            best = (labels, middle, k)
        if k == n_clusters:
            break
        low, high = (middle, high) if k < n_clusters else (low, middle)
    return best[0], best[1]


def cluster_row(graph, labels, covariates, batches, seed: int, n_clusters=None) -> dict:
    """The cluster measures of one graph at :data:`RESOLUTION`, or at the resolution whose
    cluster count is nearest ``n_clusters``."""
    from sklearn.metrics import adjusted_rand_score

    clusters, resolution = leiden_at(graph, seed, n_clusters=n_clusters)
    return {
        "resolution": float(resolution),
        "n_clusters": int(len(set(clusters))),
        "ari": float(adjusted_rand_score(labels, clusters)),
        **within_label(clusters, labels, covariates, batches),
    }


def scvi_latent(dataset: str, seed: int, latents: Path) -> np.ndarray:
    """scVI's latent of ``dataset`` at 400 epochs (saved under ``latents`` and reused)."""
    return baseline_latent(dataset, "scvi", seed, 400, latents)


def run(fits: Path, dataset: str, seed: int, latents: Path) -> list[dict]:
    """QBM-VAE's and scVI's rows at resolution 1.0, and scVI's at QBM-VAE's cluster count
    (``scvi_matched``): more clusters explain more of any covariate, so η² compares at one count.
    Each latent's graph and depth R² are computed once."""
    data, label_key, batch_key, _ = load(dataset)
    model = qbm_pyro.QBMVAE.load(fits / dataset / f"seed{seed}", data)
    labels = _types(data, dataset, label_key)
    covariates = _covariates(data, dataset)
    batches = data.obs[batch_key].astype(str).to_numpy() if batch_key else None
    rows = []
    for method, latent in (
        ("qbm", model.get_latent_representation()),
        ("scvi", scvi_latent(dataset, seed, latents)),
    ):
        graph = neighbour_graph(latent, seed=seed)
        depth = depth_r2(latent, data, dataset, label_key, batch_key, seed)
        rows.append({"method": method} | cluster_row(graph, labels, covariates, batches, seed) | depth)
        if method == "scvi":
            matched = cluster_row(graph, labels, covariates, batches, seed, n_clusters=rows[0]["n_clusters"])
            rows.append({"method": "scvi_matched"} | matched | depth)
    return [{"dataset": dataset, "seed": seed} | row for row in rows]


COLUMNS = {
    "resolution": "resolution",
    "n_clusters": "clusters at 1.0",
    "ari": "ARI at 1.0",
    "clusters_per_label": "clusters per label",
    "eta2_log_depth": "η² depth",
    "eta2_pseudotime_lineage1": "η² pseudotime, lineage 1",
    "eta2_pseudotime_lineage2": "η² pseudotime, lineage 2",
    "batch_nmi": "batch NMI within labels",
    "depth_r2": "depth R² (kNN)",
    "depth_residual_r2": "depth beyond the labels R² (kNN)",
}
METHODS = {
    "qbm": "QBM-VAE (defaults)",
    "scvi": "scVI (10)",
    "scvi_matched": "scVI (10), at QBM-VAE's cluster count",
}


def report_section(results: Path) -> list[str]:
    """Markdown lines of the section (nothing if the results file is missing)."""
    result = read_results(results, OUT.name)
    if result is None:
        return []
    rows = result["rows"]
    md = [
        "## What the extra Leiden clusters split (benchmarks/cluster_splits.py)",
        "",
        f"Leiden at resolution {RESOLUTION} (scanpy's default) on the protocol's 15-NN graph, one "
        f"run; inside each label of {MIN_CELLS}+ cells: the clusters holding {MIN_CELLS}+ of its "
        "cells, the share of the label's variance in a covariate that its clusters explain (η²), "
        "NMI of the clusters with the batches; averaged over the labels weighted by their cells. "
        "scVI at QBM-VAE's cluster count: its resolution found by bisection (more clusters explain "
        "more of any covariate, so η² and ARI compare at one count). Depth R²: 5-fold 15-NN "
        "regression of log10 RNA counts per cell from the latent, and of its residual after the "
        "labels, known pseudotimes and batches. CITE-seq: the coarse protein-gated types (T, B, "
        "monocyte, NK) as labels; scVI sees the RNA only. Mean ± sd over seeds (n).",
        "",
        *note_lines(result),
    ]
    for dataset in sorted({r["dataset"] for r in rows}):
        sub = [r for r in rows if r["dataset"] == dataset]
        columns = [c for c in COLUMNS if any(np.isfinite(r.get(c, float("nan"))) for r in sub)]
        md += [f"### {dataset}", "", "| method | n | " + " | ".join(COLUMNS[c] for c in columns) + " |"]
        md.append("|---|---|" + "---|" * len(columns))
        for method, name in METHODS.items():
            picked = [r for r in sub if r["method"] == method]
            if picked:
                cells = [mean_sd([r.get(c) for r in picked]) for c in columns]
                md.append(f"| {name} | {len(picked)} | " + " | ".join(cells) + " |")
        md.append("")
    return md


def study_parser(description: str, out: Path, *, latents: bool = True) -> argparse.ArgumentParser:
    """The arguments of a study of saved default fits (this one, ``states_vs_leiden.py``,
    ``graph_readout.py``): ``--fits``, ``--datasets``, ``--seeds``, ``--out``, ``--note``; and
    ``--latents`` where it reads scVI's latents beside them."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--fits", type=Path, required=True, help="saved fits: DIR/<set>/seed<k>/")
    parser.add_argument("--datasets", nargs="+", default=["paul15", "mixology", "cite"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    if latents:
        parser.add_argument("--latents", type=Path, default=LATENTS, help="scVI latents, saved and reused")
    parser.add_argument("--out", type=Path, default=out)
    parser.add_argument("--note", default=None, help="provenance note in meta (shown in BENCHMARKS.md)")
    return parser


def write_study(args: argparse.Namespace, rows: list[dict]) -> None:
    """Print ``rows`` and write them to ``args.out`` with the provenance (package version, fits,
    note)."""
    for row in rows:
        print(json.dumps(row), flush=True)
    meta = {"qbm_pyro": qbm_pyro.__version__, "fits": str(args.fits), "note": args.note or ""}
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")


def study_main(argv, description: str, run, out: Path) -> None:
    """The command line of a study of saved default fits beside scVI's latents (this one and
    ``states_vs_leiden.py``): ``run(fits, dataset, seed, latents)`` gives each fit's rows, written
    to ``out`` with the provenance note."""
    args = study_parser(description, out).parse_args(argv)
    write_study(
        args, [row for d in args.datasets for s in args.seeds for row in run(args.fits, d, s, args.latents)]
    )


def main(argv=None) -> None:
    study_main(argv, __doc__, run, OUT)


if __name__ == "__main__":
    main()
