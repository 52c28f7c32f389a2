"""Reading one fitted prior at other scales: the merging threshold, the temperature, persistence.

``tl.attractors`` reads the prior's states at its own temperature (β = 1) and merges mean-field
states that a free-energy barrier below ``min_barrier = 1`` kT separates. Both are choices a user
can make; this script asks whether another reading turns a continuum's prior into stable cell
states, on saved fits (no training):

- the persistence of the mean-field states: the heights of the elder rule's joins
  (:func:`qbm_pyro.tl._barriers.merge_heights`), and the widest gap between consecutive heights
  (a scale at which the states are distinct);
- ``min_barrier`` in ``MIN_BARRIERS`` at β = 1: states, ARI against the labels, seed to seed;
- the prior read colder, ``h`` and ``J`` times β for β in ``BETAS`` (the states of
  ``exp(-βE)``; barriers in its own kT), ``min_barrier`` 1: the same scores.

Usage: ``python benchmarks/landscape_reading.py --fits DIR [--datasets paul15 mixology a549 cite]
[--seeds 0 1 2] [--note TEXT]`` (``DIR/<set>/seed<k>`` saved with :meth:`~qbm_pyro.QBMVAE.save`)
→ ``benchmarks/results/landscape_reading.json`` (rendered by ``benchmarks/report.py``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` importable as a script

import numpy as np  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

import qbm_pyro  # noqa: E402
from benchmarks.environment import run_meta  # noqa: E402
from benchmarks.quality import load  # noqa: E402
from benchmarks.tables import mean_sd, note_lines, read_results  # noqa: E402
from qbm_pyro.tl._barriers import MIN_BARRIER, merge_by_persistence, merge_heights  # noqa: E402
from qbm_pyro.tl._energy_landscape import EnergyLandscape  # noqa: E402
from qbm_pyro.tl._meanfield_attractors import mean_field_states, merged_states, path_barriers  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "landscape_reading.json"
MIN_BARRIERS = (0.0, 0.25, 0.5, 1.0, 2.0)
BETAS = (1.5, 2.0, 3.0)


def readings(h: np.ndarray, J_sym: np.ndarray, probs: np.ndarray) -> tuple[dict, dict]:
    """Each reading's state of every cell (``{name: labels}``), and the persistence of the states
    at β = 1 (``{"fixed_points", "merge_heights", "widest_gap", "gap_at"}``)."""
    cell_state, centres, energy_f, _ = mean_field_states(h, J_sym, probs)
    barriers = path_barriers(h, J_sym, centres)
    labels = {
        f"min_barrier {t:g}": merge_by_persistence(energy_f, barriers, t)[cell_state] for t in MIN_BARRIERS
    }
    for beta in BETAS:
        merged = merged_states(beta * h, beta * J_sym, probs, MIN_BARRIER)
        labels[f"beta {beta:g}"] = merged.group[merged.cell_state]
    heights = merge_heights(energy_f, barriers)
    steps = np.diff(np.concatenate([[0.0], heights]))
    persistence = {
        "fixed_points": int(len(centres)),
        "merge_heights": heights.round(3).tolist(),
        # the widest step up between consecutive joins (from 0 for the first) and the height it ends at
        "widest_gap": float(steps.max()) if steps.size else 0.0,
        "gap_at": float(heights[steps.argmax()]) if steps.size else 0.0,
    }
    return labels, persistence


def run(fits: Path, dataset: str, seed: int) -> tuple[dict, dict]:
    data, label_key, _, _ = load(dataset)
    model = qbm_pyro.QBMVAE.load(fits / dataset / f"seed{seed}", data)
    landscape = EnergyLandscape.from_model(model)
    probs = model.get_latent_representation(representation="probs").astype(np.float64)
    labels, row = readings(landscape.h, landscape.J_sym, probs)
    row |= {"dataset": dataset, "seed": seed, "states": {k: int(v.max() + 1) for k, v in labels.items()}}
    if label_key:
        truth = data.obs[label_key].astype(str).to_numpy()
        row["ari"] = {k: float(adjusted_rand_score(truth, v)) for k, v in labels.items()}
    return row, labels


def seed_to_seed(labels: dict[int, dict]) -> dict[str, float]:
    """Mean ARI between the states of every pair of seeds, per reading."""
    pairs = list(itertools.combinations(sorted(labels), 2))
    if not pairs:
        return {}
    names = labels[pairs[0][0]]
    return {
        k: float(np.mean([adjusted_rand_score(labels[a][k], labels[b][k]) for a, b in pairs])) for k in names
    }


def report_section(results: Path) -> list[str]:
    """Markdown lines of the section (nothing if the results file is missing)."""
    result = read_results(results, OUT.name)
    if result is None:
        return []
    rows, stability = result["rows"], result["seed_to_seed"]
    names = list(rows[0]["states"])
    md = [
        "## Reading the prior at other scales (benchmarks/landscape_reading.py)",
        "",
        "The mean-field states of the same saved fits (no training) under other readings: merged "
        f"below other barriers (`min_barrier`, kT; {MIN_BARRIER:g} is `tl.attractors`' default) and "
        "the prior read colder (h and J times β, merged below 1 kT of that temperature). "
        "Persistence: the barriers (kT, above the higher floor) at which the elder rule joins the "
        "states, lowest first (`uns['qbm_attractor']['merge_heights']`), and the widest step "
        "between consecutive joins (from 0 for the first) with the height it ends at. "
        "Mean ± sd over seeds; seed to seed: ARI between two seeds' states, all pairs.",
        "",
        *note_lines(result),
        "| data set | seed | fixed points | merge heights (kT) | widest gap (kT, ending at) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        heights = ", ".join(f"{x:.2f}" for x in r["merge_heights"]) or "—"
        md.append(
            f"| {r['dataset']} | {r['seed']} | {r['fixed_points']} | {heights} | "
            f"{r['widest_gap']:.2f} ({r['gap_at']:.2f}) |"
        )
    md += ["", "| data set | reading | states | ARI vs labels | seed to seed |", "|---|---|---|---|---|"]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        sub = [r for r in rows if r["dataset"] == dataset]
        for name in names:
            states = mean_sd([r["states"][name] for r in sub], digits=1)
            ari = mean_sd([r["ari"][name] for r in sub]) if "ari" in sub[0] else "—"
            s2s = stability.get(dataset, {}).get(name)
            md.append(f"| {dataset} | {name} | {states} | {ari} | {'—' if s2s is None else f'{s2s:.3f}'} |")
    return md + [""]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fits", type=Path, required=True)
    parser.add_argument("--datasets", nargs="+", default=["paul15", "mixology", "a549", "cite"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--note", default=None)
    args = parser.parse_args(argv)
    rows, stability = [], {}
    for dataset in args.datasets:
        labels = {}
        for seed in args.seeds:
            row, labels[seed] = run(args.fits, dataset, seed)
            rows.append(row)
            print(json.dumps(row), flush=True)
        stability[dataset] = seed_to_seed(labels)
    meta = run_meta("scikit-learn", note=args.note, seeds=args.seeds, fits=str(args.fits))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows, "seed_to_seed": stability}, indent=1) + "\n")
    print("\n".join(report_section(args.out.parent)))


if __name__ == "__main__":
    main()
