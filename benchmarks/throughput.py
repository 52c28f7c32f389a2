"""Speed benchmark (issue 13): training throughput against scvi-tools per data shape, a per-part
profile of one training step, the torch sampler against dwave-samplers SA at n = 64, the cached
log Z of a custom Pyro model, and 2 CPU processes against 1.

Every comparison is measured in one run, each fit in a fresh subprocess (peak RSS is the
process's own ``VmHWM``), one torch thread per process, the same epochs and batch size (128).
Timings on a shared machine are noisy: the ratios are the result, not the seconds.

Run ``python benchmarks/throughput.py [--quick] [--before PATH]``: writes
``benchmarks/results/throughput.json``; :func:`report_lines` renders its section of
``BENCHMARKS.md``. ``--before PATH`` adds QBM-VAE rows run from another source tree of the package
(e.g. ``git archive`` of an older commit) in the same run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
if os.environ.get("QBM_PYRO_SOURCE"):  # a worker timing another source tree of the package
    sys.path.insert(0, os.environ["QBM_PYRO_SOURCE"])

OUT = HERE / "results" / "throughput.json"
#: Data shapes and the scvi-tools method each is compared with.
SHAPES = {"paul15": "scvi", "mixology": "scvi", "cite": "totalvi", "protein": "scvi"}
PROTEIN_CELLS = {"quick": 20_000, "full": 100_000}
#: Samples per timed sampler call at n = 64 (the first is the headline ratio).
SAMPLER_DRAWS = (2_000, 10_000)
PARTS = (
    "encoder",
    "relaxation",
    "decoder",
    "likelihood",
    "KL (analytic)",
    "negative phase (sampler)",
    "rest of forward (prior, glue)",
    "backward",
    "optimizer",
    "rest of step (checks, clamp)",
)


# ---------------------------------------------------------------------- data


def protein_only(n_cells: int, seed: int = 0):
    """A protein-only AnnData of ``n_cells`` cells resampled from the bundled 2-batch CITE-seq
    proteins (14 antibodies): rows drawn with replacement, counts thinned by Binomial(·, 0.8),
    batch labels kept."""
    import anndata as ad
    import pandas as pd

    from qbm_pyro import datasets

    prot = datasets.pbmc_cite_2batch()["prot"]
    x = np.asarray(prot.X.todense() if hasattr(prot.X, "todense") else prot.X)
    batch = datasets.pbmc_cite_2batch().obs["batch"].astype(str).to_numpy()
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, x.shape[0], n_cells)
    counts = rng.binomial(x[rows].astype(np.int64), 0.8).astype(np.float32)
    obs = pd.DataFrame({"batch": pd.Categorical(batch[rows])}, index=[f"c{i}" for i in range(n_cells)])
    return ad.AnnData(counts, obs=obs, var=pd.DataFrame(index=prot.var_names.astype(str)))


def load(shape: str, n_protein_cells: int):
    """``(data, batch_key, QBMVAE kwargs)`` of a data shape."""
    from benchmarks import quality

    if shape == "protein":
        return protein_only(n_protein_cells), "batch", {"modalities": "protein"}
    data, _, batch_key, kwargs = quality.load(shape)
    return data, batch_key, kwargs


# ---------------------------------------------------------------------- workers (subprocesses)


def _per_epoch(n_train: int, epoch_seconds: list[float]) -> float:
    """Cells per second of an epoch after the first (the mean wall time of epochs 2 and later)."""
    return n_train / float(np.mean(epoch_seconds[1:])) if len(epoch_seconds) > 1 else math.nan


def _epoch_timer():
    """A Lightning callback timing scvi-tools' epochs the way ``history_["epoch_seconds"]`` times
    ours: from one epoch's start to the next's (training, validation and callbacks)."""
    from lightning.pytorch.callbacks import Callback

    class EpochTimer(Callback):
        def __init__(self):
            self.starts: list[float] = []

        def on_train_epoch_start(self, trainer, pl_module):
            self.starts.append(time.perf_counter())

        def epoch_seconds(self, total: float) -> list[float]:
            ends = self.starts[1:] + [self.starts[0] + total] if self.starts else []
            return [b - a for a, b in zip(self.starts, ends)]

    return EpochTimer()


def _worker_fit(method: str, shape: str, epochs: int, n_protein_cells: int, seed: int = 0) -> dict:
    import torch

    from benchmarks import quality
    from benchmarks.cost import _peak_mb

    torch.set_num_threads(1)
    data, batch_key, kwargs = load(shape, n_protein_cells)
    if method in ("scvi", "totalvi"):
        from benchmarks import baselines

        scvi = baselines._scvi()
        scvi.settings.seed = seed
        torch.set_num_threads(1)
        model = baselines.scvi_tools_model(method, data, batch_key)
        timer = _epoch_timer()
        start = time.perf_counter()
        model.train(
            max_epochs=epochs,
            accelerator="cpu",
            devices=1,
            enable_progress_bar=False,
            early_stopping=False,
            callbacks=[timer],
        )
        seconds = time.perf_counter() - start
        epoch_seconds = timer.epoch_seconds(seconds)
        n_train = int(round(0.9 * data.n_obs))
    else:
        import qbm_pyro

        model = qbm_pyro.QBMVAE(data, batch_key=batch_key, seed=seed, **kwargs, **quality.METHODS["qbm"])
        start = time.perf_counter()
        model.train(max_epochs=epochs, early_stopping=False, progress_bar=False, validation_fraction=0.1)
        seconds = time.perf_counter() - start
        epoch_seconds = list(model.history_["epoch_seconds"])
        n_train = int(data.n_obs - round(0.1 * data.n_obs))
    return {
        "shape": shape,
        "method": method,
        "n_cells": int(data.n_obs),
        "epochs": epochs,
        "seconds": seconds,
        "cells_per_second": n_train * epochs / seconds,
        "epoch_seconds": epoch_seconds,
        "steady_cells_per_second": _per_epoch(n_train, epoch_seconds),
        "peak_rss_mb": _peak_mb(),
        "package": str(Path(sys.modules["qbm_pyro"].__file__).parent) if "qbm_pyro" in sys.modules else None,
    }


def _worker_profile(shape: str, steps: int, n_protein_cells: int, seed: int = 0) -> dict:
    """Seconds per training step of QBM-VAE by part (wall-clock timers around each part).

    The training loop computes the loss with :meth:`~qbm_pyro.module.MultiVAE.loss` (no Pyro
    tracing); "KL (analytic)" is the binary code's KL to the Boltzmann prior without its sampler
    calls (the Gaussian units' closed-form KL is in "rest of forward")."""
    import torch

    import qbm_pyro
    import qbm_pyro.distributions as qd
    import qbm_pyro.distributions.kl as qd_kl
    from benchmarks import quality
    from qbm_pyro.data import MinibatchLoader
    from qbm_pyro.module import MultiVAE
    from qbm_pyro.samplers import Sampler
    from qbm_pyro.training import Trainer, TrainingConfig

    torch.set_num_threads(1)
    data, batch_key, kwargs = load(shape, n_protein_cells)
    model = qbm_pyro.QBMVAE(data, batch_key=batch_key, seed=seed, **kwargs, **quality.METHODS["qbm"])
    cfg = TrainingConfig(max_epochs=1, batch_size=128, seed=seed, progress_bar=False)
    cells = np.arange(data.n_obs)
    trainer = Trainer(model.module, data, model.registry, cells, cells[:0], cfg)
    batches = []
    for batch in MinibatchLoader(data, model.registry, batch_size=128, shuffle=True, seed=seed):
        batches.append(batch)
        if len(batches) >= steps + 3:
            break
    totals: dict[str, float] = {}

    def timer(owner, name, key):
        original = getattr(owner, name)

        def wrapped(*args, **kw):
            start = time.perf_counter()
            try:
                return original(*args, **kw)
            finally:
                totals[key] = totals.get(key, 0.0) + time.perf_counter() - start

        setattr(owner, name, wrapped)

    sampler_cls = type(model.module.prior.sampler)
    timer(MultiVAE, "encode", "encoder")
    timer(qd.OverlappingExponentials, "rsample", "relaxation")
    timer(MultiVAE, "decode", "decoder")
    timer(torch.distributions.Independent, "log_prob", "likelihood")
    timer(sampler_cls if sampler_cls.sample is not Sampler.sample else Sampler, "sample", "sampler")
    # MultiVAE.loss reaches it through the registered KL (kl_divergence -> kl_bernoulli_code)
    timer(qd_kl, "kl_bernoulli_boltzmann", "kl_total")
    timer(MultiVAE, "loss", "forward")
    timer(torch.Tensor, "backward", "backward")
    timer(type(trainer.optimizer), "step", "optimizer")
    for batch in batches[:3]:
        trainer.step(batch)
    totals.clear()
    start = time.perf_counter()
    for batch in batches[3:]:
        trainer.step(batch)
    total = time.perf_counter() - start
    n = len(batches) - 3
    t = {k: v / n for k, v in totals.items()}
    parts = {
        "encoder": t.get("encoder", 0.0),
        "relaxation": t.get("relaxation", 0.0),
        "decoder": t.get("decoder", 0.0),
        "likelihood": t.get("likelihood", 0.0),
        "KL (analytic)": t.get("kl_total", 0.0) - t.get("sampler", 0.0),
        "negative phase (sampler)": t.get("sampler", 0.0),
        "backward": t.get("backward", 0.0),
        "optimizer": t.get("optimizer", 0.0),
    }
    inside = ("encoder", "relaxation", "decoder", "likelihood")
    parts["rest of forward (prior, glue)"] = (
        t.get("forward", 0.0) - t.get("kl_total", 0.0) - sum(parts[k] for k in inside)
    )
    parts["rest of step (checks, clamp)"] = total / n - sum(parts.values())
    return {"shape": shape, "steps": n, "seconds_per_step": total / n, "parts": parts}


def _worker_distributed(
    world_size: int, epochs: int, seed: int = 0, shape: str = "paul15", n_protein_cells: int = 20_000
) -> dict:
    import torch

    import qbm_pyro
    from benchmarks import quality
    from qbm_pyro.distributed import train_distributed

    torch.set_num_threads(1)
    data, batch_key, kwargs = load(shape, n_protein_cells)
    model = qbm_pyro.QBMVAE(data, batch_key=batch_key, seed=seed, **kwargs, **quality.METHODS["qbm"])
    start = time.perf_counter()
    if world_size == 1:
        history = model.train(
            max_epochs=epochs, early_stopping=False, progress_bar=False, validation_fraction=0.1
        )
    else:
        history = train_distributed(
            model, world_size, num_threads=1, max_epochs=epochs, early_stopping=False, progress_bar=False
        )
    seconds = time.perf_counter() - start
    n_train = int(data.n_obs - round(0.1 * data.n_obs))
    epoch_seconds = list(history["epoch_seconds"])  # rank 0's: an epoch ends when all ranks' do
    return {
        "shape": shape,
        "world_size": world_size,
        "epochs": epochs,
        "seconds": seconds,
        "cells_per_second": n_train * epochs / seconds,
        "epoch_seconds": epoch_seconds,
        "steady_cells_per_second": _per_epoch(n_train, epoch_seconds),
    }


WORKERS = {"fit": _worker_fit, "profile": _worker_profile, "distributed": _worker_distributed}


def _in_subprocess(part: str, python_path: str | None = None, **kwargs) -> dict:
    """``WORKERS[part](**kwargs)`` in a fresh Python (``python_path`` first on its path)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "worker", part, json.dumps(kwargs)]
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    if python_path:
        env["QBM_PYRO_SOURCE"] = python_path
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{part} {kwargs} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------- in-process parts


def sampler_ratio(seed: int = 0, margin: float = 0.02, log=print) -> dict:
    """Torch Gibbs vs dwave-samplers SA: the cheapest sweeps whose TV to exact is within
    ``margin`` of exact samples' TV at n = 10 and n = 14, then samples/s at n = 64."""
    import torch

    from benchmarks.samplers import make_sampler, random_model, timed, total_variation
    from qbm_pyro.samplers.exact import exact_log_probs

    grid = {"gibbs": [1, 2, 3, 4, 5, 6, 8, 10, 20], "dimod-sa": [5, 6, 8, 10, 15, 20, 50, 100, 200, 500]}
    matched: dict[str, int] = {}
    checks = []
    for n, num in ((10, 50_000), (14, 50_000)):
        h, J = random_model(n, seed + n)
        log_probs = exact_log_probs(h.double(), J.double())
        floor = total_variation(make_sampler("exact", 0, seed).sample(h, J, num), log_probs)
        for name, sweeps_grid in grid.items():
            make_sampler(name, 1, seed).sample(h, J, 16)  # warm-up (compilation, imports)
            for sweeps in sweeps_grid:
                if sweeps < matched.get(name, 0):
                    continue
                tv = total_variation(make_sampler(name, sweeps, seed).sample(h, J, num), log_probs)
                checks.append({"n": n, "sampler": name, "sweeps": sweeps, "tv": tv, "exact_tv": floor})
                if tv <= floor + margin:
                    matched[name] = max(matched.get(name, 0), sweeps)
                    break
            else:
                matched[name] = sweeps_grid[-1]
        log(f"n={n}: exact TV {floor:.4f}, matched sweeps {matched}")
    h, J = random_model(64, seed + 64)
    by_size = {}
    for samples in SAMPLER_DRAWS:  # a 2,000-sample Gibbs call takes ~10 ms: hard to time here
        best = dict.fromkeys(matched, math.inf)
        for _ in range(7):  # interleaved, so a busy moment of the machine hits both alike; fastest kept
            for name, sweeps in matched.items():
                _, seconds = timed(make_sampler(name, sweeps, seed), h, J, samples)
                best[name] = min(best[name], seconds)
        rates = {name: samples / seconds for name, seconds in best.items()}
        by_size[samples] = {"samples_per_s": rates, "ratio": rates["gibbs"] / rates["dimod-sa"]}
        ratio = by_size[samples]["ratio"]
        log(f"n=64, {samples} samples per call, samples/s: {rates} (torch Gibbs / SA = {ratio:.1f}x)")
    rates, ratio = by_size[SAMPLER_DRAWS[0]]["samples_per_s"], by_size[SAMPLER_DRAWS[0]]["ratio"]
    return {
        "matched_sweeps": matched,
        "margin": margin,
        "checks": checks,
        "samples_per_s_n64": rates,
        "ratio": ratio,
        "by_draws": by_size,
        "torch_threads": torch.get_num_threads(),
    }


def custom_log_z(steps: int = 20, n: int = 32, log=print) -> dict:
    """A custom Pyro model with a 32-unit ``dist.Boltzmann`` prior and a Bernoulli guide:
    SVI steps/s with log Z cached across steps, and with the cache emptied before every step
    (which is the old behaviour: AIS and a new default sampler every step)."""
    import pyro
    import torch
    from pyro.infer import SVI, Trace_ELBO
    from pyro.optim import Adam

    import qbm_pyro.distributions as dist
    from qbm_pyro.distributions.log_z_cache import LOG_Z_CACHE

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)

    def model(x):
        h = pyro.param("h", torch.zeros(n))
        J = pyro.param("J", torch.zeros(n, n))
        W = pyro.param("W", 0.1 * torch.randn(n, 8, generator=torch.Generator().manual_seed(1)))
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Boltzmann(h, torch.triu(J, 1)))
            pyro.sample("x", dist.Normal(z @ W, 1.0).to_event(1), obs=x)

    def guide(x):
        logits = pyro.param("logits", torch.zeros(x.shape[0], n))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Bernoulli(logits=logits).to_event(1))

    out = {}
    for label, clear in (("cached", False), ("ais_every_step", True)):
        n_steps = steps if not clear else max(2, steps // 4)  # about 2 s per step without the cache
        pyro.clear_param_store()
        pyro.set_rng_seed(0)
        LOG_Z_CACHE.clear()
        svi = SVI(model, guide, Adam({"lr": 0.01}), Trace_ELBO())
        svi.step(x)  # first step: AIS in both
        start = time.perf_counter()
        for _ in range(n_steps):
            if clear:
                LOG_Z_CACHE.clear()
            svi.step(x)
        seconds = time.perf_counter() - start
        out[label] = {"steps": n_steps, "seconds": seconds, "steps_per_s": n_steps / seconds}
        log(f"custom model n={n} {label}: {n_steps / seconds:.2f} steps/s")
    out["speedup"] = out["cached"]["steps_per_s"] / out["ais_every_step"]["steps_per_s"]
    return out


# ---------------------------------------------------------------------- run and report


def run(quick: bool = True, before: str | None = None, log=print, repeats: int = 3) -> dict:
    """All parts; ``before``: a source tree of the package to add QBM-VAE "before" rows from;
    ``repeats``: fits per method and shape, interleaved (the fastest counts)."""
    epochs = 3 if quick else 10
    n_protein = PROTEIN_CELLS["quick" if quick else "full"]
    result: dict = {
        "config": {
            "epochs": epochs,
            "batch_size": 128,
            "protein_cells": n_protein,
            "threads": 1,
            "repeats": repeats,
        }
    }
    result["custom_log_z"] = custom_log_z(log=log)
    result["sampler"] = sampler_ratio(log=log)
    result["profile"] = {}
    for shape in ("mixology", "protein"):
        result["profile"][shape] = _in_subprocess("profile", shape=shape, steps=20, n_protein_cells=n_protein)
        log(json.dumps(result["profile"][shape]))
    result["throughput"] = {}
    for shape, anchor in SHAPES.items():
        rows: dict[str, dict] = {}
        every: dict[str, list[float]] = {}  # per-epoch cells/s of every fit, in run order
        for _ in range(repeats):  # interleaved; each method keeps its fastest run (per epoch)
            for method in (anchor, "qbm") + (("qbm_before",) if before else ()):
                path = before if method == "qbm_before" else None
                kwargs = dict(method="qbm" if method == "qbm_before" else method, shape=shape, epochs=epochs)
                row = _in_subprocess("fit", python_path=path, n_protein_cells=n_protein, **kwargs)
                log(json.dumps(row))
                every.setdefault(method, []).append(row["steady_cells_per_second"])
                best = rows.get(method)
                if best is None or row["steady_cells_per_second"] > best["steady_cells_per_second"]:
                    rows[method] = row
        ratios = {
            m: {
                "throughput_vs_anchor": rows[m]["cells_per_second"] / rows[anchor]["cells_per_second"],
                "steady_vs_anchor": (
                    rows[m]["steady_cells_per_second"] / rows[anchor]["steady_cells_per_second"]
                ),
                "peak_rss_vs_anchor": rows[m]["peak_rss_mb"] / rows[anchor]["peak_rss_mb"],
                "median_vs_anchor": float(np.median(every[m]) / np.median(every[anchor])),
                "paired_vs_anchor": [a / b for a, b in zip(every[m], every[anchor])],
            }
            for m in rows
            if m != anchor
        }
        result["throughput"][shape] = {"anchor": anchor, "rows": rows, "ratios": ratios, "every": every}
    result["distributed"] = {}
    for shape in ("paul15", "protein"):
        options = dict(epochs=epochs, shape=shape, n_protein_cells=n_protein // 5)
        one = _in_subprocess("distributed", world_size=1, **options)
        two = _in_subprocess("distributed", world_size=2, **options)
        result["distributed"][shape] = {
            "1": one,
            "2": two,
            "ratio": two["steady_cells_per_second"] / one["steady_cells_per_second"],
            "ratio_whole": two["cells_per_second"] / one["cells_per_second"],
        }
        log(json.dumps(result["distributed"][shape]))
    return result


def report_lines(result: dict | None) -> list[str]:
    """The ``BENCHMARKS.md`` section of this benchmark (markdown lines)."""
    if not result:
        return []
    cfg = result["config"]
    lines = [
        "## Speed (issue 13): throughput against scvi-tools, sampler, custom models",
        "",
        *([cfg["note"] + ".", ""] if cfg.get("note") else []),
        f"One run, one torch thread per process, {cfg['epochs']} epochs, batch size {cfg['batch_size']}, "
        f"{cfg.get('repeats', 1)} fits per method and shape, interleaved, the fastest per epoch kept; "
        "ratios > 1 mean QBM-VAE processes more cells per second than the anchor.",
        "",
        "Per epoch: the mean wall time of epochs 2 and later (training, validation and the "
        "epoch's bookkeeping; ours from `history_['epoch_seconds']`, scvi-tools' from a Lightning "
        "callback). Median: the ratio of the medians over all fits, and the range of the ratios of "
        "fits run back to back (the machine's speed drifts between fits). Whole fit: `train()` from "
        "call to return, so one-time costs count: numba's start-up and the chains' burn-in in our "
        "first epoch; scvi-tools imports torch's compiler stack at `import scvi`, before its timer "
        "starts.",
        "",
        "| data shape | anchor | QBM-VAE cells/s per epoch | anchor cells/s per epoch | ratio per epoch "
        "| median (back-to-back range) | ratio whole fit | peak RSS ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for shape, block in result.get("throughput", {}).items():
        anchor = block["anchor"]
        for method, ratio in block["ratios"].items():
            mine, theirs = block["rows"][method], block["rows"][anchor]
            steady = ratio.get("steady_vs_anchor", math.nan)
            paired = ratio.get("paired_vs_anchor") or [math.nan]
            median = f"{ratio.get('median_vs_anchor', math.nan):.2f} ({min(paired):.2f}–{max(paired):.2f})"
            lines.append(
                f"| {shape} ({method}) | {anchor} | {mine.get('steady_cells_per_second', math.nan):,.0f} | "
                f"{theirs.get('steady_cells_per_second', math.nan):,.0f} | {steady:.2f} | {median} | "
                f"{ratio['throughput_vs_anchor']:.2f} | {ratio['peak_rss_vs_anchor']:.2f} |"
            )
    s = result.get("sampler")
    if s:
        lines += [
            "",
            f"Sampler at n = 64 (sweeps matched to TV within {s['margin']} of exact samples at "
            f"n = 10 and 14: {s['matched_sweeps']}): torch Gibbs "
            f"{s['samples_per_s_n64']['gibbs']:,.0f} samples/s, dwave-samplers SA "
            f"{s['samples_per_s_n64']['dimod-sa']:,.0f} samples/s, ratio {s['ratio']:.1f}x"
            + "".join(
                f"; {int(k):,} samples per call: {v['ratio']:.1f}x"
                for k, v in s.get("by_draws", {}).items()
                if int(k) != SAMPLER_DRAWS[0]
            )
            + " (fastest of 7 interleaved calls each).",
        ]
    c = result.get("custom_log_z")
    if c:
        lines += [
            "",
            f"Custom Pyro model, 32-unit `dist.Boltzmann`, Bernoulli guide: {c['cached']['steps_per_s']:.2f} "
            f"SVI steps/s with log Z cached, {c['ais_every_step']['steps_per_s']:.2f} with AIS every step "
            f"({c['speedup']:.0f}x).",
        ]
    d = result.get("distributed")
    if d:
        d = {"paul15": d} if "ratio" in d else d  # (older results: paul15 only)
        parts = [
            f"{shape} {v['ratio']:.2f}x per epoch ({v.get('ratio_whole', math.nan):.2f}x over the whole call)"
            for shape, v in d.items()
        ]
        lines += [
            "",
            "2 CPU processes against 1 (torch.distributed, gloo; cells/s): " + "; ".join(parts) + ". The "
            "whole call includes starting the two worker processes and handing them the data through "
            "a file.",
        ]
    for shape, p in result.get("profile", {}).items():
        lines += [
            "",
            f"Profile of one training step, {shape} ({p['seconds_per_step'] * 1e3:.1f} ms per step):",
            "",
            "| part | ms | share |",
            "|---|---|---|",
        ]
        for part in PARTS:
            ms = p["parts"].get(part, 0.0) * 1e3
            lines.append(f"| {part} | {ms:.1f} | {ms / (p['seconds_per_step'] * 1e3):.0%} |")
    return lines + [""]


def main(argv=None) -> None:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "worker":
        print(json.dumps(WORKERS[argv[1]](**json.loads(argv[2]))))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 epochs, 20,000 protein-only cells")
    parser.add_argument("--before", help="a source tree of the package for 'before' QBM-VAE rows")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved fits per method and shape")
    args = parser.parse_args(argv)
    result = run(quick=args.quick, before=args.before, repeats=args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(report_lines(result)))


if __name__ == "__main__":
    main()
