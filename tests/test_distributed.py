"""Data-parallel training: 2 gloo processes keep identical priors and chains."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as dist

import qbm_pyro
from qbm_pyro import distributed
from qbm_pyro.distributed import DistributedTrainer, shard_indices, train_distributed, train_rank

torch.set_num_threads(1)

SMALL = dict(batch_key="batch", n_latent=16, n_continuous=2, n_hidden=32)
TRAIN = dict(max_epochs=2, batch_size=64, progress_bar=False)


def test_shard_indices_cover_all_cells_in_equal_shards():
    cells = np.arange(11)
    shards = [shard_indices(cells, r, 3) for r in range(3)]
    assert {len(s) for s in shards} == {4}
    assert set(np.concatenate(shards)) == set(cells)
    with pytest.raises(ValueError, match="rank"):
        shard_indices(cells, 3, 3)


def test_trainer_needs_process_group():
    model = qbm_pyro.QBMVAE(qbm_pyro.datasets.pbmc_cite_2batch(), **SMALL)
    with pytest.raises(RuntimeError, match="init_process_group"):
        train_rank(model, **TRAIN)


def test_one_rank_equals_single_process_training(tmp_path):
    """With world_size=1 the distributed trainer reproduces QBMVAE.train bit for bit."""
    reference = qbm_pyro.QBMVAE(qbm_pyro.datasets.pbmc_cite_2batch(), **SMALL)
    expected = reference.train(**TRAIN)
    model = qbm_pyro.QBMVAE(qbm_pyro.datasets.pbmc_cite_2batch(), **SMALL)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        history = train_rank(model, **TRAIN)
    finally:
        dist.destroy_process_group()
    assert history["train_loss"] == expected["train_loss"]
    assert history["validation_loss"] == expected["validation_loss"]
    for key, value in reference.module.state_dict().items():
        assert torch.equal(model.module.state_dict()[key], value), key


@pytest.mark.slow  # starts two processes
def test_two_ranks_keep_prior_and_chains_identical(monkeypatch):
    model = qbm_pyro.QBMVAE(qbm_pyro.datasets.pbmc_cite_2batch(), **SMALL)
    h0 = model.module.prior.h.detach().clone()
    captured = {}
    spawn = distributed._spawn
    monkeypatch.setattr(distributed, "_spawn", lambda *a, **k: captured.setdefault("payload", spawn(*a, **k)))
    history = train_distributed(model, world_size=2, num_threads=1, **TRAIN)

    rank0, rank1 = captured["payload"]["replicas"]
    assert set(rank0) == set(rank1) >= {"h", "J", "sampler.chains"}
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    assert rank0["sampler.chains"].shape == (model.module.prior.num_samples, 16)
    # the result came back into the parent's model
    assert model.is_trained_ and len(history["train_loss"]) == 2
    assert np.isfinite(history["train_loss"]).all()
    assert torch.equal(model.module.prior.h.detach(), rank0["h"])
    assert not torch.equal(rank0["h"], h0)
    assert torch.equal(model.module.prior.sampler.chains, rank0["sampler.chains"])
    assert model.get_latent_representation().shape == (400, 18)
    # what the prior's last fit did came back too (the same record as a one-process fit's)
    assert set(model.prior_refit_) >= {"mean_gap_before", "mean_gap_after", "steps"}
    assert model.prior_refit_["mean_gap_after"] < model.prior_refit_["mean_gap_before"]


def test_distributed_trainer_is_a_trainer():
    assert issubclass(DistributedTrainer, qbm_pyro.training.Trainer)
