"""Torch files that are written atomically and read back safely.

:func:`atomic_torch_save` writes through a temporary file, ``fsync`` and a rename, with a checksum
of a dict payload's contents; :func:`load_torch_file` reads with ``torch.load(weights_only=True)``
(no code can run) and turns every kind of damage into a ``ValueError`` naming the file. Used by
training checkpoints (:mod:`qbm_pyro.training`) and model files (:mod:`qbm_pyro.model`).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

__all__ = ["CHECKSUM_KEY", "atomic_torch_save", "atomic_write", "checksum", "load_torch_file"]

#: Key of the content checksum that :func:`atomic_torch_save` adds to a dict payload.
CHECKSUM_KEY = "_checksum"


def _feed(hasher, obj) -> None:
    """Hash ``obj`` (nested dicts, lists, tensors and scalars) by value, type-agnostically for
    containers, so that what ``torch.load`` returns hashes like what was saved."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous().reshape(-1)
        hasher.update(f"T{obj.dtype}{tuple(obj.shape)}:".encode())
        if t.numel():  # an empty tensor (no validation cells) may have stride 0, which view refuses
            hasher.update(t.view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, Mapping):
        hasher.update(f"M{len(obj)}:".encode())
        for key, value in obj.items():
            _feed(hasher, key)
            _feed(hasher, value)
    elif isinstance(obj, list | tuple):
        hasher.update(f"L{len(obj)}:".encode())
        for value in obj:
            _feed(hasher, value)
    else:
        hasher.update(f"S{obj!r};".encode())


def checksum(obj) -> str:
    """SHA-256 of the contents of a payload (see :func:`atomic_torch_save`)."""
    hasher = hashlib.sha256()
    _feed(hasher, obj)
    return hasher.hexdigest()


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Write a file so that readers see the old one or the new one, never a partial one.

    ``write(tmp)`` writes a temporary file beside ``path`` (same folder and suffix, so the same
    file system and format); it is then ``fsync``-ed and renamed over ``path``. On any error
    (``KeyboardInterrupt`` included) the temporary file is removed and ``path`` is untouched.

    Parameters
    ----------
    path
        The destination.
    write
        Writes the whole content to the path it is given.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` atomically (:func:`atomic_write`: temporary file, ``fsync``,
    rename), so that a reader, a crash or ``SIGKILL`` at any moment sees either the old file or
    the new one. A dict payload gets a checksum of its contents under ``"_checksum"``, verified
    by :func:`load_torch_file`.
    """
    if isinstance(obj, dict):
        obj = {k: v for k, v in obj.items() if k != CHECKSUM_KEY}
        obj[CHECKSUM_KEY] = checksum(obj)
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_torch_file(path: str | os.PathLike, *, what: str) -> dict:
    """Read a dict written by :func:`atomic_torch_save` with ``torch.load(weights_only=True)``.

    Parameters
    ----------
    path
        The file.
    what
        What the file should be (``"model file"``, ``"checkpoint"``), for the messages.

    Returns
    -------
    dict
        The payload, without its checksum.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is truncated, corrupted, not a torch file, holds objects outside the
        ``weights_only`` allow-list (which could run code: they are refused, never run), is not a
        dict, or its contents do not match its checksum.
    """
    path = Path(path)
    if not path.is_file():
        extra = " (that is a directory)" if path.is_dir() else ""
        raise FileNotFoundError(f"no {what} at {path}{extra}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError:
        raise
    except Exception as err:  # the unpickler and zip reader raise many types; all mean "bad file"
        unsafe = re.search(r"GLOBAL ([\w.]+)", str(err)) if "Weights only load failed" in str(err) else None
        detail = (
            f"it holds objects outside torch's weights_only allow-list (first: {unsafe.group(1)}), "
            "which could run code"
            if unsafe
            else f"{type(err).__name__}: {err}"
        )
        raise ValueError(
            f"{path} is not a valid qbm_pyro {what} (truncated, corrupted or not written by "
            f"qbm_pyro; unsafe content is refused, never run): {detail}"
        ) from err
    if not isinstance(payload, dict):
        raise ValueError(
            f"{path} is not a valid qbm_pyro {what}: expected a dict, got {type(payload).__name__}"
        )
    expected = payload.pop(CHECKSUM_KEY, None)
    if expected is not None and expected != checksum(payload):
        raise ValueError(
            f"{path} is not a valid qbm_pyro {what}: its contents do not match the checksum "
            "written with it (the file was damaged or edited)"
        )
    return payload
