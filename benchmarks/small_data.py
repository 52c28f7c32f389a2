"""Small data: QBM-VAE defaults on 300-cell subsamples against scVI and PCA, each with DPT.

Not a test. Writes ``results/small_data.json`` (or ``--out``). For each data set, ``--draws``
random subsamples of ``--n-cells`` cells are drawn (draw ``d`` uses seed ``d`` for the
subsample and for every model fit on it, so the spread over draws includes the seed spread):

* ``paul15`` (bundled, 240 genes; label ``cell_type``; root group "Multipotent progenitors";
  truth: Spearman of the pseudotime with each slingshot lineage pseudotime, on that lineage's
  cells, averaged over the two lineages);
* ``a549`` (bundled sci-CAR RNA, ``layers['counts']``, 1,185 genes as the source has them; label
  and truth ``time`` 0h/1h/3h; root group 0h);
* ``mixology`` (the whole transcriptome of the shared source file, 28,517 genes, singlets only;
  label ``cell_line``; no time): the gene-selection case, ``tl.qbm`` gets all genes.

Methods (latent → scores): ``qbm`` is :func:`qbm_pyro.tl.qbm` with its defaults (gene selection,
epochs, validation and early stopping that follow the number of cells; 64 + 16 latent);
``qbm_16_8`` the same with a 16 binary + 8 Gaussian latent;
``qbm_old`` the former defaults (64 + 16, 200 epochs, 10 % validation, early stopping);
``qbm_all_genes`` (mixology) ``n_top_genes=None``; ``qbm_tpm`` the defaults on rounded
TPM-like values ``round(1e6 * count / cell total)`` (the NB then treats them as counts);
``scvi`` (scvi-tools defaults, 10 latent dimensions, on the same genes as ``qbm``); ``pca`` (30
PCs of log1p-normalised 2,000 seurat_v3
genes, or all genes when there are fewer). Scores: 15-NN label accuracy (5-fold), and for sets
with a time: our :func:`~qbm_pyro.tl.trajectory` from the root group (``"traj"``: mean DPT from
the group's cells) and scanpy's DPT (``"dpt"``) from the group's tip cell (the group cell furthest
along the line joining the group's and the other cells' centroids), Spearman with the truth,
and the Spearman of the QBM energy with the truth (``energy_trend``). ``robustness`` re-runs the
trajectory of ``qbm`` and ``pca`` with other ``n_neighbors``, ``n_dcs`` and 5 random root cells of
the root group.

Run: ``python benchmarks/small_data.py --sets paul15 a549 mixology`` (about an hour on 2 busy CPU
cores); ``--methods`` picks methods; several runs merge into one JSON (``--merge``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import scanpy as sc
from scipy.stats import spearmanr

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import torch  # noqa: E402

import qbm_pyro  # noqa: E402
from benchmarks.tables import mean_sd  # noqa: E402
from qbm_pyro.metrics import knn_accuracy  # noqa: E402
from qbm_pyro.tl._diffusion import _dpt_weights  # noqa: E402
from qbm_pyro.tl._roots import _group_tip  # noqa: E402

SHARED_MIXOLOGY = Path("/work/shared/data/mixology_5batch.h5ad")
RESULTS = HERE / "results" / "small_data.json"
METHODS = ("qbm", "qbm_16_8", "qbm_64_16", "qbm_old", "qbm_all_genes", "qbm_tpm", "scvi", "pca")
SETS = {
    "paul15": {"label": "cell_type", "root": ("cell_type", "Multipotent progenitors"), "truth": "lineages"},
    "a549": {"label": "time", "root": ("time", "0h"), "truth": "time_hours"},
    "mixology": {"label": "cell_line", "root": None, "truth": None},
}
LINEAGES = ("pseudotime_lineage1", "pseudotime_lineage2")


################################################################################
# Data.
################################################################################


def load(name: str) -> ad.AnnData:
    """Whole data set as one AnnData of counts in ``X``."""
    if name == "paul15":
        return qbm_pyro.datasets.paul15_myeloid()
    if name == "a549":
        rna = qbm_pyro.datasets.a549_scicar()["rna"]
        out = ad.AnnData(X=rna.layers["counts"].astype(np.float32), obs=rna.obs.copy(), var=rna.var.copy())
        return out
    if name == "mixology":
        if not SHARED_MIXOLOGY.exists():
            raise FileNotFoundError(f"{SHARED_MIXOLOGY} (whole-transcriptome mixology) is not here")
        adata = ad.read_h5ad(SHARED_MIXOLOGY)
        return adata[adata.obs["demuxlet_cls"] == "SNG"].copy()
    raise ValueError(name)


def subsample(adata: ad.AnnData, n_cells: int, draw: int) -> ad.AnnData:
    rng = np.random.default_rng(draw)
    idx = np.sort(rng.choice(adata.n_obs, size=min(n_cells, adata.n_obs), replace=False))
    sub = adata[idx].copy()
    keep = np.asarray((sub.X > 0).sum(axis=0)).ravel() > 0  # genes never seen in the draw
    return sub[:, keep].copy()


def hvg_log(adata: ad.AnnData, n_top: int = 2000) -> ad.AnnData:
    """log1p-normalised values of the seurat_v3 genes (all genes when there are fewer)."""
    work = adata.copy()
    if work.n_vars > n_top:
        qbm_pyro.pp.highly_variable_genes(work, n_top)
        work = work[:, work.var["qbm_highly_variable"].to_numpy()].copy()
    sc.pp.normalize_total(work, target_sum=1e4)
    sc.pp.log1p(work)
    return work


################################################################################
# Latents.
################################################################################


def fit(method: str, adata: ad.AnnData, seed: int) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Latent, energy (QBM only) and details of one method on one subsample."""
    data = adata.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method.startswith("qbm"):
            kwargs: dict[str, Any] = {"seed": seed, "progress_bar": False}
            if method == "qbm_64_16":  # the default since it won on paul15 (kept for the old rows)
                kwargs |= {"n_latent": 64, "n_continuous": 16}
            elif method == "qbm_16_8":
                kwargs |= {"n_latent": 16, "n_continuous": 8}
            elif method == "qbm_old":
                kwargs |= {"n_latent": 64, "n_continuous": 16, "max_epochs": 200}
                kwargs |= {"validation_fraction": 0.1, "early_stopping": True}
            elif method == "qbm_all_genes":
                kwargs |= {"n_top_genes": None}
            elif method == "qbm_tpm":  # rounded TPM-like values instead of the counts
                x = data.X.toarray() if hasattr(data.X, "toarray") else np.asarray(data.X)
                data.X = np.round(x / np.maximum(x.sum(1, keepdims=True), 1) * 1e6).astype(np.float32)
            qbm_pyro.tl.qbm(data, **kwargs)
            params = data.uns["qbm"]["params"]
            extra = {
                "epochs_run": len(data.uns["qbm"]["history"]["epoch"]),
                "n_binary": int(params["n_binary"]),
                "n_vars": int(params["n_vars"]["rna"]),
            }
            return data.obsm["X_qbm"], data.obs["qbm_energy"].to_numpy(), extra
        if method == "scvi":
            import scvi

            scvi.settings.verbosity = 40
            scvi.settings.dl_num_workers = 0
            scvi.settings.seed = seed
            torch.set_num_threads(1)
            genes = data
            if data.n_vars > qbm_pyro.pp.AUTO_SELECT_ABOVE:  # the same genes as qbm's default
                qbm_pyro.pp.highly_variable_genes(genes, qbm_pyro.pp.DEFAULT_N_TOP_GENES)
                genes = data[:, data.var["qbm_highly_variable"].to_numpy()].copy()
            scvi.model.SCVI.setup_anndata(genes)
            model = scvi.model.SCVI(genes, n_latent=10)
            model.train(accelerator="cpu", devices=1, enable_progress_bar=False)
            losses = [v for k, v in model.history.items() if k.startswith("train_loss")]
            extra = {"epochs_run": len(losses[0]) if losses else None, "n_vars": int(genes.n_vars)}
            return np.asarray(model.get_latent_representation()), None, extra
        if method == "pca":
            work = hvg_log(data)
            sc.pp.pca(work, n_comps=30, random_state=seed)
            return work.obsm["X_pca"], None, {"n_vars": int(work.n_vars)}
    raise ValueError(method)


