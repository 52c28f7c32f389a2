"""Whole-fit time of QBM-VAE with the optimiser of two source trees, interleaved in one run
(issue 23: ``FlatAdam`` on public ``torch.optim.Adam`` against the earlier direct call of torch's
private fused kernel, which never imported ``torch._dynamo``).

Each fit runs in a fresh subprocess, one torch thread: paul15 (the quality benchmark's settings),
``--epochs`` epochs, 10 % validation. Recorded: wall and CPU seconds of ``model.train`` (the
first ``torch.optim`` optimiser of a process imports ``torch._dynamo`` inside it) and each epoch's
wall seconds. On a shared machine the CPU seconds are the steadier figure.

Run ``python benchmarks/optimizer_fit.py --before PATH [--epochs 4] [--repeats 3]``: writes
``benchmarks/results/optimizer_fit.json`` after every fit.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "results" / "optimizer_fit.json"


def _worker(epochs: int) -> dict:
    import torch

    torch.set_num_threads(1)
    import qbm_pyro
    from benchmarks import quality

    data, _, batch_key, kwargs = quality.load("paul15")
    model = qbm_pyro.QBMVAE(data, batch_key=batch_key, seed=0, **kwargs, **quality.METHODS["qbm"])
    wall, cpu = time.perf_counter(), time.process_time()
    model.train(max_epochs=epochs, early_stopping=False, progress_bar=False, validation_fraction=0.1)
    return {
        "fit_seconds": time.perf_counter() - wall,
        "fit_cpu_seconds": time.process_time() - cpu,
        "epoch_seconds": list(model.history_["epoch_seconds"]),
        "package": str(Path(qbm_pyro.__file__).parent),
    }


def _fit(tree: Path, epochs: int) -> dict:
    env = os.environ | {"PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "worker", str(epochs)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tree, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(before: Path, epochs: int = 4, repeats: int = 3, log=print) -> dict:
    """``repeats`` interleaved pairs of fits (this tree, then ``before``)."""
    rows = []
    result = {"epochs": epochs, "before": str(before), "rows": rows}
    for repeat in range(repeats):
        for tree, path in (("after", ROOT), ("before", before)):
            fit = _fit(path, epochs) | {"tree": tree, "repeat": repeat}
            log(f"{tree} #{repeat}: fit {fit['fit_seconds']:.1f} s wall, {fit['fit_cpu_seconds']:.2f} s CPU")
            rows.append(fit)
            OUT.write_text(json.dumps(result, indent=1))
    result["summary"] = {
        tree: {
            key: statistics.median(r[key] for r in rows if r["tree"] == tree)
            for key in ("fit_seconds", "fit_cpu_seconds")
        }
        for tree in ("after", "before")
    }
    OUT.write_text(json.dumps(result, indent=1))
    return result


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "worker":
        print(json.dumps(_worker(int(argv[1]))))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", type=Path, required=True, help="another source tree of the package")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.before.resolve(), args.epochs, args.repeats)["summary"], indent=1))


if __name__ == "__main__":
    main()
