"""The save format of a model: the one writer and the one reader of ``model.pt``.

:meth:`QBMVAE.save <qbm_pyro.QBMVAE.save>` writes through :func:`write_model_file`;
:meth:`QBMVAE.load <qbm_pyro.QBMVAE.load>` and reference mapping (a saved folder as reference)
read through :func:`read_model_file`. A model file is data: it is read with
``torch.load(weights_only=True)`` and sets only the attributes listed in ``SAVED_ATTRIBUTES``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from ..samplers.serialize import sampler_to_config
from ..torch_files import atomic_torch_save, load_torch_file

__all__ = ["SAVED_ATTRIBUTES", "SAVE_KEYS", "SavedModel", "read_model_file", "write_model_file"]


class _SAVE_KEYS_NT(NamedTuple):  # noqa: N801 (scvi-tools naming)
    MODEL_FNAME: str = "model.pt"
    CLASS_NAME: str = "class_name"
    STATE_DICT: str = "state_dict"
    SAMPLER_STATE: str = "sampler_state"
    SAMPLER_CONFIG: str = "sampler_config"
    INIT_ARGS: str = "init_args"
    SETUP_ARGS: str = "setup_args"
    VAR_NAMES: str = "var_names"
    ATTRIBUTES: str = "attributes"
    BATCH_CATEGORIES: str = "batch_categories"


#: Names of the entries of ``model.pt`` (as scvi-tools' ``SAVE_KEYS``).
SAVE_KEYS = _SAVE_KEYS_NT()

#: The attributes ``save`` stores and ``load`` sets (no others).
SAVED_ATTRIBUTES = ("history_", "is_trained_", "train_indices_", "validation_indices_")


@dataclass(frozen=True)
class SavedModel:
    """The contents of a ``model.pt``, as read by :func:`read_model_file`."""

    #: Where it was read from (for messages).
    path: Path
    class_name: str
    state_dict: dict[str, torch.Tensor]
    #: The sampler's persistent state (``{}``: none) and its settings (``None``: no prior sampler).
    sampler_state: dict
    sampler_config: dict | None
    init_args: dict[str, Any]
    setup_args: dict[str, Any]
    var_names: dict[str, list[str]]
    #: ``{batch key: levels in code order}``; ``None`` for files of older versions.
    batch_categories: dict[str, tuple[str, ...]] | None
    #: ``{attribute: value}`` for the names in ``SAVED_ATTRIBUTES`` (cell positions as arrays).
    attributes: dict[str, Any] = field(default_factory=dict)


def write_model_file(model, dir_path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``model`` (weights, sampler state and settings, setup and init arguments, feature names,
    batch levels, ``SAVED_ATTRIBUTES``) to ``dir_path/model.pt`` atomically; return the file's path.

    Raises
    ------
    FileExistsError
        The file exists and ``overwrite`` is ``False``.
    """
    dir_path = Path(dir_path)
    path = dir_path / SAVE_KEYS.MODEL_FNAME
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    dir_path.mkdir(parents=True, exist_ok=True)
    prior = model.module.prior
    registry = model.registry
    payload = {
        SAVE_KEYS.CLASS_NAME: type(model).__name__,
        SAVE_KEYS.STATE_DICT: model.module.state_dict(),
        SAVE_KEYS.SAMPLER_STATE: prior.sampler.state_dict() if prior is not None else {},
        SAVE_KEYS.SAMPLER_CONFIG: sampler_to_config(prior.sampler) if prior is not None else None,
        SAVE_KEYS.INIT_ARGS: model.init_args,
        SAVE_KEYS.SETUP_ARGS: registry.setup_args,
        SAVE_KEYS.VAR_NAMES: {n: list(s.var_names) for n, s in registry.modalities.items()},
        SAVE_KEYS.BATCH_CATEGORIES: {k: list(v) for k, v in registry.batch_categories.items()},
        SAVE_KEYS.ATTRIBUTES: {
            "history_": model.history_,
            "is_trained_": model.is_trained_,
            "train_indices_": _as_tensor(model.train_indices_),
            "validation_indices_": _as_tensor(model.validation_indices_),
        },
    }
    atomic_torch_save(payload, path)
    return path


def read_model_file(dir_path: str | Path, class_name: str) -> SavedModel:
    """Read ``dir_path/model.pt`` written by :func:`write_model_file` for a ``class_name`` model.

    Raises
    ------
    ValueError
        The file is damaged or not a model file (a training checkpoint, a state dict...), holds
        another class of model, or sets attributes other than ``SAVED_ATTRIBUTES`` (an edited file).
    FileNotFoundError
        There is no ``model.pt`` in ``dir_path``.
    """
    path = Path(dir_path) / SAVE_KEYS.MODEL_FNAME
    payload = load_torch_file(path, what="model file")
    if SAVE_KEYS.CLASS_NAME not in payload:
        raise ValueError(
            f"{path} is not a {class_name} model file: it has no {SAVE_KEYS.CLASS_NAME!r} "
            f"(a training checkpoint, a state dict or another library's file?); "
            f"its keys: {sorted(map(str, payload))[:8]}"
        )
    if payload[SAVE_KEYS.CLASS_NAME] != class_name:
        raise ValueError(f"{path} holds a {payload[SAVE_KEYS.CLASS_NAME]!r}, not a {class_name}")
    attributes = dict(payload.get(SAVE_KEYS.ATTRIBUTES) or {})
    unknown = set(attributes) - set(SAVED_ATTRIBUTES)
    if unknown:  # a model file is data: it sets only the attributes save() writes
        raise ValueError(f"{path} sets unknown attribute(s) {sorted(unknown)}; refused (edited file?)")
    categories = payload.get(SAVE_KEYS.BATCH_CATEGORIES)
    return SavedModel(
        path=path,
        class_name=class_name,
        state_dict=payload[SAVE_KEYS.STATE_DICT],
        sampler_state=payload.get(SAVE_KEYS.SAMPLER_STATE) or {},
        sampler_config=payload.get(SAVE_KEYS.SAMPLER_CONFIG),
        init_args=dict(payload.get(SAVE_KEYS.INIT_ARGS) or {}),
        setup_args=dict(payload.get(SAVE_KEYS.SETUP_ARGS) or {}),
        var_names=dict(payload[SAVE_KEYS.VAR_NAMES]),
        batch_categories=None if categories is None else {k: tuple(v) for k, v in categories.items()},
        attributes={k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in attributes.items()},
    )


def _as_tensor(indices: np.ndarray | None) -> torch.Tensor | None:
    """Cell positions as a tensor, which ``torch.load(weights_only=True)`` reads back."""
    return None if indices is None else torch.as_tensor(np.asarray(indices, dtype=np.int64))
