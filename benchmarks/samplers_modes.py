"""The negative phase on machines with separated modes (issue 20, goal 2).

Machines (float32 for the samplers, float64 for the exact distribution):

* ``two_mode(n)``, n = 8 and 12: all couplings 1.5, every bias ``-0.75 (n - 1) + 0.1``: two
  modes, all-ones (weight 0.69 at n = 8, 0.77 at n = 12) and all-zeros.
* ``planted(16)``: a Hopfield machine storing four orthogonal patterns (rows 1-4 of the 16×16
  Hadamard matrix) with strength 4, and a field ``Σ_k f_k ξ_k`` (f = 0.1, 0.08, 0.06, 0.04)
  that favours the patterns over their mirror images and weights them unequally
  (0.34 / 0.25 / 0.18 / 0.13).
* ``planted(64)``: the same construction with 64 units (rows 1-4 of the 64×64 Hadamard matrix).

Measurements:

* TV to exact of 20,000 draws (n = 8, 12, 16) for: exact draws (the noise floor), the old
  default (``default_gibbs``: a fresh copy, 100 burn-in sweeps, as ``sample_prior`` drew), dimod
  SA in anneal mode, the new default (``default_sampler``) as ``sample_prior`` draws (a fresh
  copy), and the new default as training calls it (persistent, 256 chains, one sweep per call:
  every 20th of 1,600 calls kept, 20,480 draws; closer calls share most of their states, which
  adds variance to a TV but no bias).
* n = 64: the same samplers (not dimod SA: 20,000 anneals at n = 64 take too long here) against
  a long tempering reference (16 replicas from β = 0.02, 256 chains, 1,000 burn-in sweeps,
  20,000 draws 20 sweeps apart): max abs difference of E[z] and E[zzᵀ],
  and TV of the basin weights (each draw assigned to the pattern it overlaps most, if above 0.5,
  else "other").

Run ``python benchmarks/samplers_modes.py``: writes ``benchmarks/results/samplers_modes.json``;
:func:`report_lines` renders its section of ``BENCHMARKS.md``. The per-epoch cost of the new
default is measured by ``benchmarks/sampler_cost.py`` into the same file.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from qbm_pyro.samplers import (  # noqa: E402
    DimodSampler,
    ExactSampler,
    ParallelTemperingSampler,
    default_gibbs,
    default_sampler,
)
from qbm_pyro.samplers.exact import exact_log_probs, state_index  # noqa: E402

OUT = HERE / "results" / "samplers_modes.json"
DRAWS = 20_000
__all__ = ["planted", "report_lines", "run", "two_mode"]


def two_mode(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All couplings 1.5, biases ``-0.75 (n - 1) + 0.1`` (float64)."""
    h = torch.full((n,), -0.75 * (n - 1) + 0.1, dtype=torch.float64)
    J = torch.triu(torch.full((n, n), 1.5, dtype=torch.float64), 1)
    return h, J


def planted(n: int, strength: float = 4.0, fields=(0.1, 0.08, 0.06, 0.04)):
    """A Hopfield machine over ``n`` (a power of 2) units storing ``len(fields)`` orthogonal
    patterns: ``(h, J, patterns ±1)`` in the 0/1 convention (float64)."""
    from scipy.linalg import hadamard

    xi = torch.tensor(hadamard(n), dtype=torch.float64)[1 : 1 + len(fields)]
    W = strength / n * xi.T @ xi
    W.fill_diagonal_(0)
    a = (torch.tensor(fields, dtype=torch.float64)[:, None] * xi).sum(0)
    # spin energy -Σ_{i<j} W_ij s_i s_j - a·s with s = 2z - 1, up to a constant
    return 2 * a - 2 * W.sum(1), torch.triu(4 * W, 1), xi


def total_variation(z: torch.Tensor, h: torch.Tensor, J: torch.Tensor) -> float:
    p = exact_log_probs(h, J).exp()
    counts = torch.bincount(state_index(z), minlength=2 ** h.shape[0]).double()
    return 0.5 * float((counts / counts.sum() - p).abs().sum())


def basins(z: torch.Tensor, patterns: torch.Tensor) -> np.ndarray:
    """Fraction of draws nearest each pattern (overlap > 0.5), and the rest last."""
    overlap = (2 * z.double() - 1) @ patterns.T / patterns.shape[1]
    best = overlap.argmax(1)
    best[overlap.max(1).values <= 0.5] = patterns.shape[0]
    return np.bincount(best.numpy(), minlength=patterns.shape[0] + 1) / z.shape[0]


def fresh(sampler, h, J, draws: int = DRAWS) -> torch.Tensor:
    """Draws from a reset copy, as ``sample_prior`` makes them."""
    s = copy.deepcopy(sampler)
    s.reset()
    return s.sample(h.float(), J.float(), draws).double()


def persistent(sampler, h, J, calls: int = 1600, keep_every: int = 20, chains: int = 256) -> torch.Tensor:
    """Draws as training's negative phase gets them: one call per step, every ``keep_every``-th kept."""
    s = copy.deepcopy(sampler)
    s.reset()
    out = [s.sample(h.float(), J.float(), chains) for k in range(calls)]
    return torch.cat(out[keep_every - 1 :: keep_every]).double()


def samplers(seed: int = 0) -> dict:
    return {
        "old default (Gibbs PCD-1)": default_gibbs(seed=seed),
        "dimod SA, anneal": DimodSampler(mode="anneal", seed=seed),
        "new default (tempering), fresh": default_sampler(seed=seed),
        "new default (tempering), training calls": default_sampler(seed=seed),
    }


