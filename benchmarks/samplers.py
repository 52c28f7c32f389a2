"""Sampler benchmark: throughput and accuracy (total variation to exact) of the sampler backends.

Protocol (one run, one machine):

* Model: ``h ~ N(0, 1)``, ``J ~ N(0, 0.5²)`` (strict upper triangle used), float32, seeded.
* Every measurement is a cold start: a new sampler, one call, chains started at random, run
  for ``sweeps`` sweeps (Gibbs and parallel tempering with ``burn_in=0, num_sweeps=sweeps``;
  simulated annealing along ``beta_range=(0.1, 1)`` with ``num_sweeps=sweeps``). Samples/s is
  ``num_samples`` over the wall time of that call.
* Accuracy at ``n = 10``: total variation between the histogram of 50,000 samples and the
  exact distribution. Even exact samples have a TV above zero at that sample size (reported as
  the ``exact`` row); a sampler is *matched* at its cheapest sweep count whose TV is within
  ``TV_MARGIN`` of that floor.
* Throughput at ``n = 64`` and ``n = 256``: 1,000 samples at each sampler's matched sweeps.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable

import torch

from benchmarks.environment import package_versions
from qbm_pyro.samplers.base import Sampler
from qbm_pyro.samplers.dimod import DimodSampler
from qbm_pyro.samplers.exact import ExactSampler, exact_log_probs, state_index
from qbm_pyro.samplers.gibbs import GibbsSampler
from qbm_pyro.samplers.tempering import ParallelTemperingSampler

__all__ = ["SWEEP_GRID", "TV_MARGIN", "environment", "random_model", "run", "total_variation"]

#: Sweep counts tried at n = 10, per sampler.
SWEEP_GRID: dict[str, list[int]] = {
    "gibbs": [1, 2, 5, 10, 20, 50],
    "tempering": [1, 2, 5, 10, 20],
    "dimod-sa": [5, 10, 20, 50, 100, 200],
}
#: A sampler is matched when its TV is within this of the exact-sample TV at the same size.
TV_MARGIN = 0.005

SEED = 0
N_SMALL, SAMPLES_SMALL = 10, 50_000
N_LARGE, SAMPLES_LARGE = (64, 256), 1_000


def random_model(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``h ~ N(0, 1)`` and ``J ~ N(0, 0.5²)``, shape ``(n,)`` and ``(n, n)``, float32."""
    generator = torch.Generator().manual_seed(seed)
    h = torch.randn(n, generator=generator)
    J = 0.5 * torch.randn(n, n, generator=generator)
    return h, J


def total_variation(samples: torch.Tensor, log_probs: torch.Tensor) -> float:
    """``½ Σ_z |p̂(z) − p(z)|`` between the samples' histogram and ``exp(log_probs)``."""
    counts = torch.bincount(state_index(samples), minlength=log_probs.shape[0]).double()
    return 0.5 * (counts / samples.shape[0] - log_probs.double().exp()).abs().sum().item()


def make_sampler(name: str, sweeps: int, seed: int) -> Sampler:
    """A fresh sampler named ``name`` running ``sweeps`` sweeps from a random start."""
    if name == "gibbs":
        return GibbsSampler(num_sweeps=sweeps, burn_in=0, seed=seed)
    if name == "tempering":
        return ParallelTemperingSampler(num_sweeps=sweeps, burn_in=0, seed=seed)
    if name == "dimod-sa":
        return DimodSampler(mode="anneal", num_sweeps=sweeps, beta_min=0.1, seed=seed)
    if name == "exact":
        return ExactSampler(seed=seed)
    raise ValueError(f"unknown sampler {name!r}")


def timed(sampler: Sampler, h: torch.Tensor, J: torch.Tensor, num_samples: int):
    """``sampler.sample(h, J, num_samples, beta=1)`` and its wall time in seconds."""
    start = time.perf_counter()
    out = sampler.sample(h, J, num_samples, beta=1.0)
    return out, time.perf_counter() - start


def environment() -> dict:
    """Versions, machine and thread count, for the JSON."""
    versions = package_versions("qbm-pyro", "torch", "dimod", "dwave-samplers", "numpy")
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "versions": versions,
    }


