r"""Data-parallel training on several processes with :mod:`torch.distributed` (gloo backend).

Each rank (process) holds a full replica of the model and trains on its own shard of the
training cells; after every backward pass the gradients of all parameters are summed over the
ranks and divided by the world size, so every rank takes the same optimiser step and the
replicas stay identical. The effective minibatch is ``world_size * batch_size`` cells.

**The prior's sampler.** The negative phase of :math:`\nabla \log Z` comes from the sampler's
persistent chains (persistent parallel tempering by default). We keep *one* set of
chains, replicated: all ranks start from rank 0's parameters *and* rank 0's sampler state
(chains and random-generator state, broadcast once), and since every rank then calls the
sampler with the same ``h, J`` (identical after the gradient all-reduce) and the same generator
state, every rank draws the same chains, with no communication. The negative phase is
therefore computed redundantly on each rank (it is cheap next to the encoders and decoders) and
all ranks agree on it exactly. At the end of every epoch the ranks compare a SHA-256 digest of
their prior parameters and sampler state; if one differs (it should not: this would need a
non-deterministic sampler, such as hardware), rank 0's state is broadcast to all and a warning
is logged. Alternatives we did not take: rank 0 draws and broadcasts the samples (the other
ranks' chains then go stale, and rank 0 becomes a bottleneck), or independent chains per rank
averaged by the all-reduce (more chains, but the replicas' sampler states then differ and a
checkpoint cannot hold "the" sampler state).

Everything that decides the control flow is reduced over the ranks so that all ranks take the
same branch: the training loss, the validation loss (hence early stopping), the number of
minibatches (the shards are padded to equal size by repeating cells). A non-finite loss or
gradient on any rank is a flag in the same all-reduce as the gradients, so every rank stops at
that step with a :class:`~qbm_pyro.training.NumericalError` naming the rank, instead of the
others waiting in the next collective until the timeout; a failed validation pass is reduced
the same way. Only rank 0 writes checkpoints and shows a progress bar.

The model reaches the spawned processes of :func:`train_distributed` as a pickle written by
this process into its own temporary folder, and rank 0 reads a checkpoint with
``torch.load(weights_only=True)`` before broadcasting it: nothing is unpickled from a file
that a user or another program supplied.

**Single node.** :func:`train_distributed` spawns ``world_size`` processes with
:mod:`torch.multiprocessing` and copies the trained state back into the model::

    from qbm_pyro.distributed import train_distributed

    model = qbm_pyro.QBMVAE(mdata, batch_key="batch")
    history = train_distributed(model, world_size=4, max_epochs=100)

The script must guard its entry point with ``if __name__ == "__main__":`` (processes are
started with ``spawn``, which re-imports the main module).

**Several nodes.** Launch one process per core or GPU with ``torchrun`` and call
:func:`train_rank` in each; ``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT``::

    # train.py
    import torch.distributed as dist
    import mudata as md
    import qbm_pyro
    from qbm_pyro.distributed import train_rank

    dist.init_process_group("gloo")
    mdata = md.read_h5mu("data.h5mu")  # every rank reads the file (or opens it backed)
    model = qbm_pyro.QBMVAE(mdata, batch_key="batch", seed=0)
    train_rank(model, max_epochs=100, checkpoint_path="state.pt")
    if dist.get_rank() == 0:
        model.save("model/")
    dist.destroy_process_group()

.. code-block:: bash

    # on each of 2 nodes, 8 processes each
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d \
        --rdzv-endpoint node0.example.org:29500 train.py
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import logging
import math
import os
import pickle
import socket
import tempfile
from pathlib import Path
from typing import Any

import anndata as ad
import mudata as md
import numpy as np
import pyro
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from .flat_parameters import FlatAdam, FlatParameters
from .torch_files import checksum
from .training import NumericalError, Trainer

__all__ = ["DistributedTrainer", "prior_state", "shard_indices", "train_distributed", "train_rank"]

log = logging.getLogger(__name__)


################################################################################
# Helpers.
################################################################################


def shard_indices(indices: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """The cells of ``rank``: every ``world_size``-th cell, padded so all shards are equal.

    Parameters
    ----------
    indices
        Cell positions, shape ``(n,)``.
    rank, world_size
        This process and the number of processes.

    Returns
    -------
    numpy.ndarray
        ``ceil(n / world_size)`` positions; when ``n`` is not a multiple of ``world_size`` the
        first cells are repeated to pad (as :class:`torch.utils.data.DistributedSampler` does),
        so that every rank runs the same number of minibatches.
    """
    indices = np.asarray(indices)
    if not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    if len(indices) == 0:
        return indices
    size = math.ceil(len(indices) / world_size) * world_size
    padded = np.resize(indices, size)  # repeats from the start
    return padded[rank::world_size]


def prior_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The prior's parameters and its sampler's tensors (chains), to compare replicas.

    Parameters
    ----------
    module
        A :class:`~qbm_pyro.module.MultiVAE` (``model.module``).

    Returns
    -------
    dict
        ``"h"``, ``"J"`` or ``"W"`` and ``"sampler.<key>"`` for each tensor in the sampler's
        ``state_dict()`` (e.g. ``"sampler.chains"``); empty for a Gaussian prior.
    """
    prior = module.prior
    if prior is None:
        return {}
    out = {name: p.detach().clone() for name, p in prior.named_parameters()}
    for key, value in prior.sampler.state_dict().items():
        if isinstance(value, torch.Tensor):
            out[f"sampler.{key}"] = value.clone()
    return out


