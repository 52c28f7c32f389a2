"""The README's quick start, end to end, on more cells than scanpy's small-data shortcuts cover.

``sc.pp.neighbors`` computes exact distances below 8,192 cells (Euclidean) and switches to
pynndescent above; ``sc.tl.umap`` also changes its defaults at 10,000 cells. The bundled sets are
all smaller, so without this test a dependency release that breaks the large-data path (issue 25:
pynndescent 0.7 returns a ``csr_array`` that scanpy 1.11 calls ``getnnz`` on, removed from sparse
arrays in scipy) reaches users one step after the fit while every other test passes.
"""

from __future__ import annotations

import anndata as ad
import matplotlib.pyplot as plt
import mudata as md
import numpy as np
import pytest
import scanpy as sc
import scipy.sparse as sp
import torch
from matplotlib.axes import Axes

import qbm_pyro
from qbm_pyro import datasets

#: Above scanpy's exact-distance limit for Euclidean neighbours (8,192 cells).
N_CELLS = 9 * 1024


def _thinned_copies(adata: ad.AnnData, n_copies: int, rng: np.random.Generator) -> ad.AnnData:
    """``n_copies`` of ``adata``'s cells, each count binomially thinned with a per-cell keep rate.

    Thinning keeps the counts integer and the cells distinct (a copy is a shallower read of the
    same cell), so that the neighbour graph is not made of exact duplicates.
    """
    counts = sp.csr_matrix(adata.X, dtype=np.float64)
    copies = []
    for c in range(n_copies):
        keep = rng.uniform(0.5, 1.0, size=counts.shape[0])
        thinned = counts.copy()
        rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
        thinned.data = rng.binomial(counts.data.astype(np.int64), keep[rows]).astype(np.float32)
        thinned.eliminate_zeros()
        copy = ad.AnnData(thinned.astype(np.float32), var=adata.var.copy())
        copy.obs_names = [f"{name}-c{c}" for name in adata.obs_names]
        copies.append(copy)
    return ad.concat(copies, merge="first")


def resampled_cite(seed: int = 0) -> md.MuData:
    """9,216 CITE-seq cells (RNA + protein) resampled from the bundled 1,024 (seeded)."""
    mdata = datasets.pbmc_cite_1k()
    rng = np.random.default_rng(seed)
    modalities = {}
    for name in ("rna", "prot"):
        # Same seed per modality: copy c of a cell is thinned in RNA and protein independently,
        # but the cell order (and names) match across modalities.
        modalities[name] = _thinned_copies(mdata[name], 9, rng)
    out = md.MuData(modalities)
    assert out.n_obs == N_CELLS
    return out


@pytest.fixture(scope="module")
def large_cite() -> md.MuData:
    return resampled_cite(seed=0)


@pytest.mark.slow  # trains on 9,216 cells, then neighbours and UMAP above scanpy's small-data paths
def test_readme_workflow_on_9k_cells(large_cite, tmp_path):
    torch.set_num_threads(1)
    plt.switch_backend("Agg")
    mdata = large_cite
    rna_before = mdata["rna"].X.copy()

    qbm_pyro.tl.qbm(mdata, max_epochs=3, n_latent=16, n_continuous=4, seed=0, progress_bar=False)
    assert mdata.obsm["X_qbm"].shape == (N_CELLS, 20)
    assert np.isfinite(mdata.obs["qbm_energy"]).all()
    assert (mdata["rna"].X != rna_before).nnz == 0  # the user's counts are untouched

    # The scanpy steps as the README writes them (UMAP with fewer epochs to stay fast).
    sc.pp.neighbors(mdata, use_rep="X_qbm")
    distances = mdata.obsp["distances"]
    assert distances.shape == (N_CELLS, N_CELLS)
    assert (np.diff(mdata.obsp["connectivities"].indptr) > 0).all()
    sc.tl.umap(mdata, maxiter=20, random_state=0)
    assert np.isfinite(mdata.obsm["X_umap"]).all()
    sc.tl.leiden(mdata, flavor="igraph", n_iterations=2, directed=False, random_state=0)
    assert mdata.obs["leiden"].nunique() > 1

    qbm_pyro.tl.trajectory(mdata, root_key="leiden", root_value="0")
    pseudotime = mdata.obs["qbm_pseudotime"].to_numpy()
    root_cells = (mdata.obs["leiden"] == "0").to_numpy()
    assert np.isfinite(pseudotime).mean() > 0.9
    assert np.nanmedian(pseudotime[root_cells]) < np.nanmedian(pseudotime[~root_cells])

    qbm_pyro.tl.attractors(mdata)
    attractor = mdata.obs["qbm_attractor"]
    assert attractor.notna().all()
    assert 1 <= attractor.nunique() < N_CELLS

    plots = {
        "training_curve": qbm_pyro.pl.training_curve(mdata.uns["qbm"]["history"]),
        "energy": qbm_pyro.pl.energy(mdata, "leiden"),
        "trajectory": qbm_pyro.pl.trajectory(mdata, color="leiden"),
        "state_graph": qbm_pyro.pl.state_graph(mdata),
        "pseudotime_energy": qbm_pyro.pl.pseudotime_energy(mdata),
    }
    for name, ax in plots.items():
        assert isinstance(ax, Axes), name
        ax.figure.savefig(tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 0
        plt.close(ax.figure)
