"""Root-free pseudotime from one fit and from several: does a consensus over seeds hold?

``tl.trajectory(root="auto_energy")`` reads the root from one fit's energy. Here each data set
with a known start (paul15: two lineages from the multipotent progenitors; a549: time from
0 h) has three fits (seeds). On each seed's cell graph the root-free pseudotime is computed

- from that seed's energy alone (``energy_key="qbm<seed>_energy"``: the default use),
- from the three seeds' energies together (``energy_key=[...]``: their consensus, with the
  fits' agreement as evidence), and
- from the known root group (the rooted reference),

and each is scored against the truth (``benchmarks.trajectory.score_pseudotime``). The fits are
those of ``benchmarks/landscape.py`` (``--fits DIR``: ``DIR/<set>/seed<k>/``, fitted and saved
there when missing) → ``benchmarks/results/root_fits.json`` (rows of other data sets or seed
sets already in the file are kept; rendered by ``benchmarks/report.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import qbm_pyro  # noqa: E402
from benchmarks.environment import run_meta  # noqa: E402
from benchmarks.landscape import TRAJECTORIES, _model  # noqa: E402
from benchmarks.quality import load  # noqa: E402
from benchmarks.trajectory import score_pseudotime  # noqa: E402
from qbm_pyro.tl._roots import AmbiguousRootWarning  # noqa: E402


def _run(data, truth, seed: int, **kwargs) -> dict:
    """Scores and root of one ``tl.trajectory`` call on seed ``seed``'s latent, and whether it
    warned that the root is not clear."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AmbiguousRootWarning)
        out = qbm_pyro.tl.trajectory(
            data, use_rep=f"X_qbm{seed}", key_added="bench", seed=seed, copy=True, **kwargs
        )
    root = out.uns["bench_trajectory"]["root"]
    row = {
        k: float(v)
        for k, v in score_pseudotime(data.obs, out.obs["bench_pseudotime"].to_numpy(), truth).items()
        if "spearman" in k
    }
    row["root_state"] = str(root["state"])
    row["warned"] = any(issubclass(w.category, AmbiguousRootWarning) for w in caught)
    evidence = root.get("evidence", {})
    for key in ("spearman", "clear", "fits_agree"):
        if key in evidence:
            row[f"evidence_{key}"] = evidence[key]
    for key in ("fit_root_states", "fit_spearman", "fit_pseudotime_spearman"):
        if key in evidence:
            row[key] = np.asarray(evidence[key]).tolist()
    return row


def run(dataset: str, seeds: list[int], epochs: int, fits: Path | None, train: dict | None) -> list[dict]:
    data, _, batch_key, kwargs = load(dataset)
    sources = {}
    for seed in seeds:
        model, _, sources[seed] = _model(data, dataset, seed, epochs, batch_key, kwargs, fits, train)
        qbm_pyro.tl.qbm(data, model, key_added=f"qbm{seed}")
    root, truth, _ = TRAJECTORIES[dataset]
    keys = [f"qbm{seed}_energy" for seed in seeds]
    rows = []
    for seed in seeds:
        rows.append(
            {
                "dataset": dataset,
                "fit_seeds": list(seeds),
                "graph_seed": seed,
                "fit_from": sources[seed],
                "rooted": _run(data, truth, seed, **root),
                "one_fit": _run(data, truth, seed, root="auto_energy", energy_key=f"qbm{seed}_energy"),
                "fits": _run(data, truth, seed, root="auto_energy", energy_key=keys),
            }
        )
        print(json.dumps(rows[-1], default=float), flush=True)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(TRAJECTORIES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fits", type=Path, default=None, help="reuse saved fits: DIR/<set>/seed<k>/")
    parser.add_argument("--train", type=json.loads, default=None, help="the fits' train() settings (JSON)")
    parser.add_argument("--note", default=None, help="provenance note in meta (shown in BENCHMARKS.md)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/root_fits.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    meta = run_meta("scanpy", torch_threads=args.threads, seeds=args.seeds, note=args.note, train=args.train)
    # rows of other data sets or seed sets already in the file are kept
    old = json.loads(args.out.read_text())["rows"] if args.out.exists() else []
    rows = [r for r in old if r["dataset"] not in args.datasets or r["fit_seeds"] != args.seeds]
    for dataset in args.datasets:
        rows += run(dataset, args.seeds, args.epochs, args.fits, args.train)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