def run(seed: int = SEED, log: Callable[[str], None] = lambda line: None) -> dict:
    """Run the benchmark; returns ``{"rows": [...], "matched": {...}, "config": {...}}``."""
    rows: list[dict] = []
    h, J = random_model(N_SMALL, seed)
    log_probs = exact_log_probs(h.double(), J.double())

    out, seconds = timed(make_sampler("exact", 0, seed), h, J, SAMPLES_SMALL)
    floor = total_variation(out, log_probs)
    rows.append(_row("exact", None, N_SMALL, SAMPLES_SMALL, seconds, floor))
    log(f"exact n={N_SMALL}: TV {floor:.4f}")

    for name in SWEEP_GRID:  # warm-up: first-call costs (imports, allocations) are not timed
        make_sampler(name, 1, seed).sample(h, J, 16)
    matched: dict[str, int] = {}
    for name, grid in SWEEP_GRID.items():
        for sweeps in grid:
            out, seconds = timed(make_sampler(name, sweeps, seed), h, J, SAMPLES_SMALL)
            tv = total_variation(out, log_probs)
            rows.append(_row(name, sweeps, N_SMALL, SAMPLES_SMALL, seconds, tv))
            rate = SAMPLES_SMALL / seconds
            log(f"{name} sweeps={sweeps} n={N_SMALL}: TV {tv:.4f}, {rate:,.0f}/s")
            if name not in matched and tv <= floor + TV_MARGIN:
                matched[name] = sweeps
        matched.setdefault(name, grid[-1])

    for n in N_LARGE:
        h_n, J_n = random_model(n, seed + n)
        for name, sweeps in matched.items():
            _, seconds = timed(make_sampler(name, sweeps, seed), h_n, J_n, SAMPLES_LARGE)
            rows.append(_row(name, sweeps, n, SAMPLES_LARGE, seconds, None))
            log(f"{name} sweeps={sweeps} n={n}: {SAMPLES_LARGE / seconds:,.0f}/s")

    for row in rows:
        row["matched"] = row["sampler"] == "exact" or matched.get(row["sampler"]) == row["sweeps"]
    config = {
        "seed": seed,
        "model": "h ~ N(0, 1), J ~ N(0, 0.5^2), float32; model seed = seed + n for n > 10",
        "protocol": "cold start: one call of a new sampler; gibbs/tempering burn_in=0",
        "tv_margin": TV_MARGIN,
        "sweep_grid": SWEEP_GRID,
        "samples": {str(N_SMALL): SAMPLES_SMALL, **{str(n): SAMPLES_LARGE for n in N_LARGE}},
        "tempering": {"n_replicas": 8, "beta_min": 0.1},
        "dimod_sa": {"beta_range": [0.1, 1.0], "beta_schedule_type": "geometric"},
    }
    return {"rows": rows, "matched": matched, "config": config, "environment": environment()}


def _row(sampler, sweeps, n, num_samples, seconds, tv) -> dict:
    return {
        "sampler": sampler,
        "sweeps": sweeps,
        "n": n,
        "num_samples": num_samples,
        "seconds": seconds,
        "samples_per_s": num_samples / seconds,
        "tv": tv,
    }


def markdown(result: dict) -> str:
    """The matched rows as a markdown table, one line per sampler, plus the full TV grid."""
    rows = result["rows"]
    lines = [
        "| sampler | sweeps | TV n=10 (50k) | samples/s n=10 | samples/s n=64 | samples/s n=256 |",
        "|---|---|---|---|---|---|",
    ]
    for name in ["exact", *result["matched"]]:
        picked = [r for r in rows if r["sampler"] == name and r["matched"]]
        by_n = {r["n"]: r for r in picked}
        small = by_n[N_SMALL]
        rates = [f"{by_n[n]['samples_per_s']:,.0f}" if n in by_n else "—" for n in N_LARGE]
        sweeps = "—" if small["sweeps"] is None else str(small["sweeps"])
        lines.append(
            f"| {name} | {sweeps} | {small['tv']:.4f} | {small['samples_per_s']:,.0f} | "
            + " | ".join(rates)
            + " |"
        )
    lines += ["", "TV at n=10 for every sweep count tried (sweeps: TV (samples/s)):", ""]
    for name in result["config"]["sweep_grid"]:
        cells = []
        for r in rows:
            if r["sampler"] == name and r["n"] == N_SMALL:
                cells.append(f"{r['sweeps']}: {r['tv']:.4f} ({r['samples_per_s']:,.0f}/s)")
        lines.append(f"- {name}: " + "; ".join(cells))
    return "\n".join(lines) + "\n"
