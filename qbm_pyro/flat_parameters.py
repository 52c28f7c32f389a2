"""Trainable parameters kept in one contiguous buffer per optimiser group.

A small model's training step on CPU is dominated by per-tensor overhead, not arithmetic: Adam,
zeroing the gradients and the finite-gradient check each touch every parameter tensor (about 20 to
30 here). :class:`FlatParameters` re-seats each group's parameters as views into one buffer and
their gradients as views into one gradient buffer, so that the optimiser steps one tensor per
group, the gradient check is one norm per group, and a data-parallel run all-reduces the buffers
in place. Autograd accumulates into the gradient views in place, and every update is elementwise,
so the numbers are those of the per-parameter optimiser.

:class:`FlatAdam` is Adam on those buffers: torch's fused Adam kernel, or ``torch.optim.Adam``'s
single-tensor update operation for operation (tests check both are bit-identical to
``torch.optim.Adam``). It exists because building any
``torch.optim`` optimiser imports torch's compiler stack (``torch._dynamo``: about 2.5 s, paid by
every process's first fit) and ``Adam.step`` spends about 0.1 ms per call in bookkeeping, a few
percent of a small model's step.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["FlatAdam", "FlatParameters"]

#: torch's fused Adam kernel (a native operator: using it imports nothing), if this torch has it.
_FUSED_ADAM = getattr(torch, "_fused_adam_", None)


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
    """Adam (Kingma and Ba, 2015) on the buffers of a :class:`FlatParameters`.

    The update is ``torch.optim.Adam``'s (``fused=True``, or ``foreach=False``) with L2 weight
    decay added to the gradient, step for step; each group keeps its own ``lr`` and
    ``weight_decay``.

    Parameters
    ----------
    flat
        The flattened parameters; each of ``flat.groups`` may set ``lr`` and ``weight_decay``.
    lr, betas, eps, weight_decay
        Defaults for groups that do not set them, as for ``torch.optim.Adam``.
    fused
        Update each buffer with torch's fused Adam kernel (one pass over memory, as
        ``torch.optim.Adam(fused=True)``); ``False``: the single-tensor update's six operations
        (as ``foreach=False``). ``None``: fused where torch has the kernel for the buffers' device.
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
        self.param_groups = [
            {
                "params": group["params"],
                "lr": float(group.get("lr", lr)),
                "betas": tuple(betas),
                "eps": float(eps),
                "weight_decay": float(group.get("weight_decay", weight_decay)),
            }
            for group in flat.groups
        ]
        self.steps = 0
        self.exp_avg = [torch.zeros_like(buffer) for buffer in flat.buffers]
        self.exp_avg_sq = [torch.zeros_like(buffer) for buffer in flat.buffers]
        kernel_everywhere = _FUSED_ADAM is not None and all(
            b.device.type in ("cpu", "cuda") and b.dtype in (torch.float32, torch.float64)
            for b in flat.buffers
        )
        if fused and not kernel_everywhere:
            raise ValueError("torch has no fused Adam kernel for these buffers' device or dtype")
        self.fused = kernel_everywhere if fused is None else bool(fused)
        # the step count as torch's fused kernel reads it (a float32 scalar per buffer)
        self._step_tensors = [torch.zeros((), dtype=torch.float32, device=b.device) for b in flat.buffers]

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update of every buffer from its gradient."""
        self.steps += 1
        parts = zip(self.param_groups, self.exp_avg, self.exp_avg_sq, self._step_tensors)
        for group, exp_avg, exp_avg_sq, step_tensor in parts:
            param = group["params"][0]
            beta1, beta2 = group["betas"]
            if self.fused:
                step_tensor.fill_(self.steps)
                _FUSED_ADAM(
                    [param],
                    [param.grad],
                    [exp_avg],
                    [exp_avg_sq],
                    [],
                    [step_tensor],
                    amsgrad=False,
                    lr=group["lr"],
                    beta1=beta1,
                    beta2=beta2,
                    weight_decay=group["weight_decay"],
                    eps=group["eps"],
                    maximize=False,
                )
                continue
            grad = param.grad
            if group["weight_decay"] != 0:
                grad = grad.add(param, alpha=group["weight_decay"])
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            bias_correction1 = 1 - beta1**self.steps
            bias_correction2_sqrt = (1 - beta2**self.steps) ** 0.5
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(group["eps"])
            param.addcdiv_(exp_avg, denom, value=-group["lr"] / bias_correction1)

    def zero_grad(self, set_to_none: bool = False) -> None:  # noqa: ARG002 (the buffers stay)
        """Zero the gradient buffers (they are never set to ``None``: the parameters' gradients
        are views into them)."""
        self.flat.zero_grad()

    def state_dict(self) -> dict:
        """Step count, moments and group settings (tensors are copies)."""
        return {
            "steps": self.steps,
            "exp_avg": [t.clone() for t in self.exp_avg],
            "exp_avg_sq": [t.clone() for t in self.exp_avg_sq],
            "param_groups": [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups],
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`; ``ValueError`` if the buffers' sizes differ."""
        sizes = [b.numel() for b in self.flat.buffers]
        saved = [t.numel() for t in state["exp_avg"]]
        if saved != sizes or [t.numel() for t in state["exp_avg_sq"]] != sizes:
            raise ValueError(f"optimiser state for buffers of sizes {saved}, this model has {sizes}")
        if not math.isfinite(state["steps"]) or state["steps"] < 0:
            raise ValueError(f"invalid optimiser step count {state['steps']!r}")
        self.steps = int(state["steps"])
        for mine, theirs in zip(self.exp_avg + self.exp_avg_sq, state["exp_avg"] + state["exp_avg_sq"]):
            mine.copy_(theirs)
        for group, saved_group in zip(self.param_groups, state["param_groups"]):
            group.update({k: (tuple(v) if k == "betas" else v) for k, v in saved_group.items()})
