"""Landscape-side levers for attractors that are cell states, on saved fits (paul15, mixology).

Each lever turns one fitted prior and the cells' posteriors into cell labels; none is tuned per
data set (thresholds are 1 kT, as the default coarse-graining; the cell graph is the Leiden graph):

- ``greedy``: :func:`qbm_pyro.tl.attractors` with ``method="greedy"`` (steepest single-flip descent of each
  cell's hard code to a minimum of the prior, minima within 1 kT merged);
- ``anneal``: the same after simulated annealing from each cell's code to T≈0;
- ``active``: the descent restricted to the *active* units (Burda et al. 2016: the variance over
  cells of the posterior mean above 0.01), the inactive units held at their mean over cells (the
  mean-field energy of the active units), 1 kT merging;
- ``aggpost``: descent of the aggregate posterior's free energy ``-log mean_i q_i(z)`` over the
  active units (the landscape the prior is fitted to), no merging;
- ``graph``: ``tl.attractors(method="graph")``: the cells' energies ``E(q)`` averaged over their
  neighbourhood in the cells' kNN graph (Hellinger, k = 15), basins on the graph, 1 kT persistence;
- ``graph_active``: the same with the active-unit mean-field energy of each cell's hard code;
- ``graph_aggpost``: the same with the aggregate posterior's free energy at each cell's code;
- ``leiden``: Leiden on the latent (``qbm_pyro.metrics.clustering_scores``, resolution by NMI).

Scores: number of states, ARI against the known types, ARI between the labels of every pair of
seeds. Usage: ``python benchmarks/landscape_levers.py --fits DIR [--datasets paul15 mixology]
[--seeds 0 1 2] [--tag NAME]`` → ``benchmarks/results/landscape_levers.json`` (blocks of other
tags are kept; rendered by ``benchmarks/report.py``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import torch
from sklearn.metrics import adjusted_rand_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import qbm_pyro  # noqa: E402
from benchmarks.environment import package_versions  # noqa: E402
from benchmarks.quality import load  # noqa: E402
from qbm_pyro.metrics import clustering_scores, leiden_clusters, neighbour_graph  # noqa: E402
from qbm_pyro.tl._energy_landscape import EnergyLandscape  # noqa: E402
from qbm_pyro.tl._graph_attractors import cell_graph_adjacency  # noqa: E402
from qbm_pyro.tl._graph_basins import persistence_basins, smooth_on_graph  # noqa: E402

warnings.filterwarnings("ignore")
LEVERS = ("greedy", "anneal", "active", "aggpost", "graph", "graph_active", "graph_aggpost", "leiden")
ACTIVE_VARIANCE = 0.01  # Burda, Grosse & Salakhutdinov 2016, "active units"


def _attractor_labels(data, model, **kwargs) -> np.ndarray:
    out = qbm_pyro.tl.attractors(data, model, n_markers=0, n_prior_samples=0, copy=True, **kwargs)
    return out.obs["qbm_attractor"].astype(str).to_numpy()


def _aggpost_energy(q: np.ndarray):
    """``z -> -log mean_i prod_k q_ik^z_k (1 - q_ik)^(1 - z_k)`` (chunked log-sum-exp)."""
    q = np.clip(q, 1e-6, 1 - 1e-6)
    log1, log0 = np.log(q), np.log1p(-q)

    def energy(z: np.ndarray) -> np.ndarray:
        out = np.empty(len(z))
        for s in range(0, len(z), 512):
            ll = z[s : s + 512] @ log1.T + (1 - z[s : s + 512]) @ log0.T
            top = ll.max(1, keepdims=True)
            out[s : s + 512] = -(top[:, 0] + np.log(np.exp(ll - top).mean(1)))
        return out

    return energy


def levers(data, model, truth: np.ndarray, seed: int, which=LEVERS) -> dict:
    """Labels and timing of the levers ``which`` on one fitted model."""
    rep = np.asarray(data.obsm["X_qbm"], dtype=np.float64)
    n = model.module.n_binary
    q = rep[:, :n]
    labels, seconds = {}, {}

    def timed(name, fn):
        if name not in which:
            return
        start = time.perf_counter()
        labels[name] = np.asarray(fn()).astype(str)
        seconds[name] = round(time.perf_counter() - start, 1)

    timed("greedy", lambda: _attractor_labels(data, model, method="greedy", seed=seed))
    timed("anneal", lambda: _attractor_labels(data, model, seed=seed, method="anneal"))
    land = EnergyLandscape.from_model(model)
    active = np.flatnonzero(q.var(axis=0) > ACTIVE_VARIANCE)
    rest = np.setdiff1d(np.arange(n), active)
    mean = q.mean(axis=0)
    h = land.h[active] + land._J_sym[np.ix_(active, rest)] @ mean[rest]
    J = np.triu(land._J_sym[np.ix_(active, active)], 1)
    sub = ad.AnnData(np.zeros((q.shape[0], 1), dtype=np.float32))
    sub.obsm["X_qbm"] = q[:, active]
    sub.uns["qbm"] = {"prior": {"h": h, "J": J}}
    timed("active", lambda: _attractor_labels(sub, None, method="greedy", seed=seed))
    code = (q[:, active] > 0.5).astype(np.float64)
    aggpost = EnergyLandscape(_aggpost_energy(q[:, active]), active.size)
    timed("aggpost", lambda: np.unique(aggpost.descend(code), axis=0, return_inverse=True)[1].ravel())
    timed("graph", lambda: _attractor_labels(data, model, seed=seed, method="graph"))
    adj = cell_graph_adjacency(rep, n, 15, "hellinger", seed)
    mode_energy = EnergyLandscape.from_boltzmann(h, J).energy(code)
    timed("graph_active", lambda: persistence_basins(smooth_on_graph(mode_energy, adj), adj, 1.0))
    timed("graph_aggpost", lambda: persistence_basins(smooth_on_graph(aggpost.energy(code), adj), adj, 1.0))
    timed("leiden", lambda: _leiden(rep, truth, seed))
    rows = {
        name: {
            "n_states": int(len(set(lab))),
            "ari": float(adjusted_rand_score(truth, lab)),
            "seconds": seconds[name],
        }
        for name, lab in labels.items()
    }
    info = {
        "n_active": int(active.size),
        "posterior_entropy_bits_per_unit": float(
            np.mean(-(q * np.log2(np.clip(q, 1e-12, 1)) + (1 - q) * np.log2(np.clip(1 - q, 1e-12, 1))))
        ),
        "cell_energy_sd": float(np.std(land.energy(q))),
    }
    return {"scores": rows, "info": info, "labels": labels}


def _leiden(rep: np.ndarray, truth: np.ndarray, seed: int) -> np.ndarray:
    """Leiden labels at the resolution ``clustering_scores`` picks (by NMI)."""
    best = clustering_scores(rep, truth, seed=seed)
    return leiden_clusters(neighbour_graph(rep, seed=seed), best["resolution"], seed=seed)


def _ms(values) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if v.size > 1 else f"{v[0]:.3f}" if v.size else "—"


def report_section(results: Path) -> list[str]:
    """BENCHMARKS.md section from ``results/landscape_levers.json``."""
    path = Path(results) / "landscape_levers.json"
    if not path.exists():
        return []
    payload = json.loads(path.read_text())
    out = [
        "## Landscape levers (benchmarks/landscape_levers.py)",
        "",
        "Ways to turn one fitted prior into cell states, on the same saved fits (mean ± sd over seeds; "
        "seed-to-seed: ARI between the labels of two seeds, all pairs). "
        "greedy = `tl.attractors(method='greedy')`; graph = `tl.attractors(method='graph')`, "
        "the default since this study; see the script for the others.",
        "",
    ]
    for tag, block in payload["blocks"].items():
        out += [f"_{tag}: {block['meta'].get('note', '')}_", ""]
        sets = list(dict.fromkeys(r["dataset"] for r in block["rows"]))
        out += [
            "| lever | " + " | ".join(f"{d}: states / ARI / seed-to-seed" for d in sets) + " |",
            "|---|" + "---|" * len(sets),
        ]
        for lever in LEVERS:
            if not any(lever in r["scores"] for r in block["rows"]):
                continue
            cells = []
            for d in sets:
                rows = [
                    r["scores"][lever] for r in block["rows"] if r["dataset"] == d and lever in r["scores"]
                ]
                stab = [
                    s["ari"][lever]
                    for s in block["seed_stability"]
                    if s["dataset"] == d and lever in s["ari"]
                ]
                cells.append(
                    f"{_ms([r['n_states'] for r in rows])} / {_ms([r['ari'] for r in rows])} / {_ms(stab)}"
                )
            out.append(f"| {lever} | " + " | ".join(cells) + " |")
        out.append("")
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fits", type=Path, required=True, help="saved fits: DIR/<set>/seed<k>/")
    parser.add_argument("--datasets", nargs="+", default=["paul15", "mixology"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--levers", nargs="+", default=list(LEVERS), choices=LEVERS)
    parser.add_argument("--tag", default="default fits")
    parser.add_argument("--note", default="")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/landscape_levers.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows, stability = [], []
    for dataset in args.datasets:
        labels = {}
        for seed in args.seeds:
            data, label_key, _, _ = load(dataset)
            model = qbm_pyro.QBMVAE.load(args.fits / dataset / f"seed{seed}", data)
            qbm_pyro.tl.qbm(data, model)
            truth = data.obs[label_key].astype(str).to_numpy()
            result = levers(data, model, truth, seed, args.levers)
            labels[seed] = result.pop("labels")
            rows.append({"dataset": dataset, "seed": seed, **result})
            print(dataset, seed, json.dumps(result["scores"]), flush=True)
        for a, b in itertools.combinations(sorted(labels), 2):
            ari = {k: float(adjusted_rand_score(labels[a][k], labels[b][k])) for k in labels[a]}
            stability.append({"dataset": dataset, "seeds": [a, b], "ari": ari})
    old = json.loads(args.out.read_text()) if args.out.exists() else {"blocks": {}}
    meta = {
        "fits": str(args.fits),
        "seeds": args.seeds,
        "note": args.note,
        "levers": args.levers,
        **package_versions("qbm-pyro", "torch", "scanpy"),
    }
    old["blocks"][args.tag] = {"meta": meta, "rows": rows, "seed_stability": stability}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(old, indent=1, default=float))


if __name__ == "__main__":
    main()
