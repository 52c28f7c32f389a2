"""Does the learned prior matter? Held-out likelihood, code crispness, prior fit, generation.

For each data set, method and seed: fit on the training cells (the model's own 10% validation
split is the held-out set), then measure on the held-out cells

- ``marginal_ll``: importance-sampled ``log p(x)`` per cell (``QBMVAE.get_marginal_ll``,
  ``n_samples`` draws; scVI/totalVI through their own ``get_marginal_ll`` on the same cells,
  trained on the same training cells);
- ``entropy_bits``: mean posterior entropy per binary unit (bits), ``fuzzy``: share of
  probabilities in (0.1, 0.9);
- ``prior_vs_posterior``: 5-fold accuracy of a gradient-boosted classifier telling codes drawn
  from the posterior of held-out cells from codes drawn from the prior (0.5: indistinguishable);
- ``hard_knn`` / ``hard_ari`` (hard code, Hamming = Euclidean on 0/1) against ``probs_knn`` /
  ``probs_ari`` and ``joint_knn`` (all cells, labelled sets only);
- ``generated_c2st``: classifier two-sample accuracy, generated vs held-out real cells on 30 PCs of
  log-normalised RNA (PCA fit on training cells); ``generated_type_tv``: total variation between
  the cell-type proportions of generated cells (by a kNN classifier trained on real cells) and
  of the held-out cells;
- ``attractor_ari`` (greedy descent, ``tl.attractors``) and ``n_attractors`` (learned priors only:
  the fixed prior has no landscape, every code is its own minimum);
- the prior's basins as in ``benchmarks/prior_levers.py`` (:func:`benchmarks.prior_levers.basins`):
  ``n_basins`` (tempering draws of the trained prior descended to their local minima; minima
  holding at least 2% of the draws), ``basin_weights``, and ``basin_ari`` (each cell's
  posterior-mode code descended to its minimum, against the labels).

Usage: ``python benchmarks/prior_matters.py --datasets paul15 --methods qbm bernoulli gaussian
--seeds 0 1 2 --epochs 100 --out benchmarks/results/prior_matters.json``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import scanpy as sc
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

import qbm_pyro
from benchmarks.prior_levers import basins
from benchmarks.quality import load, saved_fit
from benchmarks.tables import mean_sd
from qbm_pyro.data import train_validation_split
from qbm_pyro.metrics import clustering_scores, knn_accuracy
from qbm_pyro.pp import size_defaults

warnings.filterwarnings("ignore")

METHODS = {
    "qbm": dict(prior="boltzmann", n_latent=64, n_continuous=16),
    "qbm_fast": dict(prior="boltzmann", n_latent=64, n_continuous=16, train=dict(prior_lr_factor=30.0)),
    "qbm_slow": dict(
        prior="boltzmann",
        n_latent=64,
        n_continuous=16,
        train=dict(prior_lr_factor=0.1, continuous_kl_weight=1.0, continuous_free_bits=0.0),
    ),
    "qbm_lr03": dict(
        prior="boltzmann",
        n_latent=64,
        n_continuous=16,
        train=dict(prior_lr_factor=0.3, continuous_kl_weight=1.0, continuous_free_bits=0.0),
    ),
    # the plain ELBO (continuous_kl_weight 1: the training default until stop 13)
    "qbm_elbo": dict(
        prior="boltzmann",
        n_latent=64,
        n_continuous=16,
        train=dict(continuous_kl_weight=1.0, continuous_free_bits=0.0),
    ),
    "bernoulli_elbo": dict(
        prior="bernoulli",
        n_latent=64,
        n_continuous=16,
        train=dict(continuous_kl_weight=1.0, continuous_free_bits=0.0),
    ),
    "gaussian_elbo": dict(
        prior="gaussian", n_continuous=16, train=dict(continuous_kl_weight=1.0, continuous_free_bits=0.0)
    ),
    "bernoulli": dict(prior="bernoulli", n_latent=64, n_continuous=16),
    "binary": dict(prior="boltzmann", n_latent=64, n_continuous=0),
    "binary_fast": dict(prior="boltzmann", n_latent=64, n_continuous=0, train=dict(prior_lr_factor=30.0)),
    "binary_bernoulli": dict(prior="bernoulli", n_latent=64, n_continuous=0),
    "gaussian": dict(prior="gaussian", n_continuous=16),
}
N_IS = 1000


def _rna(data):
    rna = data["rna"] if hasattr(data, "mod") else data
    return rna


def _log_norm(x) -> np.ndarray:
    x = x.toarray() if hasattr(x, "toarray") else np.asarray(x)
    x = x / np.maximum(x.sum(1, keepdims=True), 1) * 1e4
    return np.log1p(x)


def _counts(adata):
    return adata.layers["counts"] if "counts" in adata.layers else adata.X


def generation_scores(model, data, label_key, seed) -> dict:
    """Generated vs held-out real cells: C2ST accuracy and cell-type proportion TV."""
    from sklearn.decomposition import PCA

    held = model.validation_indices_
    train = model.train_indices_
    rna_name = next(n for n, s in model.registry.modalities.items() if s.kind == "rna")
    real = _rna(data)
    genes = list(model.registry.modalities[rna_name].var_names)
    x_real = _log_norm(_counts(real[:, genes]))
    pca = PCA(30, random_state=seed).fit(x_real[train])
    generated = model.generate(len(held), seed=seed)
    gen_rna = generated[rna_name] if hasattr(generated, "mod") else generated
    y_gen = pca.transform(_log_norm(gen_rna.X))
    y_held = pca.transform(x_real[held])
    X = np.vstack([y_held, y_gen])
    y = np.r_[np.zeros(len(y_held)), np.ones(len(y_gen))]
    clf = HistGradientBoostingClassifier(max_iter=100, random_state=seed)
    out = {"generated_c2st": float(cross_val_score(clf, X, y, cv=5).mean())}
    if label_key:
        labels = data.obs[label_key].astype(str).to_numpy()
        knn = KNeighborsClassifier(15).fit(pca.transform(x_real[train]), labels[train])
        pred = knn.predict(y_gen)
        cats = np.unique(labels)
        p_gen = np.array([(pred == c).mean() for c in cats])
        p_held = np.array([(labels[held] == c).mean() for c in cats])
        out["generated_type_tv"] = float(0.5 * np.abs(p_gen - p_held).sum())
    return out


def code_scores(model, data, label_key, seed, attractors: bool = True) -> dict:
    held = model.validation_indices_
    probs = model.get_latent_representation(representation="probs")
    q = np.clip(probs, 1e-7, 1 - 1e-7)
    ent = -(q * np.log2(q) + (1 - q) * np.log2(1 - q))
    out = {"entropy_bits": float(ent.mean()), "fuzzy": float(((probs > 0.1) & (probs < 0.9)).mean())}
    rng = np.random.default_rng(seed)
    post = (rng.random(probs[held].shape) < probs[held]).astype(np.float32)
    prior = model.sample_prior(len(held), seed=seed)
    X = np.vstack([post, prior])
    y = np.r_[np.zeros(len(post)), np.ones(len(prior))]
    clf = HistGradientBoostingClassifier(max_iter=100, random_state=seed)
    out["prior_vs_posterior"] = float(cross_val_score(clf, X, y, cv=5).mean())
    prior_obj = model.module.prior
    out["mean_abs_h"] = float(prior_obj.h.detach().abs().mean())
    out["max_abs_J"] = float(prior_obj.couplings().detach().abs().max())
    if label_key:
        labels = data.obs[label_key].astype(str).to_numpy()
        hard = (probs > 0.5).astype(np.float32)
        out["hard_knn"] = knn_accuracy(hard, labels, seed=seed)["accuracy"]
        out["probs_knn"] = knn_accuracy(probs, labels, seed=seed)["accuracy"]
        out["hard_ari"] = clustering_scores(hard, labels, seed=seed)["ari"]
        out["probs_ari"] = clustering_scores(probs, labels, seed=seed)["ari"]
    if attractors and label_key and prior_obj.learnable:
        # (the fixed prior h = J = 0 has no landscape: every code is its own minimum, and the
        # barriers between some thousand minima are a long, empty computation)
        adata = data.copy() if not hasattr(data, "mod") else data.copy()
        adata.obsm["X_qbm"] = probs
        qbm_pyro.tl.attractors(adata, model, method="greedy")
        att = adata.obs["qbm_attractor"].astype(str).to_numpy()
        out["attractor_ari"] = float(adjusted_rand_score(labels, att))
        out["n_attractors"] = int(len(np.unique(att)))
    if prior_obj.learnable:
        labels = data.obs[label_key].astype(str).to_numpy() if label_key else None
        out |= basins(model, seed, probs, labels)
    return out


def _saved(reuse: Path | None, dataset: str, method: str, seed: int, small: bool) -> Path | None:
    """The default fit saved under ``reuse/<set>/seed<k>`` (``benchmarks/landscape.py --fits``) where
    it is this protocol's fit: method ``qbm`` on a set with a validation split (below 1,000 cells
    this protocol holds cells out where the defaults keep none, so it fits anew)."""
    folder = None if method != "qbm" or small else saved_fit(reuse, dataset, method, seed)
    return folder if folder is not None and (folder / "DONE").exists() else None


def run_qbm(
    dataset: str, method: str, seed: int, epochs: int, attractors: bool = True, reuse: Path | None = None
) -> dict:
    data, label_key, batch_key, kwargs = load(dataset)
    spec = dict(METHODS[method])
    train_kw = spec.pop("train", {})
    start = time.perf_counter()
    small = size_defaults(int(data.n_obs))["small_data"]
    saved = _saved(reuse, dataset, method, seed, small)
    if saved is not None:  # the same call as below, fitted and saved by the landscape run
        model = qbm_pyro.QBMVAE.load(saved, data)
        history = model.history_
        fit_s = json.loads((saved / "meta.json").read_text())["seconds"]
    else:
        model = qbm_pyro.QBMVAE(data, batch_key=batch_key, seed=seed, **kwargs, **spec)
        # held-out cells on every set. Below 1,000 cells (CITE-seq) the package defaults keep no
        # validation set and train every epoch to the last state: the same here, with 10 % of the
        # cells held out for log p(x) only (no early stopping on them, the last state kept)
        held_out = {"validation_fraction": 0.1}
        if small:
            held_out |= {"early_stopping": False, "restore_best": False}
        train_kw = held_out | train_kw
        history = model.train(max_epochs=epochs, progress_bar=False, **train_kw)
        fit_s = time.perf_counter() - start
    if (
        model.module.n_binary
        and model.module.prior.learnable
        and model.module.n_binary > model.module.prior.exact_max_n
    ):
        model.module.prior.refresh_log_z(n_chains=512, n_steps=1000)
    held = model.validation_indices_
    row = {
        "dataset": dataset,
        "method": method,
        "seed": seed,
        "epochs_run": len(history["epoch"]),
        "fit_seconds": fit_s,
        "validation_loss": history["validation_loss"][-1],
        "marginal_ll": model.get_marginal_ll(indices=held, n_samples=N_IS, seed=seed),
        "n_heldout": len(held),
    }
    if label_key:
        labels = data.obs[label_key].astype(str).to_numpy()
        row["joint_knn"] = knn_accuracy(model.get_latent_representation(), labels, seed=seed)["accuracy"]
    if model.module.n_binary:
        row |= code_scores(model, data, label_key, seed, attractors)
    row |= generation_scores(model, data, label_key, seed)
    return row


def run_scvi(dataset: str, seed: int, epochs: int) -> dict:
    """scVI (RNA) or totalVI (RNA + protein) trained on the same training cells, held-out LL."""
    import scvi

    data, label_key, batch_key, kwargs = load(dataset)
    reference = qbm_pyro.QBMVAE(data, batch_key=batch_key, seed=seed, **kwargs)
    # the same split the QBM-VAE fits use (train_validation_split with this seed, nonempty cells)
    cells = np.flatnonzero(reference.registry.nonempty_cells())
    tr, va = train_validation_split(len(cells), 0.1, seed=seed)
    train_cells, held_cells = cells[tr], cells[va]
    scvi.settings.seed = seed
    rna = _rna(data).copy()
    if "counts" in rna.layers:
        rna.X = rna.layers["counts"].copy()
    method = "scvi"
    if hasattr(data, "mod") and "prot" in data.mod and dataset == "cite":
        method = "totalvi"
        rna.obsm["protein"] = np.asarray(
            data["prot"].X.toarray() if hasattr(data["prot"].X, "toarray") else data["prot"].X
        )
    if batch_key and batch_key not in rna.obs:
        rna.obs[batch_key] = data.obs[batch_key].to_numpy()
    start = time.perf_counter()
    train_ad = rna[train_cells].copy()
    if method == "totalvi":
        scvi.model.TOTALVI.setup_anndata(train_ad, protein_expression_obsm_key="protein", batch_key=batch_key)
        model = scvi.model.TOTALVI(train_ad)
    else:
        scvi.model.SCVI.setup_anndata(train_ad, batch_key=batch_key)
        model = scvi.model.SCVI(train_ad)
    # all training cells are used (the held-out cells are ours); totalVI's loop needs a validation
    # loader, so it keeps 1% of them back; no early stopping either way
    train_size = 0.99 if method == "totalvi" else 1.0
    model.train(max_epochs=epochs, train_size=train_size, early_stopping=False, enable_progress_bar=False)
    fit_s = time.perf_counter() - start
    held_ad = rna[held_cells].copy()
    ll = model.get_marginal_ll(held_ad, n_mc_samples=N_IS)
    return {
        "dataset": dataset,
        "method": method,
        "seed": seed,
        "fit_seconds": fit_s,
        "marginal_ll": float(ll),
        "n_heldout": len(held_cells),
    }


def _write(path: Path, rows: list[dict], epochs: int | None = None) -> None:
    """Re-read the file and replace only the rows of this run's (dataset, method, seed)."""
    old = json.loads(path.read_text()) if path.exists() else {"rows": []}
    keys = {(r["dataset"], r["method"], r["seed"]) for r in rows}
    kept = [r for r in old["rows"] if (r["dataset"], r["method"], r["seed"]) not in keys]
    meta = {
        "qbm_pyro": qbm_pyro.__version__,
        "torch": torch.__version__,
        "n_importance_samples": N_IS,
        "held_out": "the model's 10% validation split (seeded; below 1,000 cells used for the "
        "likelihood only: no early stopping on it, the last state kept, as the defaults train "
        "there); scVI/totalVI trained on the rest",
    } | ({} if epochs is None else {"epochs": epochs})
    if "note" in old.get("meta", {}):
        meta["note"] = old["meta"]["note"]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"meta": meta, "rows": kept + rows}, indent=1, default=float) + "\n")
    tmp.replace(path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", nargs="+", default=["paul15", "mixology", "cite", "a549"])
    parser.add_argument("--methods", nargs="+", default=["qbm", "bernoulli", "gaussian", "scvi"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--skip-attractors",
        action="store_true",
        help="no tl.attractors (its barriers are the slow part; basin_ari is the same descent "
        "without merging minima across low barriers)",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/prior_matters.json"))
    parser.add_argument(
        "--reuse", type=Path, default=None, help="default fits saved by landscape.py --fits (method qbm)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sc.settings.verbosity = 0
    for seed in args.seeds:  # seed outermost: a run cut short still has every set and method
        for dataset in args.datasets:
            for method in args.methods:
                start = time.perf_counter()
                if method == "scvi":
                    row = run_scvi(dataset, seed, args.epochs)
                else:
                    row = run_qbm(dataset, method, seed, args.epochs, not args.skip_attractors, args.reuse)
                row["epochs"] = args.epochs
                _write(args.out, [row], args.epochs)
                shown = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}
                print(f"[{time.perf_counter() - start:.0f}s] {shown}", flush=True)


if __name__ == "__main__":
    main()


# ---------------------------------------------------------------------------------------------- report

#: (key, label, higher is better?) of the table, in order.
REPORT_METRICS = [
    ("marginal_ll", "held-out log p(x) per cell", True),
    ("validation_loss", "validation −ELBO per cell", False),
    ("epochs_run", "epochs run (early stopping: patience 30)", None),
    ("entropy_bits", "posterior entropy per unit (bits)", False),
    ("prior_vs_posterior", "prior vs posterior codes, classifier acc. (0.5 = same)", False),
    ("hard_knn", "15-NN acc., hard code", True),
    ("probs_knn", "15-NN acc., probabilities", True),
    ("joint_knn", "15-NN acc., joint latent", True),
    ("hard_ari", "Leiden ARI, hard code", True),
    ("attractor_ari", "attractor ARI (tl.attractors)", True),
    ("n_attractors", "attractors", None),
    ("n_basins", "prior basins with ≥ 2% of its mass", None),
    ("basin_ari", "basin ARI (posterior-mode code descended)", True),
    ("generated_c2st", "generated vs held-out cells, C2ST acc. (0.5 = same)", False),
    ("generated_type_tv", "cell-type proportions of generated cells, TV", False),
]
REPORT_METHODS = [
    "qbm",
    "bernoulli",
    "gaussian",
    "qbm_elbo",
    "bernoulli_elbo",
    "gaussian_elbo",
    "qbm_fast",
    "qbm_slow",
    "qbm_lr03",
    "binary",
    "binary_fast",
    "binary_bernoulli",
    "scvi",
    "totalvi",
]
REPORT_NAMES = {
    "qbm": "learned Boltzmann (default)",
    "qbm_fast": "learned, prior lr ×30",
    "qbm_slow": "learned, prior lr ×0.1, ELBO",
    "qbm_lr03": "learned, prior lr ×0.3, ELBO",
    "bernoulli": "fixed Bernoulli(½)",
    "gaussian": "Gaussian twin",
    "qbm_elbo": "learned, plain ELBO (the default before)",
    "bernoulli_elbo": "fixed, plain ELBO",
    "gaussian_elbo": "Gaussian twin, plain ELBO",
    "binary": "binary only, learned",
    "binary_fast": "binary only, learned, prior lr ×30",
    "binary_bernoulli": "binary only, fixed",
    "scvi": "scVI",
    "totalvi": "totalVI",
}


#: What a reader must know to compare a data set's columns.
DATASET_NOTES = {
    "a549": "Our models fit RNA + ATAC, so their log p(x) is of both modalities; scVI's is of the "
    "RNA alone, a different quantity (not comparable with ours).",
    "cite": "totalVI's log p(x) is of RNA + protein on the same cells, as ours; both model a "
    "protein as a background/foreground negative-binomial mixture, but the two models differ in "
    "detail (priors, batch handling), so the gap is between two models, not two priors.",
}

#: The fixed-prior model each method's paired log p(x) difference is taken against.
#: Methods trained with the plain ELBO (continuous_kl_weight 1): paired with the plain-ELBO anchors.
_ELBO_METHODS = ("qbm_elbo", "bernoulli_elbo", "gaussian_elbo", "qbm_slow", "qbm_lr03")
_FIXED_OF = dict.fromkeys(("binary", "binary_fast", "binary_bernoulli"), "binary_bernoulli") | dict.fromkeys(
    _ELBO_METHODS, "bernoulli_elbo"
)
#: The Gaussian twin trained with the same objective (the second paired difference).
_TWIN_OF = dict.fromkeys(_ELBO_METHODS, "gaussian_elbo")


def _cell(values) -> str:
    return mean_sd(values)


def _paired(rows: list[dict], method: str, anchor: str, key: str) -> list[float]:
    """Per-seed differences ``method - anchor`` of ``key`` (seeds both have)."""
    by_seed = {r["seed"]: r.get(key) for r in rows if r["method"] == anchor}
    return [r[key] - by_seed[r["seed"]] for r in rows if r["method"] == method and r["seed"] in by_seed]


def report_section(results: Path, name: str = "prior_matters.json") -> list[str]:
    """Markdown lines of the "does the learned prior matter" tables (one per data set), from
    ``results / name``; a file other than the main one (a longer run, e.g. ``prior_matters_200.json``)
    gets a "###" heading naming its epochs and nothing if it is missing."""
    path = Path(results) / name
    main = name == "prior_matters.json"
    if not main:
        if not path.exists():
            return []
        epochs = json.loads(path.read_text())["meta"].get("epochs", "?")
        md = [f"### Does the learned prior matter? At {epochs} epochs ({name})", ""]
        return md + _tables(json.loads(path.read_text()), level="####")
    md = ["## Does the learned prior matter? (benchmarks/prior_matters.py)", ""]
    if not path.exists():
        return md + ["_No results yet: run `python benchmarks/prior_matters.py`._", ""]
    return md + _tables(json.loads(path.read_text()), level="###")


def _tables(result: dict, level: str) -> list[str]:
    """The meta line and one table per data set of a prior_matters results file."""
    md: list[str] = []
    rows = result["rows"]
    md += [
        f"Held-out cells: {result['meta']['held_out']}; {result['meta']['n_importance_samples']} importance "
        "samples per cell"
        + (f"; {result['meta']['epochs']} epochs" if "epochs" in result["meta"] else "")
        + ". Mean ± sd over seeds (n in brackets). See the module docstring for each measurement."
        + (f" {result['meta']['note']}" if "note" in result["meta"] else ""),
        "",
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        sub = [r for r in rows if r["dataset"] == dataset]
        methods = [m for m in REPORT_METHODS if any(r["method"] == m for r in sub)]
        header = "| measurement | " + " | ".join(
            f"{REPORT_NAMES[m]} ({sum(r['method'] == m for r in sub)})" for m in methods
        )
        md += [f"{level} {dataset}", ""]
        if dataset in DATASET_NOTES:
            md += [DATASET_NOTES[dataset], ""]
        md += [header + " |", "|---" * (len(methods) + 1) + "|"]
        for key, label, _ in REPORT_METRICS:
            cells = [_cell([r.get(key) for r in sub if r["method"] == m]) for m in methods]
            if all(c == "—" for c in cells):
                continue
            if key == "epochs_run" and all(r.get(key) in (None, r.get("epochs")) for r in sub):
                continue  # every fit ran its full length: the meta line says it
            md.append(f"| {label} | " + " | ".join(cells) + " |")
            if key == "marginal_ll":  # the held-out cells differ by seed: compare on the same cells
                paired = [_cell(_paired(sub, m, _FIXED_OF.get(m, "bernoulli"), key)) for m in methods]
                md.append(
                    "| log p(x) minus the fixed prior's (binary-only models: the binary-only fixed "
                    "prior's), same cells (paired by seed) | " + " | ".join(paired) + " |"
                )
                twin = [_cell(_paired(sub, m, _TWIN_OF.get(m, "gaussian"), key)) for m in methods]
                if any(c != "—" for c in twin):
                    md.append(
                        "| log p(x) minus the Gaussian twin's (same objective), same cells (paired by "
                        "seed) | " + " | ".join(twin) + " |"
                    )
        weights = [_basin_weights([r for r in sub if r["method"] == m]) for m in methods]
        if any(w != "—" for w in weights):
            md.append("| largest prior basin weights, each seed | " + " | ".join(weights) + " |")
        md.append("")
    return md


def _basin_weights(rows: list[dict]) -> str:
    """The three largest basin weights of each seed's prior, ``a / b / c; ...``."""
    shown = [
        " / ".join(f"{w:.2f}" for w in r["basin_weights"][:3])
        for r in sorted(rows, key=lambda r: r["seed"])
        if "basin_weights" in r
    ]
    return "; ".join(shown) or "—"
