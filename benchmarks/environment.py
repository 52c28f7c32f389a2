"""What every benchmark result records about the software and machine it ran with."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

__all__ = ["package_versions", "run_meta"]


def package_versions(*packages: str) -> dict[str, str | None]:
    """Installed version of each distribution in ``packages`` (``None`` if not installed)."""
    versions: dict[str, str | None] = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def run_meta(*packages: str, **fields) -> dict:
    """A result file's ``meta``: Python, the machine, the versions of qbm-pyro, torch and
    ``packages``, then ``fields`` (those given as ``None``, e.g. an absent ``note``, left out)."""
    return {
        "python": sys.version.split()[0],
        "machine": platform.platform(),
        **package_versions("qbm-pyro", "torch", *packages),
        **{k: v for k, v in fields.items() if v is not None},
    }
