"""Levers on the learned prior: does a prior with hidden units hold the cells' states, and does it pay?

For each data set, method (a prior and its settings) and seed: fit on the training cells (the
model's own 10% validation split is held out), then measure

- ``marginal_ll``: held-out ``log p(x)`` per cell (``QBMVAE.get_marginal_ll``, ``N_IS``
  importance samples; above the prior's enumeration limit log Z is an AIS estimate over the
  joint machine with ``AIS`` settings, its standard error in ``log_z_stderr``);
- ``joint_knn`` / ``hard_knn``: 5-fold 15-NN accuracy of the labels from the joint latent and
  from the hard code;
- the prior's basins: ``N_BASIN_DRAWS`` codes drawn from the trained prior by parallel tempering
  (``TEMPERING``; the joint machine for a prior with hidden units), each descended by single
  flips to its local minimum (``tl._attractors.descend`` for a pairwise prior, the free-energy
  descent :meth:`HiddenBoltzmann.descend` for one with hidden units); ``basin_weights`` are the
  shares of the draws per minimum (largest first) and ``n_basins`` counts those holding at least
  ``BASIN_MIN_WEIGHT`` of them, against ``n_labels`` (types or lines);
- ``entropy_bits``: mean posterior entropy per binary unit (bits).

Usage: ``python benchmarks/prior_levers.py --datasets paul15 --methods bernoulli qbm hidden32
--seeds 0 1 2 --epochs 60`` (appends to ``benchmarks/results/prior_levers.json``, replacing rows of
the same data set, method and seed).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import adjusted_rand_score

import qbm_pyro
from benchmarks.latent_variants import resolution_profile
from benchmarks.quality import load, load_fit
from benchmarks.tables import mean_sd
from qbm_pyro.metrics import batch_mixing_entropy, clustering_scores, knn_accuracy
from qbm_pyro.samplers import ParallelTemperingSampler
from qbm_pyro.tl._attractors import descend

warnings.filterwarnings("ignore")

#: The levers are measured from the plain ELBO (the training default when these rows were run,
#: before continuous_kl_weight = 3 became the default) unless a method sets its own weight.
BASE_TRAIN = dict(
    continuous_kl_weight=1.0, continuous_free_bits=0.0
)  # the settings these rows were measured at

METHODS = {
    "bernoulli": dict(prior="bernoulli"),
    "qbm": dict(prior="boltzmann"),
    "rbm": dict(prior="rbm"),
    "hidden16": dict(prior="hidden", n_prior_hidden=16),
    "hidden32": dict(prior="hidden", n_prior_hidden=32),
    "hidden64": dict(prior="hidden", n_prior_hidden=64),
    "hidden32_fast": dict(prior="hidden", n_prior_hidden=32, train=dict(prior_lr_factor=10.0)),
    "qbm_fast": dict(prior="boltzmann", train=dict(prior_lr_factor=10.0)),
    # levers on the fuzzy code: the Gaussian units carry the identity, so take them away, make the
    # code smaller, or let the prior move to the posterior faster than the posterior to the prior
    "binary_bernoulli": dict(prior="bernoulli", n_continuous=0),
    "binary_qbm": dict(prior="boltzmann", n_continuous=0),
    "bernoulli16": dict(prior="bernoulli", n_latent=16),
    "qbm16": dict(prior="boltzmann", n_latent=16),
    # half the Gaussian units: more of the cells' identity left to the binary code
    "bernoulli_c8": dict(prior="bernoulli", n_continuous=8),
    "qbm_c8": dict(prior="boltzmann", n_continuous=8),
    # the Gaussian units' KL weighed β times (training's continuous_kl_weight): the Gaussian
    # channel costs more, so more of the cells' identity goes to the binary code
    "bernoulli_ckl3": dict(prior="bernoulli", train=dict(continuous_kl_weight=3.0)),
    "qbm_ckl3": dict(prior="boltzmann", train=dict(continuous_kl_weight=3.0)),
    "qbm_ckl2": dict(prior="boltzmann", train=dict(continuous_kl_weight=2.0)),
    # the default (continuous_kl_weight 3) with a smaller code: fewer binary units to share out
    # among the cells, and a prior of fewer units to fit
    "qbm_b32": dict(prior="boltzmann", n_latent=32, train=dict(continuous_kl_weight=3.0)),
    "qbm_b16": dict(prior="boltzmann", n_latent=16, train=dict(continuous_kl_weight=3.0)),
    # 32 binary units and the Gaussian units' KL ×2: a smaller code, and a lighter Gaussian
    # penalty so that its units need not clump to pay for themselves
    "qbm_b32_ckl2": dict(prior="boltzmann", n_latent=32, train=dict(continuous_kl_weight=2.0)),
    # the lighter KL with half the Gaussian units: less room for the Gaussian channel to overfit
    "qbm_c8_ckl2": dict(prior="boltzmann", n_continuous=8, train=dict(continuous_kl_weight=2.0)),
    # free bits on the Gaussian units' KL (nats per unit, minibatch mean): at the default β = 3 the
    # Gaussian units collapse where the code can carry the cells alone (paul15), and the latent
    # is the code's clumps; the floor keeps some continuous variation in each unit
    "qbm_fb05": dict(prior="boltzmann", train=dict(continuous_kl_weight=3.0, continuous_free_bits=0.5)),
    "qbm_fb10": dict(prior="boltzmann", train=dict(continuous_kl_weight=3.0, continuous_free_bits=1.0)),
    "qbm_fb05_md025": dict(
        prior="boltzmann",
        train=dict(continuous_kl_weight=3.0, continuous_free_bits=0.5, modality_dropout=0.25),
    ),
    # the encoders see depth-normalised counts (cells that differ only in depth look alike)
    "qbm_depth": dict(prior="boltzmann", encoder_input="depth"),
    "qbm_depth_ckl3": dict(prior="boltzmann", encoder_input="depth", train=dict(continuous_kl_weight=3.0)),
    "bernoulli_balanced": dict(prior="bernoulli", train=dict(kl_balance=0.8)),
    "qbm_balanced": dict(prior="boltzmann", train=dict(kl_balance=0.8)),
    "binary_bernoulli_balanced": dict(prior="bernoulli", n_continuous=0, train=dict(kl_balance=0.8)),
    "binary_qbm_balanced": dict(prior="boltzmann", n_continuous=0, train=dict(kl_balance=0.8)),
    # two stages: fit with the prior held at h = J = 0 (Bernoulli(½)), then freeze the encoder and
    # decoder and fit the Boltzmann prior alone to the frozen encoder's aggregate posterior
    "two_stage": dict(prior="boltzmann", two_stage=dict(max_epochs=20, prior_lr_factor=10.0)),
    "binary_two_stage": dict(
        prior="boltzmann", n_continuous=0, two_stage=dict(max_epochs=20, prior_lr_factor=10.0)
    ),
    # two stages, the second joint: the fixed prior for the first `epochs - 20` epochs, then the
    # prior learns (lr ×10) while the encoder and decoder keep training, `epochs` in all
    "two_stage_joint": dict(
        prior="boltzmann", two_stage=dict(max_epochs=20, prior_lr_factor=10.0, joint=True)
    ),
    # its control: the same two calls of train (epochs - 20, then 20 with a fresh optimiser and a
    # one-epoch KL warm-up), the prior held at h = J = 0 throughout
    "two_stage_joint_fixed": dict(
        prior="boltzmann", two_stage=dict(max_epochs=20, joint=True, learn_prior=False)
    ),
    # is the control's gain the shorter KL warm-up of its first stage (5 epochs, not 40 // 4)?
    "bernoulli_warmup5": dict(prior="bernoulli", train=dict(kl_warmup_epochs=5)),
}
#: The fixed-prior method of the same settings each method's log p(x) is paired against.
ANCHOR = dict.fromkeys(METHODS, "bernoulli") | {
    "binary_qbm": "binary_bernoulli",
    "qbm16": "bernoulli16",
    "qbm_c8": "bernoulli_c8",
    "qbm_ckl3": "bernoulli_ckl3",
    "qbm_balanced": "bernoulli_balanced",
    "binary_qbm_balanced": "binary_bernoulli_balanced",
    "binary_two_stage": "binary_bernoulli",
    "two_stage_joint": "two_stage_joint_fixed",
    "bernoulli_warmup5": "bernoulli_warmup5",  # a fixed prior: its own anchor, not a lever column
}
ANCHOR |= {ANCHOR[m]: ANCHOR[m] for m in list(ANCHOR)}
#: Model settings every method starts from (a method's own settings replace them).
BASE_MODEL = dict(n_latent=64, n_continuous=16)
N_IS = 1000
AIS = dict(n_chains=256, n_steps=1000, seed=0)
N_BASIN_DRAWS = 1000
BASIN_MIN_WEIGHT = 0.02
TEMPERING = dict(n_replicas=8, beta_min=0.1, num_sweeps=1, burn_in=150)


def _descend(prior, z: torch.Tensor) -> torch.Tensor:
    if prior.structure == "hidden":
        return prior.distribution().descend(z)
    return descend(z, prior.h.detach(), prior.couplings().detach())


def basins(model, seed: int, probs: np.ndarray, labels: np.ndarray | None = None) -> dict:
    """Basins of the trained prior and their weights (module docstring), and ``basin_ari``: the ARI
    against ``labels`` (if given) of each cell's basin (its posterior-mode code ``probs > 0.5``
    descended to its local minimum)."""
    prior = model.module.prior
    h, J = prior.sampling_machine()
    sampler = ParallelTemperingSampler(**TEMPERING, seed=seed)
    with torch.no_grad():
        z = sampler.sample(h, J, N_BASIN_DRAWS)[:, : prior.n_latent]
        minima = _descend(prior, z)
        energies = prior.energy(minima)
        cell_minima = _descend(prior, torch.as_tensor(probs > 0.5, dtype=h.dtype)).numpy()
    _, cell_basin = np.unique(cell_minima, axis=0, return_inverse=True)
    states, inverse, counts = np.unique(minima.numpy(), axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(-counts)
    weights = counts[order] / counts.sum()
    energy_of = np.array([float(energies[inverse == k][0]) for k in order])
    out = {} if labels is None else {"basin_ari": float(adjusted_rand_score(labels, cell_basin.reshape(-1)))}
    return out | {
        "n_cell_basins": int(cell_basin.max() + 1),
        "n_basins": int((weights >= BASIN_MIN_WEIGHT).sum()),
        "n_minima": int(len(states)),
        "basin_weights": [float(w) for w in weights[:10]],
        "basin_energies": [float(e) for e in energy_of[:10]],
        "swap_acceptance_min": float(sampler.swap_acceptance.min()),
    }


ATTRACTOR_METHODS = ("meanfield", "greedy", "graph")


def landscape_scores(model, data, labels: np.ndarray, seed: int, methods=ATTRACTOR_METHODS) -> dict:
    """Leiden on the joint latent (resolution chosen by NMI) and ``tl.attractors`` (``methods``
    among the mean-field states, greedy over codes, and on the cell graph; a prior with hidden
    units: the graph only) against the labels: how many states, and how well they match. The
    greedy and graph methods search barriers between every pair of minima: minutes on a prior with
    15+ basins, so a run may ask for the mean-field states only."""
    qbm_pyro.tl.qbm(data, model, progress_bar=False)
    out = {f"leiden_{k}": v for k, v in clustering_scores(data.obsm["X_qbm"], labels, seed=seed).items()}
    # every resolution of the grid on the same graph (benchmarks/leiden_resolutions.py's protocol)
    profile = resolution_profile(data.obsm["X_qbm"], labels, seed)
    out["leiden_ari_grid"] = float(np.mean([p["ari"] for p in profile]))
    out["leiden_clusters_at_1"] = float(next(p["n_clusters"] for p in profile if p["resolution"] == 1.0))
    if model.module.prior.structure == "hidden":
        methods = ("graph",)
    for method in methods:
        qbm_pyro.tl.attractors(data, model, method=method, seed=seed, n_markers=0, key_added="lever")
        found = data.obs["lever"].astype(str).to_numpy()
        out[f"{method}_attractor_ari"] = float(adjusted_rand_score(labels, found))
        out[f"{method}_n_attractors"] = int(len(np.unique(found)))
        out[f"{method}_labels"] = found.tolist()
    return out


def _saved_fit(fits: Path | None, data, dataset: str, seed: int, settings: dict, epochs: int):
    """``(model, history, seconds)`` of a fit saved under ``fits/<dataset>/seed<k>`` (written by
    benchmarks/landscape.py with a ``DONE`` marker; :func:`benchmarks.quality.load_fit` checks it),
    or ``None``. Its training settings are not saved with it: the folder must hold fits of the
    method's (the caller's choice of folder, said in the table's note)."""
    folder = None if fits is None else Path(fits) / dataset / f"seed{seed}"
    if folder is None or not (folder / "DONE").exists():
        return None
    return load_fit(folder, data, {**settings, "seed": seed}, epochs)


