"""scvi-tools baselines (scVI, totalVI, MultiVI) on the cells of ``benchmarks/quality.py``, and the
side-by-side suite scores (linear probe, scib-metrics) of every saved latent.

Usage::

    python benchmarks/baselines.py fit [--datasets mixology paul15 a549 cite] [--seeds 0 1 2]
        [--epochs 100] [--methods scvi multivi_nopen ...]
    python benchmarks/baselines.py suite [--datasets ...] [--no-scib]

``fit`` trains each baseline (scvi-tools defaults apart from ``n_latent`` and ``max_epochs``, on
CPU), scores its latent with :func:`benchmarks.quality.score` (15-NN accuracy/macro-F1, Leiden
ARI/NMI, batch mixing) and :func:`benchmarks.scoring.logreg_accuracy`, and keeps the latent in
``benchmarks/results/latents/`` beside those written by ``quality.py``. ``suite`` then scores all
latents of a data set found there (QBM-VAE variants, Gaussian twin, baselines) and PCA side by
side: logistic regression for every one, and one scib-metrics ``Benchmarker`` per data set over
all methods and seeds. Both write into ``benchmarks/results/baselines.json`` (``fit`` rows under
``"rows"``, suite rows under ``"suite"``), keeping what the other wrote.

Same cells and inputs as ``quality.py`` (its :func:`~benchmarks.quality.load`): raw counts;
mixology singlets (batch ``batch``, label ``cell_line``), paul15 (``cell_type``), a549 (RNA
``layers["counts"]`` + binary ATAC, label ``time``), pbmc_cite_2batch (RNA + protein, batch
only).

Baselines per data set: scVI (RNA, 10-d) everywhere; totalVI (RNA + protein, 20-d, its
default) on ``cite``; MultiVI (RNA + ATAC, its default latent size) on ``a549``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # `benchmarks` importable when run as a script

import numpy as np  # noqa: E402
import torch  # noqa: E402

import qbm_pyro  # noqa: E402
from benchmarks import quality  # noqa: E402
from benchmarks.environment import package_versions  # noqa: E402
from benchmarks.methods import BASELINES  # noqa: E402
from benchmarks.methods import SUITE_QBM_METHODS as QBM_METHODS  # noqa: E402
from benchmarks.scoring import logreg_accuracy, scib_scores  # noqa: E402

warnings.filterwarnings("ignore")

OUT = HERE / "results" / "baselines.json"
LATENTS = HERE / "results" / "latents"


def _scvi():
    import scvi

    scvi.settings.verbosity = 40  # errors only
    scvi.settings.dl_num_workers = 0
    return scvi


def scvi_tools_model(method: str, data, batch_key: str | None):
    """An untrained scVI (``"scvi"``, 10 latent units, on a copy of ``data``) or totalVI
    (``"totalvi"``) model, set up for ``data``."""
    scvi = _scvi()
    if method == "scvi":
        adata = data.copy()
        scvi.model.SCVI.setup_anndata(adata, batch_key=batch_key)
        return scvi.model.SCVI(adata, n_latent=10)
    return totalvi_model(data, batch_key)


def totalvi_model(data, batch_key: str | None):
    """An untrained ``scvi.model.TOTALVI`` on a copy of ``data`` (MuData with ``rna`` and ``prot``;
    ``batch_key=None``: one batch)."""
    scvi = _scvi()
    mdata = data.copy()
    if batch_key:
        mdata.obs[batch_key] = data.obs[batch_key].to_numpy()
        mdata["rna"].obs[batch_key] = mdata.obs[batch_key].to_numpy()
    prot = mdata["prot"].X  # totalVI's protein background prior (a GMM) needs it dense
    mdata["prot"].X = np.asarray(prot.toarray() if hasattr(prot, "toarray") else prot, dtype=np.float32)
    scvi.model.TOTALVI.setup_mudata(
        mdata,
        batch_key=batch_key,
        modalities={"rna_layer": "rna", "protein_layer": "prot", "batch_key": "rna"},
    )
    return scvi.model.TOTALVI(mdata)


def fit_latent(
    dataset: str, method: str, seed: int, epochs: int, threads: int = 1
) -> tuple[np.ndarray, dict]:
    """Train one baseline on ``dataset``; return its latent (one row per cell) and details."""
    scvi = _scvi()
    scvi.settings.seed = seed
    torch.set_num_threads(threads)  # scvi's seed setting leaves threads alone; be explicit
    data, _, batch_key, _ = quality.load(dataset)
    train_kwargs = dict(max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False)
    if method == "scvi":
        rna = (data["rna"] if hasattr(data, "mod") else data).copy()
        if batch_key and batch_key not in rna.obs:
            rna.obs[batch_key] = data.obs[batch_key].to_numpy()
        layer = "counts" if "counts" in rna.layers else None
        scvi.model.SCVI.setup_anndata(rna, layer=layer, batch_key=batch_key)
        model = scvi.model.SCVI(rna, n_latent=10)
        model.train(**train_kwargs)
    elif method == "totalvi":
        model = totalvi_model(data, batch_key)
        model.train(**train_kwargs)
    elif method in ("multivi", "multivi_nopen"):
        mdata = data.copy()
        scvi.model.MULTIVI.setup_mudata(
            mdata, rna_layer="counts", modalities={"rna_layer": "rna", "atac_layer": "atac"}
        )
        # At its defaults MultiVI's latent collapses on a549 (report.CAVEATS); the variant drops
        # the modality penalty and trains at lr 1e-3, which is what it takes to learn here.
        tuned = method == "multivi_nopen"
        model = scvi.model.MULTIVI(
            mdata,
            n_genes=mdata["rna"].n_vars,
            n_regions=mdata["atac"].n_vars,
            **({"modality_penalty": "None"} if tuned else {}),
        )
        model.train(**train_kwargs, **({"lr": 1e-3} if tuned else {}))
    else:
        raise ValueError(method)
    latent = np.asarray(model.get_latent_representation())
    losses = [v for k, v in model.history.items() if k.startswith("train_loss")]
    epochs_run = len(losses[0]) if losses else None
    return latent, {"epochs_run": epochs_run, "n_latent": int(latent.shape[1])}


def fit(
    datasets, seeds, epochs, threads=1, log=print, on_row=None, methods=None, latents: Path = LATENTS
) -> list[dict]:
    """Fit the baselines of ``datasets`` (all, or those in ``methods``) for ``seeds``, saving each
    latent in ``latents``; ``on_row(row)`` after each fit."""
    rows = []
    for dataset in datasets:
        data, label_key, batch_key, _ = quality.load(dataset)
        for method in [m for m in BASELINES[dataset] if methods is None or m in methods]:
            for seed in seeds:
                start = time.perf_counter()
                latent, extra = fit_latent(dataset, method, seed, epochs, threads)
                seconds = time.perf_counter() - start
                row = {"dataset": dataset, "method": method, "seed": seed, "seconds": seconds}
                row |= quality.score(latent, data, label_key, batch_key, seed)
                if label_key:
                    row |= logreg_accuracy(latent, data.obs[label_key].astype(str), seed=seed)
                row |= extra
                latents.mkdir(parents=True, exist_ok=True)
                np.savez_compressed(
                    latents / f"{dataset}_{method}_{seed}.npz",
                    latent=latent,
                    obs_names=np.asarray(data.obs_names),
                )
                log(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))
                rows.append(row)
                if on_row is not None:
                    on_row(row)
    return rows


def suite(datasets, seeds, use_scib=True, log=print, latents: Path = LATENTS, methods=None) -> list[dict]:
    """Linear probe and scib-metrics for every latent saved in ``latents`` (and PCA) of each set;
    ``methods``: only these methods' latents (default: every QBM-VAE variant and baseline).
    scib-metrics' values are unscaled, so a method's scores do not depend on the others scored."""
    rows = []
    for dataset in datasets:
        data, label_key, batch_key, _ = quality.load(dataset)
        if not label_key:
            log(f"{dataset}: no labels, no suite scores (batch mixing is in the fit rows)")
            continue
        labels = data.obs[label_key].astype(str).to_numpy()
        found = {"pca_0": quality.pca_latent(data)}
        for method in methods or QBM_METHODS + BASELINES[dataset]:
            for seed in seeds:
                path = latents / f"{dataset}_{method}_{seed}.npz"
                if not path.exists():
                    continue
                saved = np.load(path, allow_pickle=True)
                if not np.array_equal(saved["obs_names"].astype(str), np.asarray(data.obs_names).astype(str)):
                    log(f"{path.name}: other cells than quality.load({dataset!r}); skipped")
                    continue
                found[f"{method}_{seed}"] = saved["latent"]
        start = time.perf_counter()
        scib = {}
        if use_scib:
            batches = data.obs[batch_key].to_numpy() if batch_key else None
            scib = scib_scores(found, labels, batches)
        scib_seconds = time.perf_counter() - start
        for key, latent in found.items():
            method, seed = key.rsplit("_", 1)
            row = {"dataset": dataset, "method": method, "seed": int(seed)}
            row |= logreg_accuracy(latent, labels, seed=int(seed))
            row |= scib.get(key, {})
            rows.append(row)
            log(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))
        log(f"{dataset}: scib-metrics on {len(found)} latents took {scib_seconds:.0f} s")
    return rows


def merge_suite_rows(old: list[dict], dataset: str, rows: list[dict], methods=None) -> list[dict]:
    """The suite rows after scoring ``rows`` of ``dataset``: all of the data set's old rows are
    replaced, or (``methods`` given) only those of the methods scored now (PCA among them)."""
    scored = {r["method"] for r in rows}
    kept = [r for r in old if r["dataset"] != dataset or (methods and r["method"] not in scored)]
    return kept + rows


def _meta(args) -> dict:
    versions = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "qbm_pyro": qbm_pyro.__version__,
        **package_versions("scvi-tools", "scib-metrics", "jax", "scanpy", "scikit-learn", "lightning"),
    }
    return {
        **versions,
        "machine": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "baselines": BASELINES,
        "settings": "scvi-tools 1.4 defaults (batch_size 128, train_size 0.9, each model's default "
        "KL warm-up and early stopping) except max_epochs; accelerator='cpu'; scVI n_latent=10, "
        "totalVI n_latent=20 (default), MultiVI default n_latent; multivi_nopen = MultiVI with "
        "modality_penalty='None' and lr=1e-3",
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("stage", choices=["fit", "suite", "all"])
    parser.add_argument("--datasets", nargs="+", default=["mixology", "paul15", "cite", "a549"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--methods",
        nargs="+",
        help="fit: only these baselines (default: all); suite: only these methods' latents (and PCA), "
        "replacing only their rows",
    )
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-scib", action="store_true", help="suite: the linear probe only")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--latents", type=Path, default=LATENTS, help="where latents are saved/read")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    log = lambda line: print(line, flush=True)  # noqa: E731
    # Every write re-reads the file and changes only its own part, so that a `fit` and a `suite`
    # running at the same time do not overwrite each other's rows.
    if args.stage in ("fit", "all"):
        redo = {
            (d, m) for d in args.datasets for m in BASELINES[d] if args.methods is None or m in args.methods
        }
        meta = _meta(args) | {"epochs": args.epochs, "seeds": args.seeds}

        def start(result):
            result["rows"] = [r for r in result.get("rows", []) if (r["dataset"], r["method"]) not in redo]
            result["fit_meta"] = meta

        _update(args.out, start)

        def keep(row):  # written after every fit: an interrupted run keeps what it did
            _update(args.out, lambda result: result.setdefault("rows", []).append(row))

        fit(
            args.datasets,
            args.seeds,
            args.epochs,
            args.threads,
            log=log,
            on_row=keep,
            methods=args.methods,
            latents=args.latents,
        )
    if args.stage in ("suite", "all"):
        meta = _meta(args) | {"seeds": args.seeds, "scib": not args.no_scib, "methods": args.methods}
        for dataset in args.datasets:  # written after each data set
            rows = suite(
                [dataset],
                args.seeds,
                use_scib=not args.no_scib,
                log=log,
                latents=args.latents,
                methods=args.methods,
            )
            if rows:

                def put(result, dataset=dataset, rows=rows):
                    result["suite_meta"] = meta
                    result["suite"] = merge_suite_rows(result.get("suite", []), dataset, rows, args.methods)

                _update(args.out, put)


def _update(path: Path, change) -> None:
    """Read ``path`` (JSON; ``{}`` if absent), apply ``change(result)`` in place, write it back
    atomically (temporary file + rename)."""
    result = json.loads(path.read_text()) if path.exists() else {}
    change(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    main()
