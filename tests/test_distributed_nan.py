"""A NaN on one data-parallel rank stops every rank at once, with a message (issue 22).

Before: the rank with the NaN raised alone and the other waited in the gradient all-reduce until
the process group's timeout. Two gloo processes; the test gives them a 20 s timeout, so a hang
shows up as a timeout error on rank 0 instead of the NumericalError both ranks must raise.
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import qbm_pyro
from qbm_pyro.distributed import DistributedTrainer, train_rank

SMALL = dict(batch_key="batch", n_latent=16, n_continuous=2, n_hidden=16)
TIMEOUT_S = 20


def _worker(rank: int, store: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{store}",
        rank=rank,
        world_size=2,
        timeout=datetime.timedelta(seconds=TIMEOUT_S),
    )
    try:
        _train_one_rank(rank, out_dir)
        dist.barrier()  # both ranks stopped at the same step: tear down together
    finally:  # without it gloo's threads can abort the process at exit (SIGABRT)
        dist.destroy_process_group()


def _train_one_rank(rank: int, out_dir: str) -> None:
    model = qbm_pyro.QBMVAE(qbm_pyro.datasets.pbmc_cite_2batch()[::4].copy(), **SMALL)
    if rank == 1:  # this rank's loss becomes NaN at its second training step
        original, calls = DistributedTrainer._loss, {"n": 0}

        def poisoned(self, batch, kl_weight=1.0):
            calls["n"] += 1
            loss = original(self, batch, kl_weight)
            return loss * float("nan") if calls["n"] == 2 else loss

        DistributedTrainer._loss = poisoned
    start = time.perf_counter()
    try:
        train_rank(model, max_epochs=2, batch_size=16, progress_bar=False)
        outcome = "finished"
    except Exception as error:  # noqa: BLE001 (reported to the parent)
        outcome = f"{type(error).__name__}: {error}"
    Path(out_dir, f"rank{rank}.txt").write_text(f"{time.perf_counter() - start:.2f}\n{outcome}")


@pytest.mark.slow  # starts two processes; its time bound needs an idle machine
def test_nan_on_one_rank_stops_every_rank_with_a_message(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        seconds, outcome = (tmp_path / f"rank{rank}.txt").read_text().split("\n", 1)
        assert outcome.startswith("NumericalError: rank 1 (the loss became non-finite) of 2"), (rank, outcome)
        assert "every rank stopped at this step" in outcome
        assert float(seconds) < TIMEOUT_S, (rank, seconds)
    assert "here on rank 1: the loss became nan" in (tmp_path / "rank1.txt").read_text()
