"""A simulated trimodal (RNA + protein + ATAC) data set.

No real trimodal (TEA-seq-like) set is bundled, so this one is **synthetic**: cells of a few
types, each type with its own gene, protein and peak profile, drawn from the likelihoods the model
uses (negative binomial counts for RNA and protein, Bernoulli peaks for ATAC) plus a batch shift.
It tests the machinery on three modalities; it says nothing about biology.
"""

from __future__ import annotations

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["simulated_trimodal"]


def simulated_trimodal(
    n_cells: int = 600,
    *,
    n_types: int = 4,
    n_genes: int = 300,
    n_proteins: int = 12,
    n_peaks: int = 500,
    n_batches: int = 2,
    missing_fraction: float = 0.0,
    seed: int = 0,
) -> md.MuData:
    """Simulate a MuData with ``rna``, ``prot`` and ``atac`` modalities (synthetic).

    Parameters
    ----------
    n_cells, n_types, n_genes, n_proteins, n_peaks, n_batches
        Sizes.
    missing_fraction
        Fraction of cells that lack the protein modality and (another) fraction that lack ATAC;
        they are absent from those modalities' AnnData (the MuData's ``obsmap`` marks them).
    seed
        Random seed.

    Returns
    -------
    MuData with ``obs["cell_type"]`` and ``obs["batch"]``; counts in ``X`` (CSR).
    """
    rng = np.random.default_rng(seed)
    types = rng.integers(n_types, size=n_cells)
    batches = rng.integers(n_batches, size=n_cells)
    names = pd.Index([f"cell{i}" for i in range(n_cells)])
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical([f"type{t}" for t in types]),
            "batch": pd.Categorical([f"batch{b}" for b in batches]),
        },
        index=names,
    )

    def nb(mean, theta=5.0):
        return rng.poisson(rng.gamma(theta, mean / theta)).astype(np.float32)

    gene_profile = rng.lognormal(0.0, 1.0, size=(n_types, n_genes))
    gene_profile /= gene_profile.sum(1, keepdims=True)
    batch_shift = rng.lognormal(0.0, 0.3, size=(n_batches, n_genes))
    library = rng.lognormal(np.log(1500), 0.3, size=(n_cells, 1))
    rna = nb(library * gene_profile[types] * batch_shift[batches])
    protein_profile = rng.lognormal(3.0, 1.0, size=(n_types, n_proteins))
    prot = nb(protein_profile[types] + rng.lognormal(2.0, 0.3, size=(1, n_proteins)))
    peak_profile = rng.beta(0.3, 2.0, size=(n_types, n_peaks))
    atac = (rng.random((n_cells, n_peaks)) < peak_profile[types]).astype(np.float32)

    def modality(x, prefix, keep):
        a = ad.AnnData(sp.csr_matrix(x[keep]), obs=obs[keep].copy())
        a.var_names = [f"{prefix}{j}" for j in range(x.shape[1])]
        return a

    all_cells = np.ones(n_cells, dtype=bool)
    has_prot = rng.random(n_cells) >= missing_fraction
    has_atac = rng.random(n_cells) >= missing_fraction
    has_atac[~has_prot] = True  # every cell keeps at least two modalities
    mdata = md.MuData(
        {
            "rna": modality(rna, "gene", all_cells),
            "prot": modality(prot, "protein", has_prot),
            "atac": modality(atac, "peak", has_atac),
        }
    )
    mdata.obs["cell_type"] = obs["cell_type"]
    mdata.obs["batch"] = obs["batch"]
    mdata.uns["provenance"] = "simulated by qbm_pyro.datasets.simulated_trimodal (synthetic, not real data)"
    return mdata
