"""Validate :func:`qbm_pyro.tl.trajectory` on real data; write ``results/trajectory.json``.

Not a test. Until the QBM model can write ``obsm["X_qbm"]``, the graph/diffusion machinery is
checked on latents that can be made now, from the same log-normalised data:

* ``X_pca``: 50 principal components (Euclidean distance);
* ``X_code``: a Bernoulli-probability code mimicking a binary latent,
  ``sigmoid(CODE_SHARPNESS * z)`` with ``z`` the PCs standardised to unit variance
  (Hellinger, expected-Hamming and Euclidean distances are compared on it);
* ``X_code_hard``: that code thresholded at 1/2 (a hard binary code);
* ``X_code_global``: ``sigmoid(CODE_SHARPNESS * pcs / s)`` with one scale ``s`` for all PCs
  (the sd of PC1), which keeps the PCs' variance ranking: per-PC standardisation gives the 50th,
  mostly-noise PC as much weight as the first, which hurts any distance on the code.

Data sets: ``a549_scicar`` RNA (dexamethasone 0h/1h/3h; root group ``time == "0h"``; truth:
Spearman/Kendall of pseudotime vs ``time_hours``) and ``paul15_myeloid`` (root group
``cell_type == "Multipotent progenitors"``; truth: Kendall's tau per slingshot lineage on that
lineage's cells, and whether the late cells of the two lineages, erythroid vs myeloid, fall in
two different branches). Each configuration also runs with ``root="auto_diffusion"``, and
scanpy's DPT (``sc.pp.neighbors`` + ``sc.tl.diffmap`` + ``sc.tl.dpt``) runs on the same
representation from the same root cell. Seeds 0, 1, 2 (they change Leiden and the eigensolver
start; the pseudotime barely depends on them).

To evaluate the fitted model later::

    from benchmarks.trajectory import A549_TRUTH, evaluate_trajectory
    evaluate_trajectory(mdata, "X_qbm", {"root_key": "time", "root_value": "0h"}, A549_TRUTH)

Run: ``python benchmarks/trajectory.py`` (about a minute on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
from scipy.stats import kendalltau, spearmanr
from sklearn.metrics import adjusted_rand_score

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # qbm_pyro importable when run from a checkout

from qbm_pyro import datasets  # noqa: E402
from qbm_pyro.tl._trajectory import energy_along_pseudotime, trajectory  # noqa: E402

SEEDS = (0, 1, 2)
N_PCS = 50
#: Slope of the sigmoid that turns standardised PCs into Bernoulli probabilities.
CODE_SHARPNESS = 2.0
KEY = "bench"

A549_TRUTH: dict[str, Any] = {"time_key": "time_hours"}
PAUL15_TRUTH: dict[str, Any] = {
    "lineage_keys": {"myeloid": "pseudotime_lineage1", "erythroid": "pseudotime_lineage2"},
}
A549_ROOT = {"root_key": "time", "root_value": "0h"}
PAUL15_ROOT = {"root_key": "cell_type", "root_value": "Multipotent progenitors"}


################################################################################
# Metrics.
################################################################################


def evaluate_trajectory(
    data: Any,
    use_rep: str,
    root_kwargs: Mapping[str, Any],
    truth: Mapping[str, Any],
    *,
    seed: int = 0,
    **trajectory_kwargs: Any,
) -> dict[str, Any]:
    """Run :func:`qbm_pyro.tl.trajectory` on a copy of ``data`` and score it against a truth.

    Parameters
    ----------
    data
        AnnData or MuData with ``obsm[use_rep]`` and the truth columns in ``obs``.
    use_rep
        Representation to build the trajectory on (``"X_qbm"`` for the fitted model).
    root_kwargs
        ``{"root": ...}`` or ``{"root_key": ..., "root_value": ...}``.
    truth
        ``{"time_key": col}``: Spearman and Kendall of pseudotime vs ``obs[col]``; and/or
        ``{"lineage_keys": {name: col}}``: per lineage, Kendall/Spearman on the cells where
        ``obs[col]`` is not NaN, plus branch separation of the late cells of each lineage (the
        cells of that lineage only, above its median reference pseudotime).
    seed
        Passed to the trajectory.
    **trajectory_kwargs
        More options for :func:`qbm_pyro.tl.trajectory` (``metric``, ``n_binary``, ...).

    Returns
    -------
    dict
        The metrics, the chosen root cell, the number of states and branches, the run time and,
        when ``obs["qbm_energy"]`` exists, the energy-vs-pseudotime Spearman.
    """
    start = time.perf_counter()
    out = trajectory(data, **root_kwargs, use_rep=use_rep, key_added=KEY, seed=seed, copy=True,
                     **trajectory_kwargs)  # fmt: skip
    elapsed = time.perf_counter() - start
    result = score_pseudotime(out.obs, out.obs[f"{KEY}_pseudotime"].to_numpy(), truth)
    result.update(score_branches(out.obs, out.obs[f"{KEY}_branch"].astype(str).to_numpy(), truth))
    info = out.uns[f"{KEY}_trajectory"]
    result.update(
        root_index=int(info["root"]["index"]),
        root_method=str(info["root"]["method"]),
        n_states=int(len(info["states"])),
        n_branches=int(out.obs[f"{KEY}_branch"].nunique()),
        branches=sorted(out.obs[f"{KEY}_branch"].astype(str).unique().tolist()),
        seconds=round(elapsed, 2),
    )
    if "qbm_energy" in out.obs:
        energy = energy_along_pseudotime(out, key=KEY)
        result["energy_spearman"] = energy["spearman"]
        result["energy_branch_spearman"] = energy["branch_spearman"]
    return result


def score_pseudotime(obs: pd.DataFrame, pseudotime: np.ndarray, truth: Mapping[str, Any]) -> dict[str, Any]:
    """Rank correlations of a pseudotime with the reference time or lineage pseudotimes."""
    result: dict[str, Any] = {}
    if "time_key" in truth:
        ref = obs[truth["time_key"]].to_numpy(dtype=float)
        ok = np.isfinite(ref) & np.isfinite(pseudotime)
        result["spearman"] = float(spearmanr(pseudotime[ok], ref[ok]).statistic)
        result["kendall"] = float(kendalltau(pseudotime[ok], ref[ok]).statistic)
        result["mean_pseudotime_by_time"] = {
            str(k): float(v) for k, v in pd.Series(pseudotime[ok]).groupby(ref[ok]).mean().items()
        }
    for name, key in truth.get("lineage_keys", {}).items():
        ref = obs[key].to_numpy(dtype=float)
        ok = np.isfinite(ref) & np.isfinite(pseudotime)
        result[f"kendall_{name}"] = float(kendalltau(pseudotime[ok], ref[ok]).statistic)
        result[f"spearman_{name}"] = float(spearmanr(pseudotime[ok], ref[ok]).statistic)
    return result


def score_branches(obs: pd.DataFrame, branch: np.ndarray, truth: Mapping[str, Any]) -> dict:
    """Do the late cells of each lineage land in their own, distinct, non-trunk branch?"""
    lineages = truth.get("lineage_keys", {})
    if len(lineages) < 2:
        return {}
    refs = {name: obs[key].to_numpy(dtype=float) for name, key in lineages.items()}
    late_label = np.full(len(obs), "", dtype=object)
    for name, ref in refs.items():
        others = [np.isfinite(r) for other, r in refs.items() if other != name]
        only_here = np.isfinite(ref) & ~np.any(others, axis=0)
        late = only_here & (ref > np.nanmedian(ref[only_here]))
        late_label[late] = name
    result: dict[str, Any] = {}
    majors = {}
    for name in refs:
        labels = pd.Series(branch[late_label == name])
        major = labels.mode()[0]
        majors[name] = major
        result[f"branch_{name}"] = str(major)
        result[f"branch_purity_{name}"] = float((labels == major).mean())
    chosen = late_label != ""
    result["branch_ari_late"] = float(adjusted_rand_score(late_label[chosen], branch[chosen]))
    result["branches_separated"] = bool(
        len(set(majors.values())) == len(majors) and "trunk" not in majors.values()
    )
    return result


################################################################################
# Latents that exist before the model.
################################################################################


def add_latents(adata: ad.AnnData, seed: int = 0) -> dict[str, np.ndarray]:
    """PCA, soft Bernoulli codes and a hard binary code of log-normalised ``adata.X``."""
    sc.pp.pca(adata, n_comps=N_PCS, random_state=seed)
    pcs = adata.obsm["X_pca"]
    sd = pcs.std(axis=0, keepdims=True)
    code = _sigmoid(CODE_SHARPNESS * pcs / sd)
    return {
        "X_pca": pcs,
        "X_code": code,
        "X_code_hard": (code > 0.5).astype(np.float64),
        "X_code_global": _sigmoid(CODE_SHARPNESS * pcs / sd[0, 0]),
    }


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def load_a549() -> Any:
    mdata = datasets.a549_scicar()
    rna = mdata["rna"].copy()  # X is log-normalised as shipped
    for name, value in add_latents(rna).items():
        mdata.obsm[name] = value  # written at the MuData level, as tl.qbm will
    return mdata


def load_paul15() -> ad.AnnData:
    adata = datasets.paul15_myeloid()
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    for name, value in add_latents(adata).items():
        adata.obsm[name] = value
    return adata


def scanpy_dpt(data: Any, use_rep: str, root_index: int, truth: Mapping[str, Any]) -> dict:
    """scanpy's DPT on the same representation from the same root cell, scored the same way."""
    adata = ad.AnnData(obs=data.obs.copy(), obsm={use_rep: np.asarray(data.obsm[use_rep])})
    start = time.perf_counter()
    sc.pp.neighbors(adata, n_neighbors=15, use_rep=use_rep, random_state=0)
    sc.tl.diffmap(adata, n_comps=11)
    adata.uns["iroot"] = root_index
    sc.tl.dpt(adata, n_dcs=11)
    elapsed = time.perf_counter() - start
    pseudotime = adata.obs["dpt_pseudotime"].to_numpy(dtype=float)
    pseudotime[~np.isfinite(pseudotime)] = np.nan
    result = score_pseudotime(adata.obs, pseudotime, truth)
    result["seconds"] = round(elapsed, 2)
    return result


