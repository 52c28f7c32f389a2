"""Reference mapping and label transfer: a held-out batch mapped onto a reference of the others.

Usage::

    python benchmarks/mapping.py [--splits mixology_dropseq cite_5k] [--seeds 0 1 2]
        [--ref-epochs 100] [--query-epochs 50] [--methods qbm scvi scanvi totalvi]
        [--out benchmarks/results/mapping.json]

Splits (the query batch is never seen when the reference is fitted):

* ``mixology_dropseq``: CellBench mixology singlets (``quality.load("mixology")``); the query is
  the Drop-seq batch (210 cells, another protocol), the reference the four CEL-seq2 batches
  (811 cells). Labels: ``cell_line`` (the query's 3 lines are all in the reference).
* ``mixology_p3``: the same, the query being the CEL-seq2 5-line plate 3 (252 cells).
* ``paul15_shift`` (harder labels, synthetic batch): paul15 (7 myeloid types), a random 30% of
  the cells held out as the query with a synthetic batch effect (counts redrawn as
  ``Poisson(x · f_g)``, ``log f_g ~ N(0, 0.5²)`` per gene; see :func:`shifted_paul15`); the
  reference is the other 70% (one batch).
* ``cite_5k``: PBMC CITE-seq (RNA + protein), reference ``pbmc10k`` (a single batch), query
  ``pbmc5k`` (200 cells each). The set has no cell-type labels; the labels used are coarse
  protein-gated types: the argmax of the within-batch z-scored CLR of CD3 (T), CD19 (B), CD14
  (monocyte) and CD56 (NK). Methods that see the proteins (QBM-VAE, totalVI) have an advantage
  on these labels over RNA-only scVI/scANVI: compare QBM-VAE with totalVI there.

Methods, each fitted on the reference, then mapped (scArches: frozen reference, only the new
batch's parameters trained, ``weight_decay=0``):

* ``qbm``: :class:`qbm_pyro.QBMVAE` defaults (64 binary + 16 Gaussian units, Boltzmann prior),
  ``QBMVAE.load_query_data(query, reference)``.
* ``scvi``: ``scvi.model.SCVI`` (``n_latent=10``), ``SCVI.load_query_data``.
* ``scanvi``: ``SCANVI.from_scvi_model`` of that scVI reference (20 more epochs with the
  reference labels), ``SCANVI.load_query_data``; scored with its own classifier
  (``predict()``, row ``scanvi_classifier``) and with the same kNN transfer as the others.
* ``totalvi`` (``cite_5k`` only): ``scvi.model.TOTALVI``, ``TOTALVI.load_query_data``.
* ``pca_ref``: PCA (30 components) of the reference's log-normalised RNA, the query projected
  onto the reference's axes (no training, no batch correction).

Scores (query cells): kNN label transfer (:func:`qbm_pyro.tl.transfer_labels`, 15 neighbours,
scArches' weighted vote) accuracy and macro-F1; the AUROC of its uncertainty for telling wrong
from right predictions; batch mixing entropy (:func:`qbm_pyro.metrics.batch_mixing_entropy`,
30 neighbours) over reference + query cells with their batch labels (``batch_mixing``) and with
reference/query as the two labels (``query_mixing``).
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

import anndata as ad  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import f1_score, roc_auc_score  # noqa: E402

import qbm_pyro  # noqa: E402
from benchmarks import quality  # noqa: E402
from benchmarks.environment import package_versions  # noqa: E402
from benchmarks.tables import mean_sd  # noqa: E402
from qbm_pyro.metrics import batch_mixing_entropy  # noqa: E402

warnings.filterwarnings("ignore")

OUT = HERE / "results" / "mapping.json"
SPLITS = {
    "mixology_dropseq": ("mixology", "sc_dropseq"),
    "mixology_p3": ("mixology", "sc_celseq2_5cl_p3"),
    "cite_5k": ("cite", "pbmc5k"),
    "paul15_shift": ("paul15", "shifted"),
}
#: paul15_shift: share of cells held out as the query, and sd of the per-gene log scale shift.
SHIFT_QUERY_FRACTION, SHIFT_SD = 0.3, 0.5
METRICS = ["accuracy", "macro_f1", "uncertainty_auroc", "batch_mixing", "query_mixing", "seconds"]
CITE_MARKERS = {"T": "CD3", "B": "CD19", "monocyte": "CD14", "NK": "CD56"}


def cite_labels(mdata) -> np.ndarray:
    """Coarse protein-gated types: argmax of the within-batch z-scored CLR of the markers (one
    batch where ``obs`` has no ``batch``; a marker is found by its name before any ``_``, as in
    ``CD3_TotalSeqB``)."""
    prot = mdata["prot"]
    x = prot.X.toarray() if hasattr(prot.X, "toarray") else np.asarray(prot.X)
    clr = np.log1p(x) - np.log1p(x).mean(1, keepdims=True)
    names = [str(v).split("_")[0] for v in prot.var_names]
    columns = [names.index(m) for m in CITE_MARKERS.values()]
    scores = clr[:, columns]
    has_batch = "batch" in mdata.obs
    batches = mdata.obs["batch"].astype(str).to_numpy() if has_batch else np.zeros(mdata.n_obs, dtype=str)
    for b in np.unique(batches):
        rows = batches == b
        scores[rows] = (scores[rows] - scores[rows].mean(0)) / scores[rows].std(0)
    return np.asarray(list(CITE_MARKERS))[scores.argmax(1)]


def shifted_paul15(seed: int = 0):
    """paul15 with a synthetic batch: a random 30% of the cells (the query, batch ``shifted``)
    get their counts redrawn as ``Poisson(x · f_g)`` with a per-gene factor ``log f_g ~ N(0, 0.5²)``;
    the others are the reference (batch ``reference``). Fixed seed: the same split every run."""
    import scipy.sparse as sp

    data, label_key, _, _ = quality.load("paul15")
    rng = np.random.default_rng(seed)
    query = rng.random(data.n_obs) < SHIFT_QUERY_FRACTION
    x = data.X.toarray() if sp.issparse(data.X) else np.asarray(data.X)
    factor = np.exp(rng.normal(0.0, SHIFT_SD, data.n_vars))
    x[query] = rng.poisson(x[query] * factor).astype(x.dtype)
    data.X = sp.csr_matrix(x)
    data.obs["batch"] = np.where(query, "shifted", "reference")
    return data, label_key, "batch"


def load_split(name: str):
    """(reference, query, label key, batch key); the query batch is left out of the reference."""
    dataset, query_batch = SPLITS[name]
    if dataset == "paul15":
        data, label_key, batch_key = shifted_paul15()
    else:
        data, label_key, batch_key, _ = quality.load(dataset)
    if dataset == "cite":
        data.obs["cell_type"] = cite_labels(data)
        label_key = "cell_type"
    in_query = (data.obs[batch_key].astype(str) == query_batch).to_numpy()
    return data[~in_query].copy(), data[in_query].copy(), label_key, batch_key


def score(ref, query, ref_latent, query_latent, label_key, batch_key, predicted=None) -> dict:
    """Label transfer and mixing scores of a mapped query (see the module docstring)."""
    holder_ref = ad.AnnData(np.zeros((ref.n_obs, 1)), obs=ref.obs[[label_key]].astype(str))
    holder_ref.obsm["X_qbm"] = ref_latent
    holder_query = ad.AnnData(np.zeros((query.n_obs, 1)), obs=query.obs[[]])
    holder_query.obsm["X_qbm"] = query_latent
    qbm_pyro.tl.transfer_labels(holder_query, holder_ref, label_key, n_neighbors=15)
    truth = query.obs[label_key].astype(str).to_numpy()
    uncertainty = holder_query.obs[f"{label_key}_uncertainty"].to_numpy()
    if predicted is None:
        predicted = holder_query.obs[f"{label_key}_pred"].astype(str).to_numpy()
    wrong = predicted != truth
    both = np.concatenate([ref_latent, query_latent])
    batches = np.concatenate([ref.obs[batch_key].astype(str), query.obs[batch_key].astype(str)])
    side = np.repeat(["reference", "query"], [ref.n_obs, query.n_obs])
    return {
        "accuracy": float(np.mean(~wrong)),
        "macro_f1": float(f1_score(truth, predicted, average="macro")),
        "uncertainty_auroc": float(roc_auc_score(wrong, uncertainty))
        if 0 < wrong.sum() < len(wrong)
        else None,
        "batch_mixing": batch_mixing_entropy(both, batches),
        "query_mixing": batch_mixing_entropy(both, side),
    }


def run_qbm(split: str, seed: int, ref_epochs: int, query_epochs: int) -> list[dict]:
    ref, query, label_key, batch_key = load_split(split)
    start = time.perf_counter()
    model = qbm_pyro.QBMVAE(ref, batch_key=batch_key, seed=seed)
    model.train(max_epochs=ref_epochs, progress_bar=False)
    mapped = qbm_pyro.QBMVAE.load_query_data(query, model)
    history = mapped.train(max_epochs=query_epochs, progress_bar=False)
    ref_latent, query_latent = model.get_latent_representation(), mapped.get_latent_representation()
    seconds = time.perf_counter() - start
    row = score(ref, query, ref_latent, query_latent, label_key, batch_key)
    extra = {"query_epochs_run": len(history["epoch"]), "n_trainable": mapped.mapping_["n_trainable"]}
    return [{"split": split, "method": "qbm", "seed": seed, "seconds": seconds, **row, **extra}]


def _log_normalised_rna(data) -> np.ndarray:
    """Dense ``log1p`` of the RNA counts scaled to 10,000 per cell (as quality.pca_latent)."""
    import scipy.sparse as sp

    rna = data["rna"] if hasattr(data, "mod") else data
    x = rna.layers["counts"] if "counts" in rna.layers else rna.X
    x = np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float64)
    return np.log1p(x / np.maximum(x.sum(1, keepdims=True), 1.0) * 1e4)


def run_pca_ref(split: str, seed: int, ref_epochs: int, query_epochs: int) -> list[dict]:
    """PCA (30 components) of the reference's log-normalised RNA; the query projected onto the
    reference's axes (no refitting, no batch correction): the simplest reference mapping."""
    from sklearn.decomposition import PCA

    ref, query, label_key, batch_key = load_split(split)
    start = time.perf_counter()
    pca = PCA(n_components=30, random_state=seed).fit(_log_normalised_rna(ref))
    ref_latent = pca.transform(_log_normalised_rna(ref))
    query_latent = pca.transform(_log_normalised_rna(query))
    seconds = time.perf_counter() - start
    row = score(ref, query, ref_latent, query_latent, label_key, batch_key)
    return [{"split": split, "method": "pca_ref", "seed": seed, "seconds": seconds, **row}]