def run(
    dataset: str,
    method: str,
    seed: int,
    epochs: int,
    landscape: tuple[str, ...] = (),
    fits: Path | None = None,
) -> dict:
    """One fit and its row; ``landscape``: the attractor methods to score with Leiden
    (:func:`landscape_scores`), none by default; ``fits``: a folder of saved fits of ``method``
    (``<fits>/<dataset>/seed<k>``) to score instead of fitting again."""
    data, label_key, batch_key, kwargs = load(dataset)
    spec = dict(METHODS[method])
    train_kw = BASE_TRAIN | spec.pop("train", {})
    two_stage = dict(spec.pop("two_stage", None) or {})
    joint = two_stage.pop("joint", False)
    learn_prior = two_stage.pop("learn_prior", True)
    start = time.perf_counter()
    saved = None if two_stage else _saved_fit(fits, data, dataset, seed, BASE_MODEL | spec, epochs)
    if saved is not None:
        model, history, saved_seconds = saved
    else:
        model = qbm_pyro.QBMVAE(data, batch_key=batch_key, seed=seed, **kwargs, **(BASE_MODEL | spec))
    prior = model.module.prior
    stage1 = {}
    if two_stage:  # stage 1: the prior held at h = J = 0, i.e. the fixed Bernoulli(½) prior
        prior.requires_grad_(False)
    stage1_epochs = epochs - two_stage["max_epochs"] if joint else epochs
    if saved is None:
        history = model.train(max_epochs=stage1_epochs, progress_bar=False, **train_kw)
    if two_stage:
        stage1["marginal_ll_stage1"] = model.get_marginal_ll(
            indices=model.validation_indices_, n_samples=N_IS, seed=seed
        )
        stage1["validation_loss_stage1"] = history["validation_loss"][-1]
        # stage 2: only the prior learns (maximum likelihood on the frozen aggregate posterior),
        # or (joint) the prior learns and the encoder and decoder keep training
        if not joint:
            model.module.requires_grad_(False)
        prior.requires_grad_(learn_prior)
        history = model.train(progress_bar=False, kl_warmup_epochs=1, **(BASE_TRAIN | two_stage))
    fit_s = time.perf_counter() - start if saved is None else saved_seconds
    row = {
        "dataset": dataset,
        "method": method,
        "seed": seed,
        "epochs_run": len(history["epoch"]),
        "fit_seconds": fit_s,
        "validation_loss": history["validation_loss"][-1],
    } | stage1
    if saved is not None:
        row["reused_fit"] = str(Path(fits) / dataset / f"seed{seed}")
    if prior.learnable and prior.n_latent > prior.exact_max_n:
        t = time.perf_counter()
        row["log_z"] = prior.refresh_log_z(**AIS)
        # a second, independent AIS run: the spread of log Z enters log p(x) one for one
        row["log_z_rerun"] = qbm_pyro.samplers.ais.ais_log_partition(
            *prior.sampling_machine(), **(AIS | {"seed": 1})
        ).log_z
        row["ais_seconds"] = time.perf_counter() - t
    held = model.validation_indices_
    t = time.perf_counter()
    row["marginal_ll"] = model.get_marginal_ll(indices=held, n_samples=N_IS, seed=seed)
    row["marginal_ll_seconds"] = time.perf_counter() - t
    row["n_heldout"] = len(held)
    labels = data.obs[label_key].astype(str).to_numpy()
    row["n_labels"] = int(len(np.unique(labels)))
    latent = model.get_latent_representation()
    row["joint_knn"] = knn_accuracy(latent, labels, seed=seed)["accuracy"]
    if batch_key:
        row["batch_mixing"] = batch_mixing_entropy(latent, data.obs[batch_key].astype(str).to_numpy())
    probs = model.get_latent_representation(representation="probs")
    row["hard_knn"] = knn_accuracy((probs > 0.5).astype(np.float32), labels, seed=seed)["accuracy"]
    q = np.clip(probs, 1e-7, 1 - 1e-7)
    row["entropy_bits"] = float((-(q * np.log2(q) + (1 - q) * np.log2(1 - q))).mean())
    row["mean_abs_h"] = float(prior.h.detach().abs().mean())
    row["max_abs_J"] = float(prior.couplings().detach().abs().max())
    if prior.structure == "hidden":
        row["max_abs_W"] = float(prior.W.detach().abs().max())
    t = time.perf_counter()
    row |= basins(model, seed, probs, labels)
    row["basin_seconds"] = time.perf_counter() - t
    if landscape:
        row |= landscape_scores(model, data, labels, seed, landscape)
    return row


