"""The energy landscape as a tool: attractors, barriers, the root-free potential, one-cell roots.

For each data set and seed: fit the QBM-VAE (the package defaults; ``--epochs``), run
:func:`qbm_pyro.tl.attractors` with the model (prior sampler, barriers, decoded markers) and
score

- attractor ARI against the known types (paul15 cell types, mixology cell lines, a549 time
  points; the CITE-seq set against the coarse protein-gated types of ``benchmarks/mapping.py``,
  T, B, monocyte and NK, as its query benchmark labels them), attractor and minimum counts, the
  fraction of prior samples that fall outside the cells' attractors, whether the barriers were
  proven exact;
- Leiden ARI on the same latent (``qbm_pyro.metrics.clustering_scores``, resolution chosen by NMI),
  and on scVI's and totalVI's latents of the CITE-seq set (``--baseline-latents``; the other sets'
  scVI rows come from ``baselines.json``);
- seed-to-seed ARI between the attractor labels of every pair of seeds;
- the prior's own dynamics as the check of the states: of ``PERSISTENCE_CHAINS`` Gibbs chains at
  β = 1 started in each state (codes drawn from its lowest fixed point), the fraction whose
  mean-field flow after ``PERSISTENCE_SWEEPS`` sweeps ends in the same state, for the states of
  ``tl.attractors`` and for those the straight-line barriers and single linkage gave before;
- on paul15 (two lineages, root: multipotent progenitors) and a549 (time, root: 0 h):
  rooted vs root-free (``root="auto_energy"``) pseudotime, each against the truth, their
  Spearman with each other, the auto root's evidence; energy vs time/lineage Spearman;
  single root cells (3 seeded cells of the root group) alone (``root_expand=0``), expanded to 15
  neighbours and to their state, and with their side directions down-weighted
  (``root_expand="sides"``, the default for a root cell), against the root group.

Usage: ``python benchmarks/landscape.py [--datasets ...] [--seeds 0 1 2] [--epochs N] [--fits DIR]
[--others [greedy] [graph]] [--baseline-latents DIR]`` (``--others``: the attractor methods scored
beside the mean-field states; with no names, the mean-field states only)
(``--fits``: reuse models saved with :meth:`~qbm_pyro.QBMVAE.save` under ``DIR/<set>/seed<k>/``,
marked finished by a ``DONE`` file; sets and seeds without one are fitted here and saved there)
→ ``benchmarks/results/landscape.json`` (rows of other data sets already in the file are kept;
rendered by ``benchmarks/report.py``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
import warnings
from pathlib import Path

import networkx as nx
import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.metrics import adjusted_rand_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import qbm_pyro  # noqa: E402
from benchmarks.environment import run_meta  # noqa: E402
from benchmarks.mapping import cite_labels  # noqa: E402
from benchmarks.quality import load  # noqa: E402
from benchmarks.trajectory import A549_ROOT, A549_TRUTH, PAUL15_ROOT, PAUL15_TRUTH, score_pseudotime  # noqa: E402
from benchmarks.trajectory_models import energy_root_check  # noqa: E402
from qbm_pyro.metrics import clustering_scores  # noqa: E402
from qbm_pyro.samplers.gibbs import gibbs_sweep_  # noqa: E402
from qbm_pyro.tl._barriers import MIN_BARRIER  # noqa: E402
from qbm_pyro.tl._energy_landscape import EnergyLandscape  # noqa: E402
from qbm_pyro.tl._meanfield_attractors import flow_to_states, line_barriers  # noqa: E402

warnings.filterwarnings("ignore")

TRAJECTORIES = {"a549": (A549_ROOT, A549_TRUTH, "time_hours"), "paul15": (PAUL15_ROOT, PAUL15_TRUTH, None)}
N_ROOT_CELLS = 3
#: Gibbs chains per state and sweeps at the prior's temperature of :func:`gibbs_persistence`.
PERSISTENCE_CHAINS = 200
PERSISTENCE_SWEEPS = 300


def gibbs_persistence(h, J_sym, centres, group, seed: int) -> float:
    """Mean over the states (groups of the fixed points ``centres``) of the fraction of Gibbs chains
    at β = 1, started from codes drawn from the state's lowest fixed point, whose mean-field flow
    after ``PERSISTENCE_SWEEPS`` sequential sweeps ends at a fixed point of the same state (a
    chain ending elsewhere has left)."""
    k = int(group.max()) + 1
    first = [int(np.flatnonzero(group == g)[0]) for g in range(k)]
    generator = torch.Generator().manual_seed(seed)
    Jt = torch.as_tensor(J_sym, dtype=torch.float64)
    z = torch.bernoulli(
        torch.as_tensor(np.repeat(centres[first], PERSISTENCE_CHAINS, 0)), generator=generator
    )
    field = torch.as_tensor(h, dtype=torch.float64) + z @ Jt
    for _ in range(PERSISTENCE_SWEEPS):
        gibbs_sweep_(z, field, Jt, 1.0, None, generator)
    state = flow_to_states(h, J_sym, z.numpy(), centres)
    landed = np.where(state >= 0, group[state], -1)
    return float((landed.reshape(k, PERSISTENCE_CHAINS) == np.arange(k)[:, None]).mean())


def single_linkage(energies: np.ndarray, barriers: np.ndarray, min_barrier: float) -> np.ndarray:
    """The states' grouping before the elder rule: join every pair whose barrier is below
    ``min_barrier`` above the higher of the two, chained; groups numbered by their lowest energy."""
    graph = nx.Graph()
    graph.add_nodes_from(range(energies.size))
    near = barriers - np.maximum.outer(energies, energies) < min_barrier
    graph.add_edges_from(zip(*np.nonzero(np.triu(near, 1)), strict=True))
    groups = sorted(nx.connected_components(graph), key=lambda c: energies[list(c)].min())
    label = np.empty(energies.size, dtype=np.int64)
    for g, members in enumerate(groups):
        label[list(members)] = g
    return label


def persistence_rows(data, info: dict, seed: int) -> dict:
    """The persistence of the attractors' states and of the straight-line, single-linkage ones."""
    land = EnergyLandscape.from_data(data, None, "qbm")
    centres, energies = info["state_magnetisations"], info["minima_energies"]
    line = single_linkage(energies, line_barriers(land.h, land.J_sym, centres), MIN_BARRIER)
    return {
        "persistence": gibbs_persistence(land.h, land.J_sym, centres, info["minimum_attractor"], seed),
        "line_n_states": int(line.max()) + 1,
        "line_persistence": gibbs_persistence(land.h, land.J_sym, centres, line, seed),
    }


