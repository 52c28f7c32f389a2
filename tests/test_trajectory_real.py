"""Trajectories on a fitted QBM-VAE latent, against known biology (robust claims only)."""

import warnings

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau, spearmanr

import qbm_pyro
from qbm_pyro import datasets

warnings.filterwarnings("ignore", category=UserWarning)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def paul15_fitted():
    torch.set_num_threads(1)
    adata = datasets.paul15_myeloid()
    qbm_pyro.tl.qbm(adata, n_latent=32, n_continuous=8, max_epochs=40, seed=0, progress_bar=False)
    return adata


def test_paul15_erythroid_pseudotime(paul15_fitted):
    adata = paul15_fitted
    qbm_pyro.tl.trajectory(adata, root_key="cell_type", root_value="Multipotent progenitors")
    ref = adata.obs["pseudotime_lineage2"].to_numpy(dtype=float)  # erythroid reference
    on = np.isfinite(ref)
    tau = kendalltau(adata.obs["qbm_pseudotime"].to_numpy()[on], ref[on]).statistic
    assert tau > 0.4  # measured 0.76 (3 seeds, 100 epochs); scanpy DPT on PCA: 0.73
    # Not asserted: energy falling along the lineage. It holds for the default model (64 + 16
    # units, 100 epochs: Spearman -0.87 to -0.90 on 3 seeds) but not for this small, short fit
    # (+0.16), so it is a finding to report, not a property of the method.


def test_a549_time_points_in_order():
    torch.set_num_threads(1)
    mdata = datasets.a549_scicar()
    rna = mdata["rna"].copy()
    rna.X = rna.layers["counts"].copy()
    qbm_pyro.tl.qbm(rna, n_latent=32, n_continuous=8, max_epochs=40, seed=0, progress_bar=False)
    qbm_pyro.tl.trajectory(rna, root_key="time", root_value="0h")
    pseudotime = rna.obs["qbm_pseudotime"].to_numpy()
    hours = rna.obs["time_hours"].to_numpy(dtype=float)
    assert spearmanr(pseudotime, hours).statistic > 0.3
    means = [pseudotime[hours == h].mean() for h in (0, 1, 3)]
    assert means[0] < means[1] < means[2], means
