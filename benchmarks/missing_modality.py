"""Queries that lack a modality: label transfer from an RNA + protein reference to RNA-only and
protein-only queries, accuracy and calibration of the uncertainty.

Usage: ``python benchmarks/missing_modality.py [--seeds 0 1] [--ref-epochs 100]
[--query-epochs 50] [--cache DIR] [--note TEXT] [--out benchmarks/results/missing_modality.json]``.

Data: the bundled CITE-seq set (``qbm_pyro.datasets.pbmc_cite_2batch``); reference ``pbmc10k``,
query ``pbmc5k`` (200 cells each), with the coarse protein-gated labels of
``benchmarks/mapping.py`` (:func:`benchmarks.mapping.cite_labels`: T, B, monocyte, NK). The
reference (QBM-VAE defaults) is fitted on RNA + protein; the query is mapped
(``QBMVAE.load_query_data``, scArches, frozen) with both modalities, RNA only and protein only,
and labelled by :func:`qbm_pyro.tl.transfer_labels` (15 neighbours). Per query kind and seed:

* ``accuracy``;
* calibration of ``1 - uncertainty`` as the confidence of the predicted label: the mean
  uncertainty of right and of wrong calls, the expected calibration error (``ece``, 10 equal-width
  bins) and the AUROC of the uncertainty for telling wrong from right calls;
* ``warned``: whether ``load_query_data`` warned (``MissingModalityWarning``).

Uncertainties, on the same latents (so the same labels and accuracy): ``vote`` (scArches'
vote-only, ``distance_aware=False``), ``distance`` (``distance_aware=True``), ``reliability``
(:func:`qbm_pyro.tl.modality_reliability` then ``transfer_labels(distance_aware=False)``: the
uncertainty of cells that lack a modality is calibrated on reference cells encoded from the
query's modalities alone) and ``reliability+distance``. ``estimated_accuracy``: the reference's
leave-one-out label-transfer accuracy from those modalities; ``estimated_agreement_label_free``:
the label-free neighbourhood agreement (the fallback without reference labels). ``--cache``
keeps the fitted latents and the reliability entries; a cache without the latter refits the
reference only (same seed; checked to reproduce the cached reference latent). A kNN on the
query's raw protein CLR (the labels' own source) and RNA (log-normalised) against the
reference's gives the ceiling of each modality.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import anndata as ad  # noqa: E402
import mudata as md  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402

import qbm_pyro  # noqa: E402
from benchmarks.environment import package_versions  # noqa: E402
from benchmarks.mapping import cite_labels  # noqa: E402
from benchmarks.tables import mean_sd  # noqa: E402
from qbm_pyro.model import MissingModalityWarning  # noqa: E402
from qbm_pyro.tl._reliability import MODALITIES_KEY, RELIABILITY_KEY, pattern_accuracy  # noqa: E402

OUT = HERE / "results" / "missing_modality.json"
QUERIES = ("both", "rna_only", "protein_only")
METRICS = ("accuracy", "uncertainty_right", "uncertainty_wrong", "ece", "uncertainty_auroc")


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> float:
    """Σ_bins (n_bin / n) |accuracy_bin - mean confidence_bin| over equal-width confidence bins."""
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        rows = bins == b
        if rows.any():
            total += rows.mean() * abs(correct[rows].mean() - confidence[rows].mean())
    return float(total)


def calibration(truth: np.ndarray, predicted: np.ndarray, uncertainty: np.ndarray) -> dict:
    correct = predicted == truth
    wrong = ~correct
    return {
        "accuracy": float(correct.mean()),
        "uncertainty_right": float(uncertainty[correct].mean()) if correct.any() else None,
        "uncertainty_wrong": float(uncertainty[wrong].mean()) if wrong.any() else None,
        "ece": expected_calibration_error(1.0 - uncertainty, correct.astype(float)),
        "uncertainty_auroc": (
            float(roc_auc_score(wrong, uncertainty)) if 0 < wrong.sum() < len(wrong) else None
        ),
    }


def query_variant(query: md.MuData, kind: str) -> md.MuData:
    if kind == "both":
        return query
    name = "rna" if kind == "rna_only" else "prot"
    out = md.MuData({name: query[name].copy()})
    out.obs["batch"] = query.obs["batch"].to_numpy()
    return out


def raw_knn(ref: md.MuData, query: md.MuData, labels_ref, labels_query) -> dict:
    """Accuracy of a 15-NN on raw protein CLR / log-normalised RNA (no model)."""

    def protein(m):
        x = np.log1p(np.asarray(m["prot"].X.todense() if hasattr(m["prot"].X, "todense") else m["prot"].X))
        return x - x.mean(1, keepdims=True)

    def rna(m):
        x = m["rna"].X
        x = np.asarray(x.todense() if hasattr(x, "todense") else x, dtype=np.float64)
        return np.log1p(x / np.maximum(x.sum(1, keepdims=True), 1) * 1e4)

    out = {}
    for name, fn in (("protein_only", protein), ("rna_only", rna)):
        knn = KNeighborsClassifier(15).fit(fn(ref), labels_ref)
        out[name] = float((knn.predict(fn(query)) == labels_query).mean())
    return out


def _data():
    data = qbm_pyro.datasets.pbmc_cite_2batch()
    data.obs["cell_type"] = cite_labels(data)
    ref = data[data.obs["batch"] == "pbmc10k"].copy()
    query = data[data.obs["batch"] == "pbmc5k"].copy()
    return ref, query


def _reference(ref: md.MuData, seed: int, ref_epochs: int, modality_dropout: float = 0.0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = qbm_pyro.QBMVAE(ref, batch_key="batch", seed=seed)
        extra = {"modality_dropout": modality_dropout} if modality_dropout else {}
        model.train(max_epochs=ref_epochs, progress_bar=False, **extra)
    return model


def add_reliability(out: dict, model, query: md.MuData) -> None:
    """``tl.modality_reliability`` for the RNA-only and protein-only queries (reference cells
    encoded from RNA alone and from protein alone); stored flat for the npz cache."""
    for kind in QUERIES[1:]:
        variant = query_variant(query, kind)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mapped = qbm_pyro.QBMVAE.load_query_data(variant, model)
        holder = ad.AnnData(np.zeros((variant.n_obs, 1)))
        holder.obs_names = mapped.data.obs_names
        qbm_pyro.tl.modality_reliability(holder, mapped, model, seed=0)
        info = holder.uns[RELIABILITY_KEY]
        ((pattern, reduced),) = info["reduced"].items()
        out[f"{kind}_pattern"] = np.asarray(pattern)
        out[f"{kind}_reduced"] = reduced
        out["reliability_full"] = info["full"]
        out["reliability_obs_names"] = info["reference_obs_names"]
    out["reference_obs_names"] = np.asarray(model.data.obs_names, dtype=str)


def fit_latents(seed: int, ref_epochs: int, query_epochs: int, modality_dropout: float = 0.0) -> dict:
    """Fit the reference, map the three query kinds; latents, labels and warnings."""
    ref, query = _data()
    start = time.perf_counter()
    model = _reference(ref, seed, ref_epochs, modality_dropout)
    out = {
        "reference": model.get_latent_representation(),
        "reference_labels": np.asarray(ref.obs["cell_type"], dtype=str),
        "truth": np.asarray(query.obs["cell_type"], dtype=str),
    }
    add_reliability(out, model, query)
    ceiling = raw_knn(ref, query, out["reference_labels"], out["truth"])
    for kind in QUERIES:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mapped = qbm_pyro.QBMVAE.load_query_data(query_variant(query, kind), model)
            mapped.train(max_epochs=query_epochs, progress_bar=False)
            out[kind] = mapped.get_latent_representation()
        out[f"{kind}_warned"] = any(issubclass(w.category, MissingModalityWarning) for w in caught)
        out[f"{kind}_raw_knn"] = ceiling.get(kind, np.nan)
    out["seconds"] = time.perf_counter() - start
    return out


#: ``(name, distance_aware, with tl.modality_reliability)`` of the scored uncertainties.
VARIANTS = (
    ("vote", False, False),
    ("distance", True, False),
    ("reliability", False, True),
    ("reliability+distance", True, True),
)


def score(seed: int, fitted: dict) -> list[dict]:
    """Label transfer with each uncertainty of :data:`VARIANTS` on the same latents."""
    holder_ref = ad.AnnData(np.zeros((len(fitted["reference_labels"]), 1)))
    holder_ref.obs_names = [str(n) for n in fitted["reference_obs_names"]]
    holder_ref.obs["cell_type"] = fitted["reference_labels"]
    holder_ref.obsm["X_qbm"] = fitted["reference"]
    truth = fitted["truth"]
    rows = []
    for kind in QUERIES:
        for when, aware, reliable in VARIANTS:
            holder = ad.AnnData(np.zeros((len(truth), 1)))
            holder.obsm["X_qbm"] = fitted[kind]
            estimate = label_free = None
            if reliable and kind != "both":
                pattern = str(fitted[f"{kind}_pattern"])
                info = {
                    "reference_obs_names": fitted["reliability_obs_names"],
                    "full": fitted["reliability_full"],
                    "reduced": {pattern: fitted[f"{kind}_reduced"]},
                }
                holder.obs[MODALITIES_KEY] = pattern
                holder.uns[RELIABILITY_KEY] = info
                ((label_free, *_),) = pattern_accuracy(info, fitted["reference"], [], None, 15, None).values()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # far off the reference: measured here
                qbm_pyro.tl.transfer_labels(
                    holder, holder_ref, "cell_type", n_neighbors=15, distance_aware=aware
                )
            predicted = holder.obs["cell_type_pred"].astype(str).to_numpy()
            uncertainty = holder.obs["cell_type_uncertainty"].to_numpy()
            row = {"seed": seed, "query": kind, "uncertainty": when, "warned": bool(fitted[f"{kind}_warned"])}
            row.update(calibration(truth, predicted, uncertainty))
            row["predicted_classes"] = sorted(set(predicted))
            if "cell_type_modality_accuracy" in holder.obs:
                estimate = float(holder.obs["cell_type_modality_accuracy"].iloc[0])
                row["estimated_accuracy"] = estimate
                row["estimated_agreement_label_free"] = label_free
            if aware:
                row["median_distance_ratio"] = float(np.median(holder.obs["cell_type_distance_ratio"]))
            if kind != "both":
                row["raw_knn_accuracy"] = float(fitted[f"{kind}_raw_knn"])
            row["seconds"] = float(fitted["seconds"])
            rows.append(row)
    return rows


def report_section(result: dict | None) -> list[str]:
    """The BENCHMARKS.md section (mean ± sd over seeds)."""
    if result is None:
        return ["_missing_modality.json missing: run `python benchmarks/missing_modality.py`._", ""]
    meta = result["meta"]
    lines = [
        "## Queries that lack a modality",
        "",
        f"`benchmarks/missing_modality.py`: QBM-VAE reference on RNA + protein (pbmc10k, "
        f"{meta['ref_epochs']} epochs), query pbmc5k mapped with both modalities, RNA only or protein "
        f"only ({meta['query_epochs']} epochs, scArches frozen), labels by `tl.transfer_labels` "
        f"(15 neighbours) against the protein-gated types; seeds {meta['seeds']}. Uncertainties on "
        "the same latents (same labels): `vote`: scArches' vote-only; `distance`: shrunk off the "
        "reference (`distance_aware=True`); `reliability`: times the accuracy estimated by "
        "`tl.modality_reliability` (reference cells encoded from the query's modalities alone, "
        "labelled against the reference: `est. accuracy`; `label-free agreement`: the neighbourhood "
        "agreement used without labels). `ece`: expected calibration error of 1 − uncertainty "
        "(10 bins; lower is better). "
        "`raw kNN`: a 15-NN on the query modality's raw values (no model). `warned`: "
        "`load_query_data` raised `MissingModalityWarning`.",
        "",
        *([f"_{meta['note']}_", ""] if meta.get("note") else []),
        "| query | uncertainty | accuracy | unc. right | unc. wrong | ECE | AUROC wrong | est. accuracy "
        "| label-free agreement | raw kNN | warned |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = result["rows"]
    for kind in QUERIES:
        for when, *_ in VARIANTS:
            sel = [r for r in rows if r["query"] == kind and r["uncertainty"] == when]
            if not sel:
                continue
            cells = [mean_sd([r[m] for r in sel if r.get(m) is not None]) for m in METRICS]
            for m in ("estimated_accuracy", "estimated_agreement_label_free", "raw_knn_accuracy"):
                cells.append(mean_sd([r[m] for r in sel]) if sel[0].get(m) is not None else "—")
            warned = "yes" if all(r["warned"] for r in sel) else "no"
            lines.append(f"| {kind} | {when} | " + " | ".join(cells) + f" | {warned} |")
    lines.append("")
    return lines


def dropout_section(results: Path) -> list[str]:
    """Accuracy and uncertainty of each query kind with the reference trained with
    ``modality_dropout`` (``missing_modality_dropout_<p>.json``) beside the default's."""
    runs = [("0 (default)", results / "missing_modality.json")]
    runs += [(f.stem.rsplit("_", 1)[-1], f) for f in sorted(results.glob("missing_modality_dropout_*.json"))]
    runs = [(p, json.loads(f.read_text())) for p, f in runs if f.exists()]
    if len(runs) < 2:
        return []
    lines = [
        "### The reference trained with modality dropout",
        "",
        "`train(modality_dropout=p)`: in training each reference cell's encoders miss each of its "
        "modalities with probability p (never all), the likelihood still scoring all of them; the "
        "same queries and protocol as above (`--modality-dropout p`). Accuracy (mean ± sd over "
        "seeds), and the ECE and AUROC of the vote-only uncertainty.",
        "",
        "| modality_dropout | query | accuracy | ECE (vote) | AUROC wrong (vote) |",
        "|---|---|---|---|---|",
    ]
    for p, result in runs:
        for kind in QUERIES:
            sel = [r for r in result["rows"] if r["query"] == kind and r["uncertainty"] == "vote"]
            cells = [
                mean_sd([r[m] for r in sel if r.get(m) is not None])
                for m in ("accuracy", "ece", "uncertainty_auroc")
            ]
            lines.append(f"| {p} | {kind} | " + " | ".join(cells) + " |")
    notes = [r.get("meta", {}).get("note") for _, r in runs[1:]]
    return [*lines, "", *([f"_{notes[0]}_", ""] if notes and notes[0] else [])]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--ref-epochs", type=int, default=100)
    parser.add_argument("--query-epochs", type=int, default=50)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--cache", type=Path, default=None, help="keep the fitted latents there (npz) and reuse them"
    )
    parser.add_argument("--note", default=None, help="provenance note in meta (shown in BENCHMARKS.md)")
    parser.add_argument(
        "--modality-dropout", type=float, default=0.0, help="train the reference with modality_dropout=p"
    )
    args = parser.parse_args(argv)
    rows, done = [], []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        cached = None if args.cache is None else args.cache / f"latents_seed{seed}.npz"
        if cached is not None and cached.exists():
            fitted = dict(np.load(cached, allow_pickle=False))
            if "reliability_full" not in fitted:  # a cache from before: refit the reference only
                ref, query = _data()
                model = _reference(ref, seed, args.ref_epochs)
                same = np.allclose(model.get_latent_representation(), fitted["reference"], atol=1e-4)
                print(f"seed {seed}: refitted reference reproduces the cached one: {same}", flush=True)
                if not same:
                    fitted = fit_latents(seed, args.ref_epochs, args.query_epochs, args.modality_dropout)
                else:
                    add_reliability(fitted, model, query)
                np.savez(cached, **fitted)
        else:
            fitted = fit_latents(seed, args.ref_epochs, args.query_epochs, args.modality_dropout)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                np.savez(cached, **fitted)
        rows += score(seed, fitted)
        done.append(seed)
        print(json.dumps(rows[-4 * len(QUERIES) :], indent=1), flush=True)
        meta = {
            "seeds": done,
            "ref_epochs": args.ref_epochs,
            "query_epochs": args.query_epochs,
            "versions": package_versions(),
            **({"note": args.note} if args.note else {}),
            **({"modality_dropout": args.modality_dropout} if args.modality_dropout else {}),
        }
        args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))  # after every seed
    print("\n".join(report_section({"meta": meta, "rows": rows})))


if __name__ == "__main__":
    main()