################################################################################
# Scores.
################################################################################


def truth_score(obs, values: np.ndarray, truth: str) -> float:
    """Spearman of ``values`` with the time, or the mean over lineages on their cells."""
    if truth == "lineages":
        rhos = []
        for key in LINEAGES:
            ref = obs[key].to_numpy(dtype=float)
            ok = np.isfinite(ref) & np.isfinite(values)
            rhos.append(spearmanr(values[ok], ref[ok]).statistic)
        return float(np.mean(rhos))
    ref = obs[truth].to_numpy(dtype=float)
    ok = np.isfinite(values)
    return float(spearmanr(values[ok], ref[ok]).statistic)


def our_trajectory(adata, latent, n_binary, root, seed, **kwargs) -> tuple[np.ndarray, int]:
    work = ad.AnnData(obs=adata.obs.copy(), obsm={"X_lat": np.asarray(latent, dtype=np.float64)})
    roots = (
        {"root": root}
        if isinstance(root, (int, np.integer))
        else {"root_key": root[0], "root_value": root[1]}
    )
    metric = "hellinger" if n_binary else "euclidean"
    qbm_pyro.tl.trajectory(
        work, **roots, use_rep="X_lat", n_binary=n_binary, metric=metric, seed=seed, **kwargs
    )
    root_index = int(work.uns["qbm_trajectory"]["root"]["index"])
    if not isinstance(root, (int, np.integer)):  # DPT baselines start from the group's tip cell
        lam = work.uns["qbm_trajectory"]["eigenvalues"]  # the non-trivial ones
        coords = work.obsm["X_qbm_diffmap"] * _dpt_weights(np.r_[1.0, lam])
        root_index = _group_tip(work.obs[root[0]].astype(str).to_numpy() == root[1], coords)
    return work.obs["qbm_pseudotime"].to_numpy(dtype=float), root_index


