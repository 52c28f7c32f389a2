"""The training loop: minibatch SVI with KL warm-up, validation, early stopping, checkpoints.

Every epoch is reproducible on its own: its shuffling and its torch random stream are seeded
from ``(seed, epoch)``, and the sampler's state travels in the checkpoint, so a run resumed from
the checkpoint of epoch ``e`` continues exactly as the uninterrupted run would have (on CPU,
with the same number of torch threads; bit-identical parameters).

Sources of randomness and where their state lives:

* torch's global generator (dropout, the relaxed posterior samples): re-seeded at the start of
  every epoch from ``(seed, epoch)``; :meth:`Trainer.run` forks it, so the caller's global
  generator is left as it was.
* minibatch order: a ``numpy`` generator seeded from ``(seed, epoch)``.
* the prior's sampler (persistent chains and its own ``torch.Generator``): its
  ``state_dict()`` is in the checkpoint.
* AIS estimates of log Z: fixed seed (see :meth:`~qbm_pyro.module.priors.BoltzmannPrior.refresh_log_z`).
* Adam's moments, early-stopping counters and the best state: in the checkpoint.

Checkpoints are written atomically with a checksum and read back safely
(``qbm_pyro.torch_files``).
"""

from __future__ import annotations

import copy
import logging
import math
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pyro
import torch
from tqdm.auto import tqdm

from .data import MinibatchLoader
from .device import batch_to
from .flat_parameters import FlatAdam, FlatParameters
from .module import MultiVAE
from .module.modality_dropout import drop_modalities
from .samplers import MixingMonitor, SamplerFallbackWarning
from .torch_files import atomic_torch_save, atomic_write, load_torch_file

__all__ = [
    "CHECKPOINT_FORMAT",
    "NumericalError",
    "Trainer",
    "TrainingConfig",
    "atomic_torch_save",
    "atomic_write",
    "load_torch_file",
]

log = logging.getLogger(__name__)

#: Written into every checkpoint; :meth:`Trainer.load_state` refuses other values. v2: the
#: optimiser state is per flat parameter buffer (:class:`~qbm_pyro.flat_parameters.FlatParameters`).
CHECKPOINT_FORMAT = "qbm_pyro.checkpoint.v2"
#: Checkpoint keys that :meth:`Trainer.load_state` needs.
_STATE_KEYS = (
    "format",
    "epoch",
    "module",
    "optimizer",
    "sampler",
    "history",
    "best_loss",
    "best_state",
    "bad_epochs",
)


#: Minibatch size of the validation pass (at least the training batch size).
EVAL_BATCH_SIZE = 512


class NumericalError(FloatingPointError):
    """The loss or a gradient became NaN or infinite; training stopped at the last good state.

    Attributes
    ----------
    epoch : int
        The epoch in which it happened (0-based).
    """

    def __init__(self, message: str, *, epoch: int | None = None):
        super().__init__(message)
        self.epoch = epoch


