"""What QBM-VAE training costs: throughput against its Gaussian twin and scVI, scaling with cells,
and the prior's share of a training step as the binary latent grows.

Usage::

    python benchmarks/cost.py [--parts throughput convergence scaling prior]
        [--sizes 10000 100000 1000000] [--epochs 5] [--max-epochs 400] [--steps 100]
        [--no-full-epoch] [--out benchmarks/results/cost.json]

Every measurement runs in its own subprocess (``python benchmarks/cost.py worker ...``) so that
its peak resident memory (``ru_maxrss``) is its own; all use one torch thread.

* ``throughput``: QBM-VAE (64 binary + 16 Gaussian units, Boltzmann prior), its Gaussian twin
  (16 Gaussian units) and scVI (10-d) on the same data (mixology singlets, 1,021 cells × 2,000
  genes, batch covariate), and the first two against totalVI on the CITE-seq set (400 cells,
  RNA + 14 proteins, 2 batches); ``--epochs`` epochs each with early stopping off: seconds per
  epoch (training + validation pass, log Z refreshes included), training cells per second, peak
  RSS.
* ``convergence``: the same models on the same data trained to convergence, each by its own early-stopping
  rule (QBM-VAE: patience 30 on the validation loss; scVI: scvi-tools' default, patience 45),
  at most ``--max-epochs``: epochs run, wall time and peak RSS.
* ``scaling``: data sets of 10k, 100k and 1M cells made by resampling paul15's 2,660 cells
  (240 genes) with replacement and thinning each sampled cell's counts binomially
  (``p = 0.8``), written as CSR ``.h5ad`` into a temporary directory (deleted afterwards) and
  opened backed (``anndata.read_h5ad(path, backed="r")``). For each: seconds of ``setup`` (the
  model's constructor, which scans the data once for validation), seconds per minibatch step
  over ``--steps`` steps (batch 128, shuffled over all cells, so rows are read at random from
  disk), the extrapolated seconds per epoch (steps per epoch × seconds per step), then one whole
  epoch over every cell as ``Trainer.run`` does it (with the log Z refresh; ``--no-full-epoch``
  skips it), and RSS after opening, after setup, after the steps and at the end (peak).
* ``prior``: one QBM-VAE on paul15 per ``n_latent`` in 16, 32, 64, 128, 256: time spent in the
  prior sampler's ``sample`` calls (the negative phase, persistent Gibbs chains) against the
  whole training step, over ``--steps`` steps after 5 warm-up steps; and the seconds of one
  log Z refresh (AIS above 12 units, done every 5 epochs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # `benchmarks` importable when run as a script

import numpy as np  # noqa: E402

warnings.filterwarnings("ignore")

OUT = HERE / "results" / "cost.json"
SIZES = [10_000, 100_000, 1_000_000]
N_LATENTS = [16, 32, 64, 128, 256]
#: Data sets of the throughput and convergence parts and the methods compared on each.
THROUGHPUT = {"mixology": ["qbm", "gaussian", "scvi"], "cite": ["qbm", "gaussian", "totalvi"]}


def _rss_mb() -> float:
    """Current resident set size (MB)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    """Peak resident set size of this process so far (MB).

    ``VmHWM`` of ``/proc/self/status``: unlike ``ru_maxrss``, which Linux carries over from the
    parent across ``fork``/``exec`` (so a worker would report the parent's peak if that is
    higher), it belongs to this process's own address space.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------- workers (subprocesses)


def _worker_throughput(
    method: str, epochs: int, converge: bool = False, dataset: str = "mixology", seed: int = 0
) -> dict:
    import torch

    from benchmarks import quality

    torch.set_num_threads(1)
    data, _, batch_key, kwargs = quality.load(dataset)
    rss_data = _rss_mb()
    if method in ("scvi", "totalvi"):
        from benchmarks import baselines

        scvi = baselines._scvi()
        scvi.settings.seed = seed
        torch.set_num_threads(1)
        model = baselines.scvi_tools_model(method, data, batch_key)
        start = time.perf_counter()
        model.train(
            max_epochs=epochs,
            accelerator="cpu",
            devices=1,
            enable_progress_bar=False,
            early_stopping=converge,  # scvi-tools' own rule (patience 45 on the validation ELBO)
        )
        seconds = time.perf_counter() - start
        epochs_run = len(model.history["elbo_train"])
        n_train = int(round(0.9 * data.n_obs))  # scvi's default train_size
    else:
        import qbm_pyro

        model = qbm_pyro.QBMVAE(data, batch_key=batch_key, seed=seed, **kwargs, **quality.METHODS[method])
        start = time.perf_counter()
        history = model.train(
            max_epochs=epochs, early_stopping=converge, progress_bar=False, validation_fraction=0.1
        )
        seconds = time.perf_counter() - start
        epochs_run = len(history["train_loss"])
        n_train = int(data.n_obs - round(0.1 * data.n_obs))
    return {
        "dataset": dataset,
        "method": method,
        "n_cells": int(data.n_obs),
        "n_genes": int((data["rna"] if hasattr(data, "mod") else data).n_vars),
        "n_train": n_train,
        "max_epochs": epochs,
        "early_stopping": converge,
        "epochs": epochs_run,
        "seconds": seconds,
        "seconds_per_epoch": seconds / epochs_run,
        "cells_per_second": n_train * epochs_run / seconds,
        "rss_after_data_mb": rss_data,
        "peak_rss_mb": _peak_mb(),
    }


def _worker_scaling(path: str, steps: int, full_epoch: bool = True, seed: int = 0) -> dict:
    import anndata as ad
    import torch

    import qbm_pyro
    from qbm_pyro.data import MinibatchLoader
    from qbm_pyro.training import Trainer, TrainingConfig

    torch.set_num_threads(1)
    rss_start = _rss_mb()
    adata = ad.read_h5ad(path, backed="r")
    rss_open = _rss_mb()
    start = time.perf_counter()
    model = qbm_pyro.QBMVAE(adata, seed=seed, n_latent=64, n_continuous=16)
    setup_seconds = time.perf_counter() - start
    rss_setup = _rss_mb()
    cfg = TrainingConfig(max_epochs=1, batch_size=128, seed=seed, progress_bar=False)
    cells = np.arange(adata.n_obs)
    trainer = Trainer(model.module, adata, model.registry, cells, cells[:0], cfg)
    loader = MinibatchLoader(adata, model.registry, batch_size=128, shuffle=True, seed=seed)

    def batches():  # as many steps as asked, over several epochs of a small set if need be
        while True:
            yield from loader

    it = batches()
    for _ in range(5):  # warm-up: first log Z (AIS), allocator
        trainer.step(next(it))
    read_seconds = 0.0
    start = time.perf_counter()
    for _ in range(steps):
        t0 = time.perf_counter()
        batch = next(it)
        read_seconds += time.perf_counter() - t0
        trainer.step(batch)
    seconds = time.perf_counter() - start
    steps_per_epoch = -(-adata.n_obs // 128)
    rss_steps = _rss_mb()
    epoch_seconds = None
    if full_epoch:  # one whole epoch as Trainer.run does it: every cell, then the log Z refresh
        start = time.perf_counter()
        loss = trainer.train_epoch(0)
        trainer.end_epoch(0, loss)
        epoch_seconds = time.perf_counter() - start
    reg = model.registry
    held_mb = {  # per-cell arrays alive during training, by owner
        "anndata obs_names + obs (backed open)": (
            adata.obs_names.memory_usage(deep=True) + adata.obs.memory_usage(deep=True).sum()
        )
        / 2**20,
        "registry.obs_names (copy)": 0.0
        if reg.obs_names is adata.obs_names
        else reg.obs_names.memory_usage(deep=True) / 2**20,
        "registry.rows": sum(v.nbytes for v in reg.rows.values()) / 2**20,
        "registry.batch_codes": reg.batch_codes.nbytes / 2**20,
        "registry.empty_cells": sum(v.nbytes for v in reg.empty_cells.values()) / 2**20,
        "loader indices + permutation": 2 * loader.indices.nbytes / 2**20,
    }
    return {
        "n_cells": int(adata.n_obs),
        "n_genes": int(adata.n_vars),
        "file_mb": os.path.getsize(path) / 2**20,
        "setup_seconds": setup_seconds,
        "steps": steps,
        "seconds_per_step": seconds / steps,
        "read_seconds_per_step": read_seconds / steps,
        "steps_per_epoch": steps_per_epoch,
        "seconds_per_epoch_extrapolated": seconds / steps * steps_per_epoch,
        "seconds_full_epoch": epoch_seconds,
        "rss_after_steps_mb": rss_steps,
        "cells_per_second": steps * 128 / seconds,
        "rss_start_mb": rss_start,
        "rss_after_open_mb": rss_open,
        "rss_after_setup_mb": rss_setup,
        "rss_end_mb": _rss_mb(),
        "peak_rss_mb": _peak_mb(),
        "per_cell_arrays_mb": held_mb,
    }


def _worker_prior(n_latent: int, steps: int, seed: int = 0) -> dict:
    import torch

    import qbm_pyro
    from qbm_pyro import datasets
    from qbm_pyro.data import MinibatchLoader
    from qbm_pyro.training import Trainer, TrainingConfig

    torch.set_num_threads(1)
    data = datasets.paul15_myeloid()
    model = qbm_pyro.QBMVAE(data, seed=seed, n_latent=n_latent, n_continuous=16)
    prior = model.module.prior
    start = time.perf_counter()
    prior.refresh_log_z()
    log_z_seconds = time.perf_counter() - start
    sampler = prior.sampler
    spent = {"seconds": 0.0, "calls": 0}
    original = sampler.sample

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent["seconds"] += time.perf_counter() - t0
            spent["calls"] += 1

    sampler.sample = timed
    cfg = TrainingConfig(max_epochs=1, batch_size=128, seed=seed, progress_bar=False)
    cells = np.arange(data.n_obs)
    trainer = Trainer(model.module, data, model.registry, cells, cells[:0], cfg)
    loader = MinibatchLoader(data, model.registry, batch_size=128, shuffle=True, seed=seed)
    batches = []
    while len(batches) < steps + 5:
        batches.extend(loader)
    for batch in batches[:5]:
        trainer.step(batch)
    spent.update(seconds=0.0, calls=0)
    start = time.perf_counter()
    for batch in batches[5 : steps + 5]:
        trainer.step(batch)
    seconds = time.perf_counter() - start
    return {
        "n_latent": n_latent,
        "n_continuous": 16,
        "steps": steps,
        "seconds_per_step": seconds / steps,
        "sampler_seconds_per_step": spent["seconds"] / steps,
        "sampler_calls_per_step": spent["calls"] / steps,
        "sampler_share": spent["seconds"] / seconds,
        "rest_seconds_per_step": (seconds - spent["seconds"]) / steps,
        "num_prior_samples": prior.num_samples,
        "sampler": type(sampler).__name__,
        "sampler_num_sweeps": getattr(sampler, "num_sweeps", None),
        "log_z_refresh_seconds": log_z_seconds,
        "peak_rss_mb": _peak_mb(),
    }


WORKERS = {"throughput": _worker_throughput, "scaling": _worker_scaling, "prior": _worker_prior}


def _in_subprocess(part: str, **kwargs) -> dict:
    """Run ``WORKERS[part](**kwargs)`` in a fresh Python; return its JSON result."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "worker", part, json.dumps(kwargs)]
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{part} {kwargs} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------- data for the scaling part


