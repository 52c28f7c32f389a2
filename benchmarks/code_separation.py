"""Which labelled groups the binary code tells apart: the limit of any landscape over it.

Attractors live on the binary code; the Gaussian units beside it are not part of the prior's
landscape. For each saved fit and each pair of labels (types, lines) this compares their
**consensus codes** (each unit's majority over the group's cells: mean posterior probability above
1/2): a pair at Hamming distance 0 shares a code, so no state of the prior can separate it, however
the prior is fitted. Also per fit: the 15-NN accuracy of the hard code (``q > 1/2``) and of the
joint latent, and the mean posterior entropy per binary unit.

Usage: ``python benchmarks/code_separation.py --fits DIR [--datasets paul15 mixology] [--seeds 0 1 2]
[--out benchmarks/results/code_separation.json] [--note TEXT]``; ``DIR/<set>/seed<k>`` as
``quality.py --reuse`` reads (saved default fits).
"""

from __future__ import annotations

import argparse
import json
import sys
from itertools import combinations
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` importable as a script

import numpy as np  # noqa: E402

import qbm_pyro  # noqa: E402
from benchmarks.quality import load  # noqa: E402
from benchmarks.tables import mean_sd, note_lines, read_results  # noqa: E402
from qbm_pyro.metrics import knn_accuracy  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "code_separation.json"


def consensus_distances(probs: np.ndarray, labels: np.ndarray) -> dict[tuple[str, str], int]:
    """Hamming distance between the consensus codes of every pair of labels."""
    groups = sorted(set(labels))
    codes = {g: probs[labels == g].mean(0) > 0.5 for g in groups}
    return {(a, b): int((codes[a] != codes[b]).sum()) for a, b in combinations(groups, 2)}


def run(fits: Path, dataset: str, seed: int) -> dict:
    data, label_key, _, _ = load(dataset)
    model = qbm_pyro.QBMVAE.load(fits / dataset / f"seed{seed}", data)
    labels = data.obs[label_key].astype(str).to_numpy()
    probs = model.get_latent_representation(representation="probs")
    q = np.clip(probs, 1e-7, 1 - 1e-7)
    distances = consensus_distances(probs, labels)
    return {
        "dataset": dataset,
        "seed": seed,
        "n_labels": len(set(labels)),
        "shared_pairs": sorted(f"{a} = {b}" for (a, b), d in distances.items() if d == 0),
        "n_shared_pairs": sum(d == 0 for d in distances.values()),
        "n_pairs": len(distances),
        "min_distance": min(distances.values()),
        "hard_knn": knn_accuracy((probs > 0.5).astype(np.float32), labels, seed=seed)["accuracy"],
        "joint_knn": knn_accuracy(model.get_latent_representation(), labels, seed=seed)["accuracy"],
        "entropy_bits": float((-(q * np.log2(q) + (1 - q) * np.log2(1 - q))).mean()),
    }


def report_section(results: Path) -> list[str]:
    """Markdown lines of the section (nothing if the results file is missing)."""
    result = read_results(results, OUT.name)
    if result is None:
        return []
    md = [
        "## What the binary code separates (benchmarks/code_separation.py)",
        "",
        "Consensus code of a label: each binary unit's majority over its cells (mean posterior "
        "probability above 1/2). Two labels whose consensus codes are equal share a code: no state "
        "of the prior can tell them apart. Mean ± sd over seeds (n).",
        "",
        *note_lines(result),
        "| data set | n | label pairs sharing a code | smallest Hamming distance | 15-NN acc., hard code "
        "| 15-NN acc., joint latent | posterior entropy per unit (bits) | shared pairs (every seed's) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = result["rows"]
    groups = dict.fromkeys((r["dataset"], r.get("setting", "")) for r in rows)
    for dataset, setting in sorted(groups, key=lambda g: g[0]):
        sub = [r for r in rows if r["dataset"] == dataset and r.get("setting", "") == setting]
        shared = "; ".join(f"seed {r['seed']}: {', '.join(r['shared_pairs']) or 'none'}" for r in sub)
        label = f"{dataset} ({sub[0]['n_labels']} labels, {sub[0]['n_pairs']} pairs)"
        md.append(
            f"| {label}{f', {setting}' if setting else ''} | {len(sub)} | "
            f"{mean_sd([r['n_shared_pairs'] for r in sub])} | {mean_sd([r['min_distance'] for r in sub])} | "
            f"{mean_sd([r['hard_knn'] for r in sub])} | {mean_sd([r['joint_knn'] for r in sub])} | "
            f"{mean_sd([r['entropy_bits'] for r in sub])} | {shared} |"
        )
    return md + [""]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fits", type=Path, required=True, help="saved fits: DIR/<set>/seed<k>/")
    parser.add_argument("--datasets", nargs="+", default=["paul15", "mixology"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--note", default=None, help="provenance note in meta (shown in BENCHMARKS.md)")
    parser.add_argument(
        "--setting",
        default="",
        help="what the fits were trained with (a column; rows of other settings are kept)",
    )
    args = parser.parse_args(argv)
    rows = [run(args.fits, d, s) | {"setting": args.setting} for d in args.datasets for s in args.seeds]
    for row in rows:
        print(json.dumps(row), flush=True)
    old = json.loads(args.out.read_text()) if args.out.exists() else {"meta": {}, "rows": []}
    kept = [r for r in old["rows"] if r.get("setting", "") != args.setting]
    meta = old["meta"] | {"qbm_pyro": qbm_pyro.__version__, f"fits {args.setting}".strip(): str(args.fits)}
    if args.note:
        meta["note"] = " ".join(n for n in (old["meta"].get("note"), args.note) if n)
    args.out.write_text(json.dumps({"meta": meta, "rows": kept + rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
