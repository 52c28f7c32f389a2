"""Random train/validation split of cell positions."""

from __future__ import annotations

from numbers import Real

import numpy as np

from qbm_pyro._checks import check_positive_int

__all__ = ["train_validation_split"]


def train_validation_split(
    n_obs: int, validation_fraction: float = 0.1, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n_obs)`` at random into training and validation positions.

    Parameters
    ----------
    n_obs
        Number of cells.
    validation_fraction
        Fraction of cells in the validation set, in ``[0, 1)``; the validation size is
        ``round(validation_fraction * n_obs)``.
    seed
        Seed of the :class:`numpy.random.Generator`; the same seed gives the same split.

    Returns
    -------
    train : numpy.ndarray
        Sorted int64 positions, shape ``(n_obs - n_validation,)``.
    validation : numpy.ndarray
        Sorted int64 positions, shape ``(n_validation,)``.

    Examples
    --------
    >>> train, validation = train_validation_split(10, 0.2, seed=0)
    >>> len(train), len(validation)
    (8, 2)
    """
    check_positive_int("n_obs", n_obs)
    if not isinstance(validation_fraction, Real) or not 0 <= validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction!r}")
    n_val = int(round(validation_fraction * n_obs))
    if n_val >= n_obs:
        raise ValueError(f"validation_fraction={validation_fraction} leaves no training cell out of {n_obs}")
    perm = np.random.default_rng(seed).permutation(n_obs)
    return np.sort(perm[n_val:]).astype(np.int64), np.sort(perm[:n_val]).astype(np.int64)