def _digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a replica's prior state, keys sorted (compared across ranks, never stored)."""
    return checksum({key: state[key] for key in sorted(state)})


def _broadcast_state(module: torch.nn.Module, src: int = 0) -> None:
    """Copy ``src``'s parameters, buffers and sampler state to every rank."""
    with torch.no_grad():
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src)
    prior = module.prior
    if prior is not None:
        box = [prior.sampler.state_dict() if dist.get_rank() == src else None]
        dist.broadcast_object_list(box, src)
        if dist.get_rank() != src and box[0]:
            prior.sampler.load_state_dict(box[0])


#: What a rank reports in the per-step flags of :class:`_GradientAllReduce` (0: all well).
_PROBLEMS = {
    1: "the loss became non-finite",
    2: "a gradient became non-finite",
    3: "a distribution got invalid parameters",
}


class _GradientAllReduce:
    """Wraps an optimiser: ``step()`` first averages the gradients over the ranks.

    The gradients live in the trainer's flat buffers
    (:class:`~qbm_pyro.flat_parameters.FlatParameters`); one all-reduce per step carries them
    all, in their own dtype, and the average is written back in place. The same all-reduce
    carries one flag per rank (the :data:`_PROBLEMS` code of a rank whose loss or gradient was
    not finite), so every rank learns of a failure at the same step and stops with it instead
    of waiting in the next collective until the timeout.
    """

    def __init__(self, optimizer: FlatAdam, flat: FlatParameters):
        self.optimizer = optimizer
        self.flat = flat

    def step(self, problem: int = 0) -> dict[int, int]:
        """All-reduce the gradients and the flags; step unless a rank had a problem.

        Returns ``{rank: problem code}`` of the ranks that had one (then no step is taken).
        """
        grads = [buffer.grad for buffer in self.flat.buffers]
        world, rank = dist.get_world_size(), dist.get_rank()
        dtype = grads[0].dtype if grads else torch.float32
        flags = torch.zeros(world, dtype=dtype, device=grads[0].device if grads else "cpu")
        flags[rank] = problem
        joined = torch.cat([*grads, flags])
        dist.all_reduce(joined)
        bad = {r: int(code) for r, code in enumerate(joined[-world:].tolist()) if code}
        if bad:
            return bad
        joined = joined[:-world]
        joined /= world
        for grad, part in zip(grads, joined.split([g.numel() for g in grads]), strict=True):
            grad.copy_(part.view_as(grad))
        self.optimizer.step()
        return {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.optimizer, name)


################################################################################
# The trainer.
################################################################################


