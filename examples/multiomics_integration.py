"""Integrate multi-omics MuData with a QBM-VAE: CITE-seq, RNA+ATAC, and missing modalities.

    python examples/multiomics_integration.py [--quick] [--epochs 100]

1. CITE-seq (RNA + surface protein, 2 batches): ``qbm_pyro.tl.qbm`` with ``batch_key``, then
   scanpy neighbours and Leiden on ``obsm["X_qbm"]``, and batch mixing of the latent.
2. RNA + ATAC (10x Multiome, 100 cells): the modality kinds are inferred from the names.
3. Missing modalities: drop the protein panel of half the cells; the encoders' posteriors are
   combined over the modalities each cell has (product of experts), so every cell still gets a
   latent.
"""

from __future__ import annotations

import argparse
import warnings

import mudata as md
import numpy as np
import scanpy as sc
import torch

import qbm_pyro
from qbm_pyro.metrics import batch_mixing_entropy


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny settings (seconds)")
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=FutureWarning)
    epochs = 1 if args.quick else args.epochs
    size = dict(n_latent=8, n_continuous=4) if args.quick else dict(n_latent=32, n_continuous=8)

    print("1. CITE-seq, 2 batches")
    cite = qbm_pyro.datasets.pbmc_cite_2batch()
    qbm_pyro.tl.qbm(cite, batch_key="batch", max_epochs=epochs, progress_bar=False, **size)
    mixing = batch_mixing_entropy(cite.obsm["X_qbm"], cite.obs["batch"].astype(str).to_numpy())
    print(f"   X_qbm {cite.obsm['X_qbm'].shape}, batch mixing {mixing:.2f}")
    if not args.quick:  # clusters of the joint latent
        sc.pp.neighbors(cite, use_rep="X_qbm", random_state=0)
        sc.tl.leiden(cite, key_added="leiden_qbm", random_state=0, flavor="igraph", n_iterations=2)
        print(f"   {cite.obs['leiden_qbm'].nunique()} Leiden clusters")
    print(f"   modalities used: {cite.uns['qbm']['params']['modalities']}")

    print("2. RNA + ATAC")
    multiome = qbm_pyro.datasets.pbmc_rna_atac_100()
    qbm_pyro.tl.qbm(multiome, max_epochs=epochs, progress_bar=False, **size)
    print(
        f"   X_qbm {multiome.obsm['X_qbm'].shape}, modalities {multiome.uns['qbm']['params']['modalities']}"
    )

    print("3. missing modalities: protein measured in half of the cells")
    cite = qbm_pyro.datasets.pbmc_cite_2batch()
    keep = cite.obs_names[::2]
    partial = md.MuData({"rna": cite["rna"].copy(), "prot": cite["prot"][keep].copy()})
    partial.obs["batch"] = cite.obs["batch"].reindex(partial.obs_names)
    print(f"   {partial.n_obs} cells; prot in {partial['prot'].n_obs}")
    qbm_pyro.tl.qbm(partial, batch_key="batch", max_epochs=epochs, progress_bar=False, **size)
    has_prot = np.isin(partial.obs_names, keep)
    energy = partial.obs["qbm_energy"].to_numpy()
    print(
        f"   every cell has a latent: {np.isfinite(partial.obsm['X_qbm']).all()}; mean prior energy "
        f"with protein {energy[has_prot].mean():.2f}, without {energy[~has_prot].mean():.2f}"
    )


if __name__ == "__main__":
    main()