def draw(name: str, sampler, h, J) -> torch.Tensor:
    if name.endswith("training calls"):
        return persistent(sampler, h, J)
    return fresh(sampler, h, J)


def run(seed: int = 0, parts=("exact", "n64"), log=print) -> dict:
    machines = {"two-mode n=8": two_mode(8), "two-mode n=12": two_mode(12), "planted n=16": planted(16)}
    result: dict = {"draws": DRAWS, "seed": seed, "exact": {}, "n64": {}}
    for label, machine in machines.items() if "exact" in parts else ():
        h, J = machine[0], machine[1]
        row = {
            "noise floor (exact draws)": total_variation(
                ExactSampler(seed=seed + 1).sample(h, J, DRAWS), h, J
            )
        }
        for name, sampler in samplers(seed).items():
            start = time.perf_counter()
            row[name] = total_variation(draw(name, sampler, h, J), h, J)
            log(f"{label}: {name} TV {row[name]:.3f} ({time.perf_counter() - start:.1f} s)")
        result["exact"][label] = row
    if "n64" not in parts:
        return result
    h, J, xi = planted(64)
    reference = (
        ParallelTemperingSampler(
            n_replicas=16, beta_min=0.02, num_sweeps=20, burn_in=1000, max_chains=256, thin=20, seed=seed + 7
        )
        .sample(h.float(), J.float(), DRAWS)
        .double()
    )
    log(f"n=64 reference basins {basins(reference, xi).round(3).tolist()}")
    ref_mean, ref_second = reference.mean(0), reference.T @ reference / len(reference)
    ref_basins = basins(reference, xi)
    result["n64"]["reference basins"] = ref_basins.tolist()
    for name, sampler in samplers(seed).items():
        if name.startswith("dimod"):
            continue  # 20,000 anneals at n = 64 take too long here; SA is off at n = 12 already
        z = draw(name, sampler, h, J)
        result["n64"][name] = {
            "mean": float((z.mean(0) - ref_mean).abs().max()),
            "second": float((z.T @ z / len(z) - ref_second).abs().max()),
            "basin_tv": 0.5 * float(np.abs(basins(z, xi) - ref_basins).sum()),
            "basins": basins(z, xi).tolist(),
        }
        log(f"n=64: {name} {result['n64'][name]}")
    return result


def report_lines(result: dict | None) -> list[str]:
    """The ``BENCHMARKS.md`` section (empty without a result)."""
    if not result:
        return []
    exact = result.get("exact", {})
    lines = [
        "## The negative phase on machines with separated modes",
        "",
        f"TV to exact enumeration, {result['draws']:,} draws (`benchmarks/samplers_modes.py`, seed "
        f'{result["seed"]}); "fresh" is how `sample_prior` / `generate` draw, "training calls" how '
        "the negative phase of training draws (persistent, 256 chains, one sweep per call; every 20th "
        "call kept).",
        "",
    ]
    if exact:
        names = list(next(iter(exact.values())))
        lines += ["| sampler | " + " | ".join(exact) + " |", "|---" * (len(exact) + 1) + "|"]
        for name in names:
            lines.append(f"| {name} | " + " | ".join(f"{exact[m][name]:.3f}" for m in exact) + " |")
        lines.append("")
    n64 = result.get("n64", {})
    if n64:
        lines += [
            "64-unit machine with four planted modes, against a long tempering reference (16 "
            "replicas, 1,000 burn-in sweeps); reference basin weights "
            + " / ".join(f"{w:.2f}" for w in n64["reference basins"])
            + " (last: no pattern).",
            "",
            "| sampler | max abs diff E[z] | max abs diff E[zzᵀ] | basin TV |",
            "|---|---|---|---|",
        ]
        for name, row in n64.items():
            if name != "reference basins":
                lines.append(f"| {name} | {row['mean']:.3f} | {row['second']:.3f} | {row['basin_tv']:.3f} |")
        lines.append("")
    cost = result.get("cost")
    if cost:
        lines += [
            "Training time per epoch, new default over old (`benchmarks/sampler_cost.py`: CPU time "
            "of the process, one thread, the default model, the two samplers' fits interleaved in "
            "one run, epochs after the first, the fastest fit of each):",
            "",
            "| set | epochs × fits | old s/epoch | new s/epoch | ratio | first epoch old / new (s) |",
            "|---|---|---|---|---|---|",
        ]
        for name, row in cost["sets"].items():
            size = f"{row.get('epochs', cost.get('epochs'))} × {row.get('repeats', cost.get('repeats'))}"
            lines.append(
                f"| {name} | {size} | "
                f"{row['steady']['old']:.3f} | "
                f"{row['steady']['new']:.3f} | {cost['ratios'][name]:.2f} | "
                f"{row['first']['old']:.2f} / {row['first']['new']:.2f} |"
            )
        lines += [
            "",
            "The first epoch holds the one-off start: tempering now draws the replicas of an uncoupled "
            "machine (a prior at initialisation) exactly, without the 200 burn-in sweeps of 12 × 256 "
            "chains (about 2.4 s) it ran before. The same measurement as the throughput table's "
            "(`sampler_cost.json`): the exchange step compiled.",
            "",
        ]
    return lines


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["exact", "n64"], choices=["exact", "n64"])
    args = parser.parse_args(argv)
    result = run(parts=args.parts)
    # re-read just before writing: the parts may run in separate processes, each keeping the others'
    merged = json.loads(OUT.read_text()) if OUT.exists() else {}
    merged.update({k: v for k, v in result.items() if k not in ("exact", "n64")})
    for part in args.parts:
        merged[part] = result[part]
    result = merged
    OUT.write_text(json.dumps(result, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