def make_resampled(path: Path, n_cells: int, *, p: float = 0.8, seed: int = 0, chunk: int = 50_000) -> None:
    """Write ``n_cells`` cells resampled from paul15 (binomial thinning ``p``) as a CSR h5ad.

    Written chunk by chunk (``anndata.io.sparse_dataset(...).append``), so memory does not grow
    with ``n_cells``.
    """
    import anndata as ad
    import h5py
    import pandas as pd
    import scipy.sparse as sp

    from qbm_pyro import datasets

    source = datasets.paul15_myeloid()
    x = sp.csr_matrix(source.X).astype(np.float32)
    rng = np.random.default_rng(seed)
    obs = pd.DataFrame(index=pd.Index([f"cell{i}" for i in range(n_cells)], dtype=str))
    skeleton = ad.AnnData(obs=obs, var=pd.DataFrame(index=source.var_names.astype(str)))
    skeleton.write_h5ad(path)
    with h5py.File(path, "a") as f:
        for start in range(0, n_cells, chunk):
            rows = rng.integers(0, x.shape[0], size=min(chunk, n_cells - start))
            block = x[rows]
            block.data = rng.binomial(block.data.astype(np.int64), p).astype(np.float32)
            block.eliminate_zeros()
            if start == 0:
                ad.io.write_elem(f, "X", block)
            else:
                ad.io.sparse_dataset(f["X"]).append(block)


