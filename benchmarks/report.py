"""Write ``BENCHMARKS.md`` (repo root) and its figures from ``benchmarks/results/*.json``.

Usage: ``python benchmarks/report.py [--results benchmarks/results] [--out BENCHMARKS.md]``.

Reads whatever of ``samplers.json``, ``quality.json``, ``baselines.json``, ``cost.json`` and
``trajectory.json`` exists (a missing one is named in the report) and writes tables of mean ± sd
over seeds per data set, method and metric, the sampler table, the cost ratios, the scaling and
prior-share tables, a plain list of where the Boltzmann prior does not win, and PNG figures
under the results directory. Nothing is recomputed. ``build`` calls one function a section; the
shared table helpers are in ``report_tables.py``, the figures in ``report_figures.py``, the cost
and trajectory sections in ``report_cost.py`` and ``report_trajectories.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks import (  # noqa: E402
    active_units,
    bad_inputs,
    cluster_splits,
    code_separation,
    de,
    graph_readout,
    landscape_levers,
    landscape_reading,
    leiden_resolutions,
    loss_speed,
    mapping,
    missing_modality,
    prior_levers,
    prior_matters,
    prior_refit,
    report_landscape,
    small_data,
    states_vs_leiden,
    throughput,
    training_length,
)
from benchmarks.methods import METHOD_NAMES  # noqa: E402
from benchmarks.report_cost import _cost_section, _cost_with_figure  # noqa: E402, F401
from benchmarks.report_defaults import DEFAULT_EPOCHS, defaults_section, with_baselines  # noqa: E402
from benchmarks.report_figures import _figure, bar_figure  # noqa: E402
from benchmarks.report_provenance import provenance_section  # noqa: E402
from benchmarks.report_tables import (  # noqa: E402
    CAVEATS,
    DATASET_NAMES,
    LIGHT,
    SUITE,
    _fmt,
    _order,
    losses,
    summarise,
    table,
)
from benchmarks.report_trajectories import _trajectory_models_section, _trajectory_section  # noqa: E402
from benchmarks.tables import mean_sd  # noqa: E402


def _load(results: Path, name: str):
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


# ---------------------------------------------------------------------- sections


def _samplers_section(samplers: dict | None) -> list[str]:
    if samplers is None:
        return ["_samplers.json missing: run `python benchmarks/run.py --only samplers`._", ""]
    from benchmarks import samplers as sampler_bench

    return [sampler_bench.markdown(samplers).strip(), ""]


def _sampler_modes_section(result: dict | None) -> list[str]:
    """The negative phase on machines with separated modes (``benchmarks/samplers_modes.py``)."""
    if result is None:
        return []
    from benchmarks import samplers_modes

    return samplers_modes.report_lines(result)


def build(results: Path, out_dir: Path = ROOT) -> tuple[str, list[Path]]:
    """BENCHMARKS.md's text from the result files, and the figures it links; one call a section."""
    quality, baselines = _load_quality(results), _load(results, "baselines")
    light_rows = (quality or {}).get("rows", []) + (baselines or {}).get("rows", [])
    light = summarise(light_rows, LIGHT + ["seconds"])
    suite = summarise((baselines or {}).get("suite", []), SUITE)
    figures: list[Path] = []
    md = _header_section()
    md += _missing_section(results, quality, baselines)
    md += defaults_section(results, quality)
    md += _losses_section(light, suite, (quality or {}).get("meta", {}).get("epochs"))
    md += _light_section(light, quality, baselines, results, out_dir, figures)
    for longer in sorted(results.glob("quality_*.json")):
        md += _training_length_section(with_baselines(longer, results), light)
    md += training_length.report_section(results)
    md += _hierarchical_section(_load(results, "hierarchical_posterior"), light_rows)
    md += _latent_variants_section(results)
    md += leiden_resolutions.report_section(results)
    md += cluster_splits.report_section(results)
    md += active_units.report_section(results)
    md += _suite_section(suite, baselines, results, out_dir, figures)
    md += prior_matters.report_section(results)
    md += prior_matters.report_section(results, "prior_matters_200.json")
    md += prior_matters.report_section(results, "prior_matters_400.json")
    md += _prior_lever_columns(results)
    md += prior_levers.report_section(results)
    md += prior_levers.report_section(
        results, "prior_levers_400.json", "Levers at the defaults: 400 epochs, the prior's last fit"
    )
    md += prior_levers.report_section(
        results, "prior_levers_code_size.json", "The size of the binary code at the defaults"
    )
    md += prior_levers.report_section(
        results,
        "prior_levers_free_bits.json",
        "Free bits on the Gaussian units' KL (the default of stops 18-20)",
    )
    md += prior_levers.report_section(
        results,
        "prior_levers_free_bits_refit.json",
        "Free bits on a549, refitted on one machine (stop 21)",
    )
    md += code_separation.report_section(results)
    md += prior_refit.report_section(results)
    md += _cost_with_figure(_load(results, "cost"), results, out_dir, figures)
    md += ["## Samplers (benchmarks/samplers.py)", ""]
    md += _samplers_section(_load(results, "samplers"))
    md += _sampler_modes_section(_load(results, "samplers_modes"))
    md += ["## Trajectories on PCA latents (benchmarks/trajectory.py)", ""]
    md += _trajectory_section(_load(results, "trajectory"))
    md += ["## Trajectories on the fitted latents (benchmarks/trajectory_models.py)", ""]
    md += _trajectory_models_section((_load(results, "trajectory_models") or {}).get("rows"))
    md += report_landscape.report_section(results)
    md += states_vs_leiden.report_section(results)
    md += graph_readout.report_section(results)
    md += report_landscape.free_bits_section(results)
    md += landscape_levers.report_section(results)
    md += landscape_reading.report_section(results)
    md += throughput.report_lines(_load(results, "throughput"))
    md += loss_speed.report_section(results)
    md += _negative_phase_cost(_load(results, "sampler_cost"))
    md += de.report_section(_load(results, "de"))
    md += mapping.report_section(results)
    md += missing_modality.report_section(_load(results, "missing_modality"))
    md += missing_modality.dropout_section(Path(results))
    md += small_data.section(results)
    md += bad_inputs.report_section(results)
    md += provenance_section()
    return "\n".join(md).rstrip() + "\n", figures