def _scvi(seed: int):
    import scvi

    scvi.settings.verbosity = 40
    scvi.settings.dl_num_workers = 0
    scvi.settings.seed = seed
    torch.set_num_threads(1)
    return scvi


def _rna(data, batch_key: str, label_key: str) -> ad.AnnData:
    rna = (data["rna"] if hasattr(data, "mod") else data).copy()
    for key in (batch_key, label_key):
        rna.obs[key] = data.obs[key].astype(str).to_numpy()
    return rna


def run_scvi(split: str, seed: int, ref_epochs: int, query_epochs: int, methods) -> list[dict]:
    """scVI + scArches and (from the same scVI reference) scANVI + scArches."""
    scvi = _scvi(seed)
    ref, query, label_key, batch_key = load_split(split)
    fit = dict(accelerator="cpu", devices=1, enable_progress_bar=False)
    query_fit = dict(max_epochs=query_epochs, plan_kwargs=dict(weight_decay=0.0), **fit)
    rows = []
    start = time.perf_counter()
    ref_rna, query_rna = _rna(ref, batch_key, label_key), _rna(query, batch_key, label_key)
    scvi.model.SCVI.setup_anndata(ref_rna, batch_key=batch_key, labels_key=label_key)
    reference = scvi.model.SCVI(ref_rna, n_latent=10)
    reference.train(max_epochs=ref_epochs, **fit)
    ref_seconds = time.perf_counter() - start
    if "scvi" in methods:
        start = time.perf_counter()
        q = query_rna.copy()
        scvi.model.SCVI.prepare_query_anndata(q, reference)
        mapped = scvi.model.SCVI.load_query_data(q, reference)
        mapped.train(**query_fit)
        latent_ref, latent_query = reference.get_latent_representation(), mapped.get_latent_representation()
        seconds = ref_seconds + time.perf_counter() - start
        row = score(ref, query, latent_ref, latent_query, label_key, batch_key)
        rows.append({"split": split, "method": "scvi", "seed": seed, "seconds": seconds, **row})
    if "scanvi" in methods:
        start = time.perf_counter()
        scanvi_ref = scvi.model.SCANVI.from_scvi_model(reference, unlabeled_category="Unknown")
        scanvi_ref.train(max_epochs=20, n_samples_per_label=100, **fit)
        q = query_rna.copy()
        q.obs[label_key] = "Unknown"  # the query's labels are hidden
        scvi.model.SCANVI.prepare_query_anndata(q, scanvi_ref)
        mapped = scvi.model.SCANVI.load_query_data(q, scanvi_ref)
        mapped.train(**query_fit)
        latent_ref, latent_query = scanvi_ref.get_latent_representation(), mapped.get_latent_representation()
        predicted = np.asarray(mapped.predict()).astype(str)
        seconds = ref_seconds + time.perf_counter() - start
        row = score(ref, query, latent_ref, latent_query, label_key, batch_key)
        rows.append({"split": split, "method": "scanvi", "seed": seed, "seconds": seconds, **row})
        row = score(ref, query, latent_ref, latent_query, label_key, batch_key, predicted=predicted)
        rows.append({"split": split, "method": "scanvi_classifier", "seed": seed, "seconds": seconds, **row})
    return rows


