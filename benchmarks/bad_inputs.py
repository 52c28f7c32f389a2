"""Bad inputs a user (or an attacker) would plausibly feed, and what qbm_pyro says to each.

Usage: ``python benchmarks/bad_inputs.py`` writes ``benchmarks/results/bad_inputs.json`` and the
table of ``docs/bad_inputs.rst``. ``tests/test_input_checks.py`` runs the same :data:`CASES` and
fails when a message differs from the committed table, so the table cannot go stale.

Every case starts from the 1,024 cells of the bundled CITE-seq set
(:func:`qbm_pyro.datasets.pbmc_cite_1k`, RNA 100 genes + protein 17), breaks one thing, calls
the entry point a user would (``tl.qbm`` with ``n_top_genes=50``, so that half of the genes are
*not* selected; ``QBMVAE(...)``; ``QBMVAE.load``; the ``qbm-pyro fit`` command line) and records
the error or warning text and whether the input (the object, by a fingerprint of everything in
it, or the file, by its SHA-256) is untouched afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import re
import sys
import tempfile
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import anndata as ad  # noqa: E402
import mudata as md  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from benchmarks.bad_input_cases import CASES, CommandLineError  # noqa: E402

# ------------------------------------------------------------------------------------- running


def fingerprint(data) -> str:
    """SHA-256 of everything in an AnnData or MuData (matrices, obs, var, obsm, layers, uns)."""
    h = hashlib.sha256()

    def feed(value) -> None:
        if hasattr(value, "to_memory"):
            value = value.to_memory()
        if sp.issparse(value):
            value = value.tocsr()
            for part in (value.format, value.dtype.str, value.shape, value.data, value.indices, value.indptr):
                feed(part)
        elif isinstance(value, np.ndarray):
            h.update(f"{value.dtype.str}{value.shape}".encode())
            h.update(
                np.ascontiguousarray(value).tobytes() if value.dtype.kind != "O" else repr(value).encode()
            )
        elif isinstance(value, pd.DataFrame):
            h.update(repr((list(value.columns), list(value.index), list(value.dtypes.astype(str)))).encode())
            h.update(
                pd.util.hash_pandas_object(value, index=True).to_numpy().tobytes()
                if len(value.columns)
                else b""
            )
        elif isinstance(value, dict) or hasattr(value, "keys"):
            for key in sorted(value.keys()):
                h.update(repr(key).encode())
                feed(value[key])
        else:
            h.update(pickle.dumps(value))

    parts = {
        "": data,
        **({f"mod/{k}": v for k, v in data.mod.items()} if isinstance(data, md.MuData) else {}),
    }
    for name, a in parts.items():
        h.update(name.encode())
        for slot in ("obs", "var", "obsm", "uns"):
            feed(getattr(a, slot))
        if isinstance(a, ad.AnnData):
            feed(a.X)
            feed(a.layers)
    return h.hexdigest()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_case(name: str, tmp: Path) -> dict:
    """Make case ``name`` under ``tmp``, run it, and return its row of the table."""
    case = CASES[name](tmp)
    before_data = fingerprint(case.data) if case.data is not None else None
    before_files = {p: _sha256(p) for p in case.files}
    outcome, message = "accepted", ""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = case.run()
            message = result if isinstance(result, str) else ""
        except CommandLineError as error:
            outcome, message = error.args
        except Exception as error:  # noqa: BLE001 (every error is an answer to record)
            outcome, message = type(error).__name__, str(error)
    if outcome == "accepted" and isinstance(case.expect, type) and issubclass(case.expect, Warning):
        hits = [w for w in caught if issubclass(w.category, case.expect)]
        if hits:
            outcome, message = f"{case.expect.__name__} (the fit goes on)", str(hits[0].message)
    untouched = (before_data is None or fingerprint(case.data) == before_data) and all(
        _sha256(p) == digest for p, digest in before_files.items()
    )
    if case.probe is not None:
        probe_name, ran = case.probe
        untouched = untouched and probe_name not in sys.modules and not ran.exists()
    message = message.replace(str(tmp), "<tmp>")
    expected_outcome = getattr(case.expect, "__name__", case.expect or "accepted")
    return {
        "case": name,
        "input": case.what,
        "entry": case.entry,
        "outcome": outcome,
        "message": message,
        "untouched": bool(untouched),
        "as_expected": outcome.startswith(expected_outcome) and re.search(case.pattern, message) is not None,
    }


def run_all(names=None) -> list[dict]:
    """Every case (or ``names``), each in a fresh temporary folder."""
    rows = []
    for name in names or CASES:
        with tempfile.TemporaryDirectory(prefix="qbm_bad_") as tmp:
            rows.append(run_case(name, Path(tmp)))
    return rows


# ------------------------------------------------------------------------------------- output


def rst_table(rows: list[dict]) -> str:
    """The docs table (a list-table) of ``rows``."""
    lines = [".. list-table::", "   :header-rows: 1", "   :widths: 25 10 50 10", ""]
    lines += ["   * - Bad input", "     - Entry point", "     - What qbm_pyro says", "     - Input untouched"]
    for row in rows:
        text = f"``{row['outcome']}``" + (f": {_rst_escape(row['message'])}" if row["message"] else "")
        lines += [
            f"   * - {_rst_escape(row['input'])}",
            f"     - ``{row['entry']}``",
            f"     - {text}",
            f"     - {'yes' if row['untouched'] else 'NO'}",
        ]
    return "\n".join(lines) + "\n"


def _rst_escape(text: str) -> str:
    """``text`` on one line, with the characters reStructuredText would read as markup escaped."""
    return re.sub(r"([\\*`|_])", r"\\\1", " ".join(text.split()))


DOC_HEADER = """Bad input
=========