# ---------------------------------------------------------------------- parts


def throughput(epochs: int, log=print, converge: bool = False) -> dict:
    """Each of :data:`THROUGHPUT`'s data sets: its methods side by side, ratios to QBM-VAE."""
    out = {"datasets": {}}
    for dataset, methods in THROUGHPUT.items():
        rows = []
        for method in methods:
            row = _in_subprocess(
                "throughput", method=method, epochs=epochs, converge=converge, dataset=dataset
            )
            log(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))
            rows.append(row)
        base = {r["method"]: r for r in rows}["qbm"]
        ratios = {
            r["method"]: {
                "seconds_vs_qbm": r["seconds"] / base["seconds"],
                "seconds_per_epoch_vs_qbm": r["seconds_per_epoch"] / base["seconds_per_epoch"],
                "peak_rss_vs_qbm": r["peak_rss_mb"] / base["peak_rss_mb"],
            }
            for r in rows
        }
        out["datasets"][dataset] = {"rows": rows, "ratios": ratios}
    return out


def scaling(sizes, steps: int, full_epoch: bool = True, log=print) -> dict:
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="qbm_scaling_"))
    try:
        for n in sizes:
            path = tmp / f"paul15_resampled_{n}.h5ad"
            start = time.perf_counter()
            make_resampled(path, n)
            write_seconds = time.perf_counter() - start
            row = _in_subprocess("scaling", path=str(path), steps=steps, full_epoch=full_epoch)
            row["write_seconds"] = write_seconds
            log(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))
            rows.append(row)
            path.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"source": "paul15_myeloid (240 genes), resampled with binomial thinning p=0.8", "rows": rows}