def _pseudotime(data, seed, **kwargs):
    out = qbm_pyro.tl.trajectory(data, use_rep="X_qbm", key_added="bench", seed=seed, copy=True, **kwargs)
    return out.obs["bench_pseudotime"].to_numpy(), out.uns["bench_trajectory"]["root"]


def _spearmans(obs, pt, truth) -> dict:
    return {k: v for k, v in score_pseudotime(obs, pt, truth).items() if "spearman" in k}


def trajectory_rows(data, dataset: str, seed: int) -> dict:
    root, truth, time_key = TRAJECTORIES[dataset]
    out = {}
    rooted, _ = _pseudotime(data, seed, **root)
    free, info = _pseudotime(data, seed, root="auto_energy")
    out["rooted"] = _spearmans(data.obs, rooted, truth)
    out["root_free"] = _spearmans(data.obs, free, truth)
    ok = np.isfinite(rooted) & np.isfinite(free)
    out["root_free_vs_rooted_spearman"] = float(spearmanr(rooted[ok], free[ok]).statistic)
    out["auto_root"] = {k: v for k, v in info.items() if k != "evidence"} | {
        f"evidence_{k}": v for k, v in info["evidence"].items()
    }
    group = np.flatnonzero((data.obs[root["root_key"]] == root["root_value"]).to_numpy())
    out["auto_root_in_known_group"] = bool(info["index"] in set(group.tolist()))
    out["energy"] = energy_root_check(data, time_key)
    cells = np.random.default_rng(seed).choice(group, N_ROOT_CELLS, replace=False)
    for expand in (0, 15, "state", "sides"):
        scores = [
            _spearmans(data.obs, _pseudotime(data, seed, root=int(c), root_expand=expand)[0], truth)
            for c in cells
        ]
        out[f"single_cell_expand_{expand}"] = {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}
    return out


