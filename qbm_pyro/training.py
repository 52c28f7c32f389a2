"""The training loop: minibatch SVI with KL warm-up, validation, early stopping, checkpoints.

Every epoch is reproducible on its own: its shuffling and its torch random stream are seeded
from ``(seed, epoch)``, and the sampler's state travels in the checkpoint, so a run resumed from
the checkpoint of epoch ``e`` continues exactly as the uninterrupted run would have (on CPU).
"""

from __future__ import annotations

import copy
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .data import MinibatchLoader
from .module import AnalyticKL_ELBO, MultiVAE

__all__ = ["TrainingConfig", "Trainer", "NumericalError", "atomic_torch_save"]

log = logging.getLogger(__name__)


class NumericalError(FloatingPointError):
    """The loss became NaN or infinite; the last good state was kept (and checkpointed)."""


@dataclass
class TrainingConfig:
    """Settings of :class:`Trainer` (see :meth:`qbm_pyro.QBMVAE.train`)."""

    max_epochs: int = 200
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    kl_warmup_epochs: int | None = None
    validation_fraction: float = 0.1
    early_stopping: bool = True
    patience: int = 30
    log_z_every: int = 5
    seed: int = 0
    progress_bar: bool = True
    checkpoint_path: str | None = None

    def __post_init__(self):
        if self.max_epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(
                f"need max_epochs >= 1, batch_size >= 1, lr > 0; got {self.max_epochs}, "
                f"{self.batch_size}, {self.lr}"
            )
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if self.kl_warmup_epochs is None:
            self.kl_warmup_epochs = max(1, self.max_epochs // 4)


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


@dataclass
class Trainer:
    """Runs :class:`TrainingConfig` on a :class:`~qbm_pyro.module.MultiVAE`."""

    module: MultiVAE
    data: object
    registry: object
    train_indices: np.ndarray
    validation_indices: np.ndarray
    config: TrainingConfig
    history: dict = field(
        default_factory=lambda: {
            "epoch": [],
            "train_loss": [],
            "validation_loss": [],
            "kl_weight": [],
            "log_z": [],
        }
    )

    def __post_init__(self):
        self.elbo = AnalyticKL_ELBO()
        self.optimizer = torch.optim.Adam(
            self.module.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay
        )
        self.epoch = 0
        self.best_loss = math.inf
        self.best_state = None
        self.bad_epochs = 0

    # ------------------------------------------------------------------ checkpoints

    def state(self) -> dict:
        sampler = getattr(getattr(self.module, "prior", None), "sampler", None)
        return {
            "epoch": self.epoch,
            "module": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "sampler": sampler.state_dict() if sampler is not None else {},
            "history": self.history,
            "best_loss": self.best_loss,
            "best_state": self.best_state,
            "bad_epochs": self.bad_epochs,
        }

    def load_state(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self.module.load_state_dict(state["module"])
        self.optimizer.load_state_dict(state["optimizer"])
        sampler = getattr(getattr(self.module, "prior", None), "sampler", None)
        if sampler is not None and state["sampler"]:
            sampler.load_state_dict(state["sampler"])
        self.history = state["history"]
        self.best_loss = float(state["best_loss"])
        self.best_state = state["best_state"]
        self.bad_epochs = int(state["bad_epochs"])

    def checkpoint(self) -> None:
        if self.config.checkpoint_path:
            atomic_torch_save(self.state(), self.config.checkpoint_path)

    # ------------------------------------------------------------------ loop

    def _loader(self, indices, shuffle, seed):
        return MinibatchLoader(
            self.data,
            self.registry,
            batch_size=self.config.batch_size,
            shuffle=shuffle,
            seed=seed,
            indices=indices,
        )

    def _kl_weight(self, epoch: int) -> float:
        return min(1.0, (epoch + 1) / self.config.kl_warmup_epochs)

    def _check_finite(self, loss: float, epoch: int) -> None:
        if math.isfinite(loss):
            return
        if self.best_state is not None:
            self.module.load_state_dict(self.best_state)
        raise NumericalError(
            f"the loss became {loss} in epoch {epoch}; the last good state is kept"
            + (
                f" in {self.config.checkpoint_path} (end of epoch {self.epoch - 1})"
                if self.config.checkpoint_path and self.epoch > 0
                else ""
            )
            + ". Likely causes: a learning rate too high (lr="
            f"{self.config.lr}; try 10x lower) or unnormalised inputs (counts are expected)."
        )

    def evaluate(self, indices: np.ndarray) -> float:
        """Mean negative ELBO per cell (KL weight 1) over ``indices``, in eval mode."""
        if len(indices) == 0:
            return math.nan
        self.module.eval()
        self.elbo.kl_weight = 1.0
        total = 0.0
        with torch.no_grad():
            for batch in self._loader(indices, False, None):
                total += float(self.elbo.differentiable_loss(self.module.model, self.module.guide, batch))
        self.module.train()
        return total / len(indices)

    def step(self, batch: dict) -> float:
        """One optimiser step on a minibatch; returns the summed loss of its cells."""
        self.optimizer.zero_grad()
        loss = self.elbo.differentiable_loss(self.module.model, self.module.guide, batch)
        self._check_finite(float(loss), self.epoch)
        (loss / batch["index"].shape[0]).backward()
        self.optimizer.step()
        prior = getattr(self.module, "prior", None)
        if prior is not None:
            prior.clamp_()
        return float(loss)

    def train_epoch(self, epoch: int) -> float:
        """One pass over the training cells, seeded by ``(seed, epoch)``; mean loss per cell."""
        seed = self.config.seed * 100_003 + epoch
        torch.manual_seed(seed)
        self.module.train()
        self.elbo.kl_weight = self._kl_weight(epoch)
        total = sum(self.step(batch) for batch in self._loader(self.train_indices, True, seed))
        return total / len(self.train_indices)

    def end_epoch(self, epoch: int, train_loss: float) -> bool:
        """Refresh log Z, validate, record history, checkpoint; returns whether to stop."""
        prior = getattr(self.module, "prior", None)
        if prior is not None:
            exact = prior.n_latent <= prior.exact_max_n  # cheap: refresh every epoch
            if exact or (epoch + 1) % self.config.log_z_every == 0:
                prior.refresh_log_z()
        validation_loss = self.evaluate(self.validation_indices)
        self.epoch = epoch + 1
        kl = self._kl_weight(epoch)
        record = {
            "epoch": epoch,
            "train_loss": train_loss,
            "validation_loss": validation_loss,
            "kl_weight": kl,
            "log_z": float(prior.log_z) if prior is not None else math.nan,
        }
        for key, value in record.items():
            self.history[key].append(value)
        stop = self._stop(validation_loss, kl)
        self.checkpoint()
        if stop:
            log.info("early stopping after epoch %d (best validation loss %.2f)", epoch, self.best_loss)
        return stop

    def run(self) -> dict:
        """Train from ``self.epoch`` to ``max_epochs`` (or early stop); restores the best state."""
        cfg = self.config
        bar = tqdm(
            range(self.epoch, cfg.max_epochs),
            desc="training",
            disable=not cfg.progress_bar,
            initial=self.epoch,
            total=cfg.max_epochs,
        )
        for epoch in bar:
            train_loss = self.train_epoch(epoch)
            stop = self.end_epoch(epoch, train_loss)
            bar.set_postfix(
                loss=f"{train_loss:.1f}",
                val=f"{self.history['validation_loss'][-1]:.1f}",
                kl_w=f"{self.history['kl_weight'][-1]:.2f}",
            )
            if stop:
                break
        if self.best_state is not None:
            self.module.load_state_dict(self.best_state)
        return self.history

    def _stop(self, validation_loss: float, kl_weight: float) -> bool:
        """Track the best state (after warm-up) and decide on early stopping."""
        if kl_weight < 1.0 or not math.isfinite(validation_loss):
            return False
        if validation_loss < self.best_loss:
            self.best_loss = validation_loss
            self.best_state = copy.deepcopy(self.module.state_dict())
            self.bad_epochs = 0
            return False
        self.bad_epochs += 1
        return self.config.early_stopping and self.bad_epochs >= self.config.patience