def prior_share(n_latents, steps: int, log=print) -> dict:
    rows = []
    for n in n_latents:
        row = _in_subprocess("prior", n_latent=n, steps=steps)
        log(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}))
        rows.append(row)
    return {"dataset": "paul15_myeloid", "rows": rows}


def _meta() -> dict:
    import torch

    from benchmarks.environment import package_versions

    versions = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        **package_versions("qbm-pyro", "scvi-tools", "anndata", "h5py"),
    }
    return {
        **versions,
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": 1,
        "note": "shared 2-core machine with other jobs running: absolute times are noisy; "
        "compare ratios measured in the same run",
    }


def main(argv=None) -> None:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "worker":
        result = WORKERS[argv[1]](**json.loads(argv[2]))
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", nargs="+", default=["throughput", "convergence", "scaling", "prior"])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--max-epochs", type=int, default=400, help="convergence: epoch cap")
    parser.add_argument("--sizes", nargs="+", type=int, default=SIZES)
    parser.add_argument(
        "--no-full-epoch", action="store_true", help="scaling: timed steps only, no whole epoch"
    )
    parser.add_argument("--n-latents", nargs="+", type=int, default=N_LATENTS)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    log = lambda line: print(line, flush=True)  # noqa: E731
    result = json.loads(args.out.read_text()) if args.out.exists() else {}
    result["meta"] = _meta()
    for part in args.parts:
        start = time.perf_counter()
        if part == "throughput":
            result["throughput"] = throughput(args.epochs, log) | {"epochs": args.epochs}
        elif part == "convergence":
            result["convergence"] = throughput(args.max_epochs, log, converge=True) | {
                "max_epochs": args.max_epochs
            }
        elif part == "scaling":
            result["scaling"] = scaling(args.sizes, args.steps, not args.no_full_epoch, log) | {
                "steps": args.steps
            }
        elif part == "prior":
            result["prior"] = prior_share(args.n_latents, args.steps, log) | {"steps": args.steps}
        else:
            raise SystemExit(f"unknown part {part!r}")
        log(f"{part}: {time.perf_counter() - start:.0f} s")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
