"""Trainable parameters kept in one contiguous buffer per optimiser group.

A small model's training step on CPU is dominated by per-tensor overhead, not arithmetic: Adam,
zeroing the gradients and the finite-gradient check each touch every parameter tensor (about 20 to
30 here). :class:`FlatParameters` re-seats each group's parameters as views into one buffer and
their gradients as views into one gradient buffer, so that the optimiser steps one tensor per
group, the gradient check is one norm per group, and a data-parallel run all-reduces the buffers
in place. Autograd accumulates into the gradient views in place, and every update is elementwise,
so the numbers are those of the per-parameter optimiser.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FlatParameters"]


class FlatParameters:
    """The trainable parameters of optimiser groups, flattened (see the module docstring).

    Parameters
    ----------
    groups
        Optimiser parameter groups (dicts with ``"params"`` and optional options such as
        ``"lr"``). Parameters that do not require a gradient are left out; a group with none is
        dropped.

    Attributes
    ----------
    groups : list of dict
        The groups for the optimiser: each with one flat :class:`~torch.nn.Parameter` (whose
        ``grad`` is the gradient buffer) and the original group's options.

    Notes
    -----
    Replacing a parameter's tensor after flattening (``module.to(...)``, ``load_state_dict(...,
    assign=True)``) detaches it from the buffer; :meth:`check` reports that. In-place updates
    (``load_state_dict`` without ``assign``, ``clamp_``) are seen by the buffer.
    """

    def __init__(self, groups: list[dict]):
        self.groups: list[dict] = []
        self._views: list[tuple[nn.Parameter, torch.Tensor]] = []
        self._homes: list[tuple[nn.Parameter, nn.Parameter, int]] = []  # (param, buffer, offset)
        for group in groups:
            params = [p for p in group["params"] if p.requires_grad]
            if not params:
                continue
            flat = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
            flat.grad = torch.zeros_like(flat)
            offset = 0
            for p in params:
                size = p.numel()
                p.data = flat.data[offset : offset + size].view_as(p)
                view = flat.grad[offset : offset + size].view_as(p)
                p.grad = view
                self._views.append((p, view))
                self._homes.append((p, flat, offset))
                offset += size
            self.groups.append({**group, "params": [flat]})

    @property
    def buffers(self) -> list[nn.Parameter]:
        """The flat parameters, one per group (their ``grad`` is the gradient buffer)."""
        return [group["params"][0] for group in self.groups]

    def zero_grad(self) -> None:
        """Zero the gradient buffers (every parameter's gradient is a view into one)."""
        for flat in self.buffers:
            flat.grad.zero_()
        self.collect()

    def collect(self) -> None:
        """Put back into the buffers any gradient that is not a view of them any more (set to
        ``None`` or replaced by other code, e.g. ``module.zero_grad()``)."""
        for p, view in self._views:
            if p.grad is not view:
                if p.grad is None:
                    view.zero_()
                else:
                    view.copy_(p.grad)
                p.grad = view

    def grads_finite(self) -> bool:
        """Whether every gradient is finite (one norm per group)."""
        norms = [flat.grad.norm() for flat in self.buffers]
        return not norms or bool(torch.isfinite(torch.stack(norms)).all())

    def check(self) -> None:
        """Raise ``RuntimeError`` if a parameter no longer lives in its buffer."""
        for p, flat, offset in self._homes:
            if p.data_ptr() != flat.data_ptr() + offset * flat.element_size():
                raise RuntimeError(
                    f"a parameter of shape {tuple(p.shape)} was replaced during training (by "
                    "module.to(), load_state_dict(assign=True) or similar), so the optimiser no "
                    "longer updates it; move or load the model before training, not during it"
                )
