"""Start-up cost (issue 23): ``import qbm_pyro``, ``import qbm_pyro.distributions``,
``qbm-pyro --help`` and ``--version``, for this tree and another (``--before PATH``), interleaved.

Each command runs in a fresh interpreter; wall and CPU (user + system) seconds of the process are
recorded, and the number of modules ``import qbm_pyro`` loads. On a shared machine the CPU seconds
are the steadier figure. Writes ``benchmarks/results/imports.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "results" / "imports.json"
COMMANDS = {
    "import qbm_pyro": ["-c", "import qbm_pyro"],
    "import qbm_pyro.distributions": ["-c", "import qbm_pyro.distributions"],
    "qbm-pyro --help": ["-m", "qbm_pyro.cli", "--help"],
    "qbm-pyro --version": ["-m", "qbm_pyro.cli", "--version"],
}
COUNT = "import sys, qbm_pyro; print(len(sys.modules))"


def _run(tree: Path, args: list[str]) -> tuple[float, float, str]:
    env = os.environ | {"PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, *args], env=env, cwd=tree, capture_output=True, text=True, check=True
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out.stdout


def run(before: Path, repeats: int = 3, log=print) -> dict:
    trees = {"after": ROOT, "before": before}
    rows = []
    for repeat in range(repeats):
        for name, args in COMMANDS.items():
            for tree, path in trees.items():
                wall, cpu, _ = _run(path, args)
                rows.append({"command": name, "tree": tree, "repeat": repeat, "wall": wall, "cpu": cpu})
                log(f"{name:32s} {tree:6s} wall {wall:6.2f} s  cpu {cpu:6.2f} s")
        OUT.write_text(json.dumps({"repeats": repeat + 1, "rows": rows}, indent=1))  # kept if cut short
    summary = {
        name: {
            tree: {
                key: statistics.median(r[key] for r in rows if r["command"] == name and r["tree"] == tree)
                for key in ("wall", "cpu")
            }
            for tree in trees
        }
        for name in COMMANDS
    }
    modules = {tree: int(_run(path, ["-c", COUNT])[2].strip()) for tree, path in trees.items()}
    return {"repeats": repeats, "rows": rows, "summary": summary, "modules_after_import": modules}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", type=Path, required=True, help="another source tree of the package")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    result = run(args.before.resolve(), args.repeats)
    OUT.write_text(json.dumps(result, indent=1))
    print(json.dumps(result["summary"], indent=1), result["modules_after_import"])


if __name__ == "__main__":
    main()