def run_totalvi(split: str, seed: int, ref_epochs: int, query_epochs: int) -> list[dict]:
    from benchmarks.baselines import totalvi_model

    scvi = _scvi(seed)
    ref, query, label_key, batch_key = load_split(split)
    fit = dict(accelerator="cpu", devices=1, enable_progress_bar=False)
    start = time.perf_counter()
    reference = totalvi_model(ref, batch_key)
    reference.train(max_epochs=ref_epochs, **fit)
    q = query.copy()
    q["rna"].obs[batch_key] = q.obs[batch_key].to_numpy()
    prot = q["prot"].X
    q["prot"].X = np.asarray(prot.toarray() if hasattr(prot, "toarray") else prot, dtype=np.float32)
    mapped = scvi.model.TOTALVI.load_query_data(q, reference)
    mapped.train(max_epochs=query_epochs, plan_kwargs=dict(weight_decay=0.0), **fit)
    latent_ref, latent_query = reference.get_latent_representation(), mapped.get_latent_representation()
    seconds = time.perf_counter() - start
    row = score(ref, query, latent_ref, latent_query, label_key, batch_key)
    return [{"split": split, "method": "totalvi", "seed": seed, "seconds": seconds, **row}]


def _write(out: Path, rows: list[dict], meta: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--splits", nargs="+", default=["mixology_dropseq", "cite_5k"], choices=list(SPLITS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--ref-epochs", type=int, default=100)
    parser.add_argument("--query-epochs", type=int, default=50)
    parser.add_argument("--methods", nargs="+", default=["qbm", "pca_ref", "scvi", "scanvi", "totalvi"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--note", default=None, help="a sentence about this run, added to meta['note']")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    study = json.loads(args.out.read_text()) if args.out.exists() else {}
    previous = study.get("rows", [])
    redo = {(s, m) for s in args.splits for m in args.methods}
    redo |= {(s, "scanvi_classifier") for s in args.splits if "scanvi" in args.methods}
    rows = [r for r in previous if (r["split"], r["method"]) not in redo]
    meta = {
        **package_versions("torch", "qbm_pyro", "scvi-tools", "scanpy", "scikit-learn"),
        "machine": platform.platform(),
        "torch_threads": args.threads,
        "ref_epochs": args.ref_epochs,
        "query_epochs": args.query_epochs,
        "seeds": args.seeds,
        "settings": "QBM-VAE defaults; scVI n_latent=10; scANVI from the scVI reference + 20 epochs; "
        "query training with weight_decay=0 (scArches); early stopping as each library's default",
    }
    # rows kept from earlier runs keep their record: versions this run lacks, and their notes
    meta = {**study.get("meta", {}), **{k: v for k, v in meta.items() if v is not None}}
    notes = [n for n in (study.get("meta", {}).get("note"), args.note) if n]
    if notes:
        meta["note"] = " ".join(notes)
    has_scvi = True
    try:
        import scvi  # noqa: F401
    except ImportError:
        has_scvi = False
        print("scvi-tools is not installed: only QBM-VAE is run")
    for split in args.splits:
        for seed in args.seeds:
            epochs = (split, seed, args.ref_epochs, args.query_epochs)
            jobs = []
            if "qbm" in args.methods:
                jobs.append((run_qbm, epochs))
            if "pca_ref" in args.methods:
                jobs.append((run_pca_ref, epochs))
            if has_scvi and {"scvi", "scanvi"} & set(args.methods):
                jobs.append((run_scvi, (*epochs, args.methods)))
            if has_scvi and "totalvi" in args.methods and split.startswith("cite"):
                jobs.append((run_totalvi, epochs))
            for job, job_args in jobs:
                for row in job(*job_args):
                    rows.append(row)
                    shown = {k: round(v, 3) for k, v in row.items() if k in METRICS and v is not None}
                    print(split, row["method"], seed, shown, flush=True)
                    _write(args.out, rows, meta)
    _write(args.out, rows, meta)


def _mean_sd(values) -> str:
    return mean_sd(values, missing="–", drop_nan=False)


def report_section(results: Path) -> list[str]:
    """Markdown lines of the reference-mapping section of ``BENCHMARKS.md`` (empty without results)."""
    path = Path(results) / "mapping.json"
    if not path.exists():
        return []
    study = json.loads(path.read_text())
    rows, meta = study["rows"], study["meta"]
    md = [
        "## Reference mapping and label transfer (mapping.py)",
        "",
        "A held-out batch (query) mapped onto a reference fitted on the other batches, scArches-style "
        "(frozen reference; only the new batch's parameters trained). Label transfer: 15-NN weighted "
        "vote (`qbm_pyro.tl.transfer_labels`) from reference to query cells in each method's latent; "
        "`scanvi_classifier` is scANVI's own `predict()`. Uncertainty AUROC: how well the per-cell "
        "uncertainty ranks wrong above right predictions. Batch mixing over all cells with their "
        "batches; query mixing with reference/query as the labels. "
        f"Reference {meta.get('ref_epochs')} epochs, query {meta.get('query_epochs')} epochs, seeds "
        f"{meta.get('seeds')}, mean ± sd; {meta.get('settings')}. `cite_5k` labels are coarse "
        "protein-gated types (see `benchmarks/mapping.py`): QBM-VAE and totalVI see the proteins, "
        "scVI/scANVI do not." + (f" {meta['note']}" if meta.get("note") else ""),
        "",
    ]
    for split in dict.fromkeys(r["split"] for r in rows):
        md += [
            f"### {split}",
            "",
            "| method | " + " | ".join(METRICS) + " |",
            "|---" * (len(METRICS) + 1) + "|",
        ]
        for method in dict.fromkeys(r["method"] for r in rows if r["split"] == split):
            mine = [r for r in rows if r["split"] == split and r["method"] == method]
            cells = [_mean_sd([r.get(m) for r in mine]) for m in METRICS]
            md.append(f"| {method} (n={len(mine)}) | " + " | ".join(cells) + " |")
        md.append("")
    return md


if __name__ == "__main__":
    main()