def _model(data, dataset: str, seed: int, epochs: int, batch_key, kwargs, fits: Path | None, train=None):
    """A saved fit from ``fits`` when there is one (and its epoch count), else a fresh fit
    (``train``: settings of ``train()`` beside the epochs, e.g. ``continuous_free_bits``)."""
    saved = None if fits is None else Path(fits) / dataset / f"seed{seed}"
    if saved is not None and (saved / "DONE").exists():
        meta = json.loads((saved / "meta.json").read_text()) if (saved / "meta.json").exists() else {}
        if meta.get("train", {}) != (train or {}):  # a fit of other settings is not this row's
            raise ValueError(
                f"{saved} was fitted with train() settings {meta.get('train', {})}, not {train or {}}"
            )
        return qbm_pyro.QBMVAE.load(saved, data), int(meta.get("epochs_run", epochs)), str(saved)
    model = qbm_pyro.QBMVAE(data, batch_key=batch_key, seed=seed, **kwargs)
    start = time.perf_counter()
    history = model.train(max_epochs=epochs, progress_bar=False, **(train or {}))
    if saved is None:
        return model, epochs, None
    # saved for the next run: model.pt, then meta.json (epochs, wall time), then DONE
    model.save(saved, overwrite=True)
    seconds = round(time.perf_counter() - start, 1)
    meta = {"epochs_run": len(history["epoch"]), "seconds": seconds, "seed": seed, "train": train or {}}
    (saved / "meta.json").write_text(json.dumps(meta))
    (saved / "DONE").touch()
    return model, meta["epochs_run"], str(saved)


#: Data sets without labels in ``obs`` scored against derived types: the CITE-seq set against the
#: coarse protein-gated types of ``benchmarks/mapping.py`` (T, B, monocyte, NK).
DERIVED_TYPES = {"cite": cite_labels, "cite1k": cite_labels}

#: Baselines fitted here (``--baseline-latents``) where ``baselines.json`` has no Leiden ARI
#: against the types: scVI (RNA) and totalVI (RNA + protein) on the CITE-seq set.
BASELINE_FITS = {"cite": ("scvi", "totalvi"), "cite1k": ("scvi", "totalvi")}


def _types(data, dataset: str, label_key: str | None) -> np.ndarray | None:
    if label_key:
        return data.obs[label_key].astype(str).to_numpy()
    return DERIVED_TYPES[dataset](data) if dataset in DERIVED_TYPES else None


def baseline_latent(dataset: str, method: str, seed: int, epochs: int, latents: Path) -> np.ndarray:
    """A baseline's latent of ``dataset``: ``latents/<set>_<method>_<seed>.npy`` when saved, else
    fitted (``baselines.fit_latent``, at ``epochs``, the package's defaults) and saved there."""
    from benchmarks.baselines import fit_latent

    path = latents / f"{dataset}_{method}_{seed}.npy"
    if not path.exists():
        latents.mkdir(parents=True, exist_ok=True)
        np.save(path, fit_latent(dataset, method, seed, epochs)[0])
    return np.load(path)


def baseline_leiden(dataset: str, seed: int, epochs: int, truth: np.ndarray, latents: Path) -> dict:
    """Leiden ARI against ``truth`` on the latents of :data:`BASELINE_FITS` for ``dataset``
    (:func:`baseline_latent`)."""
    out = {}
    for method in BASELINE_FITS.get(dataset, ()):
        latent = baseline_latent(dataset, method, seed, epochs, latents)
        out[f"{method}_leiden_ari"] = float(clustering_scores(latent, truth, seed=seed)["ari"])
    return out


