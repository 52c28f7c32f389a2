"""Which latent units the fits use, and what that does to Leiden's clusters.

For each saved fit (one or more settings, e.g. the plain ELBO and the default) this counts the
**active units** (:func:`qbm_pyro.metrics.active_units`: the variance across cells of a unit's
posterior mean above 0.01) of the Gaussian part and of the binary code, the share of the joint
latent's variance in the Gaussian part, the fraction of code probabilities within 0.05 of 0 or 1,
the number of distinct hard codes, and Leiden on the protocol's 15-NN graph of the joint latent at
resolution 1.0 (scanpy's default) and over the benchmark's grid (cluster count, ARI against the
labels; ``benchmarks.latent_variants.resolution_profile``, one Leiden seed).

Usage: ``python benchmarks/active_units.py --fits NAME=DIR [NAME=DIR ...] [--datasets paul15
mixology a549 cite] [--seeds 0 1 2] [--out benchmarks/results/active_units.json] [--note TEXT]``;
``DIR/<set>/seed<k>`` as ``quality.py --reuse`` reads (saved fits).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` importable as a script

import numpy as np  # noqa: E402

import qbm_pyro  # noqa: E402
from benchmarks.latent_variants import resolution_profile  # noqa: E402
from benchmarks.quality import load  # noqa: E402
from benchmarks.tables import mean_sd, note_lines, read_results  # noqa: E402
from qbm_pyro.metrics import active_units  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "active_units.json"


def run(fits: Path, setting: str, dataset: str, seed: int) -> dict:
    data, label_key, _, _ = load(dataset)
    model = qbm_pyro.QBMVAE.load(fits / dataset / f"seed{seed}", data)
    probs = model.get_latent_representation(representation="probs")
    means = model.get_latent_representation(representation="continuous")
    joint = np.concatenate([probs, means], axis=1)
    row = {
        "dataset": dataset,
        "setting": setting,
        "seed": seed,
        "n_binary": int(probs.shape[1]),
        "n_continuous": int(means.shape[1]),
        "active_binary": int(active_units(probs).sum()),
        "active_continuous": int(active_units(means).sum()),
        "continuous_variance_share": float(means.var(0).sum() / joint.var(0).sum()),
        "sharp_fraction": float(((probs < 0.05) | (probs > 0.95)).mean()),
        "distinct_codes": int(len(np.unique(probs > 0.5, axis=0))),
    }
    if label_key:
        labels = data.obs[label_key].astype(str).to_numpy()
        profile = resolution_profile(joint, labels, seed, leiden_seeds=1)
        at_one = next(p for p in profile if p["resolution"] == 1.0)
        row |= {
            "n_labels": int(len(set(labels))),
            "leiden_clusters_at_1": at_one["n_clusters"],
            "leiden_ari_at_1": at_one["ari"],
            "leiden_ari_grid": float(np.mean([p["ari"] for p in profile])),
        }
    return row


def report_section(results: Path) -> list[str]:
    """Markdown lines of the section (nothing if the results file is missing)."""
    result = read_results(results, OUT.name)
    if result is None:
        return []
    rows = result["rows"]
    md = [
        "## Which latent units the fits use (benchmarks/active_units.py)",
        "",
        "Active units (variance across cells of a unit's posterior mean above 0.01; Burda et al. "
        "2016) of the Gaussian part and of the binary code, the Gaussian part's share of the joint "
        "latent's variance, code probabilities within 0.05 of 0 or 1, distinct hard codes, and "
        "Leiden on the protocol's 15-NN graph of the joint latent (resolution 1.0, scanpy's "
        "default, and the mean over the grid 0.1-1.0; one Leiden seed). Mean ± sd over seeds (n).",
        "",
        *note_lines(result),
        "| data set | setting | n | active Gaussian units | active binary units | Gaussian share of "
        "variance | sharp probabilities | distinct codes | Leiden clusters at 1.0 (labels) | Leiden ARI "
        "at 1.0 | Leiden ARI, grid |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups = dict.fromkeys((r["dataset"], r["setting"]) for r in rows)
    for dataset, setting in groups:
        sub = [r for r in rows if r["dataset"] == dataset and r["setting"] == setting]

        def col(key, digits=3, sub=sub):
            values = [r[key] for r in sub if key in r]
            return mean_sd(values, digits=digits) if values else "—"

        labels = f" ({sub[0]['n_labels']})" if "n_labels" in sub[0] else ""
        cells = [
            dataset,
            setting,
            str(len(sub)),
            f"{col('active_continuous', 1)} / {sub[0]['n_continuous']}",
            f"{col('active_binary', 1)} / {sub[0]['n_binary']}",
            col("continuous_variance_share", 2),
            col("sharp_fraction", 2),
            col("distinct_codes", 0),
            col("leiden_clusters_at_1", 1) + labels,
            col("leiden_ari_at_1"),
            col("leiden_ari_grid"),
        ]
        md.append("| " + " | ".join(cells) + " |")
    return md + [""]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fits", nargs="+", required=True, help="NAME=DIR: a setting's saved fits")
    parser.add_argument("--datasets", nargs="+", default=["paul15", "mixology", "a549", "cite"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--note", default="")
    args = parser.parse_args(argv)
    settings = [item.split("=", 1) for item in args.fits]
    if any(len(s) != 2 for s in settings):
        parser.error("--fits takes NAME=DIR pairs")
    rows = []
    for dataset in args.datasets:
        for name, folder in settings:
            for seed in args.seeds:
                rows.append(run(Path(folder), name, dataset, seed))
                print(json.dumps(rows[-1]), flush=True)
    meta = {"note": args.note, "seeds": args.seeds, "fits": dict(settings)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    print("\n".join(report_section(args.out.parent)))


if __name__ == "__main__":
    main()