What qbm_pyro says to input that is broken, not counts, or not what it claims to be. Every row
is produced by ``benchmarks/bad_inputs.py`` (which writes ``benchmarks/results/bad_inputs.json``
and this table) and checked by ``tests/test_input_checks.py``, which runs the same cases and
fails when a message here is no longer what the code says.

The data are the 1,024 cells of the bundled CITE-seq set
(:func:`qbm_pyro.datasets.pbmc_cite_1k`: RNA 100 genes, protein 17) with one thing broken.
``tl.qbm`` runs with ``n_top_genes=50``, so "an unselected gene" is one that the gene selection
leaves out: the whole input of every modality is checked before any selection or
normalisation (:func:`qbm_pyro.pp.check_input`). "Input untouched" compares a fingerprint of
everything in the object (matrices, ``obs``, ``var``, ``obsm``, ``uns`` of every modality)
taken before the call with the object after it, or the file's SHA-256; for the tampered model
file it also requires that the module the file names was never imported.

A model file is data: it is read with ``torch.load(weights_only=True)``, and the only name it
may give for a sampler to rebuild is one of
``qbm_pyro.samplers.serialize.REBUILDABLE_DIMOD`` (compared as a string before anything is
imported). Its checksum only detects damage; anyone can recompute it.

"""


def doc_text(rows: list[dict]) -> str:
    return DOC_HEADER + rst_table(rows)


def report_section(results: Path) -> list[str]:
    """BENCHMARKS.md's section (a Markdown table) from ``bad_inputs.json``; empty when absent."""
    path = Path(results) / "bad_inputs.json"
    if not path.exists():
        return []
    rows = json.loads(path.read_text())["rows"]
    out = [
        "## Bad input (benchmarks/bad_inputs.py)",
        "",
        "Each bad input, what qbm_pyro says, and whether the user's object or file is untouched "
        "(also in docs/bad_inputs.rst).",
        "",
        "| Bad input | Entry point | What qbm_pyro says | Input untouched |",
        "|---|---|---|---|",
    ]
    for row in rows:
        text = f"`{row['outcome']}`: {row['message']}" if row["message"] else row["outcome"]
        text = " ".join(text.replace("|", "\\|").split())
        out.append(f"| {row['input']} | `{row['entry']}` | {text} | {'yes' if row['untouched'] else 'NO'} |")
    return [*out, ""]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "bad_inputs.rst")
    args = parser.parse_args(argv)
    rows = run_all()
    for row in rows:
        print(f"{row['case']:28s} {row['outcome']:28s} untouched={row['untouched']} ok={row['as_expected']}")
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "bad_inputs.json").write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    args.docs.write_text(doc_text(rows))


if __name__ == "__main__":
    main()