################################################################################
# The benchmark.
################################################################################

CONFIGS = (  # (representation, metric)
    ("X_pca", "euclidean"),
    ("X_code", "hellinger"),
    ("X_code", "hamming"),
    ("X_code", "euclidean"),
    ("X_code_hard", "hellinger"),
    ("X_code_global", "hellinger"),
    ("X_code_global", "hamming"),
    ("X_code_global", "euclidean"),
)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sd over seeds of every numeric metric; other fields from the first seed."""
    out: dict[str, Any] = {}
    for key, first in runs[0].items():
        if isinstance(first, (bool, np.bool_)):
            out[key] = [bool(r[key]) for r in runs]
        elif isinstance(first, (int, float)):
            values = np.array([r[key] for r in runs], dtype=float)
            out[key] = {"mean": float(values.mean()), "sd": float(values.std(ddof=0))}
        else:
            out[key] = first
    return out


def run(log: Any = print) -> dict[str, Any]:
    """All configurations on both data sets; returns the JSON-ready result."""
    sets = {
        "a549_scicar_rna": (load_a549(), A549_ROOT, A549_TRUTH),
        "paul15_myeloid": (load_paul15(), PAUL15_ROOT, PAUL15_TRUTH),
    }
    result: dict[str, Any] = {
        "setup": {
            "n_pcs": N_PCS,
            "code_sharpness": CODE_SHARPNESS,
            "seeds": list(SEEDS),
            "n_neighbors": 15,
            "n_dcs": 10,
            "scanpy_version": sc.__version__,
        },
        "datasets": {},
    }
    for name, (data, root_kwargs, truth) in sets.items():
        log(f"== {name} ({data.n_obs} cells)")
        rows: dict[str, Any] = {}
        for rep, metric in CONFIGS:
            for label, roots in (("group_root", root_kwargs), ("auto_diffusion", None)):
                roots = roots or {"root": "auto_diffusion"}
                runs = [evaluate_trajectory(data, rep, roots, truth, seed=s, metric=metric) for s in SEEDS]
                rows[f"qbm_trajectory/{rep}/{metric}/{label}"] = summarise(runs)
                log(f"  {rep:12s} {metric:9s} {label:14s} {_headline(runs[0])}")
            root_index = rows[f"qbm_trajectory/{rep}/{metric}/group_root"]["root_index"]
            if metric in ("euclidean",) or rep == "X_code_hard":
                dpt = scanpy_dpt(data, rep, int(root_index["mean"]), truth)
                rows[f"scanpy_dpt/{rep}/euclidean/same_root"] = dpt
                log(f"  {rep:12s} {'scanpy':9s} {'same_root':14s} {_headline(dpt)}")
        result["datasets"][name] = rows
    return result


def _headline(r: Mapping[str, Any]) -> str:
    keys = ("spearman", "kendall", "kendall_myeloid", "kendall_erythroid", "branches_separated")
    return "  ".join(f"{k}={r[k]:.3f}" if isinstance(r[k], float) else f"{k}={r[k]}"
                     for k in keys if k in r)  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "trajectory.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning)
    result = run(log=lambda line: print(line, flush=True))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=_jsonable) + "\n")
    print(f"wrote {args.out}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value)}")


if __name__ == "__main__":
    main()
