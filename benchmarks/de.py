"""Differential expression: QBM-VAE (and scVI) against scanpy's Wilcoxon test on paul15.

Usage: ``python benchmarks/de.py [--seeds 0 1 2] [--epochs 100] [--methods qbm scvi]
[--fits DIR] [--note TEXT] [--out benchmarks/results/de.json]``. ``--fits``: QBM-VAE fits of the
package defaults saved with :meth:`~qbm_pyro.QBMVAE.save` under ``DIR/paul15/seed<k>/`` are loaded
instead of fitted (a seed without one is fitted). Rows of methods not run are kept from ``--out``.

For every cell type of the bundled paul15 set (``obs["cell_type"]``, 7 types, 240 genes), each
method ranks the genes up in that type against the rest; the reference is scanpy's Wilcoxon
ranking (``rank_genes_groups``, ``method="wilcoxon"``, on ``normalize_total(1e4)`` + ``log1p``),
which needs no model. The model methods use scvi-tools' ``change`` mode
(``differential_expression(groupby="cell_type")``, delta 0.25) and rank the genes with a positive
``lfc_mean`` by ``proba_de``, then ``lfc_mean``. Scores per type and seed:

- ``overlap@k``: shared genes between a method's top ``k`` and Wilcoxon's top ``k`` (``k`` = 10,
  20), divided by ``k`` (chance: ``k / 240``);
- ``marker_recall@20``: the share of known markers of the type (:data:`MARKERS`, those present
  among the 240 genes) in the top 20, for the method and for Wilcoxon itself.

Results: ``results/de.json`` (per type, method and seed); :func:`report_section` writes the
BENCHMARKS.md section (mean ± sd over seeds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.tables import mean_sd  # noqa: E402

#: Known markers per paul15 type present among its 240 genes (erythroid: haemoglobin, carbonic
#: anhydrases, Klf1, Ermap, Rhd, Blvrb; GMP/neutrophil granule proteins; monocyte Irf8/Ly6c2).
MARKERS = {
    "Erythrocyte": ["Hba-a2", "Car2", "Klf1", "Car1", "Ermap", "Rhd", "Blvrb"],
    "GMP": ["Mpo", "Elane", "Prtn3", "Ctsg"],
    "Neutrophils": ["Elane", "Prtn3", "Mpo", "Ctsg", "Hp"],
    "Monocytes": ["Irf8", "Ly6c2"],
}
KS = (10, 20)


def wilcoxon_rankings(adata) -> dict[str, list[str]]:
    import scanpy as sc

    ref = adata.copy()
    sc.pp.normalize_total(ref, target_sum=1e4)
    sc.pp.log1p(ref)
    sc.tl.rank_genes_groups(ref, "cell_type", method="wilcoxon")
    names = ref.uns["rank_genes_groups"]["names"]
    return {g: [str(x) for x in names[g]] for g in names.dtype.names}


def up_ranking(de, group: str) -> list[str]:
    d = de[(de["group1"] == group) & (de["lfc_mean"] > 0)]
    return [str(x) for x in d.sort_values(["proba_de", "lfc_mean"], ascending=False, kind="stable").index]


def fit_qbm(adata, seed: int, epochs: int, fits: Path | None = None):
    import qbm_pyro

    saved = None if fits is None else fits / "paul15" / f"seed{seed}"
    if saved is not None and (saved / "DONE").exists():
        model = qbm_pyro.QBMVAE.load(saved, adata)
    else:
        model = qbm_pyro.QBMVAE(adata, seed=seed)
        model.train(max_epochs=epochs, progress_bar=False)
    return model.differential_expression(groupby="cell_type", seed=seed)


def fit_scvi(adata, seed: int, epochs: int, fits: Path | None = None):
    import scvi

    scvi.settings.seed = seed
    data = adata.copy()
    scvi.model.SCVI.setup_anndata(data)
    model = scvi.model.SCVI(data)
    model.train(max_epochs=epochs, accelerator="cpu", enable_progress_bar=False, early_stopping=True)
    return model.differential_expression(groupby="cell_type", mode="change", silent=True)


def scores(ranking: list[str], reference: list[str], group: str, genes: set[str]) -> dict:
    out = {f"overlap@{k}": len(set(ranking[:k]) & set(reference[:k])) / k for k in KS}
    markers = [m for m in MARKERS.get(group, []) if m in genes]
    if markers:
        out["marker_recall@20"] = len(set(ranking[:20]) & set(markers)) / len(markers)
    return out


def run(seeds, epochs, methods, log=print, fits: Path | None = None) -> dict:
    import torch

    import qbm_pyro

    torch.set_num_threads(1)
    adata = qbm_pyro.datasets.paul15_myeloid()
    genes = set(map(str, adata.var_names))
    reference = wilcoxon_rankings(adata)
    rows = []
    for group, ranking in reference.items():
        rows.append(
            {"method": "wilcoxon", "seed": None, "group": group, **scores(ranking, ranking, group, genes)}
        )
    fitters = {"qbm": fit_qbm, "scvi": fit_scvi}
    for method in methods:
        for seed in seeds:
            start = time.perf_counter()
            de = fitters[method](adata, seed, epochs, fits)
            seconds = time.perf_counter() - start
            for group, ranking in reference.items():
                row = {"method": method, "seed": seed, "group": group, "seconds": seconds}
                rows.append(row | scores(up_ranking(de, group), ranking, group, genes))
            mean = np.mean([r["overlap@20"] for r in rows if r["method"] == method and r["seed"] == seed])
            log(f"de: {method} seed {seed}: mean overlap@20 {mean:.2f} ({seconds:.0f}s)")
    versions = {"qbm_pyro": qbm_pyro.__version__, "torch": torch.__version__}
    try:
        import scvi

        versions["scvi-tools"] = scvi.__version__
    except ImportError:
        pass
    meta = {
        "dataset": "paul15",
        "epochs": epochs,
        "seeds": list(seeds),
        "markers": MARKERS,
        "versions": versions,
    }
    return {"meta": meta, "rows": rows}


def _mean_sd(values) -> str:
    return mean_sd(values, digits=2, missing="–", drop_nan=False)


def report_section(result: dict | None) -> list[str]:
    """Markdown lines of the BENCHMARKS.md section (empty without results)."""
    if not result or not result.get("rows"):
        return []
    rows, meta = result["rows"], result.get("meta", {})
    methods = [m for m in ("qbm", "scvi", "wilcoxon") if any(r["method"] == m for r in rows)]
    names = {"qbm": "QBM-VAE", "scvi": "scVI", "wilcoxon": "Wilcoxon (reference)"}
    groups = sorted({r["group"] for r in rows})
    out = [
        "## Differential expression (benchmarks/de.py)",
        "",
        f"paul15 (2,660 cells, 240 genes, 7 types), {meta.get('epochs')} epochs, seeds "
        f"{meta.get('seeds')}. Each type against the rest; the model methods rank the genes with "
        "`lfc_mean > 0` by `proba_de`, then `lfc_mean` (scvi-tools' change mode, delta 0.25). "
        "overlap@k: share of the top k shared with scanpy's Wilcoxon top k (chance k/240); "
        "marker recall@20: share of the known markers in the top 20 (markers in `benchmarks/de.py`). "
        "Mean ± sd over seeds of the per-type values.",
        "",
        *([f"_{meta['note']}_", ""] if meta.get("note") else []),
        "| type | metric | " + " | ".join(names[m] for m in methods) + " |",
        "|---|---|" + "---|" * len(methods),
    ]
    for group in groups + ["mean over types"]:
        for metric in ("overlap@10", "overlap@20", "marker_recall@20"):
            cells = []
            for m in methods:
                mine = [
                    r
                    for r in rows
                    if r["method"] == m and (group == "mean over types" or r["group"] == group)
                ]
                if group == "mean over types":  # macro mean per seed, then over seeds
                    by_seed: dict = {}
                    for r in mine:
                        if metric in r:
                            by_seed.setdefault(r["seed"], []).append(r[metric])
                    values = [float(np.mean(v)) for v in by_seed.values()]
                else:
                    values = [r[metric] for r in mine if metric in r]
                cells.append(_mean_sd(values))
            if any(c != "–" for c in cells):
                out.append(f"| {group} | {metric} | " + " | ".join(cells) + " |")
    out.append("")
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--methods", nargs="+", choices=("qbm", "scvi"), default=["qbm", "scvi"])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "de.json")
    parser.add_argument("--fits", type=Path, default=None, help="saved QBM-VAE fits: DIR/paul15/seed<k>/")
    parser.add_argument("--note", default=None, help="provenance note in meta (shown in BENCHMARKS.md)")
    args = parser.parse_args(argv)
    methods = list(args.methods)
    if "scvi" in methods:
        try:
            import scvi  # noqa: F401
        except ImportError:
            print("scvi-tools is not installed: scVI left out of the DE benchmark")
            methods.remove("scvi")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run(
            args.seeds, args.epochs, methods, log=lambda line: print(line, flush=True), fits=args.fits
        )
    if args.out.exists():  # rows of the methods not run here stay
        kept = [
            r for r in json.loads(args.out.read_text())["rows"] if r["method"] not in methods + ["wilcoxon"]
        ]
        result["rows"] = kept + result["rows"]
    if args.note:
        result["meta"]["note"] = args.note
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(report_section(result)))


if __name__ == "__main__":
    main()
