"""Where a model computes: ``accelerator="auto" | "cpu" | "cuda" | "gpu"`` and an optional ``device``.

``"gpu"`` is Lightning's and scvi-tools' name for ``"cuda"``.

The module, the minibatches, the torch samplers' persistent chains and the prior's log Z all
live on that device. Files are always written and read on the CPU side (``map_location="cpu"``),
so a model trained on a GPU loads on a machine without one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch

__all__ = ["ACCELERATORS", "batch_to", "keep_torch_threads", "resolve_device"]

ACCELERATORS = ("auto", "cpu", "cuda", "gpu")


def resolve_device(accelerator: str = "auto", device: str | int | torch.device | None = None) -> torch.device:
    """The ``torch.device`` for an ``accelerator`` and an optional ``device``.

    Parameters
    ----------
    accelerator
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, or ``"cuda"`` (also spelled
        ``"gpu"``, as in Lightning and scvi-tools).
    device
        A device index (``0``), a name (``"cuda:1"``) or a ``torch.device``; default the
        accelerator's current device.

    Raises
    ------
    ValueError
        Unknown accelerator, or a ``device`` of another kind than the accelerator.
    RuntimeError
        ``"cuda"`` asked for on a machine where CUDA is not available.
    """
    if accelerator not in ACCELERATORS:
        raise ValueError(f"accelerator must be one of {list(ACCELERATORS)}, got {accelerator!r}")
    if accelerator == "gpu":
        accelerator = "cuda"
    if accelerator == "auto":
        if device is not None:
            accelerator = torch.device(f"cuda:{device}" if isinstance(device, int) else device).type
        else:
            accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    if accelerator == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "accelerator='cuda' was asked for, but CUDA is not available here (torch "
            f"{torch.__version__}, built with CUDA {torch.version.cuda}); use accelerator='cpu' or 'auto'"
        )
    if device is None:
        return torch.device(accelerator)
    out = torch.device(f"{accelerator}:{device}" if isinstance(device, int) else device)
    if out.type != accelerator:
        raise ValueError(f"device {str(out)!r} does not match accelerator={accelerator!r}")
    return out


def batch_to(batch: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """A minibatch dict with every tensor on ``device`` (the same dict's tensors on CPU)."""
    if device.type == "cpu":
        return dict(batch)
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@contextmanager
def keep_torch_threads() -> Iterator[None]:
    """Put torch's intra-op thread count back to its value on entry when the block ends.

    numba's OpenMP threading layer, which scanpy's neighbour graph (through UMAP's numba code) and
    pynndescent run on, shares the process's OpenMP runtime with torch and sets its thread count
    to the number of cores: after ``sc.pp.neighbors``, a process that had called
    ``torch.set_num_threads(1)`` trains with 2 threads on a 2-core machine, and a fit that should
    repeat bit for bit (same seed, settings and thread count) drifts at float rounding (measured:
    the same paul15 fit stopped after 272 instead of 326 epochs). The verbs and metrics of this
    package that call such code run inside this guard, so they leave the user's setting as it was.
    """
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
