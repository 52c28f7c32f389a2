"""Argument checks shared across the package: one home for "one of" and "positive int".

A leaf module: it imports nothing from qbm_pyro, so every layer may use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Integral
from typing import Any

__all__ = ["check_choice", "check_positive_int"]


def check_choice(name: str, value: Any, allowed: Iterable[str]) -> None:
    """Raise :class:`ValueError` unless ``value`` is one of ``allowed``.

    Parameters
    ----------
    name
        Argument name, used in the message.
    value
        The value given.
    allowed
        The accepted values (a tuple, or a mapping whose keys are accepted).

    Examples
    --------
    >>> check_choice("metric", "hamming", ("hellinger", "hamming"))
    >>> check_choice("metric", "cosine", ("hellinger", "hamming"))
    Traceback (most recent call last):
    ...
    ValueError: metric must be one of 'hellinger', 'hamming', got 'cosine'.
    """
    options = tuple(allowed)
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}, got {value!r}.")


def check_positive_int(name: str, value: Any) -> None:
    """Raise :class:`ValueError` unless ``value`` is an integer >= 1 (``bool`` is refused).

    Parameters
    ----------
    name
        Argument name, used in the message.
    value
        The value given.

    Examples
    --------
    >>> check_positive_int("n_neighbors", 15)
    >>> check_positive_int("n_neighbors", 0)
    Traceback (most recent call last):
    ...
    ValueError: n_neighbors must be a positive int, got 0.
    """
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")