class DistributedTrainer(Trainer):
    """:class:`~qbm_pyro.training.Trainer` for one rank of a data-parallel run.

    Needs an initialised default process group (:func:`torch.distributed.init_process_group`).
    Give every rank the *global* ``train_indices`` and ``validation_indices``; each rank keeps
    its shard (:func:`shard_indices`). On construction rank 0's parameters and sampler state are
    broadcast to all ranks. See the module docstring for how the replicas are kept identical.

    Attributes
    ----------
    rank, world_size
        This process and the number of processes.
    resyncs
        How many times the end-of-epoch check found the replicas' priors different and
        re-broadcast rank 0's state (expected ``0``).
    """

    def __post_init__(self):
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError(
                "DistributedTrainer needs torch.distributed initialised: call "
                "torch.distributed.init_process_group('gloo') first (or use train_distributed)"
            )
        super().__post_init__()
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.resyncs = 0
        self.train_indices = shard_indices(self.train_indices, self.rank, self.world_size)
        self.validation_indices = shard_indices(self.validation_indices, self.rank, self.world_size)
        if self.rank != 0:
            self.config = dataclasses.replace(self.config, progress_bar=False)
        self.optimizer = _GradientAllReduce(self.optimizer, self.flat)
        _broadcast_state(self.module)

    def step(self, batch: dict, kl_weight: float = 1.0) -> float:
        """As :meth:`~qbm_pyro.training.Trainer.step`, but a non-finite loss or gradient on
        *any* rank stops *every* rank at this step with a :class:`~qbm_pyro.training.NumericalError`
        naming the rank (the flag travels with the gradient all-reduce: no extra message)."""
        self._step += 1
        self._phase = f"training step {self._step} of the epoch"
        self.flat.zero_grad()
        batch = self._training_batch(batch)
        problem, detail, value = 0, "", math.nan
        try:
            with pyro.validation_enabled(False):
                loss = self._loss(batch, kl_weight)
            value = float(loss.detach())
        except NumericalError as error:
            problem, detail = 3, str(error).split(" in epoch ")[0]
        if not problem and not math.isfinite(value):
            problem, detail = 1, f"the loss became {value}"
        if not problem:
            (loss / batch["index"].shape[0]).backward()
            self.flat.collect()
            if not self.flat.grads_finite():
                names = [n for n, p in self.module.named_parameters() if p.grad is not None]
                bad = [n for n in names if not bool(torch.isfinite(self.module.get_parameter(n).grad).all())]
                problem, detail = 2, f"the gradient of {bad[0] if bad else 'a parameter'!r} became non-finite"
        failed = self.optimizer.step(problem)
        if failed:
            ranks = ", ".join(f"rank {r} ({_PROBLEMS.get(c, 'failed')})" for r, c in sorted(failed.items()))
            here = f"; here on rank {self.rank}: {detail}" if detail else ""
            raise self._numerical_error(
                f"{ranks} of {self.world_size}{here}; every rank stopped at this step", self.epoch
            )
        prior = self.module.prior
        if prior is not None:
            prior.clamp_()
        return value

    def read_checkpoint(self, path) -> dict | None:
        """Rank 0 reads the checkpoint (safely) and broadcasts it to the other ranks."""
        box = [super().read_checkpoint(path) if self.rank == 0 else None]
        dist.broadcast_object_list(box, 0)
        return box[0]

    def _all_sum(self, *values: float) -> list[float]:
        tensor = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def train_epoch(self, epoch: int) -> float:
        """One pass over this rank's shard; returns the mean loss per cell over all ranks."""
        local = super().train_epoch(epoch)
        n = len(self.train_indices)
        total, count = self._all_sum(local * n if n else 0.0, n)
        return total / count if count else math.nan

    def _aggregate_moments(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The posterior moments' sums over the training cells of all ranks (the prior's last
        fit then runs on every rank from the same sums and the same sampler state)."""
        total, outer, count = super()._aggregate_moments()
        packed = torch.cat([total, outer.reshape(-1), torch.tensor([float(count)], dtype=torch.float64)])
        dist.all_reduce(packed)
        n = total.shape[0]
        return packed[:n], packed[n : n + n * n].reshape(n, n), int(packed[-1])

    def refit_prior(self) -> dict | None:
        """``Trainer.refit_prior`` on every rank, then rank 0's module broadcast (the
        replicas leave training identical whatever the fit's floating-point order)."""
        result = super().refit_prior()
        _broadcast_state(self.module)
        return result

    def evaluate(self, indices: np.ndarray) -> float:
        """Mean negative ELBO per cell over the ``indices`` of all ranks (KL weight 1).

        A rank whose validation pass fails (:class:`~qbm_pyro.training.NumericalError`) still
        joins the reduction, with a flag, and then every rank raises: none is left waiting."""
        detail = ""
        try:
            local = super().evaluate(indices) if len(indices) else 0.0
        except NumericalError as error:
            local, detail = 0.0, str(error).split(" in epoch ")[0]
        total, count, failed = self._all_sum(
            local * len(indices) if len(indices) else 0.0, len(indices), float(bool(detail))
        )
        if failed:
            here = f"; here on rank {self.rank}: {detail}" if detail else ""
            raise self._numerical_error(
                f"the validation pass failed on {int(failed)} of {self.world_size} rank(s){here}; "
                "every rank stopped",
                self.epoch,
            )
        return total / count if count else math.nan

    def end_epoch(self, epoch: int, train_loss: float, started: float | None = None) -> bool:
        """Check that the replicas agree, then as :meth:`~qbm_pyro.training.Trainer.end_epoch`."""
        self.check_replicas()
        return super().end_epoch(epoch, train_loss, started=started)

    def check_replicas(self) -> bool:
        """Compare the priors of all ranks; re-broadcast rank 0's if they differ.

        Returns
        -------
        bool
            Whether all ranks agreed (before any re-broadcast).
        """
        digests = [None] * self.world_size
        dist.all_gather_object(digests, _digest(prior_state(self.module)))
        if len(set(digests)) == 1:
            return True
        self.resyncs += 1
        log.warning("rank %d: prior state differs between ranks; re-broadcasting rank 0's", self.rank)
        _broadcast_state(self.module)
        return False

    def checkpoint(self) -> None:
        """Only rank 0 writes the checkpoint."""
        if self.rank == 0:
            super().checkpoint()


