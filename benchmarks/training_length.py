"""How long to train, and how long to warm the KL up: the study behind ``train()``'s defaults.

Each variant fits the default QBM-VAE (64 binary + 16 Gaussian units, learned Boltzmann prior,
persistent tempering) with an explicit epoch cap and KL warm-up (early stopping on, patience 30,
on the validation -ELBO from the first epoch, the best state restored: the rule of ``train()``
since 2026-12-02; rows without ``stopping`` were run when both only counted after the warm-up)
and scores the latent with the main table's protocol (15-NN accuracy,
Leiden ARI/NMI at the NMI-chosen resolution, batch mixing), plus ``ari_grid``: the Leiden ARI
averaged over the six resolutions (0.1-1.0), less noisy than the one chosen resolution, and the
cluster count at each. ``validation_loss``: negative ELBO per cell on the model's 10 % split in
the last epoch run, ``validation_best`` the best of them, the state kept (lower is better).

Usage: ``python benchmarks/training_length.py [--datasets paul15 mixology] [--seeds 0 1 2]
[--variants 100:25 100:100 200:50 400:100 400:200 400:400] [--out benchmarks/results/training_length.json]``
(``E:W``: at most ``E`` epochs, KL warm-up over ``W``). Finished runs are kept in the ``.jsonl``
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
from benchmarks import quality  # noqa: E402
from benchmarks.environment import run_meta  # noqa: E402
from benchmarks.latent_variants import clustering_profile  # noqa: E402
from benchmarks.methods import QBM_MODELS  # noqa: E402
from benchmarks.run_log import RunLog  # noqa: E402
from benchmarks.tables import mean_sd  # noqa: E402

METRICS = [
    "epochs_run",
    "best_epoch",
    "validation_loss",
    "validation_best",
    "knn_accuracy",
    "ari",
    "nmi",
    "ari_grid",
    "batch_mixing",
]
#: The stopping rule of ``train()`` that this script's rows record (``row["stopping"]``).
FIRST_EPOCH = "first_epoch"
#: Rows of a set below 1,000 cells at the defaults: no validation set, every epoch, the last state.
NO_VALIDATION = "no_validation"
#: How early stopping and the kept state were decided in a row (rows without the key: the old rule).
STOPPING = {
    FIRST_EPOCH: "from epoch 1, best kept",
    NO_VALIDATION: "no validation set, last state",
    None: "after warm-up",
}


def parse_variant(text: str) -> tuple[int, int]:
    """``"400:200"`` -> ``(400, 200)``: the epoch cap and the KL warm-up epochs."""
    epochs, _, warmup = text.partition(":")
    return int(epochs), int(warmup)


def run(dataset: str, variant: str, seed: int) -> dict:
    """Fit one variant on one data set and seed; its scores."""
    epochs, warmup = parse_variant(variant)
    data, label_key, batch_key, kwargs = quality.load(dataset)
    start = time.process_time()
    model = qbm_pyro.QBMVAE(data, batch_key=batch_key, seed=seed, **kwargs, **QBM_MODELS["qbm"])
    history = model.train(max_epochs=epochs, kl_warmup_epochs=warmup, progress_bar=False)
    latent = model.get_latent_representation()
    validation = history["validation_loss"]
    held_out = len(model.validation_indices_) > 0  # none below 1,000 cells (pp.size_defaults)
    row = {
        "dataset": dataset,
        "variant": variant,
        "seed": seed,
        "epochs_run": len(history["epoch"]),
        "validation_loss": float(validation[-1]) if held_out else None,
        "validation_best": float(min(validation)) if held_out else None,
        "best_epoch": validation.index(min(validation)) if held_out else None,
        "stopping": FIRST_EPOCH if held_out else NO_VALIDATION,
        "cpu_seconds": time.process_time() - start,
        **quality.score(latent, data, label_key, batch_key, seed),
    }
    if label_key:  # one graph, one Leiden seed: the protocol's clustering at every resolution
        profile = clustering_profile(latent, data.obs[label_key].astype(str).to_numpy(), seed, leiden_seeds=1)
        row["ari_grid"], row["clusters_grid"] = profile["ari_grid"], profile["clusters_grid"]
    return row


def report_section(results: Path) -> list[str]:
    """BENCHMARKS.md's section for ``training_length.json`` (empty when it is missing)."""
    path = results / "training_length.json"
    if not path.exists():
        return []
    study = json.loads(path.read_text())
    meta = study.get("meta", {})
    rows = study["rows"]
    out = [
        "## Training length and KL warm-up (benchmarks/training_length.py)",
        "",
        "The default QBM-VAE with an explicit epoch cap `E` and KL warm-up `W` (`E:W`; early "
        "stopping on, patience 30), seeds "
        f"{meta.get('seeds')}, mean ± sd. `stopping`: what early stopping and the kept state "
        "follow: the validation −ELBO from the first epoch, the best state kept (the rule "
        "since 2026-12-02), or, in the older rows, only after the warm-up (with `W = E` every "
        "fit then ran all epochs and kept its last state); below 1,000 cells (CITE-seq) the "
        "defaults keep no validation set, run every epoch and keep the last state. "
        "`ari_grid`: Leiden ARI averaged over the six resolutions; `validation_loss`: −ELBO "
        "per cell in the last epoch run, "
        "`validation_best`: in the epoch kept (`best_epoch`). "
        "The defaults since this study: at most 400 epochs up to 20,000 cells "
        "(`pp.size_defaults`, as scvi-tools) with the warm-up over half of them, early stopping "
        "from epoch 1 (`400:200`, from epoch 1); before, the same day: `400:400` after warm-up, "
        "`400:200` after warm-up, and earlier `100:25` in the benchmarks and `200:50` in "
        "`train()`. " + meta.get("note", ""),
        "",
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == dataset]
        metrics = [m for m in METRICS if any(m in r for r in mine)]
        out += [f"### {dataset}", "", "| E:W | stopping | n | " + " | ".join(metrics) + " |"]
        out.append("|---|---|---|" + "---|" * len(metrics))
        kinds = sorted(
            {(r["variant"], r.get("stopping")) for r in mine},
            key=lambda k: (parse_variant(k[0]), k[1] is not None, str(k[1])),
        )
        for variant, stopping in kinds:
            group = [r for r in mine if r["variant"] == variant and r.get("stopping") == stopping]
            cells = [mean_sd([r.get(m) for r in group]) for m in metrics]
            out.append(f"| {variant} | {STOPPING[stopping]} | {len(group)} | " + " | ".join(cells) + " |")
        out.append("")
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", nargs="+", default=["paul15", "mixology"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--variants", nargs="+", default=["100:25", "100:100", "200:50", "400:100", "400:200", "400:400"]
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--note", default=None)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/training_length.json"))
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    log = RunLog(args.out, ("dataset", "variant", "seed", "stopping"))
    for dataset in args.datasets:
        for variant in args.variants:
            parse_variant(variant)  # a bad spelling fails before any fit
            for seed in args.seeds:
                if not any((dataset, variant, seed, rule) in log for rule in (FIRST_EPOCH, NO_VALIDATION)):
                    row = run(dataset, variant, seed)
                    print(json.dumps({k: v for k, v in row.items() if k != "clusters_grid"}), flush=True)
                    log.add(row)
    meta = run_meta(seeds=args.seeds, torch_threads=args.threads, note=args.note)
    args.out.write_text(json.dumps({"meta": meta, "rows": log.rows}, indent=1))


if __name__ == "__main__":
    main()