def _write(path: Path, rows: list[dict], epochs: int | None = None) -> None:
    """Re-read the file and replace only the rows of this run's (dataset, method, seed)."""
    old = json.loads(path.read_text()) if path.exists() else {"rows": []}
    keys = {(r["dataset"], r["method"], r["seed"]) for r in rows}
    kept = [r for r in old["rows"] if (r["dataset"], r["method"], r["seed"]) not in keys]
    meta = {
        "qbm_pyro": qbm_pyro.__version__,
        "torch": torch.__version__,
        "n_importance_samples": N_IS,
        "ais": AIS,
        "basin_draws": N_BASIN_DRAWS,
        "basin_min_weight": BASIN_MIN_WEIGHT,
        "tempering": TEMPERING,
        "model": f"{BASE_MODEL} unless the method sets them, other settings default",
        "held_out": "the model's 10% validation split (seeded)",
    }
    # the run's epochs and the hand-written note on earlier rows are kept (the report reads both)
    meta |= {k: old["meta"][k] for k in ("epochs", "note") if k in old.get("meta", {})}
    if epochs is not None:
        meta["epochs"] = epochs
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"meta": meta, "rows": kept + rows}, indent=1, default=float) + "\n")
    tmp.replace(path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", nargs="+", default=["paul15", "mixology"])
    parser.add_argument("--methods", nargs="+", default=["bernoulli", "qbm", "hidden32"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/prior_levers.json"))
    parser.add_argument(
        "--fits",
        nargs="*",
        default=[],
        metavar="METHOD=DIR",
        help="score a method's saved fits (DIR/<dataset>/seed<k>, as benchmarks/landscape.py "
        "writes them) instead of fitting again; the folder must hold fits of that method",
    )
    parser.add_argument(
        "--landscape",
        nargs="*",
        choices=ATTRACTOR_METHODS,
        default=None,
        help="also Leiden and tl.attractors against the labels (given alone: every method)",
    )
    args = parser.parse_args(argv)
    landscape = () if args.landscape is None else tuple(args.landscape or ATTRACTOR_METHODS)
    torch.set_num_threads(args.threads)
    fits = {}
    for item in args.fits:
        method, sep, folder = item.partition("=")
        if not sep or method not in METHODS:
            parser.error(f"--fits takes METHOD=DIR with a known method, got {item!r}")
        fits[method] = Path(folder)
    for seed in args.seeds:
        for dataset in args.datasets:
            for method in args.methods:
                start = time.perf_counter()
                row = run(dataset, method, seed, args.epochs, landscape, fits.get(method))
                row["epochs"] = args.epochs
                _write(args.out, [row], args.epochs)
                shown = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()
                         if not k.endswith("_labels")}  # fmt: skip
                print(f"[{time.perf_counter() - start:.0f}s] {shown}", flush=True)


if __name__ == "__main__":
    main()


# ---------------------------------------------------------------------------------------------- report

REPORT_METHODS = list(METHODS)
REPORT_NAMES = {
    "bernoulli": "fixed Bernoulli(½)",
    "qbm": "learned, pairwise, plain ELBO",
    "rbm": "learned, bipartite code",
    "hidden16": "hidden units, m = 16",
    "hidden32": "hidden units, m = 32",
    "hidden64": "hidden units, m = 64",
    "hidden32_fast": "hidden units, m = 32, prior lr ×10",
    "qbm_fast": "learned, pairwise, prior lr ×10",
    "binary_bernoulli": "binary only, fixed",
    "binary_qbm": "binary only, learned",
    "bernoulli16": "16 binary units, fixed",
    "qbm16": "16 binary units, learned",
    "bernoulli_c8": "fixed, 8 Gaussian units",
    "qbm_c8": "learned, 8 Gaussian units (not 16)",
    "qbm_depth": "learned, depth-normalised encoder input",
    "bernoulli_ckl3": "fixed, Gaussian units' KL ×3",
    "qbm_ckl3": "learned, Gaussian units' KL ×3, no free bits (the default: stops 13-17, since 21)",
    "qbm_ckl2": "learned, Gaussian units' KL ×2",
    "qbm_b32": "learned, 32 binary units (not 64), Gaussian units' KL ×3",
    "qbm_b16": "learned, 16 binary units (not 64), Gaussian units' KL ×3",
    "qbm_b32_ckl2": "learned, 32 binary units, Gaussian units' KL ×2",
    "qbm_c8_ckl2": "learned, 8 Gaussian units (not 16), their KL ×2",
    "qbm_fb05": "learned, Gaussian units' KL ×3 with 0.5 free nats per unit (the default of stops 18-20)",
    "qbm_fb10": "learned, Gaussian units' KL ×3 with 1 free nat per unit",
    "qbm_fb05_md025": "0.5 free nats per unit with modality dropout 0.25 in training",
    "qbm_depth_ckl3": "learned, depth-normalised input and Gaussian units' KL ×3",
    "bernoulli_balanced": "fixed, KL balance α = 0.8",
    "qbm_balanced": "learned, KL balance α = 0.8",
    "binary_bernoulli_balanced": "binary only, fixed, KL balance α = 0.8",
    "binary_qbm_balanced": "binary only, learned, KL balance α = 0.8",
    "two_stage": "two stages: fixed, then prior fit to frozen encoder",
    "binary_two_stage": "binary only, two stages",
    "two_stage_joint": "two stages: fixed, then prior and model trained together",
    "two_stage_joint_fixed": "control of the above: fixed prior in both stages",
    "bernoulli_warmup5": "fixed, KL warm-up 5 epochs (not 10)",
}
#: (key, label) of the table rows, in order.
REPORT_ROWS = [
    ("marginal_ll", "held-out log p(x) per cell"),
    ("validation_loss", "validation −ELBO per cell"),
    ("joint_knn", "15-NN acc., joint latent"),
    ("hard_knn", "15-NN acc., hard code"),
    ("entropy_bits", "posterior entropy per unit (bits)"),
    ("n_basins", "basins with ≥ 2% of the prior's mass"),
    ("basin_ari", "basin ARI (posterior-mode code descended)"),
    ("meanfield_n_attractors", "states at the prior's temperature (mean field, tl.attractors' default)"),
    ("meanfield_attractor_ari", "ARI of the mean-field states"),
    ("meanfield_seed_to_seed", "seed-to-seed ARI of the mean-field states"),
    ("greedy_attractor_ari", "ARI of the code-minimum attractors (greedy, merged below 1 kT)"),
    ("graph_attractor_ari", "ARI of the graph basins"),
    ("leiden_ari", "Leiden ARI, joint latent (resolution chosen by NMI)"),
    ("leiden_ari_grid", "Leiden ARI, joint latent, mean over resolutions 0.1-1.0 (same graph)"),
    ("leiden_clusters_at_1", "Leiden clusters at resolution 1.0"),
    ("batch_mixing", "batch mixing, joint latent"),
    ("max_abs_J", "max abs J"),
    ("max_abs_W", "max abs W (hidden units)"),
    ("fit_seconds", "fit seconds (shared 2-core machine, not a speed measurement)"),
]


#: The paired rows under the log p(x) row: (anchor method, None: the fixed prior of the same
#: settings; label).
PAIRED_ROWS = (
    (None, "log p(x) minus the fixed prior's of the same settings, same cells (paired by seed)"),
    (
        "bernoulli",
        "log p(x) minus the fixed prior's with the plain ELBO (64 + 16, plain KL, one call of train), "
        "paired by seed",
    ),
    ("qbm", "log p(x) minus the plain-ELBO learned prior's (the default before), paired by seed"),
    (
        "qbm_ckl3",
        "log p(x) minus continuous_kl_weight 3 without free bits (stops 13-17), paired by seed",
    ),
)


def _seed_to_seed(rows: list[dict], row: dict) -> float:
    """Mean ARI between ``row``'s mean-field state labels and those of the other seeds of its data
    set and method (NaN with one seed)."""
    others = [
        r
        for r in rows
        if r is not row
        and r["dataset"] == row["dataset"]
        and r["method"] == row["method"]
        and "meanfield_labels" in r
    ]
    if not others:
        return float("nan")
    return float(
        np.mean([adjusted_rand_score(row["meanfield_labels"], r["meanfield_labels"]) for r in others])
    )


def paired_difference(rows: list[dict], method: str, key: str, anchor: str | None = None) -> list[float]:
    """Per-seed ``method - anchor`` of ``key``; by default the anchor is ``ANCHOR[method]``, the fixed
    prior of the same settings."""
    anchor = anchor or ANCHOR.get(method, "bernoulli")
    anchor = {r["seed"]: r[key] for r in rows if r["method"] == anchor}
    return [r[key] - anchor[r["seed"]] for r in rows if r["method"] == method and r["seed"] in anchor]


def report_section(results: Path, name: str = "prior_levers.json", title: str | None = None) -> list[str]:
    """Markdown lines of the "levers on the learned prior" tables of ``results/name`` (one per data set)."""
    path = Path(results) / name
    md = [f"## {title or 'Levers on the learned prior'} (benchmarks/prior_levers.py)", ""]
    if not path.exists():
        return md + ["_No results yet: run `python benchmarks/prior_levers.py`._", ""]
    result = json.loads(path.read_text())
    meta, rows = result["meta"], result["rows"]
    md += [
        f"Model: {meta['model']}; held out: {meta['held_out']}; {meta['n_importance_samples']} importance "
        f"samples per cell; log Z above the enumeration limit by AIS ({meta['ais']}). Basins: "
        f"{meta['basin_draws']} tempering draws of the trained prior, each descended to its local minimum "
        "(the free energy for hidden units); the fixed prior (h = J = 0) has no basins, every code "
        "is its own minimum. Mean ± sd over seeds (n in brackets).",
        "",
        *([f"_{meta['note']}_", ""] if meta.get("note") else []),
    ]
    for row in rows:  # seed-to-seed agreement of the mean-field states, per (data set, method)
        if "meanfield_labels" in row:
            row["meanfield_seed_to_seed"] = _seed_to_seed(rows, row)
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        sub = [r for r in rows if r["dataset"] == dataset]
        methods = [m for m in REPORT_METHODS if any(r["method"] == m for r in sub)]
        n_labels = sub[0].get("n_labels")
        md += [f"### {dataset} ({n_labels} labelled types or lines)", ""]
        md.append(
            "| measurement | "
            + " | ".join(f"{REPORT_NAMES[m]} ({sum(r['method'] == m for r in sub)})" for m in methods)
            + " |"
        )
        md.append("|---" * (len(methods) + 1) + "|")
        for key, label in REPORT_ROWS:
            cells = [mean_sd([r.get(key) for r in sub if r["method"] == m]) for m in methods]
            if all(c == "—" for c in cells):
                continue
            md.append(f"| {label} | " + " | ".join(cells) + " |")
            if key == "marginal_ll":
                for anchor, text in PAIRED_ROWS:
                    paired = [mean_sd(paired_difference(sub, m, key, anchor)) for m in methods]
                    if any(c != "—" for c in paired):
                        md.append(f"| {text} | " + " | ".join(paired) + " |")
        weights = []
        for m in methods:
            first = min((r for r in sub if r["method"] == m), key=lambda r: r["seed"])
            shown = ", ".join(f"{w:.2f}" for w in first["basin_weights"][:4])
            weights.append(f"{shown} (minima reached: {first['n_minima']})")
        md.append("| largest basin weights, lowest seed | " + " | ".join(weights) + " |")
        md.append("")
    return md
