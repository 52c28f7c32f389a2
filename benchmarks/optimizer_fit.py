"""Whole-fit time of QBM-VAE with the optimiser of two source trees, interleaved in one run
(issue 23: ``FlatAdam`` on public ``torch.optim.Adam`` against the earlier call of torch's
private fused kernel).

Each fit runs in a fresh subprocess (so each pays its own imports, ``torch._dynamo`` included
where the tree's optimiser imports it), one torch thread, the throughput benchmark's fit worker.
Run ``python benchmarks/optimizer_fit.py --before PATH [--shape paul15] [--epochs 5]
[--repeats 3]``: writes ``benchmarks/results/optimizer_fit.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.throughput import _in_subprocess  # noqa: E402

OUT = HERE / "results" / "optimizer_fit.json"


def run(before: str, shape: str = "paul15", epochs: int = 5, repeats: int = 3, log=print) -> dict:
    """``repeats`` interleaved pairs of fits (after, before) on ``shape``."""
    rows = []
    for repeat in range(repeats):
        for tree, path in (("after", None), ("before", before)):
            start = time.perf_counter()
            fit = _in_subprocess(
                "fit", python_path=path, method="qbm", shape=shape, epochs=epochs, n_protein_cells=0
            )
            fit |= {"tree": tree, "repeat": repeat, "process_seconds": time.perf_counter() - start}
            log(f"{tree} #{repeat}: fit {fit['seconds']:.2f} s, process {fit['process_seconds']:.2f} s")
            rows.append(fit)
    summary = {}
    for tree in ("after", "before"):
        mine = [r for r in rows if r["tree"] == tree]
        summary[tree] = {
            key: [
                statistics.median(r[key] for r in mine),
                min(r[key] for r in mine),
                max(r[key] for r in mine),
            ]
            for key in ("seconds", "process_seconds", "peak_rss_mb")
        }
    return {"shape": shape, "epochs": epochs, "repeats": repeats, "rows": rows, "summary": summary}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", required=True, help="another source tree of the package")
    parser.add_argument("--shape", default="paul15")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    result = run(args.before, args.shape, args.epochs, args.repeats)
    OUT.write_text(json.dumps(result, indent=1))
    print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()