def scanpy_dpt(adata, latent, root_index: int) -> np.ndarray:
    work = ad.AnnData(obs=adata.obs[[]].copy(), obsm={"X_lat": np.asarray(latent, dtype=np.float32)})
    sc.pp.neighbors(work, n_neighbors=15, use_rep="X_lat", random_state=0)
    sc.tl.diffmap(work, n_comps=11)
    work.uns["iroot"] = int(root_index)
    sc.tl.dpt(work, n_dcs=11)
    pt = work.obs["dpt_pseudotime"].to_numpy(dtype=float)
    pt[~np.isfinite(pt)] = np.nan
    return pt


def score(name: str, adata, latent, energy, n_binary: int, seed: int, robustness: bool) -> dict:
    spec = SETS[name]
    labels = adata.obs[spec["label"]].astype(str).to_numpy()
    row: dict[str, Any] = {"knn15": knn_accuracy(latent, labels, k=15)["accuracy"]}
    if spec["truth"] is None:
        return row
    pt, root_index = our_trajectory(adata, latent, n_binary, spec["root"], seed)
    row["traj_spearman"] = truth_score(adata.obs, pt, spec["truth"])
    row["dpt_spearman"] = truth_score(adata.obs, scanpy_dpt(adata, latent, root_index), spec["truth"])
    if energy is not None:
        row["energy_trend"] = truth_score(adata.obs, energy, spec["truth"])
    if robustness:
        rob: dict[str, float] = {}
        for k in (5, 10, 30):
            rob[f"n_neighbors={k}"] = truth_score(
                adata.obs,
                our_trajectory(adata, latent, n_binary, spec["root"], seed, n_neighbors=k)[0],
                spec["truth"],
            )
        for d in (3, 5, 15):
            rob[f"n_dcs={d}"] = truth_score(
                adata.obs,
                our_trajectory(adata, latent, n_binary, spec["root"], seed, n_dcs=d)[0],
                spec["truth"],
            )
        group = np.flatnonzero(adata.obs[spec["root"][0]].astype(str).to_numpy() == spec["root"][1])
        cells = np.random.default_rng(seed).choice(group, size=min(5, len(group)), replace=False)
        roots = [
            truth_score(adata.obs, our_trajectory(adata, latent, n_binary, int(c), seed)[0], spec["truth"])
            for c in cells
        ]
        rob["random_root_mean"] = float(np.mean(roots))
        rob["random_root_min"] = float(np.min(roots))
        rob["random_root_max"] = float(np.max(roots))
        row["robustness"] = rob
    return row


def _knn_check() -> None:
    import inspect

    if "k" not in inspect.signature(knn_accuracy).parameters:
        raise RuntimeError("qbm_pyro.metrics.knn_accuracy has no k= argument")


################################################################################
# Driver and report.
################################################################################


def run(sets, methods, draws, n_cells, out: Path, log=print) -> list[dict]:
    rows = json.loads(out.read_text())["rows"] if out.exists() else []
    done = {(r["dataset"], r["method"], r["draw"]) for r in rows}
    for name in sets:
        full = load(name)
        for draw in draws:
            adata = subsample(full, n_cells, draw)
            for method in methods:
                if method == "qbm_all_genes" and adata.n_vars <= qbm_pyro.pp.AUTO_SELECT_ABOVE:
                    continue
                if method in ("qbm_64_16", "qbm_old") and name == "mixology":
                    continue
                if (name, method, draw) in done:
                    continue
                start = time.perf_counter()
                latent, energy, extra = fit(method, adata, seed=draw)
                seconds = time.perf_counter() - start
                n_binary = int(extra.get("n_binary", 0))
                row = {"dataset": name, "method": method, "draw": draw, "seed": draw, "n_cells": adata.n_obs}
                row |= {"n_genes_input": int(adata.n_vars), "seconds": round(seconds, 1)} | extra
                row |= score(name, adata, latent, energy, n_binary, draw, method in ("qbm", "pca"))
                log(json.dumps(row))
                rows.append(row)
                _write(out, rows)
    return rows


