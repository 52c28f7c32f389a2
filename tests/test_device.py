"""The accelerator/device arguments (CPU tests; the GPU is exercised by benchmarks/gpu.py)."""

import numpy as np
import pytest
import torch

import qbm_pyro
from qbm_pyro import datasets
from qbm_pyro.device import resolve_device


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="accelerator must be one of"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="does not match"):
        resolve_device("cpu", "cuda:0")
    if torch.cuda.is_available():
        assert resolve_device("gpu") == torch.device("cuda")  # Lightning's / scvi-tools' spelling
        assert resolve_device("gpu", 0) == torch.device("cuda:0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_asked_for_without_cuda_is_a_clear_error():
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        qbm_pyro.QBMVAE(datasets.pbmc_cite_2batch(), batch_key="batch", n_latent=8, accelerator="cuda")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        resolve_device("gpu")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        qbm_pyro.tl.qbm(datasets.pbmc_cite_2batch(), batch_key="batch", accelerator="gpu", max_epochs=1)


def test_tl_qbm_takes_accelerator_and_device():
    """tl.qbm passes accelerator/device to the model, as the CLI's --device does."""
    mdata = datasets.pbmc_cite_2batch()
    qbm_pyro.tl.qbm(
        mdata, batch_key="batch", n_latent=8, max_epochs=1, progress_bar=False, accelerator="cpu", device=0
    )
    assert mdata.obsm["X_qbm"].shape == (mdata.n_obs, 8 + 16)
    with pytest.raises(ValueError, match="does not match"):
        qbm_pyro.tl.qbm(mdata, batch_key="batch", accelerator="cpu", device="cuda:0", max_epochs=1)


def test_cpu_model_trains_saves_and_reloads_on_cpu(tmp_path):
    mdata = datasets.pbmc_cite_2batch()
    model = qbm_pyro.QBMVAE(mdata, batch_key="batch", n_latent=16, accelerator="cpu")
    assert model.device == torch.device("cpu")
    assert all(p.device.type == "cpu" for p in model.module.parameters())
    model.train(max_epochs=1, progress_bar=False)
    latent = model.get_latent_representation()
    model.save(tmp_path / "m")
    loaded = qbm_pyro.QBMVAE.load(tmp_path / "m", mdata, accelerator="cpu")
    assert loaded.device == torch.device("cpu")
    np.testing.assert_allclose(loaded.get_latent_representation(), latent, atol=1e-6)


def test_neighbour_graphs_leave_torch_threads_as_they_were():
    """scanpy's neighbour graph and pynndescent run numba code that resets torch's OpenMP thread
    count (to the number of cores); the package's metrics and kNN search put it back, so a fit after
    them runs with the threads the user set (the same fit drifted otherwise). The guard itself is
    checked with a change made inside the block."""
    from qbm_pyro.device import keep_torch_threads
    from qbm_pyro.metrics import clustering_scores

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with keep_torch_threads():
            torch.set_num_threads(2)
        assert torch.get_num_threads() == 1
        rng = np.random.default_rng(0)
        latent = np.vstack([rng.normal(0, 1, (60, 4)), rng.normal(6, 1, (60, 4))]).astype(np.float32)
        labels = np.repeat(["a", "b"], 60)
        assert clustering_scores(latent, labels, resolutions=(0.5,))["ari"] > 0.9
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow  # pynndescent's numba compilation takes minutes on 2 cores
def test_approximate_knn_leaves_torch_threads_as_they_were():
    """The same for the pynndescent search of ``tl.trajectory``/``tl.attractors`` on large data."""
    from qbm_pyro.tl._neighbors import _knn

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        latent = np.random.default_rng(0).normal(size=(200, 4))
        idx, _ = _knn(latent, 0, "euclidean", 5, "pynndescent", 0)
        assert idx.shape == (200, 5) and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
