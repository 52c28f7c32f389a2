"""BENCHMARKS.md sections of the landscape runs (``benchmarks/landscape.py``): the landscape
table, its pseudotimes and root variants, and the tables that set training settings side by side
(the free bits against the landscape, with the set no setting was chosen on)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from benchmarks.tables import mean_sd as _ms  # mean ± sd, None and non-finite values left out

SPEARMAN_KEYS = {"a549": ("spearman",), "paul15": ("spearman_myeloid", "spearman_erythroid")}
ENERGY_KEYS = {
    "a549": ("energy_vs_time_spearman",),
    "paul15": ("energy_vs_pseudotime_lineage1_spearman", "energy_vs_pseudotime_lineage2_spearman"),
}


def _scvi_leiden(results: Path) -> dict[str, list[float]]:
    """Leiden ARI on scVI's latent per data set, as stored by ``benchmarks/baselines.py``."""
    path = results / "baselines.json"
    if not path.exists():
        return {}
    out: dict[str, list[float]] = {}
    for row in json.loads(path.read_text()).get("rows", []):
        if row.get("method") == "scvi" and row.get("ari") is not None:
            out.setdefault(row["dataset"], []).append(row["ari"])
    return out


def report_section(results: Path) -> list[str]:
    """BENCHMARKS.md section from ``results/landscape.json``."""
    path = Path(results) / "landscape.json"
    if not path.exists():
        return ["## Energy landscape (benchmarks/landscape.py)", "", "_landscape.json missing._", ""]
    payload = json.loads(path.read_text())
    rows, meta = payload["rows"], payload["meta"]
    out = [
        "## Energy landscape (benchmarks/landscape.py)",
        "",
        f"{meta.get('epochs')} epochs, seeds {meta.get('seeds')}, mean ± sd over seeds. Attractors: "
        '`tl.attractors` with the model: `method="meanfield"` (the default since this table: the '
        "fixed points of the mean-field equations at the prior's temperature that the cells' "
        'posteriors flow to), `method="greedy"` (code minima, merged below 1 kT by the same elder '
        "rule; barriers searched from each minimum to its 16 nearest, the other pairs chained "
        "through them) and "
        '`method="graph"` (basins of the cells\' smoothed energy on their kNN graph, 1 kT). Leiden ARI: '
        "the same latent (`obsm['X_qbm']`: code probabilities and Gaussian means), resolution chosen by "
        "NMI; on scVI's latent: the stored `baselines.json` rows. Seed-to-seed: ARI between the attractor "
        "labels of two seeds, over all pairs. Weight TV: total variation between the mean-field states' "
        "basin weights under the prior and their shares of the cells. Chains kept: of 200 Gibbs chains at "
        "the prior's temperature started in each state, the share still in it after 300 sweeps (mean "
        "over states), for the mean-field states and for the states the straight-line barriers with "
        "single linkage gave (their number in brackets).",
        "",
        *([f"_{meta['note']}._", ""] if meta.get("note") else []),
        "| data set | states (meanfield / greedy / graph) | code minima "
        "| attractor ARI meanfield / greedy / graph | Leiden ARI (our latent) | Leiden ARI (scVI's latent) "
        "| seed-to-seed meanfield / greedy / graph "
        "| weight TV (prior vs cells) | prior samples outside the cells' states "
        "| chains kept: states / straight-line states (n) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    scvi = _scvi_leiden(Path(results))
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        sel = [r for r in rows if r["dataset"] == dataset]
        stab = [s for s in payload.get("seed_stability", []) if s["dataset"] == dataset]
        tv = [0.5 * float(np.abs(np.subtract(r["basin_weight"], r["cell_weight"])).sum()) for r in sel]

        def col(key, group=sel):
            return _ms([r.get(key) for r in group])

        out.append(
            f"| {dataset} | {col('n_attractors')} / {col('greedy_n_attractors')} "
            f"/ {col('graph_n_attractors')} "
            f"| {col('n_minima')} "
            f"| {col('attractor_ari')} / {col('greedy_attractor_ari')} / {col('graph_attractor_ari')} "
            f"| {col('leiden_ari')} | {_ms(scvi.get(dataset) or [r.get('scvi_leiden_ari') for r in sel])} "
            f"| {col('attractor_ari', stab)} / {col('greedy_ari', stab)} / {col('graph_ari', stab)} "
            f"| {_ms(tv)} | {col('prior_unassigned')} "
            f"| {col('persistence')} / {col('line_persistence')} ({col('line_n_states')}) |"
        )
    out += [
        "",
        "Pseudotime (Spearman with the known time; paul15: myeloid / erythroid reference lineages). "
        "Rooted: the known root group (a549 0 h, paul15 multipotent progenitors). Root-free: "
        '`root="auto_energy"` (the state from which the energy falls most along the pseudotime: '
        "each Leiden state tried as the root group, the most negative Spearman of the cells' energy "
        "with the pseudotime wins). Auto root evidence: that Spearman per seed (`ρ`, clear at -0.5 or "
        "below; rows before stop 19 hold the earlier rules' evidence: the free-energy margin in kT or "
        "the mean-energy rule's effect size `d`). "
        "Single cell: 3 seeded cells of the "
        "root group, alone (`root_expand=0`) / expanded to 15 neighbours / to their state / with their "
        'side directions down-weighted (`root_expand="sides"`, the default for a root cell).',
        "",
        "| data set | rooted | root-free | root-free vs rooted | auto root in the known group "
        "| auto root evidence "
        "| energy vs time / lineage | one cell | one cell + 15 nn | one cell + state | one cell, sides |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset, keys in SPEARMAN_KEYS.items():
        sel = [r["trajectory"] for r in rows if r["dataset"] == dataset and "trajectory" in r]
        if not sel:
            continue

        def both(part, sel=sel, keys=keys):
            return " / ".join(_ms([t[part][k] for t in sel]) for k in keys)

        hits = sum(t["auto_root_in_known_group"] for t in sel)
        energy = " / ".join(_ms([t["energy"][k] for t in sel]) for k in ENERGY_KEYS[dataset])
        out.append(
            f"| {dataset} | {both('rooted')} | {both('root_free')} "
            f"| {_ms([t['root_free_vs_rooted_spearman'] for t in sel])} | {hits}/{len(sel)} "
            f"| {', '.join(_evidence(t['auto_root']) for t in sel)} | {energy} "
            f"| {both('single_cell_expand_0')} | {both('single_cell_expand_15')} "
            f"| {both('single_cell_expand_state')} | {both('single_cell_expand_sides')} |"
        )
    return [*out, "", *_root_expansion_section(Path(results)), *_root_fits_section(Path(results))]


#: The free bits against the landscape: the same fits' protocol on every set, one file per setting.
FREE_BITS_FILES = {
    "landscape_free_bits_off.json": "no free bits (the default since stop 21)",
    "landscape_free_bits_05.json": "continuous_free_bits=0.5 (stops 18-20)",
    "landscape_free_bits_025.json": "continuous_free_bits=0.25 (stop 20, another machine)",
}


def settings_table(results: Path, files: dict[str, str]) -> tuple[list[str], list[str]]:
    """``(notes, table)``: the landscape runs in ``files`` (name → training setting) that exist
    under ``results``, one row per data set and setting (data sets in the order they first
    appear), and each run's note."""
    runs = {f: json.loads((Path(results) / f).read_text()) for f in files if (Path(results) / f).exists()}
    notes = [f"_{p['meta']['note']}._" for p in runs.values() if p["meta"].get("note")]
    if not runs:
        return notes, []
    table = [
        "| data set | training | n | states (meanfield / greedy / graph) "
        "| attractor ARI meanfield / greedy / graph | seed to seed meanfield / greedy / graph "
        "| Leiden ARI: ours / scVI / totalVI |",
        "|---|---|---|---|---|---|---|",
    ]

    def cols(keys, group):
        return " / ".join(_ms([r.get(k) for r in group]) for k in keys)

    methods = ("", "greedy_", "graph_")
    datasets = dict.fromkeys(r["dataset"] for p in runs.values() for r in p["rows"])
    for dataset in datasets:
        for name, payload in runs.items():
            rows = [r for r in payload["rows"] if r["dataset"] == dataset]
            stab = [s for s in payload.get("seed_stability", []) if s["dataset"] == dataset]
            if not rows:
                continue
            table.append(
                f"| {dataset} | {files[name]} | {len(rows)} "
                f"| {cols([m + 'n_attractors' for m in methods], rows)} "
                f"| {cols([m + 'attractor_ari' for m in methods], rows)} "
                f"| {cols(['attractor_ari', 'greedy_ari', 'graph_ari'], stab)} "
                f"| {cols(['leiden_ari', 'scvi_leiden_ari', 'totalvi_leiden_ari'], rows)} |"
            )
    return notes, table


def free_bits_section(results: Path) -> list[str]:
    """BENCHMARKS.md section from :data:`FREE_BITS_FILES`: every set's landscape with and without
    the free bits, fitted on one machine (the decision of stop 21)."""
    notes, table = settings_table(results, FREE_BITS_FILES)
    if not table:
        return []
    return [
        "## Free bits against the landscape (benchmarks/landscape.py, stop 21)",
        "",
        "The same model and protocol as the landscape table (400 epochs at most, early stopping, 3 "
        "seeds), trained with and without the free bits on the Gaussian units (`--train "
        "'{\"continuous_free_bits\": 0}'`), every fit of a row pair on one machine. The rule, fixed "
        "before the fits: drop the floor if on every set the landscape keeps or gains states, the "
        "main table's scores stay within one seed sd, and held-out log p(x) falls by no more than "
        "stop 18 measured. `cite1k` is `pbmc_cite_1k` (1,024 PBMCs, one batch, RNA 100 genes and 17 "
        "proteins; bundled for the bad-input tests, never used to choose a landscape setting or a "
        "training default), scored like the CITE-seq row of the landscape table against the coarse "
        "protein-gated types (T, B, monocyte, NK); Leiden on scVI's (RNA) and totalVI's latents there: "
        "`baselines.fit_latent` at 400 epochs, each package's defaults. Mean ± sd over seeds; seed to "
        "seed: ARI between two seeds' labels, all pairs.",
        "",
        *[line for note in notes for line in (note, "")],
        *table,
        "",
    ]


def _evidence(auto_root: dict) -> str:
    """The auto root's evidence in a cell: the descent rule's Spearman ``ρ`` (or, in rows of the
    earlier rules, the free-energy margin in kT or the mean-energy rule's ``d``)."""
    if auto_root.get("evidence_method") == "descent":
        return f"ρ {auto_root['evidence_spearman']:.2f}"
    if auto_root.get("evidence_method") == "free_energy":
        return f"{auto_root['evidence_margin']:.2f} kT"
    return f"d {auto_root.get('evidence_effect_size', float('nan')):.2f}"


def _rows_and_meta(path: Path) -> tuple[list[dict], dict] | None:
    """A result file's ``rows`` and ``meta`` (``{}`` when it has none), or ``None`` if it is absent."""
    if not path.exists():
        return None
    payload = json.loads(path.read_text())
    return payload["rows"], payload.get("meta", {})


def _root_expansion_section(results: Path) -> list[str]:
    """Table of ``results/root_expansion.json`` (``benchmarks/root_expansion.py``), if present."""
    if (loaded := _rows_and_meta(results / "root_expansion.json")) is None:
        return []
    rows, meta = loaded
    names = [k for k in rows[0] if isinstance(rows[0][k], dict)]
    out = [
        "One root cell, every variant tried (`benchmarks/root_expansion.py`: the same saved fits, "
        f"{meta.get('cells', '?')} seeded cells of the root group per seed, mean over the cells, "
        "then mean ± sd over the seeds; `group`: mean DPT from the root group, `group_centroid`: "
        "DPT from its centroid; the variants are described in the script). "
        '`sides` is `root_expand="sides"`, the default for a root cell.'
        + (f" {meta['note']}" if meta.get("note") else ""),
        "",
        "| variant | a549 | paul15 (myeloid / erythroid) |",
        "|---|---|---|",
    ]
    for name in names:
        cells = []
        for dataset, keys in SPEARMAN_KEYS.items():
            sel = [r for r in rows if r["dataset"] == dataset]
            cells.append(" / ".join(_ms([r[name][k] for r in sel]) for k in keys) if sel else "—")
        out.append(f"| {name} | {cells[0]} | {cells[1]} |")
    return [*out, ""]


#: Rows of :func:`_root_fits_section`: the known root group, one fit's energy, three fits' energies.
ROOT_FITS_VARIANTS = {
    "rooted": "known root group",
    "one_fit": "auto_energy, this seed's energy",
    "fits": "auto_energy, all the fits' energies",
}


def _root_fits_section(results: Path) -> list[str]:
    """Table of ``results/root_fits.json`` (``benchmarks/root_fits.py``), if present."""
    if (loaded := _rows_and_meta(results / "root_fits.json")) is None:
        return []
    rows, meta = loaded
    out = [
        "Root-free pseudotime from one fit and from several (`benchmarks/root_fits.py`): on each "
        "seed's cell graph, the root chosen by `root=\"auto_energy\"` from that seed's energy and "
        "from the energies of all the fits of the row (`energy_key=[...]`: their consensus; each fit's "
        "own root on this graph in brackets), against the known root group. Spearman with the "
        "truth per graph seed, then mean ± sd; warned: an `AmbiguousRootWarning` (weak descent, or "
        "the fits root in different states)." + (f" {meta['note']}." if meta.get("note") else ""),
        "",
        "| data set | fits (seeds) | root from | Spearman per graph seed | mean ± sd | warned "
        "| roots (fits' own) |",
        "|---|---|---|---|---|---|---|",
    ]

    for dataset, seeds in dict.fromkeys((r["dataset"], tuple(r["fit_seeds"])) for r in rows):
        keys = SPEARMAN_KEYS.get(dataset)
        sel = [r for r in rows if r["dataset"] == dataset and tuple(r["fit_seeds"]) == seeds]
        for variant, label in ROOT_FITS_VARIANTS.items():
            runs = [r[variant] for r in sel if variant in r]
            if not runs or keys is None:
                continue
            per_seed = ", ".join(" / ".join(f"{run[k]:.2f}" for k in keys) for run in runs)
            mean = " / ".join(_ms([run[k] for run in runs]) for k in keys)
            roots = ", ".join(
                run["root_state"]
                + (f" ({' '.join(run['fit_root_states'])})" if "fit_root_states" in run else "")
                for run in runs
            )
            warned = f"{sum(run['warned'] for run in runs)}/{len(runs)}"
            seed_list = ", ".join(map(str, seeds))
            out.append(f"| {dataset} | {seed_list} | {label} | {per_seed} | {mean} | {warned} | {roots} |")
    return [*out, ""]
