"""Getting started: fit a QBM-VAE on the bundled CellBench mixology data and look at the latent.

    python examples/getting_started.py [--quick] [--epochs 100] [--out umap.png]

Five batches of lung-adenocarcinoma cell-line mixtures (singlets: 1,021 cells x 2,000 genes,
raw counts). ``qbm_pyro.tl.qbm`` fits the model and writes ``obsm["X_qbm"]`` (posterior
Bernoulli means of the binary code, then the Gaussian means) and ``obs["qbm_energy"]``; scanpy
takes it from there (neighbours, UMAP, Leiden), and the cell lines should separate while the
batches mix.
"""

from __future__ import annotations

import argparse
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import scanpy as sc  # noqa: E402
import torch  # noqa: E402

import qbm_pyro  # noqa: E402
from qbm_pyro.metrics import active_units, batch_mixing_entropy, knn_accuracy  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny settings, no UMAP (seconds)")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--out", default=None, help="save the UMAP figure there")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=FutureWarning)

    adata = qbm_pyro.datasets.mixology_5batch()
    adata = adata[adata.obs["demuxlet_cls"] == "SNG"].copy()
    if args.quick:
        adata = adata[np.random.default_rng(0).choice(adata.n_obs, 300, replace=False)].copy()

    model = qbm_pyro.QBMVAE(
        adata,
        batch_key="batch",
        n_latent=8 if args.quick else 64,
        n_continuous=4 if args.quick else 16,
        seed=0,
    )
    print(model)
    model.train(max_epochs=2 if args.quick else args.epochs, progress_bar=not args.quick)
    qbm_pyro.tl.qbm(adata, model)  # writes obsm["X_qbm"], obs["qbm_energy"], uns["qbm"]

    latent = adata.obsm["X_qbm"]
    labels = adata.obs["cell_line"].astype(str).to_numpy()
    accuracy = knn_accuracy(latent, labels)["accuracy"]
    mixing = batch_mixing_entropy(latent, adata.obs["batch"].astype(str).to_numpy())
    print(f"X_qbm {latent.shape}: 15-NN cell-line accuracy {accuracy:.3f}, batch mixing {mixing:.2f}")
    used = {
        rep: int(active_units(model.get_latent_representation(representation=rep)).sum())
        for rep in ("probs", "continuous")
    }
    m = model.module
    print(
        f"active units: {used['probs']}/{m.n_binary} binary, {used['continuous']}/{m.n_continuous} Gaussian"
    )

    sc.pp.neighbors(adata, use_rep="X_qbm", random_state=0)
    sc.tl.leiden(adata, key_added="leiden_qbm", random_state=0, flavor="igraph", n_iterations=2)
    print(f"{adata.obs['leiden_qbm'].nunique()} Leiden clusters")
    if not args.quick:
        sc.tl.umap(adata, random_state=0)
        fig, axes = plt.subplots(1, 3, figsize=(15, 4))
        for ax, key in zip(axes, ["cell_line", "batch", "qbm_energy"]):
            sc.pl.umap(adata, color=key, ax=ax, show=False)
        if args.out:
            fig.savefig(args.out, dpi=120, bbox_inches="tight")
            print(f"wrote {args.out}")
        plt.close(fig)
    qbm_pyro.pl.training_curve(model.history_)
    plt.close("all")


if __name__ == "__main__":
    main()