def _write(out: Path, rows: list[dict]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"torch": torch.__version__, "scanpy": sc.__version__, "qbm_pyro": qbm_pyro.__version__}
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    tmp.replace(out)


LABELS = {
    "qbm": "QBM-VAE, defaults",
    "qbm_16_8": "QBM-VAE, defaults but a 16 + 8 latent",
    "qbm_64_16": "QBM-VAE, defaults but 64 + 16 latent",
    "qbm_old": "QBM-VAE, former defaults (64 + 16, 200 epochs, early stopping)",
    "qbm_all_genes": "QBM-VAE, defaults but all genes",
    "qbm_tpm": "QBM-VAE on rounded TPM-like values (latent: see binary units)",
    "scvi": "scVI (10)",
    "pca": "PCA (30)",
}


def section(results: Path) -> list[str]:
    """The BENCHMARKS.md section (markdown lines) from ``results/small_data.json``."""
    path = results / "small_data.json"
    if not path.exists():
        return []
    result = json.loads(path.read_text())
    rows, note = result["rows"], result.get("meta", {}).get("note")
    lines = ["## Small data (300-cell subsamples)", ""]
    lines += [
        "`benchmarks/small_data.py`: 300 random cells per draw; draw d uses seed d for the subsample "
        "and every fit; mean ± sd over the draws (n). `traj`: our `tl.trajectory` from the root group "
        "(mean DPT from its cells), `dpt`: scanpy DPT on the same latent from the group's tip cell; "
        "Spearman with the time (a549) or, for paul15, "
        "the mean over the two slingshot lineages of the Spearman with the lineage pseudotime on "
        "its cells. `energy`: Spearman of the QBM prior energy with the same truth. kNN: 15-NN "
        "label accuracy (5-fold). QBM-VAE defaults below 1,000 cells: 64 binary + 16 Gaussian units, "
        "400 epochs, no validation set, no early stopping, 2,000 seurat_v3 genes when > 4,000.",
        "",
        *([f"_{note}_", ""] if note else []),
    ]
    for name in SETS:
        sub = [r for r in rows if r["dataset"] == name]
        if not sub:
            continue
        genes = sorted({r["n_genes_input"] for r in sub})
        lines += [f"### {name} ({sub[0]['n_cells']} cells, {genes[0]}-{genes[-1]} genes input)", ""]
        metrics = [
            m for m in ("knn15", "traj_spearman", "dpt_spearman", "energy_trend") if any(m in r for r in sub)
        ]
        lines += ["| method | n | binary units | " + " | ".join(metrics) + " | epochs | seconds |"]
        lines += ["|---" * (len(metrics) + 5) + "|"]
        for method in METHODS:
            mrows = [r for r in sub if r["method"] == method]
            if not mrows:
                continue
            cells = [_ms([r.get(m) for r in mrows]) for m in metrics]
            epochs = _ms([r.get("epochs_run") for r in mrows], digits=0)
            secs = _ms([r.get("seconds") for r in mrows], digits=0)
            units = "/".join(sorted({str(r.get("n_binary", "-")) for r in mrows}))
            lead = f"| {LABELS[method]} | {len(mrows)} | {units} | "
            lines.append(lead + " | ".join(cells) + f" | {epochs} | {secs} |")
        lines.append("")
        rob = [r for r in sub if "robustness" in r]
        if rob:
            lines += [
                f"Trajectory robustness ({name}, Spearman as `traj`; default n_neighbors=15, n_dcs=10, "
                "root = the root group (mean DPT from its cells); `random_root_*`: 5 single cells of "
                "the group as the root):",
                "",
            ]
            keys = list(rob[0]["robustness"])
            lines += ["| latent | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
            for method in ("qbm", "qbm_16_8", "pca"):
                mrows = [r for r in rob if r["method"] == method]
                if mrows:
                    cells = [_ms([r["robustness"][k] for r in mrows]) for k in keys]
                    lines.append(f"| {LABELS[method]} | " + " | ".join(cells) + " |")
            lines.append("")
    return lines


def _ms(values, digits: int = 3) -> str:
    return mean_sd(values, digits=digits, missing="-", ddof=0)  # sd over draws, ddof 0 as reported


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--draw-ids", type=int, nargs="+", help="run only these draws (default: all)")
    parser.add_argument("--n-cells", type=int, default=300)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    _knn_check()
    draws = args.draw_ids if args.draw_ids is not None else range(args.draws)
    run(args.sets, args.methods, draws, args.n_cells, args.out, log=lambda s: print(s, flush=True))


if __name__ == "__main__":
    main()