@dataclass
class TrainingConfig:
    """Settings of :class:`Trainer` (see :meth:`qbm_pyro.QBMVAE.train`)."""

    max_epochs: int = 200
    batch_size: int = 128
    lr: float = 1e-3
    prior_lr_factor: float = 1.0
    kl_balance: float | None = None
    continuous_kl_weight: float = 3.0
    continuous_free_bits: float = 0.0
    modality_dropout: float = 0.0
    weight_decay: float = 0.0
    kl_warmup_epochs: int | None = None
    validation_fraction: float = 0.1
    early_stopping: bool = True
    patience: int = 45
    restore_best: bool = True
    log_z_every: int = 5
    prior_refit_steps: int = 2000
    seed: int = 0
    progress_bar: bool = True
    checkpoint_path: str | None = None

    def __post_init__(self):
        if self.max_epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(
                f"need max_epochs >= 1, batch_size >= 1, lr > 0; got {self.max_epochs}, "
                f"{self.batch_size}, {self.lr}"
            )
        if not self.prior_lr_factor > 0:
            raise ValueError(f"prior_lr_factor must be positive, got {self.prior_lr_factor}")
        if self.kl_balance is not None and not 0 < self.kl_balance <= 1:
            raise ValueError(f"kl_balance must be None or in (0, 1], got {self.kl_balance}")
        beta = self.continuous_kl_weight
        if not (math.isfinite(beta) and beta > 0):
            raise ValueError(f"continuous_kl_weight must be positive and finite, got {beta}")
        free = self.continuous_free_bits
        if not (math.isfinite(free) and free >= 0):
            raise ValueError(f"continuous_free_bits must be a finite number of nats >= 0, got {free}")
        if not (math.isfinite(self.modality_dropout) and 0 <= self.modality_dropout < 1):
            raise ValueError(f"modality_dropout must be in [0, 1), got {self.modality_dropout}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if self.prior_refit_steps < 0:
            raise ValueError(f"prior_refit_steps must be >= 0, got {self.prior_refit_steps}")
        if self.patience < 1 or self.log_z_every < 1:
            raise ValueError(
                f"need patience >= 1 and log_z_every >= 1; got {self.patience}, {self.log_z_every}"
            )
        if self.kl_warmup_epochs is None:
            self.kl_warmup_epochs = max(1, self.max_epochs // 2)
        if self.kl_warmup_epochs < 1:
            raise ValueError(f"kl_warmup_epochs must be >= 1, got {self.kl_warmup_epochs}")

    def record(self) -> dict:
        """The settings that shape the result (for checkpoints): all but the progress bar,
        the checkpoint path and ``max_epochs`` (a run may be resumed to go further)."""
        out = asdict(self)
        for key in ("progress_bar", "checkpoint_path", "max_epochs"):
            out.pop(key)
        return out


#: Settings whose default has changed, with the value training used before it changed.
_EARLIER_DEFAULTS = {"continuous_kl_weight": 1.0, "continuous_free_bits": 0.0}


def recorded_config(record: dict | None) -> dict:
    """The settings a checkpoint's ``config`` record (:meth:`TrainingConfig.record`) was trained
    with: a setting the record lacks (added since it was written) counts as the value training
    used then (its default, or its default before that changed)."""
    then = {f.name: f.default for f in fields(TrainingConfig)} | _EARLIER_DEFAULTS
    return then | (record or {})


################################################################################
# The trainer.
################################################################################


def _parameter_groups(module, config: TrainingConfig) -> list[dict]:
    """Adam parameter groups: the Boltzmann prior's ``h, J`` at ``lr · prior_lr_factor`` (no weight
    decay), everything else at ``lr``."""
    prior = module.prior
    prior_params = [p for p in prior.parameters() if p.requires_grad] if prior is not None else []
    ids = {id(p) for p in prior_params}
    groups = [{"params": [p for p in module.parameters() if id(p) not in ids]}]
    if prior_params:
        groups.append({"params": prior_params, "lr": config.lr * config.prior_lr_factor, "weight_decay": 0.0})
    return groups


@dataclass
class Trainer:
    """Runs :class:`TrainingConfig` on a :class:`~qbm_pyro.module.MultiVAE`.

    ``meta`` is stored in the checkpoint as it is (the model's description, checked by
    :meth:`qbm_pyro.QBMVAE.train` on resume).
    """

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
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        # one buffer per group: Adam, zeroing and the gradient check touch 1-2 tensors, not 20-30
        self.flat = FlatParameters(_parameter_groups(self.module, self.config))
        self.optimizer = FlatAdam(self.flat, lr=self.config.lr, weight_decay=self.config.weight_decay)
        self.epoch = 0
        self.best_loss = math.inf
        self.best_state = None
        self.bad_epochs = 0
        self._good: dict | None = None
        self._mixing = MixingMonitor()  # the negative phase's mixing, per epoch (history)
        self._step = 0
        self._phase = "before training"
        #: What :meth:`refit_prior` did at the end of :meth:`run` (``None``: not run).
        self.prior_refit: dict | None = None

    # ------------------------------------------------------------------ checkpoints

    @property
    def _prior_sampler(self):
        return None if self.module.prior is None else self.module.prior.sampler

    def state(self) -> dict:
        """Everything a resumed run needs (see the module docstring)."""
        sampler = self._prior_sampler
        return {
            "format": CHECKPOINT_FORMAT,
            "meta": self.meta,
            "config": self.config.record(),
            "epoch": self.epoch,
            "module": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "sampler": sampler.state_dict() if sampler is not None else {},
            "log_z_run": self.module.prior.ais_state() if self.module.prior is not None else {},
            "history": self.history,
            "best_loss": self.best_loss,
            "best_state": self.best_state,
            "bad_epochs": self.bad_epochs,
        }

    def read_checkpoint(self, path) -> dict | None:
        """The checkpoint at ``path`` (``None`` if there is none yet), read safely."""
        return load_torch_file(path, what="checkpoint") if Path(path).exists() else None

    def load_state(self, state: dict) -> None:
        """Restore what :meth:`state` returned; on any mismatch, raise ``ValueError`` and leave
        the trainer, the module and the sampler as they were."""
        missing = [k for k in _STATE_KEYS if k not in state]
        if missing:
            raise ValueError(f"not a qbm_pyro training checkpoint: the keys {missing} are missing")
        if state["format"] == "qbm_pyro.checkpoint.v1":
            raise ValueError(
                "this checkpoint was written by an earlier qbm_pyro, whose optimiser state was "
                "stored per parameter; finish that run with the version that started it, or start "
                "afresh (resume=False)"
            )
        if state["format"] != CHECKPOINT_FORMAT:
            raise ValueError(
                f"unsupported checkpoint format {state['format']!r} (expected {CHECKPOINT_FORMAT!r})"
            )
        sampler = self._prior_sampler
        backup = self._snapshot()
        backup_optimizer = copy.deepcopy(self.optimizer.state_dict())
        try:
            self.module.load_state_dict(state["module"])
            self.optimizer.load_state_dict(state["optimizer"])
            if sampler is not None and state["sampler"]:
                sampler.load_state_dict(state["sampler"])
            if self.module.prior is not None:  # (absent from older checkpoints: AIS runs anew)
                self.module.prior.load_ais_state(state.get("log_z_run") or {})
        except (RuntimeError, ValueError, KeyError, TypeError) as err:
            self._restore(backup)
            self.optimizer.load_state_dict(backup_optimizer)
            raise ValueError(
                "the checkpoint does not fit this model (written by a model with other sizes, "
                f"modalities, prior or sampler?): {type(err).__name__}: {err}"
            ) from err
        self.epoch = int(state["epoch"])
        self._mixing.resume(sampler)  # the next epoch's mixing window starts at the restored totals
        self.history = state["history"]
        self.best_loss = float(state["best_loss"])
        self.best_state = state["best_state"]
        self.bad_epochs = int(state["bad_epochs"])

    def checkpoint(self) -> None:
        """Write :meth:`state` to ``config.checkpoint_path`` (atomically) if it is set."""
        if self.config.checkpoint_path:
            atomic_torch_save(self.state(), self.config.checkpoint_path)

    def _snapshot(self) -> dict:
        sampler = self._prior_sampler
        return {
            "module": {k: v.detach().clone() for k, v in self.module.state_dict().items()},
            "sampler": copy.deepcopy(sampler.state_dict()) if sampler is not None else {},
        }

    def _restore(self, snapshot: dict) -> None:
        self.module.load_state_dict(snapshot["module"])
        sampler = self._prior_sampler
        if sampler is not None and snapshot["sampler"]:
            sampler.load_state_dict(snapshot["sampler"])

    # ------------------------------------------------------------------ loop

    def _loader(self, indices, shuffle, seed, batch_size: int | None = None):
        return MinibatchLoader(
            self.data,
            self.registry,
            batch_size=batch_size or self.config.batch_size,
            shuffle=shuffle,
            seed=seed,
            indices=indices,
        )

    def _kl_weight(self, epoch: int) -> float:
        return min(1.0, (epoch + 1) / self.config.kl_warmup_epochs)

    def _numerical_error(self, what: str, epoch: int) -> NumericalError:
        """Put the model back at the last good state (end of the previous epoch) and describe."""
        if self._good is not None:
            self._restore(self._good)
        cfg = self.config
        where = f"the end of epoch {epoch - 1}" if epoch > 0 else "its state before training"
        kept = f"; {cfg.checkpoint_path} holds that state" if cfg.checkpoint_path and epoch > 0 else ""
        return NumericalError(
            f"{what} in epoch {epoch} ({self._phase}); training stopped. "
            f"The model is back at {where}{kept}. Likely causes: a learning rate too high "
            f"(lr={cfg.lr:g}; try {cfg.lr / 10:g}), inputs that are not raw counts or hold extreme "
            "values, or a prior sampler returning bad samples. To go on, call train again with "
            "a lower lr (with checkpoint_path=..., resume=True to continue from the checkpoint).",
            epoch=epoch,
        )

    def _loss(self, batch: dict, kl_weight: float = 1.0) -> torch.Tensor:
        """The ELBO loss of a minibatch with the latent sites' KL scaled by ``kl_weight``; a
        distribution refusing non-finite or out-of-range parameters (what diverging weights look
        like first) is a :class:`NumericalError`."""
        try:
            # = AnalyticKL_ELBO().differentiable_loss(module.model, module.guide, ...), untraced
            beta = self.config.continuous_kl_weight  # the Gaussian units' KL weighed β times
            weights = kl_weight if beta == 1.0 else {"z": kl_weight, "c": beta * kl_weight}
            return self.module.loss(
                batch,
                weights,
                kl_balance=self.config.kl_balance,
                free_bits=self.config.continuous_free_bits or None,  # nats per Gaussian unit
            )
        except ValueError as err:
            if "to satisfy the constraint" not in str(err):
                raise
            first = str(err).strip().splitlines()[0]
            raise self._numerical_error(
                f"a distribution got invalid parameters ({first[:200]})", self.epoch
            ) from err

    def evaluate(self, indices: np.ndarray) -> float:
        """Mean negative ELBO per cell (KL weight 1) over ``indices``, in eval mode: the training
        objective (its ``likelihood_weights``, ``continuous_kl_weight`` and ``continuous_free_bits``),
        which early stopping follows."""
        if len(indices) == 0:
            return math.nan
        self.module.eval()
        self._phase = "validation"
        total = 0.0
        with torch.no_grad():
            # no gradients: larger minibatches, fewer Python round trips (same per-cell losses)
            for batch in self._loader(indices, False, None, max(self.config.batch_size, EVAL_BATCH_SIZE)):
                total += float(self._loss(batch_to(batch, self.device)))
        self.module.train()
        return total / len(indices)

    @property
    def device(self) -> torch.device:
        """The module's device; minibatches are moved there."""
        return next(self.module.parameters()).device

    def _training_batch(self, batch: dict) -> dict:
        """A training minibatch on the module's device, its encoder masks drawn by
        ``modality_dropout`` (:func:`~qbm_pyro.module.modality_dropout.drop_modalities`)."""
        return drop_modalities(batch_to(batch, self.device), self.module.n_vars, self.config.modality_dropout)

    def step(self, batch: dict, kl_weight: float = 1.0) -> float:
        """One optimiser step on a minibatch; returns the summed loss of its cells.

        Raises :class:`NumericalError` (after restoring the last good state) when the loss or a
        gradient is not finite; the parameters are never updated with a non-finite gradient.
        """
        self._step += 1
        self._phase = f"training step {self._step} of the epoch"
        self.flat.zero_grad()
        batch = self._training_batch(batch)
        # Distribution argument checks cost a quarter of a small model's step; the data were
        # checked at setup, a diverging parameter shows up as a non-finite loss or gradient just
        # below, and the validation pass (checks on) names the distribution.
        with pyro.validation_enabled(False):
            loss = self._loss(batch, kl_weight)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise self._numerical_error(f"the loss became {value}", self.epoch)
        (loss / batch["index"].shape[0]).backward()
        self.flat.collect()
        if not self.flat.grads_finite():
            for name, p in self.module.named_parameters():  # one norm per buffer; name the culprit
                if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
                    raise self._numerical_error(f"the gradient of {name!r} became non-finite", self.epoch)
        self.optimizer.step()
        prior = self.module.prior
        if prior is not None:
            prior.clamp_()
        return value

    def train_epoch(self, epoch: int) -> float:
        """One pass over the training cells, seeded by ``(seed, epoch)``; mean loss per cell."""
        seed = self.config.seed * 100_003 + epoch
        torch.manual_seed(seed)
        self.module.train()
        kl_weight = self._kl_weight(epoch)
        self._step = 0
        total = sum(self.step(batch, kl_weight) for batch in self._loader(self.train_indices, True, seed))
        return total / len(self.train_indices)

    def end_epoch(self, epoch: int, train_loss: float, started: float | None = None) -> bool:
        """Refresh log Z, validate, record history, checkpoint; returns whether to stop.

        ``started``: ``time.perf_counter()`` at the start of the epoch, for
        ``history["epoch_seconds"]`` (the epoch's wall time, validation included)."""
        self.flat.check()  # the parameters still live in the optimiser's buffers
        prior = self.module.prior
        if prior is not None:
            exact = prior.n_latent <= prior.exact_max_n  # cheap: refresh every epoch
            if exact or (epoch + 1) % self.config.log_z_every == 0:
                prior.refresh_log_z()
            else:  # the last AIS run continued to this epoch's prior (a new run if too far)
                prior.track_log_z()
        validation_loss = self.evaluate(self.validation_indices)
        if len(self.validation_indices) and not math.isfinite(validation_loss):
            warnings.warn(
                f"the validation loss is {validation_loss} in epoch {epoch} (the training loss is "
                "finite); this epoch does not count for early stopping",
                RuntimeWarning,
                stacklevel=2,
            )
        self.epoch = epoch + 1
        kl = self._kl_weight(epoch)
        record = {
            "epoch": epoch,
            "train_loss": train_loss,
            "validation_loss": validation_loss,
            "kl_weight": kl,
            "log_z": float(prior.log_z) if prior is not None else math.nan,
            "sampler_fallbacks": self._count_fallbacks(epoch),
            **self._mixing.record(self._prior_sampler, epoch),  # swap_acceptance, round_trips
            "epoch_seconds": math.nan if started is None else time.perf_counter() - started,
        }
        for key, value in record.items():
            self.history.setdefault(key, []).append(value)
        stop = self._stop(validation_loss)
        self.checkpoint()
        self._good = self._snapshot()
        if stop:
            log.info("early stopping after epoch %d (best validation loss %.2f)", epoch, self.best_loss)
        return stop

    def _count_fallbacks(self, epoch: int) -> int:
        """Calls of a :class:`~qbm_pyro.samplers.FallbackSampler` answered by its fallback so
        far (0 for other samplers); warns loudly at the first epoch that had any."""
        sampler = self._prior_sampler
        total = int(getattr(sampler, "n_fallbacks", 0) or 0)
        before = self.history.get("sampler_fallbacks") or [0]
        if total and not before[-1]:
            message = (
                f"{type(sampler.primary).__name__} failed in epoch {epoch}: {total} negative-phase "
                f"sampling call(s) fell back to {type(sampler.fallback).__name__}; training goes on "
                "with it (the running total is in history['sampler_fallbacks'])"
            )
            log.warning(message)
            warnings.warn(message, SamplerFallbackWarning, stacklevel=3)
        return total

    def run(self) -> dict:
        """Train from ``self.epoch`` to ``max_epochs`` (or early stop); restores the best state.

        The caller's global torch random state is left as it was (the epochs seed a fork of it).
        """
        cfg = self.config
        self._good = self._snapshot()
        with torch.random.fork_rng(devices=[]):
            bar = tqdm(
                range(self.epoch, cfg.max_epochs),
                desc="training",
                disable=not cfg.progress_bar,
                initial=self.epoch,
                total=cfg.max_epochs,
            )
            for epoch in bar:
                start = time.perf_counter()
                train_loss = self.train_epoch(epoch)
                stop = self.end_epoch(epoch, train_loss, started=start)
                bar.set_postfix(
                    loss=f"{train_loss:.1f}",
                    val=f"{self.history['validation_loss'][-1]:.1f}",
                    kl_w=f"{self.history['kl_weight'][-1]:.2f}",
                )
                if stop:
                    break
            bar.close()
        if self.best_state is not None and self.config.restore_best:
            self.module.load_state_dict(self.best_state)
        self.prior_refit = self.refit_prior()
        return self.history

    # ------------------------------------------------------------------ the prior's last fit

    def _aggregate_moments(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Sums over the training cells of the posterior probabilities ``q`` and of ``q qᵀ``
        (eval mode, float64), and the number of cells."""
        n = self.module.n_binary
        total, outer, count = torch.zeros(n, dtype=torch.float64), torch.zeros(n, n, dtype=torch.float64), 0
        self.module.eval()
        with torch.no_grad():
            for batch in self._loader(self.train_indices, False, None, EVAL_BATCH_SIZE):
                q = torch.sigmoid(self.module.encode(batch_to(batch, self.device))["logits"]).double().cpu()
                total += q.sum(0)
                outer += q.T @ q
                count += q.shape[0]
        self.module.train()
        return total, outer, count

    def refit_prior(self) -> dict | None:
        """Fit the Boltzmann prior to convergence on the aggregate posterior of the final encoder
        (``BoltzmannPrior.fit_moments``, ``prior_refit_steps`` steps):
        the encoder and decoder are not touched, so the latent is what training left, and the
        training cells' ELBO can only rise (up to the sampler's noise). Skipped (``None``) with
        ``prior_refit_steps=0``, a fixed or frozen prior (a query model's), a prior with hidden
        units, or no binary units.

        Returns
        -------
        The fit's gaps (``fit_moments``) and the validation loss before and after (NaN without
        a validation set).
        """
        prior = self.module.prior
        steps = self.config.prior_refit_steps
        if steps == 0 or prior is None or not prior.learnable or prior.frozen or prior.structure == "hidden":
            return None
        total, outer, count = self._aggregate_moments()
        if count == 0:
            return None
        self._phase = "the prior's last fit"
        before = self.evaluate(self.validation_indices)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            gaps = prior.fit_moments(total / count, outer / count, n_steps=steps)  # (upper triangle used)
        prior.refresh_log_z()
        return gaps | {
            "steps": steps,
            "validation_loss_before": before,
            "validation_loss_after": self.evaluate(self.validation_indices),
        }

    def _stop(self, validation_loss: float) -> bool:
        """Track the best state and decide on early stopping.

        Both follow the validation loss, the negative ELBO at KL weight 1, from the first epoch
        on, warm-up included (as scvi-tools' early stopping on ``elbo_validation``): the state
        kept is the one that fits held-out cells best, whatever the KL weight it was trained at.
        """
        if not math.isfinite(validation_loss):
            return False
        if validation_loss < self.best_loss:
            self.best_loss = validation_loss
            if self.config.restore_best:
                self.best_state = copy.deepcopy(self.module.state_dict())
            self.bad_epochs = 0
            return False
        self.bad_epochs += 1
        return self.config.early_stopping and self.bad_epochs >= self.config.patience
