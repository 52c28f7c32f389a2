"""Leiden ARI/NMI at every resolution, the same graph for every method: saved latents compared.

The main table's protocol (``qbm_pyro.metrics.clustering_scores``, as scib-metrics) lets each
latent choose its own resolution (the one with the best NMI), so two methods are often compared at
different cluster counts. Here each latent is clustered at every resolution of the same grid, on
the protocol's 15-NN graph (scanpy, ``random_state`` = the fit's seed), three Leiden seeds each,
and the methods are compared resolution by resolution.

Usage: ``python benchmarks/leiden_resolutions.py --latents qbm=DIR scvi=DIR [--datasets paul15
mixology a549] [--seeds 0 1 2] [--out benchmarks/results/leiden_resolutions.json] [--note TEXT]``.
Each ``DIR`` holds ``<dataset>_<method>_<seed>.npz`` with a ``latent`` array and ``obs_names``,
as ``quality.py --latents`` and ``baselines.py fit --latents`` save them; PCA (30 components of the
log-normalised RNA) is added once per set. A run replaces the rows of its (dataset, method) pairs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` importable as a script

import numpy as np  # noqa: E402

from benchmarks.latent_variants import RESOLUTIONS, resolution_profile  # noqa: E402
from benchmarks.quality import load, pca_latent  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "leiden_resolutions.json"
LABELS = {"qbm": "QBM-VAE (defaults)", "scvi": "scVI (10)", "pca": "PCA (30)"}


def _labels_of(data, label_key: str, obs_names) -> np.ndarray:
    labels = data.obs[label_key].astype(str)
    if obs_names is None:
        return labels.to_numpy()
    missing = set(map(str, obs_names)) - set(labels.index)
    if missing:
        raise ValueError(f"{len(missing)} cells of a saved latent are not in the data set")
    return labels.loc[[str(o) for o in obs_names]].to_numpy()


def run(datasets, methods: dict[str, Path], seeds) -> list[dict]:
    rows = []
    for dataset in datasets:
        data, label_key, _, _ = load(dataset)
        if not label_key:
            continue
        for method, folder in methods.items():
            for seed in seeds:
                path = Path(folder) / f"{dataset}_{method}_{seed}.npz"
                if not path.exists():
                    print(f"skipped (no latent): {path}", flush=True)
                    continue
                # written by our own benchmark scripts; obs_names is an object array
                saved = np.load(path, allow_pickle=True)
                names = saved["obs_names"] if "obs_names" in saved else None
                profile = resolution_profile(saved["latent"], _labels_of(data, label_key, names), seed)
                rows.append({"dataset": dataset, "method": method, "seed": seed, "profile": profile})
                print(dataset, method, seed, [round(p["ari"], 3) for p in profile], flush=True)
        profile = resolution_profile(pca_latent(data), _labels_of(data, label_key, None), 0)
        rows.append({"dataset": dataset, "method": "pca", "seed": 0, "profile": profile})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latents", nargs="+", required=True, help="METHOD=DIR pairs")
    parser.add_argument("--datasets", nargs="+", default=["paul15", "mixology", "a549"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--note", default=None, help="a sentence about this run, added to meta['note']")
    args = parser.parse_args(argv)
    methods = {}
    for item in args.latents:
        method, sep, folder = item.partition("=")
        if not sep or not method or not folder:
            parser.error(f"--latents takes METHOD=DIR pairs, got {item!r}")
        methods[method] = Path(folder)
    study = json.loads(args.out.read_text()) if args.out.exists() else {"rows": [], "meta": {}}
    rows = run(args.datasets, methods, args.seeds)
    redo = {(r["dataset"], r["method"]) for r in rows}
    kept = [r for r in study["rows"] if (r["dataset"], r["method"]) not in redo]
    meta = dict(study.get("meta", {}))
    meta["resolutions"] = list(RESOLUTIONS)
    if args.note:
        meta["note"] = " ".join(n for n in (meta.get("note"), args.note) if n)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": kept + rows, "meta": meta}, indent=1))


def report_section(results: Path) -> list[str]:
    """Markdown lines of the per-resolution Leiden section of ``BENCHMARKS.md`` (empty without results)."""
    from benchmarks.tables import mean_sd

    path = Path(results) / "leiden_resolutions.json"
    if not path.exists():
        return []
    study = json.loads(path.read_text())
    rows, meta = study["rows"], study.get("meta", {})
    resolutions = meta.get("resolutions", list(RESOLUTIONS))
    out = [
        "## Leiden at every resolution (benchmarks/leiden_resolutions.py)",
        "",
        "The main table lets each latent choose its Leiden resolution by NMI (as scib-metrics), so "
        "methods can be compared at different cluster counts. Here every latent is clustered at each "
        "resolution of the same grid on the protocol's 15-NN graph, three Leiden seeds each (their "
        "mean); mean ± sd over fits (n), `k`: mean cluster count. `grid`: the mean over the "
        "resolutions." + (f" {meta['note']}" if meta.get("note") else ""),
        "",
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        out += [f"### {dataset}", ""]
        header = "| method | n | " + " | ".join(f"ARI at {r} (k)" for r in resolutions)
        out += [header + " | ARI grid | NMI grid |", "|---|---|" + "---|" * (len(resolutions) + 2)]
        for method in dict.fromkeys(r["method"] for r in rows if r["dataset"] == dataset):
            fits = [r["profile"] for r in rows if r["dataset"] == dataset and r["method"] == method]
            cells = []
            for i in range(len(resolutions)):
                ari = mean_sd([f[i]["ari"] for f in fits])
                cells.append(f"{ari} ({np.mean([f[i]['n_clusters'] for f in fits]):.1f})")
            grid_ari = mean_sd([np.mean([p["ari"] for p in f]) for f in fits])
            grid_nmi = mean_sd([np.mean([p["nmi"] for p in f]) for f in fits])
            name = LABELS.get(method, method)
            out.append(f"| {name} | {len(fits)} | " + " | ".join(cells) + f" | {grid_ari} | {grid_nmi} |")
        out.append("")
    return out


if __name__ == "__main__":
    main()