def _latent_variants_section(results: Path) -> list[str]:
    """The same fits scored on other latent representations (benchmarks/latent_variants.py)."""
    from benchmarks import latent_variants

    return latent_variants.report_section(results)


def _negative_phase_cost(result: dict | None) -> list[str]:
    """Per-epoch training time of the default negative phase (persistent tempering) against the
    old one (Gibbs PCD-1), same run (``benchmarks/sampler_cost.py --out .../sampler_cost.json``)."""
    cost = (result or {}).get("cost")
    if not cost:
        return []
    md = [
        "Throughput of the negative phase: seconds per training epoch of the default model with the "
        "default sampler (persistent parallel tempering) and with `sampler=default_gibbs()` (the old "
        "PCD-1 Gibbs), one run, one torch thread, the two fits interleaved; CPU time of the process "
        "(steady on a shared machine), median of the epochs after the first, fastest fit of each. "
        "Tempering with its exchange step compiled (numba; before it, paul15 gave 1.29 at 10 × 2). "
        "Measured beside two other benchmark processes on 2 cores: single epochs vary by up to 2x, "
        "so the small sets ran 30 epochs × 4 fits.",
        "",
        "| set | epochs × fits | Gibbs PCD-1 s/epoch | tempering s/epoch | ratio "
        "| first epoch Gibbs / tempering (s) |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in cost["sets"].items():
        md.append(
            f"| {name} | {row['epochs']} × {row['repeats']} | {row['steady']['old']:.3f} | "
            f"{row['steady']['new']:.3f} | {cost['ratios'][name]:.2f} | "
            f"{row['first']['old']:.2f} / {row['first']['new']:.2f} |"
        )
    return md + [""]


def _prior_lever_columns(results: Path) -> list[str]:
    """ "Does the learned prior matter?", one column per lever on the learned prior
    (``prior_levers.json``): each against the fixed prior of the same settings, paired by seed."""
    result = _load(results, "prior_levers")
    if not result:
        return []
    rows, names = result["rows"], prior_levers.REPORT_NAMES
    learned = [m for m in prior_levers.REPORT_METHODS if prior_levers.ANCHOR[m] != m]
    md = [
        "### Does the learned prior matter? One column per lever (benchmarks/prior_levers.py)",
        "",
        f"{result['meta'].get('epochs', '?')} epochs, {result['meta']['n_importance_samples']} importance "
        "samples; each learned prior against the fixed Bernoulli(½) prior of the same settings (same "
        'seed, same held-out cells). Mean ± sd over seeds (n in brackets). Full tables: "Levers on the '
        'learned prior" below.',
        "",
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        sub = [r for r in rows if r["dataset"] == dataset]
        methods = [m for m in learned if any(r["method"] == m for r in sub)]
        if not methods:
            continue
        md += [f"#### {dataset} ({sub[0].get('n_labels')} types or lines)", ""]
        md.append(
            "| measurement | "
            + " | ".join(f"{names[m]} ({sum(r['method'] == m for r in sub)})" for m in methods)
            + " |"
        )
        md.append("|---" * (len(methods) + 1) + "|")
        for key, label, paired in (
            ("marginal_ll", "held-out log p(x) minus the fixed prior's (nats/cell)", True),
            ("marginal_ll", "… minus the fixed prior's at default settings (64 + 16, plain KL)", "bernoulli"),
            ("n_basins", "prior basins with ≥ 2% of its mass", False),
            ("basin_ari", "basin ARI (posterior-mode code descended)", False),
            ("joint_knn", "15-NN acc., joint latent", False),
            ("joint_knn", "15-NN acc., joint latent, minus the fixed prior's", True),
            ("hard_knn", "15-NN acc., hard code", False),
            ("entropy_bits", "posterior entropy per unit (bits)", False),
        ):
            cells = [
                mean_sd(
                    prior_levers.paired_difference(sub, m, key, paired if isinstance(paired, str) else None)
                    if paired
                    else [r.get(key) for r in sub if r["method"] == m]
                )
                for m in methods
            ]
            md.append(f"| {label} | " + " | ".join(cells) + " |")
        md.append("")
    return md


def _load_quality(results: Path) -> dict | None:
    """quality.json, or the rows quality.py has written so far to quality.jsonl (one per line)."""
    quality = _load(results, "quality")
    progress = results / "quality.jsonl"
    if quality is None and progress.exists():
        rows = [json.loads(line) for line in progress.read_text().splitlines() if line.strip()]
        quality = {"rows": rows, "meta": {"epochs": "see quality.jsonl", "note": "partial"}}
    return quality


def _header_section() -> list[str]:
    return [
        "# Benchmarks",
        "",
        "Generated by `benchmarks/report.py` from `benchmarks/results/*.json` — do not edit by hand; "
        "rerun `python benchmarks/run.py` (or `nox -s bench`). Protocol: DESIGN §5 (15-NN "
        "accuracy/macro-F1 in 5-fold stratified CV, Leiden ARI/NMI at the NMI-best resolution, "
        "batch-mixing entropy; scib-metrics; ≥ 3 seeds, mean ± sd, same cells and preprocessing "
        "for every method). Higher is better everywhere.",
        "",
        "The first section has every method at its package defaults (400 epochs on these sets); "
        "the sections after it say their own epochs, seeds and code. Which code each section "
        "measured, and what was re-run after each change of the defaults, is at the end "
        '("Provenance").',
        "",
    ]


def _missing_section(results: Path, quality: dict | None, baselines: dict | None) -> list[str]:
    found = {"quality": quality, "baselines": baselines}
    names = ["samplers", "quality", "baselines", "cost", "trajectory"]
    missing = [n for n in names if (found[n] if n in found else _load(results, n)) is None]
    return [f"Missing result files (sections left out): {', '.join(missing)}.", ""] if missing else []


def _losses_section(light: dict, suite: dict, epochs=None) -> list[str]:
    run = f"the {epochs}-epoch main run" if epochs else "the main run"
    md = [f"## Where the Boltzmann prior does not win: {run}", ""]
    sentences = losses(light, LIGHT, "light protocol") + losses(suite, SUITE, "suite")
    if sentences:
        md += [
            "Every data set × metric where QBM-VAE (64 binary + 16 Gaussian units, Boltzmann prior; "
            "and its RNA-only fit where there is one) has a lower mean than the best other method "
            "(Gaussian twin, scvi-tools, PCA) in the same run:",
            "",
            *sentences,
            "",
        ]
    else:
        md += ["No metric where another method has a higher mean (or no QBM-VAE results yet).", ""]
    own = losses(light, LIGHT, "light protocol", variants=True) + losses(suite, SUITE, "suite", variants=True)
    if own:
        md += [
            "### Where a variant of our own model beats the default",
            "",
            "Ablations (fixed Bernoulli prior, binary-only latent, RBM) and settings (batches to the "
            "encoders too, RNA alone) with a higher mean than the default QBM-VAE:",
            "",
            *own,
            "",
        ]
    return md


def _light_section(
    light: dict,
    quality: dict | None,
    baselines: dict | None,
    results: Path,
    out_dir: Path,
    figures: list[Path],
) -> list[str]:
    md = ["## Latent quality (light protocol: quality.py + baselines.py)", ""]
    meta_q = (quality or {}).get("meta", {})
    meta_b = (baselines or {}).get("fit_meta", {})
    if meta_q:
        md.append(
            "QBM-VAE variants, Gaussian twin and PCA: `benchmarks/quality.py`, "
            f"{meta_q.get('epochs')} epochs (early stopping on), seeds {meta_q.get('seeds')}, "
            f"torch {meta_q.get('torch')}."
        )
    if meta_b:
        md.append(
            f"Baselines: `benchmarks/baselines.py fit`, {meta_b.get('epochs')} epochs, seeds "
            f"{meta_b.get('seeds')}, scvi-tools {meta_b.get('scvi-tools')}; {meta_b.get('settings')}."
        )
    md.append("")
    for dataset in light:
        md += [
            f"### {DATASET_NAMES.get(dataset, dataset)}",
            "",
            table(light, dataset, LIGHT + ["seconds"]),
            "",
        ]
        if dataset in CAVEATS:
            md += [f"_Caveat: {CAVEATS[dataset]}_", ""]
    if bar_figure(light, LIGHT, results / "quality_bars.png", "light protocol, mean ± sd over seeds"):
        md += _figure("light metrics", results / "quality_bars.png", out_dir, figures)
    return md


def _suite_section(
    suite: dict, baselines: dict | None, results: Path, out_dir: Path, figures: list[Path]
) -> list[str]:
    md = ["## Linear probe and scib-metrics (baselines.py suite)", ""]
    if not suite:
        return md + ["_No suite results yet: run `python benchmarks/baselines.py suite`._", ""]
    meta_s = (baselines or {}).get("suite_meta", {})
    md += [
        "Logistic regression (standardised latent, 5-fold stratified CV) for every saved latent; "
        f"scib-metrics {meta_s.get('scib-metrics')} `Benchmarker` (unscaled values; k-means "
        "NMI/ARI; BRAS is scib-metrics' batch silhouette; batch metrics only with batches; "
        "isolated labels only with batches) with all methods and seeds of a data set in one "
        f"Benchmarker. scib computed: {meta_s.get('scib')}.",
        "",
    ]
    for dataset in suite:
        md += [f"### {DATASET_NAMES.get(dataset, dataset)}", "", table(suite, dataset, SUITE), ""]
    if bar_figure(suite, SUITE, results / "suite_bars.png", "linear probe and scib-metrics"):
        md += _figure("suite metrics", results / "suite_bars.png", out_dir, figures)
    return md


def _training_length_section(longer: dict | None, light: dict) -> list[str]:
    """The same fits at the longer epoch cap of ``quality_<epochs>.json`` beside the main run."""
    if not longer or not longer.get("rows"):
        return []
    epochs = longer.get("meta", {}).get("epochs")
    summary = summarise(longer["rows"], LIGHT + ["epochs_run"])
    out = [
        f"## Training length: {epochs} epochs against the main run",
        "",
        f"The same models, seeds and data, at most {epochs} epochs (each package's own KL warm-up and "
        "early stopping), beside the main "
        "run's numbers (`quality.py --epochs "
        f"{epochs} --out benchmarks/results/quality_{epochs}.json --latents "
        f"benchmarks/results/latents_{epochs}`). Cells: {epochs}-epoch value / main run value."
        + (f" {longer['meta']['note']}" if longer.get("meta", {}).get("note") else ""),
        "",
    ]
    for dataset, methods in summary.items():
        metrics = [m for m in LIGHT if any(m in stats for stats in methods.values())]
        out += [
            f"### {DATASET_NAMES.get(dataset, dataset)}",
            "",
            "| method | n | epochs run | " + " | ".join(metrics) + " |",
            "|---|---|---|" + "---|" * len(metrics),
        ]
        for method in _order(methods):
            stats = methods[method]
            main = light.get(dataset, {}).get(method, {})
            cells = [f"{_fmt(stats.get(m))} / {_fmt(main.get(m))}" for m in metrics]
            n = max(v[2] for v in stats.values())
            out.append(
                f"| {METHOD_NAMES.get(method, method)} | {n} | {stats['epochs_run'][0]:.0f} | "
                + " | ".join(cells)
                + " |"
            )
        out.append("")
    if epochs == DEFAULT_EPOCHS:  # its scib table is the defaults section's; not twice
        return out + [
            f'scib-metrics of the {epochs}-epoch fits: see "At the package defaults" above.',
            "",
        ]
    return out + _longer_suite_lines(longer.get("suite", []), epochs)


#: The suite's summary scores shown for the longer fits.
SUITE_TOTALS = ["scib_bio_conservation", "scib_batch_correction", "scib_total", "scib_ari", "scib_nmi"]


def _longer_suite_lines(rows: list[dict], epochs) -> list[str]:
    """scib-metrics of the longer fits' latents (``baselines.py suite`` rows), one table."""
    if not rows:
        return []
    summary = summarise(rows, SUITE_TOTALS)
    out = [
        f"### scib-metrics at {epochs} epochs",
        "",
        "`baselines.py suite` on the saved latents of these fits (scib-metrics; PCA for reference).",
        "",
        "| data set | method | n | " + " | ".join(SUITE_TOTALS) + " |",
        "|---|---|---|" + "---|" * len(SUITE_TOTALS),
    ]
    for dataset, methods in summary.items():
        for method in _order(methods):
            stats = methods[method]
            n = max(v[2] for v in stats.values())
            cells = [_fmt(stats.get(m)) for m in SUITE_TOTALS]
            name = METHOD_NAMES.get(method, method)
            out.append(
                f"| {DATASET_NAMES.get(dataset, dataset)} | {name} | {n} | " + " | ".join(cells) + " |"
            )
    return out + [""]


def _hierarchical_section(result: dict | None, light_rows: list[dict]) -> list[str]:
    """benchmarks/hierarchical_posterior.py beside the factorial-posterior fits of the main run."""
    if not result or not result.get("rows"):
        return []
    metrics = ["knn_accuracy", "knn_macro_f1", "ari", "nmi", "validation_loss"]
    factorial = [r for r in light_rows if r["dataset"] == "paul15" and r["method"] in ("qbm", "bernoulli")]
    meta = result.get("meta", {})
    return [
        "## Experiment: a hierarchical binary posterior (benchmarks/hierarchical_posterior.py)",
        "",
        f"paul15, 64 binary + 16 Gaussian units, {meta.get('epochs')} epochs, seeds {meta.get('seeds')}. "
        "The two hierarchical rows condition the second half of the binary units on the relaxed "
        "sample of the first (DVAE++-style groups), so the posterior can carry correlations the "
        "couplings could match; the other two are the factorial-posterior fits of the main run. "
        "Validation loss: negative ELBO per cell (lower is better).",
        "",
        table(summarise(result["rows"] + factorial, metrics), "paul15", metrics),
        "",
    ]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    text, figures = build(args.results, args.out.parent)
    args.out.write_text(text)
    print(f"wrote {args.out} and {len(figures)} figure(s)")


if __name__ == "__main__":
    main()
