"""Training speed of two source trees, interleaved in one run (issue 23: one ELBO, written once,
must cost no speed against the hand-written untraced loss it replaced).

Each fit runs in a fresh subprocess with one torch thread, on the benchmark shapes ``paul15``
(RNA, 2,730 cells) and ``cite`` (the bundled 2-batch CITE-seq, RNA + protein, 400 cells; the
shape of the totalVI comparison), the quality benchmark's QBM-VAE settings, 10 % validation,
batch size 128. Recorded per fit: wall and CPU seconds of ``model.train`` (``--epochs`` epochs),
each epoch's wall seconds, and the loss alone: the median over 5 blocks of 20 calls of
``module.loss(batch)`` plus ``backward`` on one training minibatch (the step's part that changed),
wall and CPU milliseconds. First, per shape, both losses run in ONE process (the older package
copied under the name ``qbm_pyro_old``), on the same weights and minibatch, in alternating blocks:
the steadiest comparison on a loaded machine.
Trees alternate (after, before, after, ...), so both see the same machine load. On a shared
machine the CPU seconds are the steadier figure; the ratios are the result, not the seconds.

Run ``python benchmarks/loss_speed.py --before PATH [--repeats 3]`` (``PATH``: e.g. ``git archive``
of the older commit, unpacked): writes ``benchmarks/results/loss_speed.json`` after every fit;
:func:`report_section` renders it for ``BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "results" / "loss_speed.json"
EPOCHS = {"paul15": 4, "cite": 10}
KEYS = ("fit_seconds", "fit_cpu_seconds", "epoch_seconds_median", "loss_step_ms", "loss_step_cpu_ms")


def _worker(shape: str, epochs: int) -> dict:
    import torch

    torch.set_num_threads(1)
    import qbm_pyro
    from benchmarks import quality

    data, _, batch_key, kwargs = quality.load(shape)
    model = qbm_pyro.QBMVAE(data, batch_key=batch_key, seed=0, **kwargs, **quality.METHODS["qbm"])
    wall, cpu = time.perf_counter(), time.process_time()
    model.train(max_epochs=epochs, early_stopping=False, progress_bar=False, validation_fraction=0.1)
    fit_seconds, fit_cpu = time.perf_counter() - wall, time.process_time() - cpu
    module = model.module.train()
    batch = next(iter(model._loader(batch_size=128)))
    blocks, cpu_blocks = [], []
    for _ in range(5):
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(20):
            module.loss(batch).backward()
        blocks.append((time.perf_counter() - start) / 20 * 1e3)
        cpu_blocks.append((time.process_time() - start_cpu) / 20 * 1e3)
    module.zero_grad()
    epochs_s = list(model.history_["epoch_seconds"])
    return {
        "fit_seconds": fit_seconds,
        "fit_cpu_seconds": fit_cpu,
        "epoch_seconds": epochs_s,
        "epoch_seconds_median": statistics.median(epochs_s[1:] or epochs_s),
        "loss_step_ms": statistics.median(blocks),
        "loss_step_cpu_ms": statistics.median(cpu_blocks),
        "package": str(Path(qbm_pyro.__file__).parent),
    }


def _fit(tree: Path, shape: str, epochs: int) -> dict:
    env = os.environ | {
        "PYTHONPATH": f"{tree}{os.pathsep}{ROOT}",
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
    }
    cmd = [sys.executable, str(Path(__file__).resolve()), "worker", shape, str(epochs)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _renamed_copy(before: Path, where: Path) -> Path:
    """``before``'s package copied to ``where/qbm_pyro_old`` with its name replaced, so that both
    versions import side by side in one process."""
    target = where / "qbm_pyro_old"
    shutil.copytree(before / "qbm_pyro", target)
    for path in target.rglob("*.py"):
        path.write_text(re.sub(r"\bqbm_pyro\b", "qbm_pyro_old", path.read_text()))
    return where


def _paired_worker(shape: str, blocks: int = 30, calls: int = 10) -> dict:
    """Both losses on one minibatch of 128 cells, the same weights, blocks alternating (new,
    old, new, ...): wall and CPU milliseconds per ``loss(batch).backward()``, distribution
    argument checks off as in training."""
    import torch

    torch.set_num_threads(1)
    import pyro
    import qbm_pyro_old.module

    import qbm_pyro
    from benchmarks import quality

    data, _, batch_key, kwargs = quality.load(shape)
    model = qbm_pyro.QBMVAE(data, batch_key=batch_key, seed=0, **kwargs, **quality.METHODS["qbm"])
    new = model.module.train()
    n_vars = {spec.kind: spec.n_vars for spec in model.registry.modalities.values()}
    old = qbm_pyro_old.module.MultiVAE(n_vars, model.registry.n_batch, **model.init_args)
    old.load_state_dict(new.state_dict())
    old.train()
    batch = next(iter(model._loader(batch_size=128)))
    times = {"after": [], "before": [], "after_cpu": [], "before_cpu": []}
    pyro.enable_validation(False)  # as in training (Trainer.step): no distribution argument checks
    for block in range(blocks):
        for tree, module in (("after", new), ("before", old)):
            torch.manual_seed(block)
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(calls):
                module.loss(batch).backward()
            times[tree].append((time.perf_counter() - start) / calls * 1e3)
            times[f"{tree}_cpu"].append((time.process_time() - start_cpu) / calls * 1e3)
            module.zero_grad()
    ratios = [a / b for a, b in zip(times["after_cpu"], times["before_cpu"])]
    return {
        "shape": shape,
        "blocks": blocks,
        "calls_per_block": calls,
        "ms": {key: statistics.median(values) for key, values in times.items()},
        "cpu_ratio_median": statistics.median(ratios),
        "cpu_ratio_quartiles": statistics.quantiles(ratios, n=4),
    }


def paired(before: Path, shapes=tuple(EPOCHS), log=print) -> list[dict]:
    """The loss of both trees in one process per shape (:func:`_paired_worker`)."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        where = _renamed_copy(before, Path(tmp))
        env = os.environ | {
            "PYTHONPATH": f"{ROOT}{os.pathsep}{where}",
            "OMP_NUM_THREADS": "1",
            "PYTHONWARNINGS": "ignore",
        }
        for shape in shapes:
            cmd = [sys.executable, str(Path(__file__).resolve()), "paired-worker", shape]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, check=True)
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            log(f"{shape} paired: {row['ms']} CPU ratio {row['cpu_ratio_median']:.3f}")
            out.append(row)
    return out


