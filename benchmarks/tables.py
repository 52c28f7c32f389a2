"""Cells of the benchmarks' markdown tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["mean_sd", "note_lines", "read_results"]


def read_results(results, name: str) -> dict | None:
    """The JSON results file ``name`` in the folder ``results``; ``None`` when it is missing (a
    section of the report whose study was not run is left out)."""
    path = Path(results) / name
    return json.loads(path.read_text()) if path.exists() else None


def note_lines(result: dict) -> list[str]:
    """The provenance note of a results file (``result["meta"]["note"]``) as an italic paragraph of
    its report section, or nothing when it has none."""
    note = result["meta"].get("note")
    return [f"_{note}_", ""] if note else []


def mean_sd(values, *, digits: int = 3, missing: str = "—", ddof: int = 1, drop_nan: bool = True) -> str:
    """``"mean ± sd"`` of ``values`` (``None`` left out, and NaN/inf with ``drop_nan``); the value
    alone when there is one, ``missing`` when there is none."""
    kept = [v for v in values if v is not None and (not drop_nan or np.isfinite(v))]
    if not kept:
        return missing
    if len(kept) == 1:
        return f"{kept[0]:.{digits}f}"
    return f"{np.mean(kept):.{digits}f} ± {np.std(kept, ddof=ddof):.{digits}f}"
