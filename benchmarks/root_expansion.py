"""Why one root cell is worse than a root group, and which expansion of one cell closes the gap.

For each data set (a549: time, root group the 0 h cells; paul15: myeloid/erythroid lineage
pseudotimes, root group the multipotent progenitors) and seed, the saved default fit
(``--fits DIR/<set>/seed<k>/``, as written by ``benchmarks/landscape.py``) gives the latent; the
cell graph, diffusion components and DPT weights are those of :func:`qbm_pyro.tl.trajectory`
(its default settings). Every variant turns one root cell into a pseudotime; it is scored
(Spearman with the truth) for ``--cells`` seeded cells of the root group per seed, averaged over
those cells, then mean ± sd over the seeds. The root group itself (mean DPT over up to 256 group
cells, the package's rule) is the reference.

Usage: ``python benchmarks/root_expansion.py --fits /work/fits [--datasets a549 paul15]
[--seeds 0 1 2] [--cells 10]`` → ``benchmarks/results/root_expansion.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.stats import rankdata, spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import qbm_pyro  # noqa: E402
from benchmarks.quality import load  # noqa: E402
from benchmarks.trajectory import A549_ROOT, A549_TRUTH, PAUL15_ROOT, PAUL15_TRUTH  # noqa: E402
from qbm_pyro.tl._diffusion import _diffusion_components, _dpt_weights  # noqa: E402
from qbm_pyro.tl._neighbors import _gaussian_affinities, _knn  # noqa: E402
from qbm_pyro.tl._roots import side_weights as side_weights_pkg  # noqa: E402
from qbm_pyro.tl._state_graph import _leiden  # noqa: E402

warnings.filterwarnings("ignore")

SETS = {"a549": (A549_ROOT, A549_TRUTH), "paul15": (PAUL15_ROOT, PAUL15_TRUTH)}


def latent(dataset: str, seed: int, fits: Path, cache: Path):
    """``(X_qbm, n_binary, obs)`` of the saved fit, cached as npz."""
    data, *_ = load(dataset)
    path = cache / f"{dataset}_seed{seed}.npz"
    if not path.exists():
        model = qbm_pyro.QBMVAE.load(fits / dataset / f"seed{seed}", data)
        qbm_pyro.tl.qbm(data, model)
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(
            path,
            rep=np.asarray(data.obsm["X_qbm"], dtype=np.float64),
            n_binary=int(data.uns["qbm"]["params"]["n_binary"]),
            energy=data.obs["qbm_energy"].to_numpy(),
        )
    z = np.load(path)
    return z["rep"], int(z["n_binary"]), data.obs, z["energy"]


class Context:
    """The trajectory's cell graph and diffusion (defaults of ``tl.trajectory``) for one latent."""

    def __init__(self, rep: np.ndarray, n_binary: int, seed: int, n_neighbors: int = 15, n_dcs: int = 10):
        n = rep.shape[0]
        self.knn_idx, self.knn_dist = _knn(rep, n_binary, "hellinger", n_neighbors, "exact", seed)
        self.affinities = _gaussian_affinities(self.knn_idx, self.knn_dist, n)
        self.eigvals, self.psi, self.kernel = _diffusion_components(self.affinities, n_dcs, seed)
        self.weights = _dpt_weights(self.eigvals)
        self.coords = self.psi * self.weights
        _, self.comp = connected_components(self.affinities, directed=False)
        self.states = np.char.add("S", _leiden(self.affinities, 1.0, seed).astype(str))
        z = np.asarray(self.kernel.sum(axis=1)).ravel()
        self.walk = sp.diags(1.0 / z) @ self.kernel  # random-walk operator T = Z^-1 K
        self.walk = self.walk.tocsr()
        sq = (self.coords**2).sum(1)
        d2 = sq[:, None] + sq[None, :] - 2 * self.coords @ self.coords.T
        self.dpt = np.sqrt(np.clip(d2, 0, None))  # DPT between all pairs (n^2, fine at n ~ 3k)
        self.n = n
        self.eccentricity = self.dpt.mean(1)
        self.quantiles = (rankdata(self.psi, axis=0) - 0.5) / n
        self.seed = seed


def from_distribution(ctx: Context, p: np.ndarray) -> np.ndarray:
    """Mean DPT from a distribution ``p`` over root cells, shifted to 0 and scaled to [0, 1]."""
    pt = p @ ctx.dpt
    pt = pt - pt.min()
    return pt / pt.max()