################################################################################
# Entry points.
################################################################################


def train_rank(
    model,
    max_epochs: int | None = None,
    *,
    batch_size: int = 128,
    lr: float = 1e-3,
    kl_warmup_epochs: int | None = None,
    validation_fraction: float | None = None,
    early_stopping: bool | None = None,
    patience: int = 45,
    progress_bar: bool = True,
    checkpoint_path: str | None = None,
    resume: bool = False,
    **config,
) -> dict:
    """Train ``model`` as one rank of an initialised process group (e.g. under ``torchrun``).

    Every rank must build the same model on the same data (same ``seed``); each trains on its
    shard of the cells and all end with identical weights and sampler state. Arguments as for
    :meth:`qbm_pyro.QBMVAE.train`; ``batch_size`` is per rank.

    Parameters
    ----------
    model
        An untrained (or partly trained) :class:`~qbm_pyro.QBMVAE`, the same on every rank.
    max_epochs, batch_size, lr, kl_warmup_epochs, validation_fraction, early_stopping, patience
        As for :meth:`qbm_pyro.QBMVAE.train`.
    progress_bar
        Show a progress bar on rank 0.
    checkpoint_path
        Rank 0 writes the training state there after every epoch.
    resume
        Continue from ``checkpoint_path``: rank 0 reads it and broadcasts it to the others.
    **config
        Other :class:`~qbm_pyro.training.TrainingConfig` fields.

    Returns
    -------
    dict
        The training history (the same on all ranks), also stored in ``model.history_``.
    """
    return model.train(
        max_epochs,
        batch_size=batch_size,
        lr=lr,
        kl_warmup_epochs=kl_warmup_epochs,
        validation_fraction=validation_fraction,
        early_stopping=early_stopping,
        patience=patience,
        progress_bar=progress_bar,
        checkpoint_path=checkpoint_path,
        resume=resume,
        trainer_cls=DistributedTrainer,
        **config,
    )


