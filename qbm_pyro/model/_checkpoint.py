"""What a training checkpoint says about the model that wrote it, and the check on resuming.

A checkpoint (``train(checkpoint_path=...)``) carries the model's class, its arguments, the data
setup, the cell count and the feature names; :func:`check_checkpoint` refuses one written by
another model or for other data and warns when the training settings changed.
"""

from __future__ import annotations

import warnings

from ..training import TrainingConfig, recorded_config
from ._save import SAVE_KEYS

__all__ = ["check_checkpoint", "checkpoint_meta"]


def checkpoint_meta(model) -> dict:
    """The model description a training checkpoint of ``model`` carries."""
    return {
        SAVE_KEYS.CLASS_NAME: type(model).__name__,
        SAVE_KEYS.INIT_ARGS: model.init_args,
        SAVE_KEYS.SETUP_ARGS: model.registry.setup_args,
        "n_obs": model.registry.n_obs,
        SAVE_KEYS.VAR_NAMES: {n: list(s.var_names) for n, s in model.registry.modalities.items()},
    }


def check_checkpoint(model, state: dict, cfg: TrainingConfig, path) -> None:
    """Refuse a checkpoint of another model or data (``ValueError``); warn about changed
    training settings (``UserWarning``, at the caller of ``train``)."""
    saved = state.get("meta")
    if not isinstance(saved, dict):
        raise ValueError(f"{path} is not a qbm_pyro training checkpoint (no model description)")
    mine = checkpoint_meta(model)
    differ = [k for k in mine if saved.get(k) != mine[k]]
    if differ:
        detail = "; ".join(f"{k}: checkpoint {saved.get(k)!r}, this model {mine[k]!r}" for k in differ)
        if len(detail) > 600:
            detail = detail[:600] + "..."
        raise ValueError(f"{path} was written by another model or for other data ({detail})")
    now = cfg.record()
    then = recorded_config(state.get("config"))
    changed = {k: (then.get(k), v) for k, v in now.items() if then.get(k) != v}
    if changed:
        warnings.warn(
            f"resuming {path} with other training settings {changed} (checkpoint, now); the "
            "result will differ from an uninterrupted run",
            UserWarning,
            stacklevel=3,
        )