def uniform(ctx: Context, cells) -> np.ndarray:
    p = np.zeros(ctx.n)
    p[np.asarray(cells)] = 1.0
    return p / p.sum()


def walk_distribution(ctx: Context, root: int, t: int) -> np.ndarray:
    p = np.zeros(ctx.n)
    p[root] = 1.0
    for _ in range(t):
        p = ctx.walk.T @ p
    return p


################################################################################
# Variants: (ctx, root) -> pseudotime.
################################################################################


def v_cell(ctx, r):
    return from_distribution(ctx, uniform(ctx, [r]))


def v_knn(k):
    return lambda ctx, r: from_distribution(ctx, uniform(ctx, [r, *ctx.knn_idx[r, :k]]))


def v_state(ctx, r):
    return from_distribution(ctx, uniform(ctx, np.flatnonzero(ctx.states == ctx.states[r])))


def v_walk(t):
    return lambda ctx, r: from_distribution(ctx, walk_distribution(ctx, r, t))


def v_ball(k):
    """Mean DPT from the root's ``k`` nearest cells in diffusion distance (a DPT ball)."""
    return lambda ctx, r: from_distribution(ctx, uniform(ctx, np.argsort(ctx.dpt[r])[: k + 1]))


def v_earliest(fraction):
    """Mean DPT from the cells whose DPT from the root is in its lowest ``fraction``."""

    def f(ctx, r):
        pt = ctx.dpt[r]
        return from_distribution(ctx, uniform(ctx, np.flatnonzero(pt <= np.quantile(pt, fraction))))

    return f


def v_tipshift(k):
    """DPT from the most eccentric (largest mean DPT to all cells) of the root's ``k`` nearest."""

    def f(ctx, r):
        near = np.argsort(ctx.dpt[r])[: k + 1]
        return from_distribution(ctx, uniform(ctx, [near[np.argmax(ctx.eccentricity[near])]]))

    return f


def v_slice(ctx, r):
    """Orient a group: the cells no further than the root (+ its neighbours' spread) along the
    line from the root to the centroid of all cells; mean DPT from (up to 256 of) them."""
    c = ctx.coords
    v = c.mean(0) - c[r]
    proj = c @ (v / np.linalg.norm(v))
    near = [r, *ctx.knn_idx[r]]
    group = np.flatnonzero(proj <= proj[r] + np.abs(proj[near] - proj[r]).max())
    if group.size > 256:
        group = np.random.default_rng(0).choice(group, 256, replace=False)
    return from_distribution(ctx, uniform(ctx, group))


def v_maha_state(ctx, r):
    """Distance from the root with each component scaled by its state's spread (relative to all)."""
    m = np.flatnonzero(ctx.states == ctx.states[r])
    c = ctx.coords / np.maximum(ctx.coords[m].std(0) / ctx.coords.std(0), 1e-3)
    return np.linalg.norm(c - c[r], axis=1)


def side_weights(ctx, r, branch_safe=True, product=False):
    """Per component: how much it is a direction of progress from the root. ``e``: how extreme
    the root's quantile is (1 at either end, 0 in the middle); with ``branch_safe``, also
    ``1 - s`` where ``s`` is the root state's spread over all cells' spread (a direction the
    root's state does not vary along yet: a branch opening later)."""
    e = np.abs(ctx.quantiles[r] - 0.5) * 2
    if not branch_safe:
        return e
    m = np.flatnonzero(ctx.states == ctx.states[r])
    s = np.clip(ctx.coords[m].std(0) / ctx.coords.std(0), 0, 1)
    return 1 - (1 - e) * s if product else np.maximum(e, 1 - s)


def v_weighted(branch_safe=True, power=1, product=False):
    def f(ctx, r):
        c = ctx.coords * side_weights(ctx, r, branch_safe, product) ** power
        return np.linalg.norm(c - c[r], axis=1)

    return f


def v_progress_slice(size="state", product=False):
    """Expand the root to the cells nearest to it in the side-weighted metric (cells at the
    root's progress, spread along its side directions): as many as its state holds (at most 256),
    or ``size``; plain mean DPT from them."""

    def f(ctx, r):
        c = ctx.coords * side_weights(ctx, r, True, product)
        d = np.linalg.norm(c - c[r], axis=1)
        n = min((ctx.states == ctx.states[r]).sum(), 256) if size == "state" else size
        return from_distribution(ctx, uniform(ctx, np.argsort(d)[:n]))

    return f