def train_distributed(
    model,
    world_size: int = 2,
    *,
    num_threads: int | None = None,
    timeout: float = 1800.0,
    **train_kwargs,
) -> dict:
    """Train ``model`` with ``world_size`` processes on this machine (gloo backend).

    Starts the processes with :func:`torch.multiprocessing.spawn` (each gets a pickled copy of
    ``model``; the data go through a temporary ``.h5mu``/``.h5ad`` file that every process
    reads), runs :func:`train_rank` in each, checks that all ranks end with
    the same prior parameters and sampler state, and loads rank 0's result into ``model``
    (its weights, sampler state, ``history_`` and ``prior_refit_``).

    Parameters
    ----------
    model
        A :class:`~qbm_pyro.QBMVAE`.
    world_size
        Number of processes.
    num_threads
        Torch threads per process; default ``max(1, os.cpu_count() // world_size)``.
    timeout
        Seconds a collective may wait before the run fails (a crashed rank must not leave
        the others hanging forever).
    **train_kwargs
        Passed to :func:`train_rank` (``max_epochs``, ``batch_size`` per rank, ...).

    Returns
    -------
    dict
        The training history, also stored in ``model.history_``.

    Examples
    --------
    >>> import qbm_pyro
    >>> from qbm_pyro.distributed import train_distributed
    >>> mdata = qbm_pyro.datasets.pbmc_cite_2batch()
    >>> model = qbm_pyro.QBMVAE(mdata, batch_key="batch", n_latent=16)
    >>> history = train_distributed(model, world_size=2, max_epochs=2)  # doctest: +SKIP
    >>> model.is_trained_  # doctest: +SKIP
    True

    (Not run as a doctest: it starts processes; ``tests/test_distributed.py`` runs it.)
    """
    payload = _spawn(model, world_size, num_threads=num_threads, timeout=timeout, **train_kwargs)
    digests = {_digest(state) for state in payload["replicas"]}
    if len(digests) != 1:
        raise RuntimeError("the ranks ended with different prior parameters or sampler states")
    model.module.load_state_dict(payload["module"])
    prior = model.module.prior
    if prior is not None and payload["sampler"]:
        prior.sampler.load_state_dict(payload["sampler"])
    model.history_ = payload["history"]
    model.prior_refit_ = payload.get("prior_refit")
    model.is_trained_ = True
    return model.history_


def _spawn(model, world_size: int, *, num_threads=None, timeout=1800.0, **train_kwargs) -> dict:
    """Run the ranks; returns rank 0's state plus every rank's :func:`prior_state`."""
    if int(world_size) < 1:
        raise ValueError(f"world_size must be a positive int, got {world_size!r}")
    if num_threads is None:
        num_threads = max(1, (os.cpu_count() or 1) // int(world_size))
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="qbm_pyro_ddp_") as tmp:
        # AnnData objects do not survive pickling into a new process: ship the data as a file.
        data_path = Path(tmp) / ("data.h5mu" if isinstance(model.data, md.MuData) else "data.h5ad")
        model.data.write(data_path)
        # The model goes through a pickle file too: tensors handed to spawn directly travel via
        # shared memory, which containers often limit.
        detached = copy.copy(model)
        detached.data = None
        model_path = Path(tmp) / "model.pkl"
        with open(model_path, "wb") as f:
            pickle.dump(detached, f)
        result = Path(tmp) / "result.pt"
        args = (int(world_size), f"tcp://127.0.0.1:{port}", str(model_path), str(data_path), train_kwargs)
        mp.spawn(
            _worker,
            args=(*args, str(result), num_threads, timeout),
            nprocs=int(world_size),
            join=True,
        )
        return torch.load(result, map_location="cpu", weights_only=True)


def _worker(
    rank, world_size, init_method, model_path, data_path, train_kwargs, result, num_threads, timeout
) -> None:
    torch.set_num_threads(num_threads)
    with open(model_path, "rb") as f:
        model = pickle.load(f)  # our own file, written by _spawn
    model.data = md.read_h5mu(data_path) if data_path.endswith(".h5mu") else ad.read_h5ad(data_path)
    dist.init_process_group(
        "gloo",
        init_method=init_method,
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=timeout),
    )
    try:
        try:
            history = train_rank(model, **train_kwargs)
        except NumericalError:
            # every rank raised it at the same step (the flag travels with the all-reduce): meet
            # once more so that no rank tears gloo down under another (SIGABRT at exit)
            dist.barrier()
            raise
        replicas = [None] * world_size
        dist.all_gather_object(replicas, prior_state(model.module))
        if rank == 0:
            prior = model.module.prior
            torch.save(
                {
                    "module": model.module.state_dict(),
                    "sampler": prior.sampler.state_dict() if prior is not None else {},
                    "history": history,
                    "prior_refit": model.prior_refit_,
                    "replicas": replicas,
                },
                result,
            )
        dist.barrier()
    finally:
        dist.destroy_process_group()
