"""Trajectories on the fitted models' latents (QBM-VAE, binary-only, Gaussian twin) vs PCA/DPT.

Reads the latents that ``benchmarks/quality.py`` saved in ``benchmarks/results/latents/`` (same
fits, same seeds), runs :func:`qbm_pyro.tl.trajectory` from the known root (a549: 0 h cells;
paul15: multipotent progenitors), and scores pseudotime against the known time / reference
lineage pseudotimes, side by side with scanpy DPT on the same latent from the same root.
Also tests the energy hypotheses: does the highest-energy cell sit at the known start
(``root="auto_energy"``), and does energy fall along pseudotime?

Usage: ``python benchmarks/trajectory_models.py [a549 paul15] [--latents DIR] [--out FILE]``
→ ``benchmarks/results/trajectory_models.json`` (rows of other data sets in FILE are kept).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.environment import run_meta  # noqa: E402
from benchmarks.quality import LATENT_DIR, load  # noqa: E402
from benchmarks.trajectory import (
    A549_ROOT,
    A549_TRUTH,
    PAUL15_ROOT,
    PAUL15_TRUTH,
    evaluate_trajectory,
    scanpy_dpt,
)  # noqa: E402

warnings.filterwarnings("ignore")

SETS = {"a549": (A549_ROOT, A549_TRUTH, "time_hours"), "paul15": (PAUL15_ROOT, PAUL15_TRUTH, None)}


def energy_root_check(data, truth_time: str | None) -> dict:
    """Where the highest-energy cells sit: their mean known time (a549) or cell types (paul15)."""
    energy = data.obs["qbm_energy"].to_numpy()
    top = np.argsort(energy)[-max(10, len(energy) // 100) :]
    out = {}
    if truth_time:
        t = data.obs[truth_time].to_numpy(dtype=float)
        out["top_energy_mean_time"] = float(t[top].mean())
        out["all_mean_time"] = float(t.mean())
        out["energy_vs_time_spearman"] = float(spearmanr(energy, t).statistic)
    else:
        types = data.obs["cell_type"].astype(str).to_numpy()
        values, counts = np.unique(types[top], return_counts=True)
        out["top_energy_cell_types"] = dict(zip(values.tolist(), counts.tolist()))
        for lineage in ("pseudotime_lineage1", "pseudotime_lineage2"):
            ref = data.obs[lineage].to_numpy(dtype=float)
            ok = np.isfinite(ref)
            out[f"energy_vs_{lineage}_spearman"] = float(spearmanr(energy[ok], ref[ok]).statistic)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", help=f"among {list(SETS)} (default: all)")
    parser.add_argument("--latents", type=Path, default=LATENT_DIR)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/trajectory_models.json"))
    args = parser.parse_args(argv)
    names = args.datasets or list(SETS)
    if unknown := sorted(set(names) - set(SETS)):
        parser.error(f"unknown data sets {unknown}; choose among {list(SETS)}")
    torch.set_num_threads(1)
    rows = []
    for dataset in names:
        root, truth, time_key = SETS[dataset]
        data, *_ = load(dataset)
        for path in sorted(args.latents.glob(f"{dataset}_*.npz")):
            method, seed = path.stem[len(dataset) + 1 :].rsplit("_", 1)  # methods may contain "_"
            saved = np.load(path, allow_pickle=True)  # our own files (obs names are objects)
            if not np.array_equal(saved["obs_names"].astype(str), np.asarray(data.obs_names).astype(str)):
                raise ValueError(f"{path} does not match the cells of {dataset}")
            n_binary = int(saved["n_binary"]) if "n_binary" in saved else 0
            data.obsm["X_qbm"] = saved["latent"]
            if "energy" in saved:
                data.obs["qbm_energy"] = saved["energy"]
            else:
                data.obs.drop(columns="qbm_energy", errors="ignore", inplace=True)
            data.uns["qbm"] = {"params": {"n_binary": n_binary}}
            metric = "hellinger" if n_binary else "euclidean"
            row = {"dataset": dataset, "method": method, "seed": int(seed), "metric": metric}
            result = evaluate_trajectory(data, "X_qbm", root, truth, seed=int(seed), metric=metric)
            row["qbm_trajectory"] = result
            row["scanpy_dpt_same_latent"] = scanpy_dpt(data, "X_qbm", result["root_index"], truth)
            if n_binary:
                row["energy"] = energy_root_check(data, time_key)
                row["auto_energy_root"] = evaluate_trajectory(
                    data, "X_qbm", {"root": "auto_energy"}, truth, seed=int(seed), metric=metric
                )
            rows.append(row)
            print(
                json.dumps(
                    {k: v for k, v in row.items() if k in ("dataset", "method", "seed")}
                    | {
                        "qbm": {k: v for k, v in result.items() if "spearman" in k or "kendall" in k},
                    },
                    default=float,
                ),
                flush=True,
            )
    out = args.out
    old_rows = json.loads(out.read_text())["rows"] if out.exists() else []
    kept = [r for r in old_rows if r["dataset"] not in names]
    meta = run_meta(
        "scanpy", "networkx", "scikit-learn", torch_threads=1, seeds=sorted({r["seed"] for r in kept + rows})
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": kept + rows}, indent=1, default=float))


if __name__ == "__main__":
    main()
