"""Trainable parameters kept in one contiguous buffer per optimiser group.

A small model's training step on CPU is dominated by per-tensor overhead, not arithmetic: Adam,
zeroing the gradients and the finite-gradient check each touch every parameter tensor (about 20 to
30 here). :class:`FlatParameters` re-seats each group's parameters as views into one buffer and
their gradients as views into one gradient buffer, so that the optimiser steps one tensor per
group, the gradient check is one norm per group, and a data-parallel run all-reduces the buffers
in place. Autograd accumulates into the gradient views in place, and every update is elementwise,
so the numbers are those of the per-parameter optimiser.

:class:`FlatAdam` is ``torch.optim.Adam`` (fused kernel where torch has one) on those buffers,
with a checkpoint format that names the buffers' moments.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["FlatAdam", "FlatParameters"]

#: The options of a group that :class:`FlatAdam` keeps (and saves in its checkpoints).
_GROUP_OPTIONS = ("lr", "betas", "eps", "weight_decay")


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
        """Zero the gradient buffers (every parameter's gradient is a view into one; call
        :meth:`collect` after the backward pass for any that other code replaced)."""
        for flat in self.buffers:
            flat.grad.zero_()

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


class FlatAdam:
    """``torch.optim.Adam`` on the buffers of a :class:`FlatParameters`.

    A thin wrapper: the update is torch's own (``fused=True``: one kernel pass over each buffer,
    or ``foreach=False``: the single-tensor update), with L2 weight decay added to the gradient;
    each group keeps its own ``lr`` and ``weight_decay``. What it adds is a checkpoint format
    that names the buffers' moments (``steps``, ``exp_avg``, ``exp_avg_sq``, ``param_groups``)
    and checks their sizes on loading.

    Building the first ``torch.optim`` optimiser of a process imports ``torch._dynamo`` (torch
    wraps its optimisers' methods to keep its compiler out of them); that one-off cost is part of
    the first fit's time in ``benchmarks/``.

    Parameters
    ----------
    flat
        The flattened parameters; each of ``flat.groups`` may set ``lr`` and ``weight_decay``.
    lr, betas, eps, weight_decay
        Defaults for groups that do not set them, as for ``torch.optim.Adam``.
    fused
        ``True``: torch's fused kernel (``ValueError`` where this torch has none for the buffers'
        device or dtype); ``False``: the single-tensor update; ``None``: fused where available.

    Attributes
    ----------
    adam : torch.optim.Adam
        The optimiser doing the work.
    fused : bool
        Whether it runs the fused kernel.
    """

    def __init__(
        self,
        flat: FlatParameters,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        fused: bool | None = None,
    ):
        if not lr > 0 or not 0 <= betas[0] < 1 or not 0 <= betas[1] < 1 or not eps >= 0 or weight_decay < 0:
            raise ValueError(
                f"invalid Adam settings: lr={lr}, betas={betas}, eps={eps}, weight_decay={weight_decay}"
            )
        self.flat = flat
        groups = [{k: v for k, v in g.items() if k in _GROUP_OPTIONS or k == "params"} for g in flat.groups]
        options = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}
        self.adam: torch.optim.Adam | None = None
        if fused is not False:
            try:
                self.adam = torch.optim.Adam(groups, **options, fused=True)
            except RuntimeError as err:  # no fused kernel for this device or dtype
                if fused:
                    raise ValueError(f"torch has no fused Adam kernel for these buffers: {err}") from err
        if self.adam is None:
            self.adam = torch.optim.Adam(groups, **options, foreach=False)
        self.fused = bool(self.adam.defaults["fused"])

    @property
    def param_groups(self) -> list[dict]:
        """The optimiser's groups (one flat buffer each)."""
        return self.adam.param_groups

    @property
    def steps(self) -> int:
        """Updates made so far."""
        states = [self.adam.state.get(b) for b in self.flat.buffers]
        return int(states[0]["step"]) if states and states[0] else 0

    def step(self) -> None:
        """One Adam update of every buffer from its gradient."""
        self.adam.step()

    def zero_grad(self, set_to_none: bool = False) -> None:  # noqa: ARG002 (the buffers stay)
        """Zero the gradient buffers (they are never set to ``None``: the parameters' gradients
        are views into them)."""
        self.flat.zero_grad()

    def state_dict(self) -> dict:
        """Step count, moments and group settings (tensors are copies)."""
        moments = {"exp_avg": [], "exp_avg_sq": []}
        for buffer in self.flat.buffers:
            state = self.adam.state.get(buffer) or {}
            for key, saved in moments.items():
                saved.append(state[key].clone() if key in state else torch.zeros_like(buffer.detach()))
        return {
            "steps": self.steps,
            **moments,
            "param_groups": [{k: g[k] for k in _GROUP_OPTIONS} for g in self.adam.param_groups],
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`; ``ValueError`` if the buffers' sizes differ."""
        sizes = [b.numel() for b in self.flat.buffers]
        saved = [t.numel() for t in state["exp_avg"]]
        if saved != sizes or [t.numel() for t in state["exp_avg_sq"]] != sizes:
            raise ValueError(f"optimiser state for buffers of sizes {saved}, this model has {sizes}")
        if not math.isfinite(state["steps"]) or state["steps"] < 0:
            raise ValueError(f"invalid optimiser step count {state['steps']!r}")
        groups = []
        for i, (group, saved_group) in enumerate(zip(self.adam.param_groups, state["param_groups"])):
            options = {k: v for k, v in group.items() if k != "params"}
            options.update({k: (tuple(v) if k == "betas" else v) for k, v in saved_group.items()})
            groups.append({**options, "params": [i]})
        moments = {}
        if state["steps"] > 0:
            moments = {
                i: {
                    "step": torch.tensor(float(state["steps"])),
                    "exp_avg": a.clone(),
                    "exp_avg_sq": b.clone(),
                }
                for i, (a, b) in enumerate(zip(state["exp_avg"], state["exp_avg_sq"]))
            }
        self.adam.load_state_dict({"state": moments, "param_groups": groups})