def run(
    dataset: str,
    seed: int,
    epochs: int,
    fits: Path | None = None,
    others: tuple[str, ...] = ("greedy", "graph"),
    baseline_latents: Path | None = None,
    train: dict | None = None,
) -> tuple[dict, dict]:
    data, label_key, batch_key, kwargs = load(dataset)
    start = time.perf_counter()
    model, epochs, source = _model(data, dataset, seed, epochs, batch_key, kwargs, fits, train)
    qbm_pyro.tl.qbm(data, model)
    fit = time.perf_counter() - start
    start = time.perf_counter()
    qbm_pyro.tl.attractors(data, model, seed=seed, n_markers=5)  # the default: mean-field states
    info = data.uns["qbm_attractor"]
    labels = {"meanfield": data.obs["qbm_attractor"].astype(str).to_numpy()}
    row = {
        "dataset": dataset,
        "seed": seed,
        "epochs": epochs,
        "fit_from": source,
        "fit_seconds": round(fit, 1),
        "attractor_seconds": round(time.perf_counter() - start, 1),
        "method": info["method"],
        "n_attractors": int(len(info["states"])),
        "prior_unassigned": info["prior_unassigned"],
        "basin_weight": info["basin_weight"].tolist(),
        "cell_weight": (info["n_cells"] / info["n_cells"].sum()).tolist(),
        "barrier_to_nearest": info["table"]["barrier_to_nearest"].tolist(),
        "markers": info["markers"].groupby("attractor")["feature"].apply(list).to_dict(),
    }
    row |= persistence_rows(data, info, seed)
    for method in others:
        other = qbm_pyro.tl.attractors(
            data, model, method=method, seed=seed, n_markers=0, n_prior_samples=0, key_added=method, copy=True
        )
        labels[method] = other.obs[method].astype(str).to_numpy()
        row[f"{method}_n_attractors"] = int(len(set(labels[method])))
        if method == "greedy":
            found = other.uns["greedy"]
            off = ~np.eye(len(found["states"]), dtype=bool)
            row["n_minima"] = int(len(found["minima"]))
            row["barrier_exact_fraction"] = float(found["barrier_exact"][off].mean()) if off.any() else 1.0
    truth = _types(data, dataset, label_key)
    if truth is not None:
        row["attractor_ari"] = float(adjusted_rand_score(truth, labels["meanfield"]))
        for method in others:
            row[f"{method}_attractor_ari"] = float(adjusted_rand_score(truth, labels[method]))
        leiden = clustering_scores(np.asarray(data.obsm["X_qbm"]), truth, seed=seed)
        row["leiden_ari"], row["leiden_n_clusters"] = leiden["ari"], leiden["n_clusters"]
        if baseline_latents is not None:
            row |= baseline_leiden(dataset, seed, epochs, truth, baseline_latents)
    if batch_key:
        row["attractor_batch_ari"] = float(
            adjusted_rand_score(data.obs[batch_key].astype(str), labels["meanfield"])
        )
    if dataset in TRAJECTORIES:
        row["trajectory"] = trajectory_rows(data, dataset, seed)
    return row, labels


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["paul15", "mixology", "a549", "cite"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fits", type=Path, default=None, help="reuse saved fits: DIR/<set>/seed<k>/")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/landscape.json"))
    parser.add_argument("--note", default=None, help="provenance note in meta (shown in BENCHMARKS.md)")
    parser.add_argument(
        "--baseline-latents",
        type=Path,
        default=None,
        help="score Leiden on scVI/totalVI latents of the sets in BASELINE_FITS: "
        "DIR/<set>_<method>_<seed>.npy (fitted and saved there when missing)",
    )
    parser.add_argument(
        "--others",
        nargs="*",
        default=["greedy", "graph"],
        choices=["greedy", "graph"],
        help="attractor methods scored beside the mean-field states (the barrier searches take "
        "minutes per fit on priors with 15+ basins; none: mean-field only)",
    )
    parser.add_argument(
        "--train",
        type=json.loads,
        default=None,
        help="settings of train() beside the epochs for fits made here, as JSON, e.g. "
        "'{\"continuous_free_bits\": 0}' (recorded in meta and beside each fit saved here; a "
        "saved fit of other settings is refused)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows, stability = [], []
    meta = run_meta(
        "scanpy",
        "networkx",
        "scikit-learn",
        torch_threads=args.threads,
        seeds=args.seeds,
        epochs=args.epochs,
        note=args.note,
        train=args.train,
    )
    for dataset in args.datasets:
        labels = {}
        for seed in args.seeds:  # the file is rewritten after every fit
            row, labels[seed] = run(
                dataset, seed, args.epochs, args.fits, tuple(args.others), args.baseline_latents, args.train
            )
            rows.append(row)
            brief = {k: v for k, v in row.items() if k not in ("markers", "trajectory")}
            print(json.dumps(brief, default=float), flush=True)
            for a, b in itertools.combinations(sorted(labels), 2):
                if b == seed:
                    ari = {m: float(adjusted_rand_score(labels[a][m], labels[b][m])) for m in labels[a]}
                    stability.append(
                        {
                            "dataset": dataset,
                            "seeds": [a, b],
                            "attractor_ari": ari["meanfield"],
                            **{f"{m}_ari": ari[m] for m in args.others},
                        }
                    )
            _write(args.out, meta, set(args.datasets), rows, stability)


def _write(out: Path, meta: dict, done: set, rows: list, stability: list) -> None:
    """Write the results, keeping the rows of data sets not in this run."""
    old = json.loads(out.read_text()) if out.exists() else {"rows": [], "seed_stability": []}
    payload = {
        "meta": meta,
        "rows": [r for r in old["rows"] if r["dataset"] not in done] + rows,
        "seed_stability": [s for s in old.get("seed_stability", []) if s["dataset"] not in done] + stability,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1, default=float))


if __name__ == "__main__":
    main()
