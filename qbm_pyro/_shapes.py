"""Shape arithmetic without torch's symbolic-shape machinery.

``torch.broadcast_shapes`` imports ``torch.fx.experimental.symbolic_shapes`` (and with it sympy:
about a second) on its first call, then costs tens of microseconds per call; distributions built
on every training step call it. :func:`broadcast_shapes` gives the same answer from numpy's
implementation of the broadcasting rule.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["broadcast_shapes"]


def broadcast_shapes(*shapes) -> torch.Size:
    """The broadcast of ``shapes`` (as ``torch.broadcast_shapes``).

    Raises
    ------
    ValueError
        The shapes do not broadcast (the message names them).
    """
    try:
        return torch.Size(np.broadcast_shapes(*(tuple(s) for s in shapes)))
    except ValueError as err:
        raise ValueError(f"shapes {[tuple(s) for s in shapes]} do not broadcast") from err