def run(before: Path, repeats: int = 3, shapes=tuple(EPOCHS), log=print) -> dict:
    """``repeats`` interleaved pairs of fits per shape (this tree, then ``before``)."""
    rows = []
    result = {"epochs": EPOCHS, "before": str(before), "rows": rows}
    result["paired"] = paired(before, shapes, log)
    OUT.write_text(json.dumps(result, indent=1))
    for repeat in range(repeats):
        for shape in shapes:
            for tree, path in (("after", ROOT), ("before", before)):
                fit = _fit(path, shape, EPOCHS[shape]) | {"tree": tree, "shape": shape, "repeat": repeat}
                log(
                    f"{shape} {tree} #{repeat}: fit {fit['fit_seconds']:.1f} s wall, "
                    f"{fit['fit_cpu_seconds']:.2f} s CPU, loss+backward {fit['loss_step_ms']:.2f} ms "
                    f"({fit['loss_step_cpu_ms']:.2f} ms CPU)"
                )
                rows.append(fit)
                OUT.write_text(json.dumps(result, indent=1))
    result["summary"] = summary(rows)
    OUT.write_text(json.dumps(result, indent=1))
    return result


def summary(rows: list[dict]) -> dict:
    """Per shape: the median of each key per tree and the ratio after / before."""
    out = {}
    for shape in dict.fromkeys(r["shape"] for r in rows):
        med = {
            tree: {
                k: statistics.median(r[k] for r in rows if r["shape"] == shape and r["tree"] == tree)
                for k in KEYS
            }
            for tree in ("after", "before")
            if any(r["shape"] == shape and r["tree"] == tree for r in rows)
        }
        if len(med) == 2:
            med["ratio"] = {k: med["after"][k] / med["before"][k] for k in KEYS}
        out[shape] = med
    return out


def report_section(results: Path) -> list[str]:
    """The BENCHMARKS.md section of ``results/loss_speed.json`` (nothing if absent)."""
    path = results / "loss_speed.json"
    if not path.exists():
        return []
    result = json.loads(path.read_text())
    summ = result.get("summary") or summary(result["rows"])
    n = max((r["repeat"] for r in result["rows"]), default=-1) + 1
    lines = [
        "## One ELBO: training speed before and after (benchmarks/loss_speed.py)",
        "",
        f"The loss written once (issue 23) against the earlier hand-written loss, {n} interleaved "
        "fits per tree in one run, one thread each; medians, and the ratio after / before.",
        "",
        "| shape | epochs | fit wall (s) | fit CPU (s) | epoch (s) | loss + backward (ms) | (ms CPU) |",
        "|---|---|---|---|---|---|---|",
    ]
    for shape, med in summ.items():
        if "ratio" not in med:
            continue
        cells = [f"{med['after'][k]:.2f} / {med['before'][k]:.2f} (×{med['ratio'][k]:.2f})" for k in KEYS]
        lines.append(f"| {shape} | {result['epochs'][shape]} | " + " | ".join(cells) + " |")
    paired_rows = result.get("paired") or []
    if paired_rows:
        lines += [
            "",
            "Both losses in one process on one minibatch of 128 cells, the same weights, 30 alternating "
            "blocks of 10 ``loss(batch).backward()`` calls (median ms per call; CPU ratio after / before, "
            "median and quartiles of the paired blocks):",
            "",
            "| shape | after (ms CPU) | before (ms CPU) | ratio | quartiles |",
            "|---|---|---|---|---|",
        ]
        for row in paired_rows:
            q = row["cpu_ratio_quartiles"]
            lines.append(
                f"| {row['shape']} | {row['ms']['after_cpu']:.2f} | {row['ms']['before_cpu']:.2f} | "
                f"{row['cpu_ratio_median']:.3f} | {q[0]:.3f}–{q[2]:.3f} |"
            )
    return lines + [""]


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "worker":
        print(json.dumps(_worker(argv[1], int(argv[2]))))
        return
    if argv and argv[0] == "paired-worker":
        print(json.dumps(_paired_worker(argv[1])))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", type=Path, required=True, help="another source tree of the package")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shapes", nargs="+", default=list(EPOCHS), choices=list(EPOCHS))
    parser.add_argument(
        "--paired-only", action="store_true", help="only the one-process comparison, into the existing file"
    )
    args = parser.parse_args(argv)
    if args.paired_only:
        result = json.loads(OUT.read_text()) if OUT.exists() else {"epochs": EPOCHS, "rows": []}
        result["paired"] = paired(args.before.resolve(), tuple(args.shapes))
        OUT.write_text(json.dumps(result, indent=1))
        return
    print(json.dumps(run(args.before.resolve(), args.repeats, tuple(args.shapes))["summary"], indent=1))


if __name__ == "__main__":
    main()
