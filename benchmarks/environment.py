"""What every benchmark result records about the software it ran with."""

from __future__ import annotations

from importlib import metadata

__all__ = ["package_versions"]


def package_versions(*packages: str) -> dict[str, str | None]:
    """Installed version of each distribution in ``packages`` (``None`` if not installed)."""
    versions: dict[str, str | None] = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions
