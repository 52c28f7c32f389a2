"""Lazy package attributes (PEP 562): a name loads its module on first use.

``import qbm_pyro`` then costs almost nothing, and ``qbm_pyro.tl`` loads the tools (and the
libraries under them) only when a user reaches for them. The same pattern as scientific
Python's ``lazy_loader`` (scikit-image, NetworkX), in a few lines.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable

__all__ = ["attach"]


def attach(
    package: str, submodules: Iterable[str] = (), attributes: dict[str, str] | None = None
) -> tuple[Callable[[str], object], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``.

    Parameters
    ----------
    package
        The package's ``__name__``.
    submodules
        Subpackages and modules loaded on first access (``"tl"`` for ``package.tl``).
    attributes
        Name → module (relative to ``package``, e.g. ``"._qbm"``) that defines it.

    Examples
    --------
    >>> import qbm_pyro
    >>> qbm_pyro.tl.qbm.__module__
    'qbm_pyro.tl._qbm'
    """
    submodules = set(submodules)
    attributes = dict(attributes or {})
    names = sorted(submodules | set(attributes))

    def __getattr__(name: str) -> object:  # noqa: N807
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        if name in attributes:
            value = getattr(importlib.import_module(attributes[name], package), name)
            vars(importlib.import_module(package))[name] = value  # later look-ups skip this function
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:  # noqa: N807
        return sorted(set(vars(importlib.import_module(package))) | set(names))

    return __getattr__, __dir__, names