def v_sides(ctx, r):
    c = ctx.coords * side_weights_pkg(ctx.psi, r, ctx.states, ctx.comp == ctx.comp[r])
    return np.linalg.norm(c - c[r], axis=1)


VARIANTS = {
    "cell": v_cell,
    "knn15": v_knn(15),
    "state": v_state,
    "walk4": v_walk(4),
    "walk16": v_walk(16),
    "ball150": v_ball(150),
    "earliest5%": v_earliest(0.05),
    "tipshift15": v_tipshift(15),
    "slice": v_slice,
    "maha_state": v_maha_state,
    "extreme": v_weighted(False),
    "extreme_branchsafe": v_weighted(True),
    "extreme_branchsafe_sq": v_weighted(True, 2),
    "sides": v_sides,  # root_expand="sides": 1 - (1 - e) s, through the package's side_weights
    "progress_slice_state": v_progress_slice("state"),
    "progress_slice_16": v_progress_slice(16),
}


def spearmans(obs, pt, truth) -> dict[str, float]:
    out = {}
    if "time_key" in truth:
        out["spearman"] = float(spearmanr(pt, obs[truth["time_key"]].to_numpy(float)).statistic)
    for name, key in truth.get("lineage_keys", {}).items():
        ref = obs[key].to_numpy(float)
        ok = np.isfinite(ref)
        out[f"spearman_{name}"] = float(spearmanr(pt[ok], ref[ok]).statistic)
    return out


def run(dataset: str, seed: int, fits: Path, cache: Path, n_cells: int, variants: dict) -> dict:
    rep, n_binary, obs, _ = latent(dataset, seed, fits, cache)
    root, truth = SETS[dataset]
    ctx = Context(rep, n_binary, seed)
    group = np.flatnonzero((obs[root["root_key"]] == root["root_value"]).to_numpy())
    members = group if group.size <= 256 else np.random.default_rng(seed).choice(group, 256, replace=False)
    row = {
        "dataset": dataset,
        "seed": seed,
        "group": spearmans(obs, from_distribution(ctx, uniform(ctx, members)), truth),
    }
    centroid = np.linalg.norm(ctx.coords - ctx.coords[members].mean(0), axis=1)
    row["group_centroid"] = spearmans(obs, centroid, truth)  # DPT from the group's centroid
    cells = np.random.default_rng(seed).choice(group, n_cells, replace=False)
    row["cells"] = cells.tolist()
    for name, fn in variants.items():
        per = [spearmans(obs, fn(ctx, int(c)), truth) for c in cells]
        row[name] = {k: float(np.mean([s[k] for s in per])) for k in per[0]}
        row[name + "_per_cell"] = per
    return row


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", nargs="+", default=["a549", "paul15"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--cells", type=int, default=10)
    parser.add_argument("--fits", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/oneroot_latents"))
    parser.add_argument("--variants", nargs="*", default=None)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/root_expansion.json"))
    args = parser.parse_args(argv)
    variants = {k: v for k, v in VARIANTS.items() if args.variants is None or k in args.variants}
    rows = []
    for dataset in args.datasets:
        for seed in args.seeds:
            if not (args.fits / dataset / f"seed{seed}" / "DONE").exists():
                print(f"no fit {dataset} seed {seed}", flush=True)
                continue
            row = run(dataset, seed, args.fits, args.cache, args.cells, variants)
            rows.append(row)
            print(
                dataset,
                seed,
                {k: v for k, v in row.items() if not k.endswith("per_cell") and k != "cells"},
                flush=True,
            )
    summary = {}
    for dataset in args.datasets:
        sel = [r for r in rows if r["dataset"] == dataset]
        if not sel:
            continue
        for name in ["group", "group_centroid", *variants]:
            for key in sel[0]["group"]:
                v = np.array([r[name][key] for r in sel])
                summary.setdefault(dataset, {})[f"{name}:{key}"] = (
                    f"{v.mean():.3f} ± {v.std(ddof=1) if v.size > 1 else 0:.3f}"
                )
    print(json.dumps(summary, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"cells": args.cells, "seeds": args.seeds, "fits": str(args.fits), "torch_threads": 1}
    args.out.write_text(json.dumps({"meta": meta, "rows": rows, "summary": summary}, indent=1, default=float))


if __name__ == "__main__":
    main()
