"""Does another reading of the same landscape give steadier states? ``method="graph"``'s settings.

``tl.attractors(method="graph")`` reads the prior's states off the cells: each cell's energy
``E(q)``, averaged once over the cell and its neighbours on the cells' ``n_neighbors``-NN graph,
then the basins of that smoothed energy on the graph, those a barrier below ``min_barrier`` kT
separates merged. Issue 21 asks for states that come back across seeds (ARI ≥ 0.8 between two
seeds' labels) and match the types. This study re-reads the same saved fits over a grid of the
three read-out settings (neighbours, rounds of averaging, merge threshold), with no training and
no labels in the choice, and reports per setting the states per fit, their ARI against the labels
(CITE-seq: its coarse protein-gated types) and the seed-to-seed ARI (over pairs of fits of which
at least one has two states or more). The default setting's labels are checked against
``tl.attractors``' own on every fit (``default_matches``).

Usage: ``python benchmarks/graph_readout.py --fits DIR [--datasets paul15 mixology cite]
[--seeds 0 1 2] [--note TEXT]``; ``DIR/<set>/seed<k>`` as ``quality.py --reuse`` reads (saved
default fits).
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` importable as a script

import numpy as np  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

import qbm_pyro  # noqa: E402
from benchmarks.cluster_splits import study_parser, write_study  # noqa: E402
from benchmarks.landscape import _types  # noqa: E402
from benchmarks.quality import load  # noqa: E402
from benchmarks.tables import mean_sd, note_lines, read_results  # noqa: E402
from qbm_pyro.tl._energy_landscape import EnergyLandscape  # noqa: E402
from qbm_pyro.tl._graph_attractors import cell_graph_adjacency  # noqa: E402
from qbm_pyro.tl._graph_basins import persistence_basins, smooth_on_graph  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "graph_readout.json"
NEIGHBOURS = (15, 30)
ROUNDS = (1, 3, 10)
MIN_BARRIERS = (0.5, 1.0, 2.0, 4.0)
#: ``tl.attractors(method="graph")``'s defaults in this grid's terms.
DEFAULT = (15, 1, 1.0)


def readout(
    rep: np.ndarray, energy: np.ndarray, n_binary: int, seed: int, settings
) -> dict[tuple, np.ndarray]:
    """Basin labels (each cell's floor cell) of ``energy`` for every ``(n_neighbors, rounds,
    min_barrier)`` in ``settings``: the kNN graph of ``rep`` as ``tl.attractors`` builds it
    (Hellinger on the code, ``seed``), ``rounds`` of neighbourhood averaging, persistence basins."""
    out = {}
    for k in sorted({s[0] for s in settings}):
        adj = cell_graph_adjacency(rep, n_binary, k, "hellinger", seed)
        smoothed, done = np.asarray(energy, dtype=np.float64), 0
        for rounds in sorted({s[1] for s in settings if s[0] == k}):
            for _ in range(rounds - done):
                smoothed = smooth_on_graph(smoothed, adj)
            done = rounds
            for b in sorted({s[2] for s in settings if s[:2] == (k, rounds)}):
                out[(k, rounds, b)] = persistence_basins(smoothed, adj, b)
    return out


def run(fits: Path, dataset: str, seeds: list[int]) -> list[dict]:
    """One row per setting: states per fit, ARI against the types per fit, seed-to-seed ARI."""
    settings = list(itertools.product(NEIGHBOURS, ROUNDS, MIN_BARRIERS))
    labels, aris, matches = {s: [] for s in settings}, {s: [] for s in settings}, []
    for seed in seeds:
        data, label_key, _, _ = load(dataset)
        model = qbm_pyro.QBMVAE.load(fits / dataset / f"seed{seed}", data)
        truth = _types(data, dataset, label_key)
        qbm_pyro.tl.qbm(data, model)
        rep = np.asarray(data.obsm["X_qbm"], dtype=np.float64)
        landscape = EnergyLandscape.from_model(model)
        read = readout(rep, landscape.energy(rep[:, : landscape.n]), landscape.n, seed, settings)
        states = qbm_pyro.tl.attractors(
            data, model, method="graph", seed=seed, n_markers=0, n_prior_samples=0, copy=True
        ).obs["qbm_attractor"]
        matches.append(bool(adjusted_rand_score(states.astype(str), read[DEFAULT]) == 1.0))
        for s in settings:
            labels[s].append(read[s])
            aris[s].append(float(adjusted_rand_score(truth, read[s])))
    rows = []
    for s in settings:
        pairs = [  # two fits with one state each agree trivially: no evidence of stable states
            adjusted_rand_score(a, b)
            for a, b in itertools.combinations(labels[s], 2)
            if np.unique(a).size > 1 or np.unique(b).size > 1
        ]
        rows.append(
            {
                "dataset": dataset,
                "n_neighbors": s[0],
                "rounds": s[1],
                "min_barrier": s[2],
                "seeds": list(seeds),
                "n_states": [int(np.unique(x).size) for x in labels[s]],
                "ari": aris[s],
                "seed_to_seed": float(np.mean(pairs)) if pairs else None,
                "default_matches": matches if s == DEFAULT else None,
            }
        )
    return rows


def report_section(results: Path) -> list[str]:
    """Markdown lines of the section (nothing if the results file is missing)."""
    result = read_results(results, OUT.name)
    if result is None:
        return []
    md = [
        "## Reading the graph states another way (benchmarks/graph_readout.py)",
        "",
        'The same saved fits re-read by `tl.attractors(method="graph")`\'s pipeline over a grid of '
        "its settings: the cells' kNN graph (`k` neighbours), rounds of averaging the cells' energy "
        "over their neighbours (`rounds`; the method does one) and the merge threshold (`min "
        "barrier`, kT). No training, and no label enters a setting. States: per fit, mean ± sd; ARI "
        "against the labels (CITE-seq: its coarse protein-gated types), mean ± sd over fits; seed to "
        "seed: ARI between two fits' states, mean over the pairs (a pair of fits with one state each is left "
        "out: they agree trivially; `—` when no pair is left). **Bold**: the method's defaults (15, "
        "1, 1 kT), whose labels equal `tl.attractors`' on every fit "
        "(`default_matches` in the results).",
        "",
        *note_lines(result),
    ]
    rows = result["rows"]
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    md += [
        "| k | rounds | min barrier | "
        + " | ".join(f"{d}: states; ARI; seed to seed" for d in datasets)
        + " |",
        "|---|---|---|" + "---|" * len(datasets),
    ]
    by_setting: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        by_setting.setdefault((r["n_neighbors"], r["rounds"], r["min_barrier"]), {})[r["dataset"]] = r
    for setting, per_set in by_setting.items():
        cells = [str(v) for v in setting]
        for d in datasets:
            r = per_set.get(d)
            if r is None:
                cells.append("—")
                continue
            s2s = "—" if r["seed_to_seed"] is None else f"{r['seed_to_seed']:.3f}"
            cells.append(f"{mean_sd(r['n_states'], digits=1)}; {mean_sd(r['ari'])}; {s2s}")
        if setting == DEFAULT:
            cells = [f"**{c}**" for c in cells]
        md.append("| " + " | ".join(cells) + " |")
    return md + [""]


def main(argv=None) -> None:
    args = study_parser(__doc__, OUT, latents=False).parse_args(argv)
    write_study(args, [row for d in args.datasets for row in run(args.fits, d, args.seeds)])


if __name__ == "__main__":
    main()
