"""Small fully connected networks used by the encoders and decoders."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MLP", "Dropout", "one_hot_batches"]


class Dropout(nn.Dropout):
    """:class:`torch.nn.Dropout` whose CPU mask is ``U(0, 1) ≥ p`` from ``torch.rand``.

    The same distribution (each unit kept with probability ``1 - p`` and scaled by
    ``1 / (1 - p)``) in about half the time of the built-in CPU kernel's Bernoulli draw, which
    costs a small model's training step several percent; elsewhere it is the built-in one.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu" or self.p == 1:
            return super().forward(x)
        return x * torch.rand_like(x).ge_(self.p).mul_(1.0 / (1.0 - self.p))


class MLP(nn.Module):
    """``n_layers`` × (Linear → LayerNorm → ReLU → Dropout), input optionally joined with covariates.

    Parameters
    ----------
    n_input
        Input width (without covariates).
    n_hidden
        Width of every hidden layer (and of the output).
    n_layers
        Number of hidden layers (≥ 1).
    n_covariates
        Width of the one-hot covariates concatenated to the input of every layer.
    dropout
        Dropout rate.
    """

    def __init__(
        self,
        n_input: int,
        n_hidden: int,
        n_layers: int = 1,
        n_covariates: int = 0,
        dropout: float = 0.1,
    ):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        widths = [n_input] + [n_hidden] * n_layers
        self.layers = nn.ModuleList(
            nn.Sequential(
                nn.Linear(w_in + n_covariates, w_out),
                nn.LayerNorm(w_out),
                nn.ReLU(),
                Dropout(dropout),
            )
            for w_in, w_out in zip(widths[:-1], widths[1:])
        )
        self.n_covariates = n_covariates

    def forward(self, x: torch.Tensor, covariates: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x if covariates is None or self.n_covariates == 0 else torch.cat([x, covariates], -1))
        return x


def one_hot_batches(codes: torch.Tensor, n_levels: tuple[int, ...]) -> torch.Tensor:
    """Concatenated one-hot encodings of batch codes ``(B, n_keys)``; ``(B, 0)`` if no keys."""
    if not n_levels:
        return codes.new_zeros(codes.shape[0], 0, dtype=torch.float32)
    parts = [torch.nn.functional.one_hot(codes[:, k], n).float() for k, n in enumerate(n_levels)]
    return torch.cat(parts, -1)
