"""Latent quality on labelled real data: QBM-VAE variants, the Gaussian twin and PCA, over seeds.

Usage: ``python benchmarks/quality.py [--datasets mixology paul15 a549] [--seeds 0 1 2]
[--epochs 100] [--methods qbm gaussian binary pca] [--out benchmarks/results/quality.json]``.

Protocol (DESIGN §5): 15-NN accuracy and macro-F1 in 5-fold stratified CV, Leiden ARI/NMI
against the labels, batch mixing entropy (iLISI-like) where there are batches. Same cells and
preprocessing for every method; PCA is 30 components of log-normalised counts.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` importable as a script

import numpy as np  # noqa: E402
import scanpy as sc  # noqa: E402
import torch  # noqa: E402

import qbm_pyro  # noqa: E402
from benchmarks.environment import run_meta  # noqa: E402
from benchmarks.methods import QBM_MODELS  # noqa: E402
from benchmarks.run_log import RunLog  # noqa: E402
from qbm_pyro import datasets  # noqa: E402
from qbm_pyro.metrics import batch_mixing_entropy, clustering_scores, knn_accuracy  # noqa: E402

warnings.filterwarnings("ignore")

#: The QBM-VAE settings of each method (one home: benchmarks/methods.py).
METHODS = QBM_MODELS

#: Where fitted latents are kept for the trajectory evaluation (not committed).
LATENT_DIR: Path | None = Path("benchmarks/results/latents")


def load(name: str):
    """(data, label column, batch key or None, model kwargs) for each benchmark set."""
    if name == "mixology":
        adata = datasets.mixology_5batch()
        return adata[adata.obs["demuxlet_cls"] == "SNG"].copy(), "cell_line", "batch", {}
    if name == "paul15":
        return datasets.paul15_myeloid(), "cell_type", None, {}
    if name == "a549":
        return datasets.a549_scicar(), "time", None, {"layers": {"rna": "counts"}}
    if name == "cite":
        return datasets.pbmc_cite_2batch(), None, "batch", {}
    if name == "cite1k":  # one batch, 100 genes + 17 proteins; scored against protein-gated types
        return datasets.pbmc_cite_1k(), None, None, {}
    raise ValueError(name)


def pca_latent(data, n_comps: int = 30) -> np.ndarray:
    rna = data["rna"] if hasattr(data, "mod") else data
    rna = rna.copy()
    if "counts" in rna.layers:
        rna.X = rna.layers["counts"].copy()
    sc.pp.normalize_total(rna, target_sum=1e4)
    sc.pp.log1p(rna)
    sc.pp.pca(rna, n_comps=n_comps, random_state=0)
    return rna.obsm["X_pca"]


def score(latent, data, label_key, batch_key, seed) -> dict:
    out = {}
    if label_key:
        labels = data.obs[label_key].astype(str).to_numpy()
        out |= {f"knn_{k}": v for k, v in knn_accuracy(latent, labels, seed=seed).items()}
        out |= clustering_scores(latent, labels, seed=seed)
    if batch_key:
        out["batch_mixing"] = batch_mixing_entropy(latent, data.obs[batch_key].astype(str).to_numpy())
    return out


def saved_fit(reuse: Path | None, dataset: str, method: str, seed: int) -> Path | None:
    """Folder of a model of ``method`` fitted on ``dataset`` with ``seed`` and saved under
    ``reuse`` (``<reuse>/<dataset>/seed<k>`` for ``qbm``, ``<reuse>/<method>/<dataset>/seed<k>``
    for the others), or ``None``."""
    if reuse is None:
        return None
    folder = reuse / dataset if method == "qbm" else reuse / method / dataset
    folder = folder / f"seed{seed}"
    return folder if (folder / "model.pt").exists() else None


def load_fit(folder: Path, data, settings: dict, epochs: int):
    """``(model, history, seconds)`` of the fit saved in ``folder``, attached to ``data``: its
    model arguments must be ``settings`` (the others at their defaults) and it must have run at
    most ``epochs`` epochs, else ``ValueError``. ``seconds``: the fit's own wall time from its
    ``meta.json`` (NaN without one)."""
    model = qbm_pyro.QBMVAE.load(folder, data)
    history = model.history_
    differs = _settings_differ(model.init_args, settings)
    ran = len(history["epoch"])
    if differs or ran > epochs:
        raise ValueError(f"{folder} was fitted with other settings: {differs} ({ran} epochs, run: {epochs})")
    meta = Path(folder) / "meta.json"
    seconds = json.loads(meta.read_text())["seconds"] if meta.exists() else float("nan")
    return model, history, seconds


def _settings_differ(init_args: dict, expected: dict) -> dict:
    """``{setting: (saved, expected)}`` where a saved model's ``init_args`` (which leave out
    settings at their defaults) differ from the ``expected`` ones (the others at their defaults)."""
    import inspect

    from qbm_pyro.module import MultiVAE

    defaults = {}
    for fn in (MultiVAE, qbm_pyro.QBMVAE):
        for name, p in inspect.signature(fn).parameters.items():
            if p.default is not inspect.Parameter.empty:
                defaults[name] = p.default
    keys = set(init_args) | set(expected)
    saved = {k: init_args.get(k, defaults.get(k)) for k in keys}
    wanted = {k: expected.get(k, defaults.get(k)) for k in keys}
    return {k: (saved[k], wanted[k]) for k in sorted(keys) if saved[k] != wanted[k]}


def run(
    dataset: str,
    method: str,
    seed: int,
    epochs: int,
    latent_dir: Path | None = LATENT_DIR,
    reuse: Path | None = None,
) -> dict:
    data, label_key, batch_key, kwargs = load(dataset)
    start = time.perf_counter()
    extra = {}
    if method == "pca":
        latent = pca_latent(data)
    else:
        folder = saved_fit(reuse, dataset, method, seed)
        if folder is None:
            model = qbm_pyro.QBMVAE(data, batch_key=batch_key, seed=seed, **kwargs, **METHODS[method])
            history = model.train(max_epochs=epochs, progress_bar=False)
        else:  # the same fit, saved: only the representation and the scores are computed again
            model, history, seconds = load_fit(folder, data, {**METHODS[method], "seed": seed}, epochs)
            if not math.isnan(seconds):  # the fit's own wall time, where it ran (not this run's)
                extra["fit_seconds"] = seconds
            extra["reused_fit"] = str(folder)
        latent = model.get_latent_representation()
        extra["epochs_run"] = len(history["epoch"])
        last = history["validation_loss"][-1]
        extra["validation_loss"] = None if math.isnan(last) else last  # NaN: no validation set
        if model.module.n_binary and model.module.n_continuous:
            for rep in ("probs", "continuous", "joint"):
                if rep == model.default_representation:
                    continue
                rep_latent = model.get_latent_representation(representation=rep)
                extra[rep] = score(rep_latent, data, label_key, batch_key, seed)
    seconds = time.perf_counter() - start
    if latent_dir is not None and method != "pca":
        latent_dir.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            latent_dir / f"{dataset}_{method}_{seed}.npz",
            latent=latent,
            energy=model.get_energy(),
            n_binary=model.module.n_binary,
            obs_names=np.asarray(data.obs_names).astype(str),
        )
    return {
        "dataset": dataset,
        "method": method,
        "seed": seed,
        # a reused fit has no time of its own here: loading and scoring are not fitting
        **({} if "reused_fit" in extra else {"seconds": seconds}),
        **score(latent, data, label_key, batch_key, seed),
        **extra,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", nargs="+", default=["mixology", "paul15", "a549"])
    parser.add_argument("--methods", nargs="+", default=["qbm", "gaussian", "binary", "pca"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/quality.json")
    parser.add_argument("--latents", type=Path, default=LATENT_DIR, help="where the fitted latents are saved")
    parser.add_argument(
        "--reuse",
        type=Path,
        default=None,
        help="folder of saved fits (see saved_fit): a QBM-VAE found there is loaded, not refitted",
    )
    parser.add_argument(
        "--replace",
        action="store_true",
        help="run the chosen data sets x methods x seeds again, replacing their finished rows",
    )
    parser.add_argument("--note", default=None, help="a sentence about this run, added to meta['note']")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    log = RunLog(Path(args.out), ("dataset", "method", "seed"))
    if args.replace:
        log.drop({(d, m, s) for d in args.datasets for m in args.methods for s in args.seeds})
    for dataset in args.datasets:
        for method in args.methods:
            for seed in args.seeds if method != "pca" else [0]:
                if (dataset, method, seed) in log:
                    continue
                row = run(dataset, method, seed, args.epochs, args.latents, args.reuse)
                print(
                    json.dumps(
                        {
                            k: (round(v, 3) if isinstance(v, float) else v)
                            for k, v in row.items()
                            if not isinstance(v, dict)
                        }
                    ),
                    flush=True,
                )
                log.add(row)
    rows = log.rows
    meta = run_meta(epochs=args.epochs, seeds=args.seeds)
    previous = json.loads(Path(args.out).read_text()).get("meta", {}) if Path(args.out).exists() else {}
    notes = [n for n in (previous.get("note"), args.note) if n]
    if notes:  # what earlier runs said about their rows stays
        meta["note"] = " ".join(notes)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
