"""Warnings for outputs of a model that is not (well) trained.

scvi-tools warns when an output is asked of a model before ``train()``; so does ``QBMVAE``
(:class:`NotTrainedWarning`). After ``train()``, :func:`check_fit` looks for two signs that the
fit has clearly not converged (:class:`NotConvergedWarning`):

* **the loss is still falling fast**: training ran to ``max_epochs`` (no early stop) and over the
  last epochs after the KL warm-up the validation loss (the training loss without validation
  cells) still fell by more than ``MAX_RELATIVE_FALL`` of itself per ``TAIL_EPOCHS``
  epochs (a least-squares slope, so single noisy epochs do not decide);
* **the decoder ignores its code**: decoded at the posterior means of up to
  ``N_PROBE_CELLS`` training cells (all in one batch level), the values of every feature
  barely differ between cells: the 99th percentile over features of the standard deviation of
  ``log2`` decoded values is below ``MIN_DECODED_SPREAD``. Such a model gives flat fold
  changes, so differential expression calls nothing, and every cell the same denoised profile.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ._constants import REGISTRY_KEYS

__all__ = [
    "MAX_RELATIVE_FALL",
    "MIN_DECODED_SPREAD",
    "N_PROBE_CELLS",
    "TAIL_EPOCHS",
    "NotConvergedWarning",
    "NotTrainedWarning",
    "check_fit",
    "decoded_spread",
    "loss_fall_rate",
    "warn_if_untrained",
]

#: Epochs of the loss curve's tail whose slope is checked.
TAIL_EPOCHS = 20
#: Largest relative fall of the loss over ``TAIL_EPOCHS`` epochs of a converged fit.
MAX_RELATIVE_FALL = 0.01
#: Smallest spread (sd of log2 decoded values, 99th percentile over features) of a decoder that
#: uses its code.
MIN_DECODED_SPREAD = 0.05
#: Training cells decoded to measure the spread.
N_PROBE_CELLS = 256

#: Outputs that need the encoder and prior only (a frozen query model has the reference's).
_ENCODER_OUTPUTS = ("get_latent_representation", "get_energy")


class NotTrainedWarning(UserWarning):
    """An output was asked of a model that has not been trained."""


class NotConvergedWarning(UserWarning):
    """The fit has clearly not converged (see :func:`check_fit`)."""


def warn_if_untrained(model, what: str, *, stacklevel: int = 3) -> None:
    """Warn (:class:`NotTrainedWarning`) that ``what`` is computed with an untrained model.

    A query model of :meth:`~qbm_pyro.QBMVAE.load_query_data` with ``freeze=True`` has the
    reference's trained encoders and prior, so its latent (``get_latent_representation``,
    ``get_energy``) needs no training; with nothing to train (no new batch level) nothing warns.
    """
    if model.is_trained_:
        return
    mapping = getattr(model, "mapping_", None)
    if mapping and mapping.get("freeze") and (what in _ENCODER_OUTPUTS or mapping.get("n_trainable") == 0):
        return
    warnings.warn(
        f"{type(model).__name__}.{what} is computed with a model that has not been trained (its "
        "weights are random); call model.train() first",
        NotTrainedWarning,
        stacklevel=stacklevel,
    )


def loss_fall_rate(history: dict, tail: int = TAIL_EPOCHS) -> float | None:
    """Relative fall of the loss per ``tail`` epochs at the end of training (positive: falling).

    The least-squares slope of the last ``tail`` epochs with full KL weight, times ``tail``,
    divided by the magnitude of the loss there; the validation loss, or the training loss when
    there is none. ``None`` when fewer than 5 such epochs were run.
    """
    kl = np.asarray(history.get("kl_weight", []), dtype=float)
    for key in ("validation_loss", "train_loss"):
        loss = np.asarray(history.get(key, []), dtype=float)
        if len(loss) == len(kl) and len(loss) and np.isfinite(loss[kl >= 1.0]).any():
            break
    else:
        return None
    keep = (kl >= 1.0) & np.isfinite(loss)
    y = loss[keep][-tail:]
    if len(y) < 5:
        return None
    x = np.arange(len(y), dtype=float)
    slope = np.polyfit(x, y, 1)[0]
    return float(-slope * tail / max(abs(float(np.median(y))), 1e-12))


@torch.no_grad()
def decoded_spread(model, n_cells: int = N_PROBE_CELLS, seed: int = 0) -> dict[str, float]:
    """Per modality name: the 99th percentile over features of the sd over cells of ``log2``
    decoded values (posterior means of up to ``n_cells`` training cells, decoded in the first
    batch level so that batch effects do not count)."""
    module = model.module
    cells = model.train_indices_ if model.train_indices_ is not None else np.arange(model.registry.n_obs)
    cells = np.asarray(cells)
    if len(cells) > n_cells:
        cells = np.sort(np.random.default_rng(seed).choice(cells, n_cells, replace=False))
    was_training = module.training
    module.eval()
    try:
        batch = model._loader().batch(cells)
        level = 0 if module.n_batch else None
        out = {}
        for name, spec in model.registry.modalities.items():
            has = batch[REGISTRY_KEYS.mask_key(spec.kind)].bool()
            if int(has.sum()) < 2:
                continue
            values = module.normalized_expression(batch, spec.kind, use_mean=True, transform_batch=level)
            logs = torch.log2(values[has].double().clamp_min(1e-30))
            out[name] = float(torch.quantile(logs.std(0), 0.99))
        return out
    finally:
        module.train(was_training)


def check_fit(model, *, stopped_early: bool, stacklevel: int = 3) -> None:
    """Warn (:class:`NotConvergedWarning`) about a fit that has clearly not converged."""
    problems = []
    rate = None if stopped_early else loss_fall_rate(model.history_)
    if rate is not None and rate > MAX_RELATIVE_FALL:
        problems.append(
            f"the loss still fell by {rate:.1%} over the last {TAIL_EPOCHS} epochs (more than "
            f"{MAX_RELATIVE_FALL:.0%}); train for more epochs"
        )
    flat = {name: s for name, s in decoded_spread(model).items() if s < MIN_DECODED_SPREAD}
    if flat:
        shown = ", ".join(f"{name}: {s:.3f}" for name, s in flat.items())
        problems.append(
            "the decoder ignores its latent input: decoded values barely differ between cells "
            f"(sd of log2 values, 99th percentile over features, {shown} < {MIN_DECODED_SPREAD}), so "
            "fold changes are flat and differential expression calls nothing; train for more epochs"
        )
    if problems:
        warnings.warn(
            "the fit has not converged: " + "; ".join(problems), NotConvergedWarning, stacklevel=stacklevel
        )
