"""The prior's states against Leiden at the same number of clusters (issue 21's comparison, fairly).

The landscape table compares the attractors' ARI with Leiden's at the resolution NMI picks, which
is usually another number of clusters, and ARI moves with that number. Here, for each saved fit,
``tl.attractors`` (``method="graph"``: basins of the cells' smoothed energy on their kNN graph; and
the mean-field states, the default) gives k states; Leiden on the protocol's 15-NN graph of
QBM-VAE's latent and of scVI's latent (``cluster_splits.scvi_latent``; each graph built once) is
then run at the resolution whose cluster count is nearest k (``cluster_splits.leiden_at``), and
all three are scored against the labels (CITE-seq: its coarse protein-gated types). A fit whose
method finds one state has no row for it.

Usage: ``python benchmarks/states_vs_leiden.py --fits DIR [--datasets paul15 mixology cite]
[--seeds 0 1 2] [--latents DIR] [--note TEXT]``; ``DIR/<set>/seed<k>`` as ``quality.py --reuse``
reads (saved default fits).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` importable as a script

from sklearn.metrics import adjusted_rand_score  # noqa: E402

import qbm_pyro  # noqa: E402
from benchmarks.cluster_splits import leiden_at, scvi_latent, study_main  # noqa: E402
from benchmarks.landscape import _types  # noqa: E402
from benchmarks.quality import load  # noqa: E402
from benchmarks.tables import mean_sd, note_lines, read_results  # noqa: E402
from qbm_pyro.metrics import neighbour_graph  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "states_vs_leiden.json"
METHODS = ("graph", "meanfield")


def run(fits: Path, dataset: str, seed: int, latents: Path) -> list[dict]:
    data, label_key, _, _ = load(dataset)
    model = qbm_pyro.QBMVAE.load(fits / dataset / f"seed{seed}", data)
    truth = _types(data, dataset, label_key)
    ours = neighbour_graph(model.get_latent_representation(), seed=seed)
    theirs = neighbour_graph(scvi_latent(dataset, seed, latents), seed=seed)
    qbm_pyro.tl.qbm(data, model)
    rows = []
    for method in METHODS:
        states = qbm_pyro.tl.attractors(
            data, model, method=method, seed=seed, n_markers=0, n_prior_samples=0, key_added=method, copy=True
        ).obs[method]
        k = int(states.nunique())
        if k < 2:
            continue
        leiden_ours, _ = leiden_at(ours, seed, n_clusters=k)
        leiden_scvi, _ = leiden_at(theirs, seed, n_clusters=k)
        rows.append(
            {
                "dataset": dataset,
                "seed": seed,
                "method": method,
                "n_states": k,
                "states_ari": float(adjusted_rand_score(truth, states.astype(str))),
                "leiden_ari": float(adjusted_rand_score(truth, leiden_ours)),
                "leiden_n": int(len(set(leiden_ours))),
                "scvi_leiden_ari": float(adjusted_rand_score(truth, leiden_scvi)),
                "scvi_leiden_n": int(len(set(leiden_scvi))),
            }
        )
    return rows


def report_section(results: Path) -> list[str]:
    """Markdown lines of the section (nothing if the results file is missing)."""
    result = read_results(results, OUT.name)
    if result is None:
        return []
    rows = result["rows"]
    md = [
        "## The prior's states against Leiden at the same count (benchmarks/states_vs_leiden.py)",
        "",
        "`tl.attractors` finds k states (`graph`: basins of the smoothed energy on the cells' kNN "
        "graph; `meanfield`: the default); Leiden on the protocol's 15-NN graph of our latent and of "
        "scVI's is run at the resolution whose cluster count is nearest k (bisection); ARI of each "
        "against the labels (CITE-seq: the coarse protein-gated types). Where no resolution gives k "
        "clusters the nearest count is used (`leiden_n` in the results). Fits with one state have "
        "no row (n counts the fits with a row). Mean ± sd over seeds.",
        "",
        *note_lines(result),
        "| data set | states from | n | states (k) | states ARI | Leiden ARI, our latent, k clusters "
        "| Leiden ARI, scVI's latent, k clusters |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset in sorted({r["dataset"] for r in rows}):
        for method in METHODS:
            sub = [r for r in rows if r["dataset"] == dataset and r["method"] == method]
            if sub:
                cells = [mean_sd([r[c] for r in sub]) for c in ("n_states", "states_ari", "leiden_ari")]
                md.append(
                    f"| {dataset} | {method} | {len(sub)} | " + " | ".join(cells) + " | "
                    f"{mean_sd([r['scvi_leiden_ari'] for r in sub])} |"
                )
    return md + [""]


def main(argv=None) -> None:
    study_main(argv, __doc__, run, OUT)


if __name__ == "__main__":
    main()
