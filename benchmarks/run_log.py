"""Finished runs of a benchmark, one JSON line each, so that a rerun skips them."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["RunLog"]


class RunLog:
    """The ``.jsonl`` beside a benchmark's result file: its rows so far, appended one at a time.

    Parameters
    ----------
    out
        The result file (``.json``); the log is the same path with ``.jsonl``.
    key
        The fields that name a run (e.g. ``("dataset", "method", "seed")``).
    """

    def __init__(self, out: Path, key: tuple[str, ...]):
        self.path = Path(out).with_suffix(".jsonl")
        self.key = key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = self.path.read_text() if self.path.exists() else ""
        self.rows = [json.loads(line) for line in text.splitlines()]

    def _key(self, row: dict) -> tuple:
        return tuple(row.get(k) for k in self.key)  # a field older rows lack counts as None

    def drop(self, keys: set[tuple]) -> None:
        """Forget the runs named in ``keys`` (to run them again), rewriting the log."""
        self.rows = [r for r in self.rows if self._key(r) not in keys]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in self.rows))

    def __contains__(self, key: tuple) -> bool:
        return any(self._key(r) == key for r in self.rows)

    def add(self, row: dict) -> None:
        """Keep ``row`` and append it to the log at once (a crash later loses nothing)."""
        self.rows.append(row)
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
