"""Per-epoch training time of the new default negative phase (tempering) over the old (Gibbs PCD-1).

One run, one torch thread, the default QBM-VAE (``benchmarks.methods.QBM_MODELS["qbm"]``) on each
bundled set; for each set the two samplers' fits alternate (``repeats`` fits each, fresh model
each time, ``epochs`` epochs, no early stopping), and each sampler keeps its fastest fit. An
epoch's time is the process's CPU time from one epoch's end to the next (training and
validation; one thread); epochs after the first count (the first holds the
one-off burn-in: 200 sweeps of 8 × 256 chains for tempering, 100 of 256 for Gibbs), and the
first epoch's time is reported as well.

Run ``OMP_NUM_THREADS=1 python benchmarks/sampler_cost.py [--epochs 4] [--repeats 3]``: adds
``cost`` to ``benchmarks/results/samplers_modes.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks import quality  # noqa: E402
from benchmarks.methods import QBM_MODELS  # noqa: E402
from benchmarks.samplers_modes import OUT  # noqa: E402

SETS = ("paul15", "mixology", "cite", "a549")


def fit(name: str, sampler_kind: str, epochs: int) -> list[float]:
    """CPU seconds of each epoch of one fit (``time.process_time`` at each epoch's end: on a
    shared, busy machine the process's own CPU time is far steadier than wall time)."""
    import time

    import qbm_pyro
    from qbm_pyro.samplers import default_gibbs, default_sampler
    from qbm_pyro.training import Trainer

    marks = [time.process_time()]

    class Timed(Trainer):
        def end_epoch(self, *args, **kwargs):
            stop = super().end_epoch(*args, **kwargs)
            marks.append(time.process_time())
            return stop

    data, _, batch_key, kwargs = quality.load(name)
    sampler = default_gibbs(seed=0) if sampler_kind == "old" else default_sampler(seed=0)
    model = qbm_pyro.QBMVAE(data, batch_key=batch_key, seed=0, sampler=sampler, **kwargs, **QBM_MODELS["qbm"])
    marks[0] = time.process_time()
    model.train(max_epochs=epochs, early_stopping=False, progress_bar=False, trainer_cls=Timed)
    return [b - a for a, b in zip(marks, marks[1:])]


def run(epochs: int = 4, repeats: int = 3, sets=SETS, log=print) -> dict:
    torch.set_num_threads(1)
    out: dict = {"epochs": epochs, "repeats": repeats, "sets": {}, "ratios": {}}
    for name in sets:
        times: dict = {"old": [], "new": []}
        for r in range(repeats):
            for kind in ("old", "new") if r % 2 == 0 else ("new", "old"):
                times[kind].append(fit(name, kind, epochs))
        steady = {k: min(float(np.median(t[1:])) for t in v) for k, v in times.items()}
        first = {k: min(t[0] for t in v) for k, v in times.items()}
        out["sets"][name] = {
            "epoch_seconds": times,
            "steady": steady,
            "first": first,
            "epochs": epochs,
            "repeats": repeats,
        }
        out["ratios"][name] = steady["new"] / steady["old"]
        log(
            f"{name}: per epoch old {steady['old']:.3f} s, new {steady['new']:.3f} s, "
            f"ratio {out['ratios'][name]:.2f}; first epoch old {first['old']:.2f} s new {first['new']:.2f} s"
        )
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    parser.add_argument("--out", type=Path, default=OUT, help="the JSON file whose `cost` is written")
    args = parser.parse_args(argv)
    cost = run(args.epochs, args.repeats, args.sets)
    out = args.out
    result = json.loads(out.read_text()) if out.exists() else {}
    merged = result.get("cost") or {"sets": {}, "ratios": {}}
    for name in args.sets:  # a re-run of some sets keeps the others' rows
        merged["sets"][name] = cost["sets"][name] | {"epochs": args.epochs, "repeats": args.repeats}
        merged["ratios"][name] = cost["ratios"][name]
    result["cost"] = merged
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
