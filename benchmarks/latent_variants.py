"""Why Leiden ARI and batch mixing lag: the same fitted QBM-VAEs scored on variants of their latent.

Usage: ``python benchmarks/latent_variants.py [--fits /work/fits] [--datasets paul15 mixology a549
cite] [--seeds 0 1 2] [--out benchmarks/results/latent_variants.json]``.

Reads the posterior parameters (``logits``, ``loc``, ``scale``) that the fits of the default
QBM-VAE (benchmarks/quality.py's ``qbm`` method, 100 epochs) saved under ``<fits>/<set>/seed<k>/
latent.npz`` and scores every representation variant with benchmarks/quality.py's ``score``
(15-NN accuracy, Leiden ARI/NMI with the NMI-chosen resolution on the 15-NN graph, batch mixing),
so that the variants differ only in the representation: no refitting. Every variant is a fixed
rule that reads no labels.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` importable as a script

import numpy as np  # noqa: E402

from benchmarks.quality import load, pca_latent, score  # noqa: E402
from qbm_pyro.metrics import leiden_clusters, neighbour_graph  # noqa: E402

warnings.filterwarnings("ignore")

#: The Leiden resolutions of :func:`qbm_pyro.metrics.clustering_scores`.
RESOLUTIONS = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0)


def _binary_entropy_bits(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1.0 - 1e-12)
    return -(p * np.log2(p) + (1.0 - p) * np.log2(1.0 - p))


def binary_information(probs: np.ndarray) -> np.ndarray:
    """Mutual information (bits) between each binary unit and the cell, ``H(E[q]) - E[H(q)]``.

    Parameters
    ----------
    probs
        Posterior Bernoulli probabilities ``q``, ``(n_cells, n_binary)``.

    Returns
    -------
    ``(n_binary,)``, each in ``[0, 1]``: 0 for a unit whose posterior is the same in every cell
    (inactive, whether fuzzy at 1/2 or stuck at 0 or 1), 1 for a crisp unit on in half the cells.
    """
    probs = np.asarray(probs, dtype=np.float64)
    return np.maximum(_binary_entropy_bits(probs.mean(0)) - _binary_entropy_bits(probs).mean(0), 0.0)


def continuous_information(loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Information (bits) of each Gaussian unit, ``½ log2(1 + Var[μ] / E[σ²])``.

    The capacity of a Gaussian channel whose signal is the posterior mean ``μ`` across cells and
    whose noise is the posterior variance ``σ²``.

    Parameters
    ----------
    loc, scale
        Posterior means and standard deviations, ``(n_cells, n_continuous)``.

    Returns
    -------
    ``(n_continuous,)``, non-negative: 0 for a unit whose posterior mean does not vary.
    """
    loc = np.asarray(loc, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    return 0.5 * np.log2(1.0 + loc.var(0) / np.maximum((scale**2).mean(0), 1e-12))


def _unit_total(x: np.ndarray) -> np.ndarray:
    """``x`` scaled so that its columns' variances sum to 1."""
    total = x.var(0).sum()
    return x / np.sqrt(total) if total > 0 else x


def variants(logits: np.ndarray, loc: np.ndarray, scale: np.ndarray) -> dict[str, np.ndarray]:
    """Every representation compared, from the posterior parameters of one fit."""
    q = 1.0 / (1.0 + np.exp(-logits))
    joint = np.hstack([q, loc])
    info_b = binary_information(q)
    info_c = continuous_information(loc, scale)
    out = {
        "joint (today)": joint,
        "probs only": q,
        "gaussian only": loc,
        "logits + gaussian": np.hstack([logits, loc]),
        "hard code + gaussian": np.hstack([(q > 0.5).astype(float), loc]),
        "hellinger + gaussian": np.hstack([np.sqrt(q), np.sqrt(1 - q), loc]),
        "z-scored columns": (joint - joint.mean(0)) / np.maximum(joint.std(0), 1e-12),
        "parts at unit total variance": np.hstack([_unit_total(q), _unit_total(loc)]),
        "pca(joint) 16": _pca(joint, 16),
        "cosine (joint, centred)": _rownorm(joint - joint.mean(0)),
        "cosine (joint, raw)": _rownorm(joint),
        "gaussian / posterior sd": loc / scale.mean(0),
        "spins (2q - 1) + gaussian": np.hstack([2 * q - 1, loc]),
        "fisher: 2 arcsin(sqrt q) + gaussian": np.hstack([2 * np.arcsin(np.sqrt(q)), loc]),
    }
    for threshold in (0.05, 0.1, 0.2):
        keep = info_b >= threshold
        out[f"active probs (>= {threshold} bit) + gaussian"] = np.hstack([q[:, keep], loc])
    keep = info_b >= 0.1
    out["active probs (>= 0.1 bit), parts at unit total variance"] = np.hstack(
        [_unit_total(q[:, keep]), _unit_total(loc)]
    )
    # each part's total variance proportional to the information it carries (bits)
    w_b, w_c = info_b.sum(), info_c.sum()
    out["parts weighted by their bits"] = np.hstack(
        [_unit_total(q) * np.sqrt(w_b / (w_b + w_c)), _unit_total(loc) * np.sqrt(w_c / (w_b + w_c))]
    )
    # each unit's variance equal to its information (bits)
    per_unit = np.hstack([q, loc])
    per_unit = (per_unit - per_unit.mean(0)) / np.maximum(per_unit.std(0), 1e-12)
    out["each unit variance = its bits"] = per_unit * np.sqrt(np.r_[info_b, info_c])
    return out


def _pca(x: np.ndarray, n: int) -> np.ndarray:
    x = x - x.mean(0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    return u[:, :n] * s[:n]


def _rownorm(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def resolution_profile(latent: np.ndarray, labels, seed: int, leiden_seeds: int = 3) -> list[dict]:
    """Leiden at every resolution of the benchmark's grid on one 15-NN graph of ``latent`` (the
    protocol's graph: scanpy, ``random_state=seed``), ``leiden_seeds`` Leiden runs each.

    Returns
    -------
    One dict per resolution: ``resolution``, ``ari`` and ``nmi`` (means over the Leiden seeds),
    ``n_clusters`` (mean), ``n_clusters_first`` (the first Leiden seed's: the protocol's run).
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    graph = neighbour_graph(latent, seed=seed)
    out = []
    for resolution in RESOLUTIONS:
        ari, nmi, counts = [], [], []
        for k in range(leiden_seeds):
            clusters = leiden_clusters(graph, resolution, seed=seed + 1000 * k)
            ari.append(adjusted_rand_score(labels, clusters))
            nmi.append(normalized_mutual_info_score(labels, clusters))
            counts.append(int(len(set(clusters))))
        out.append(
            {
                "resolution": float(resolution),
                "ari": float(np.mean(ari)),
                "nmi": float(np.mean(nmi)),
                "n_clusters": float(np.mean(counts)),
                "n_clusters_first": counts[0],
                "ari_max": float(np.max(ari)),
            }
        )
    return out


def clustering_profile(latent: np.ndarray, labels, seed: int, leiden_seeds: int = 3) -> dict[str, float]:
    """Leiden ARI/NMI averaged over the benchmark's resolution grid and ``leiden_seeds`` Leiden
    seeds on the same 15-NN graph: less noisy than the one NMI-chosen resolution of the protocol
    (used to compare variants, never in place of the protocol's numbers); ``clusters_grid``: the
    cluster count at each resolution with the first Leiden seed (the protocol's)."""
    profile = resolution_profile(latent, labels, seed, leiden_seeds)
    return {
        "ari_grid": float(np.mean([p["ari"] for p in profile])),
        "nmi_grid": float(np.mean([p["nmi"] for p in profile])),
        "ari_grid_max": float(np.max([p["ari_max"] for p in profile])),
        "clusters_grid": [p["n_clusters_first"] for p in profile],
    }


def diagnostics(logits: np.ndarray, loc: np.ndarray, scale: np.ndarray) -> dict[str, float]:
    """Fuzziness and scale of the two parts."""
    q = 1.0 / (1.0 + np.exp(-logits))
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.nan_to_num(q * np.log2(q)) - np.nan_to_num((1 - q) * np.log2(1 - q))
    info_b = binary_information(q)
    info_c = continuous_information(loc, scale)
    return {
        "mean_entropy_bits": float(h.mean()),
        "binary_total_variance": float(q.var(0).sum()),
        "gaussian_total_variance": float(loc.var(0).sum()),
        "binary_bits": float(info_b.sum()),
        "gaussian_bits": float(info_c.sum()),
        "n_binary_active_0.1": int((info_b >= 0.1).sum()),
        "n_gaussian_active_0.1": int((info_c >= 0.1).sum()),
        "binary_info_per_unit": info_b.round(3).tolist(),
        "gaussian_info_per_unit": info_c.round(3).tolist(),
        "binary_var_per_unit": q.var(0).round(4).tolist(),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fits", type=Path, default=Path("/work/fits"))
    parser.add_argument("--datasets", nargs="+", default=["paul15", "mixology", "a549", "cite"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/latent_variants.json"))
    parser.add_argument("--variants", nargs="+", default=None, help="only these variants (default: all)")
    args = parser.parse_args(argv)
    rows = json.loads(args.out.read_text())["rows"] if args.out.exists() else []
    done = {(r["dataset"], r["seed"], r["variant"]) for r in rows}
    for dataset in args.datasets:
        data, label_key, batch_key, _ = load(dataset)
        if (dataset, 0, "reference: PCA (30) of log counts") not in done:  # the same scores, for scale
            latent = pca_latent(data)
            row = {"dataset": dataset, "seed": 0, "variant": "reference: PCA (30) of log counts"}
            row |= score(latent, data, label_key, batch_key, 0)
            if label_key:
                row |= clustering_profile(latent, data.obs[label_key].astype(str).to_numpy(), 0)
            rows.append(row)
            print(json.dumps(row), flush=True)
        for seed in args.seeds:
            saved = np.load(args.fits / dataset / f"seed{seed}" / "latent.npz")
            logits, loc, scale = (saved[k].astype(np.float64) for k in ("logits", "loc", "scale"))
            diag = diagnostics(logits, loc, scale)
            for name, latent in variants(logits, loc, scale).items():
                if (dataset, seed, name) in done or (args.variants and name not in args.variants):
                    continue
                start = time.perf_counter()
                row = {"dataset": dataset, "seed": seed, "variant": name, "dim": int(latent.shape[1])}
                row |= score(latent.astype(np.float32), data, label_key, batch_key, seed)
                if label_key:
                    labels = data.obs[label_key].astype(str).to_numpy()
                    row |= clustering_profile(latent, labels, seed)
                row["seconds"] = time.perf_counter() - start
                if name == "joint (today)":
                    row["diagnostics"] = diag
                rows.append(row)
                print(
                    json.dumps(
                        {
                            k: round(v, 3) if isinstance(v, float) else v
                            for k, v in row.items()
                            if k != "diagnostics"
                        }
                    ),
                    flush=True,
                )
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps({"rows": rows}, indent=1))


if __name__ == "__main__":
    main()


#: Variants shown in BENCHMARKS.md (the others stay in the JSON).
SHOWN = [
    "joint (today)",
    "probs only",
    "gaussian only",
    "logits + gaussian",
    "hellinger + gaussian",
    "z-scored columns",
    "parts at unit total variance",
    "parts weighted by their bits",
    "active probs (>= 0.1 bit) + gaussian",
    "pca(joint) 16",
    "cosine (joint, centred)",
    "reference: PCA (30) of log counts",
]


def report_section(results: Path) -> list[str]:
    """Markdown lines of the latent-variant section of ``BENCHMARKS.md`` (empty without results)."""
    from benchmarks.tables import mean_sd

    path = Path(results) / "latent_variants.json"
    if not path.exists():
        return []
    study = json.loads(path.read_text())
    rows, meta = study["rows"], study.get("meta", {})
    metrics = ["knn_accuracy", "ari", "nmi", "ari_grid", "nmi_grid", "batch_mixing"]
    out = [
        "## Latent representations of the same fits (benchmarks/latent_variants.py)",
        "",
        f"The default QBM-VAE ({meta.get('epochs', 100)} epochs) fitted once per seed; each variant "
        "re-scores the same "
        "posterior parameters with the protocol of the main table (15-NN accuracy, Leiden ARI/NMI at "
        "the NMI-chosen resolution, batch mixing). `ari_grid`/`nmi_grid`: the mean over the six "
        "resolutions × three Leiden seeds on the same graph (less noisy than the one chosen "
        "resolution). Mean ± sd over seeds." + (f" {meta['note']}" if meta.get("note") else ""),
        "",
        "The two parts of today's latent (`diagnostics` of the `joint (today)` rows): total variance "
        "across cells, information in bits (binary unit: H(E[q]) − E[H(q)]; Gaussian unit: "
        "½ log2(1 + Var[μ]/E[σ²])), units carrying ≥ 0.1 bit, mean posterior entropy of a binary unit.",
        "",
        "| data set | binary variance | Gaussian variance | binary bits | Gaussian bits "
        "| binary units ≥ 0.1 bit | Gaussian units ≥ 0.1 bit | binary entropy (bits/unit) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    keys = [
        "binary_total_variance",
        "gaussian_total_variance",
        "binary_bits",
        "gaussian_bits",
        "n_binary_active_0.1",
        "n_gaussian_active_0.1",
        "mean_entropy_bits",
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        diag = [r["diagnostics"] for r in rows if r["dataset"] == dataset and "diagnostics" in r]
        if diag:
            cells = [mean_sd([d[k] for d in diag], digits=1 if k.startswith("n_") else 2) for k in keys]
            out.append(f"| {dataset} | " + " | ".join(cells) + " |")
    out.append("")
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        sel = [r for r in rows if r["dataset"] == dataset]
        shown = [m for m in metrics if any(m in r for r in sel)]
        out += [f"**{dataset}**", "", "| representation | " + " | ".join(shown) + " |"]
        out.append("|---|" + "---|" * len(shown))
        for variant in SHOWN:
            vr = [r for r in sel if r["variant"] == variant]
            if vr:
                cells = [mean_sd([r.get(m) for r in vr]) for m in shown]
                out.append(f"| {variant} | " + " | ".join(cells) + " |")
        out.append("")
    return out
