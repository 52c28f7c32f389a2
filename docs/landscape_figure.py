"""Draw the figure of ``docs/landscape.rst``: the cells on UMAP with basins and barriers, and the
attractor × marker heat map.

    python docs/landscape_figure.py [--dataset mixology|paul15] [--epochs N] [--seed 0]
        [--out docs/landscape.png]

(``--dataset``: mixology's 5 cell lines, batches in the decoder (the default), or paul15's myeloid
differentiation; ``--epochs``: at most this many; default the package's training defaults.)
"""

from __future__ import annotations

import argparse
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import scanpy as sc  # noqa: E402

import qbm_pyro  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["mixology", "paul15"], default="mixology")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/landscape.png")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.dataset == "mixology":
        adata = qbm_pyro.datasets.mixology_5batch()
        adata = adata[adata.obs["demuxlet_cls"] == "SNG"].copy()
        label, batch_key = "cell_line", "batch"
    else:
        adata, label, batch_key = qbm_pyro.datasets.paul15_myeloid(), "cell_type", None
    model = qbm_pyro.QBMVAE(adata, batch_key=batch_key, seed=args.seed)
    model.train(max_epochs=args.epochs, progress_bar=False)
    qbm_pyro.tl.qbm(adata, model)
    qbm_pyro.tl.attractors(adata, model, seed=args.seed)
    sc.pp.neighbors(adata, use_rep="X_qbm", random_state=args.seed)
    sc.tl.umap(adata, random_state=args.seed)
    fig, (left, mid, right) = plt.subplots(
        1, 3, figsize=(17, 4.6), gridspec_kw={"width_ratios": [1, 1.1, 1.3]}
    )
    sc.pl.umap(adata, color=label, ax=left, show=False, title=f"{args.dataset}: {label}", legend_fontsize=7)
    qbm_pyro.pl.landscape(adata, ax=mid)
    qbm_pyro.pl.attractors(adata, ax=right)
    fig.tight_layout()
    fig.savefig(args.out, dpi=72)
    print(adata.uns["qbm_attractor"]["table"])


if __name__ == "__main__":
    main()
