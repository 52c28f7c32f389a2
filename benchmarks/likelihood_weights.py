"""How much the ATAC log-likelihood should weigh: a549 (RNA + ATAC) at several ATAC weights.

Each run fits the default QBM-VAE with ``likelihood_weights={"atac": w}`` (``"balanced"`` gives
``1185 / 11567 = 0.102`` on a549) and scores the latent with the main table's protocol
(:func:`benchmarks.quality.score`: 15-NN accuracy of the time point, Leiden ARI/NMI at the
NMI-chosen resolution). One process per fit, one torch thread.

Usage: ``python benchmarks/likelihood_weights.py [--weights 1 0.3 0.1 0.03] [--seeds 0 1 2]
[--out benchmarks/results/likelihood_weights.json]``. Finished fits are kept in the ``.jsonl``
beside ``--out`` and skipped when run again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` importable as a script

import torch  # noqa: E402

import qbm_pyro  # noqa: E402
from benchmarks.environment import run_meta  # noqa: E402
from benchmarks.quality import load, score  # noqa: E402


def fit(weight: float, seed: int) -> dict:
    """One default a549 fit with the ATAC log-likelihood weighted by ``weight``, scored."""
    data, label_key, batch_key, kwargs = load("a549")
    start = time.perf_counter()
    weights = {"atac": weight}
    model = qbm_pyro.QBMVAE(data, batch_key=batch_key, seed=seed, likelihood_weights=weights, **kwargs)
    history = model.train(progress_bar=False)
    seconds = time.perf_counter() - start
    scores = score(model.get_latent_representation(), data, label_key, batch_key, seed)
    return {"weight": weight, "seed": seed, "epochs": len(history["epoch"]), "seconds": seconds, **scores}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", nargs="+", type=float, default=[1.0, 0.3, 0.1, 0.03])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/likelihood_weights.json"))
    parser.add_argument("--note", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    done_path = args.out.with_suffix(".jsonl")
    done = [json.loads(line) for line in done_path.read_text().splitlines()] if done_path.exists() else []
    for weight in args.weights:
        for seed in args.seeds:
            if any(r["weight"] == weight and r["seed"] == seed for r in done):
                continue
            row = fit(weight, seed)
            print(json.dumps(row), flush=True)
            done.append(row)
            with done_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
    meta = run_meta("scanpy", torch_threads=1, weights=args.weights, seeds=args.seeds, note=args.note)
    args.out.write_text(json.dumps({"meta": meta, "rows": done}, indent=1))


if __name__ == "__main__":
    main()
