"""Run the benchmarks in order and write ``BENCHMARKS.md``.

Stages (each writes ``benchmarks/results/<stage>.json``): ``samplers`` (sampler accuracy and
speed), ``quality`` (QBM-VAE variants, Gaussian twin, PCA over seeds), ``baselines`` (scVI,
totalVI, MultiVI; needs the ``[bench]`` extra), ``suite`` (linear probe and scib-metrics of every
saved latent; needs ``[bench]``), ``trajectory`` (pseudotime against the known time on PCA and
on every saved a549/paul15 latent), ``prior`` (does the learned prior matter: held-out marginal
likelihood, code crispness, prior fit, generated cells, attractors; learned vs fixed vs Gaussian
twin vs scVI/totalVI), ``cost`` (throughput, time to convergence, scaling to 1M
cells with a full epoch, prior share), ``de`` (differential expression against scanpy's
Wilcoxon on paul15, :mod:`benchmarks.de`), ``mapping`` (a held-out batch mapped onto a reference,
scArches-style, against scVI/scANVI/totalVI), then ``report`` (``BENCHMARKS.md`` and figures from
whatever results exist). ``quality`` fits the methods of :data:`QUALITY_PLAN` on each set, then
(full run only) the 400-epoch study (both packages' defaults), the training-length and
KL warm-up study, and the hierarchical-posterior experiment.

``--quick`` keeps it to minutes: samplers, then quality/baselines on mixology with one seed and
10 epochs, the suite without scib-metrics, no trajectories, cost without the 1M-cell set, with
fewer steps and no full epoch, and the report (all under ``results/quick/``).
``--skip STAGE ...`` / ``--only STAGE ...`` choose stages. Stages needing scvi-tools are skipped
(with a message) when it is not installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # `benchmarks` importable when run as a script

import torch  # noqa: E402

from benchmarks import samplers  # noqa: E402

STAGES = [
    "samplers",
    "quality",
    "baselines",
    "suite",
    "trajectory",
    "prior",
    "cost",
    "de",
    "mapping",
    "report",
]
#: quality.py methods per data set (every QBM-VAE row of BENCHMARKS.md); --quick: QUICK_METHODS.
QUALITY_PLAN = {
    "mixology": ["qbm", "qbm_cov", "gaussian", "gaussian_cov", "pca"],
    "paul15": ["qbm", "bernoulli", "binary", "binary_bernoulli", "gaussian", "pca"],
    "a549": ["qbm", "qbm_rna", "gaussian", "gaussian_rna", "pca"],
    "cite": ["qbm", "qbm_cov", "gaussian", "gaussian_cov", "pca"],
}
QUICK_METHODS = ["qbm", "gaussian", "pca"]


def run_samplers(out: Path, seed: int) -> None:
    result = samplers.run(seed=seed, log=lambda line: print(line, flush=True))
    out.mkdir(parents=True, exist_ok=True)
    (out / "samplers.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "samplers.md").write_text(samplers.markdown(result))
    print(samplers.markdown(result))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--seed", type=int, default=samplers.SEED, help="seed of the sampler benchmark")
    parser.add_argument("--quick", action="store_true", help="minutes instead of hours (see above)")
    parser.add_argument("--only", nargs="+", choices=STAGES, help="run only these stages")
    parser.add_argument("--skip", nargs="+", choices=STAGES, default=[], help="skip these stages")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: dwave-samplers SA is single-threaded, and "
        "small per-site ops slow down badly when torch's thread pool competes for cores)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    stages = [s for s in (args.only or STAGES) if s not in args.skip]
    has_scvi = importlib.util.find_spec("scvi") is not None
    has_scib = importlib.util.find_spec("scib_metrics") is not None
    seeds = ["0"] if args.quick else ["0", "1", "2"]
    epochs = "10" if args.quick else "100"
    datasets = ["mixology"] if args.quick else ["mixology", "paul15", "cite", "a549"]
    threads = ["--threads", str(args.threads)]
    # --quick writes beside, not over, the full results (latents included)
    quick_out = args.out if not args.quick else args.out / "quick"

    for stage in stages:
        print(f"== {stage}", flush=True)
        if stage == "samplers":
            run_samplers(quick_out, args.seed)
        elif stage == "quality":
            from benchmarks import quality

            for dataset in datasets:
                methods = QUICK_METHODS if args.quick else QUALITY_PLAN[dataset]
                quality.main(
                    ["--datasets", dataset, "--methods", *methods, "--seeds", *seeds]
                    + ["--epochs", epochs, *threads, "--out", str(quick_out / "quality.json")]
                    + ["--latents", str(quick_out / "latents")]
                )
            if not args.quick:  # each package at its default training length (400 epochs here)
                quality.main(
                    ["--datasets", "paul15", "mixology", "cite", "--methods", "qbm", "--seeds", *seeds]
                    + ["--epochs", "400", *threads, "--out", str(quick_out / "quality_400.json")]
                    + ["--latents", str(quick_out / "latents_400")]
                )
                from benchmarks import training_length  # the study behind the training defaults

                training_length.main(["--seeds", *seeds, "--out", str(quick_out / "training_length.json")])
                from benchmarks import hierarchical_posterior  # the DVAE++-style posterior experiment

                hierarchical_posterior.main(["--out", str(quick_out / "hierarchical_posterior.json")])
        elif stage in ("baselines", "suite"):
            if not has_scvi:
                print("scvi-tools is not installed: skipped (pip install 'qbm-pyro[bench]')")
                continue
            from benchmarks import baselines

            common = ["--datasets", *datasets, "--seeds", *seeds, *threads]
            common += ["--latents", str(quick_out / "latents")]
            common += ["--out", str(quick_out / "baselines.json")]
            if stage == "baselines":
                baselines.main(["fit", *common, "--epochs", epochs])
                if not args.quick:  # scVI and totalVI at their default length, beside quality_400
                    baselines.main(
                        ["fit", "--datasets", "paul15", "mixology", "cite", "--methods", "scvi", "totalvi"]
                        + ["--seeds", *seeds, *threads]
                        + ["--epochs", "400", "--out", str(quick_out / "baselines_400.json")]
                        + ["--latents", str(quick_out / "latents_400")]
                    )
            else:
                no_scib = ["--no-scib"] if args.quick or not has_scib else []
                baselines.main(["suite", *common, *no_scib])
        elif stage == "trajectory":
            if args.quick:  # the time courses are a549 and paul15, not in the quick run
                print("--quick: trajectories skipped")
                continue
            from benchmarks import trajectory, trajectory_models

            trajectory.main(["--out", str(quick_out / "trajectory.json")])
            trajectory_models.main(
                ["--latents", str(quick_out / "latents"), "--out", str(quick_out / "trajectory_models.json")]
            )
            if has_scvi:  # 300-cell subsamples: QBM-VAE defaults against scVI and PCA (small_data.py)
                from benchmarks import small_data

                small_data.main(["--out", str(quick_out / "small_data.json")])
        elif stage == "prior":  # does the learned prior matter (held-out LL, codes, generation)
            from benchmarks import prior_matters

            methods = ["qbm", "bernoulli", "gaussian"] + (["scvi"] if has_scvi else [])
            prior_matters.main(
                ["--datasets", *datasets, "--methods", *methods, "--seeds", *seeds, "--epochs", epochs]
                + [*threads, "--out", str(quick_out / "prior_matters.json")]
            )
        elif stage == "cost":
            from benchmarks import cost

            parts = ["throughput", "convergence", "scaling", "prior"] if has_scvi else ["scaling", "prior"]
            if not has_scvi:
                print("scvi-tools is not installed: cost throughput without scVI is skipped")
            quick = (
                ["--sizes", "10000", "100000", "--steps", "20", "--epochs", "2", "--max-epochs", "5"]
                + ["--no-full-epoch"]
                if args.quick
                else ["--epochs", "15"]
            )
            cost.main(["--parts", *parts, *quick, "--out", str(quick_out / "cost.json")])
            if has_scvi:  # speed of issue 13: throughput per data shape, sampler, profile
                from benchmarks import throughput

                throughput.main(
                    [*(["--quick"] if args.quick else []), "--out", str(quick_out / "throughput.json")]
                )
        elif stage == "de":  # differential expression against scanpy's Wilcoxon (benchmarks/de.py)
            from benchmarks import de

            de.main(["--seeds", *seeds, "--epochs", epochs, "--out", str(quick_out / "de.json")])
        elif stage == "mapping":  # reference mapping + label transfer vs scVI/scANVI (scArches)
            from benchmarks import mapping

            quick = ["--splits", "mixology_dropseq", "--methods", "qbm", "scvi"] if args.quick else []
            mapping.main(
                ["--seeds", *seeds, "--ref-epochs", epochs, "--query-epochs", str(max(1, int(epochs) // 2))]
                + [*threads, "--out", str(quick_out / "mapping.json"), *quick]
            )
        elif stage == "report":
            from benchmarks import report

            out = ["--out", str(quick_out / "BENCHMARKS.md")] if args.quick else []
            report.main(["--results", str(quick_out), *out])


if __name__ == "__main__":
    main()
