"""The bad inputs of ``benchmarks/bad_inputs.py``: how each is made and what must come out.

Every case starts from the bundled CITE-seq set (:func:`qbm_pyro.datasets.pbmc_cite_1k`, 1,024
cells, RNA 100 genes + protein 17), breaks one thing and names the call that meets it. Imported
by ``benchmarks/bad_inputs.py`` (which runs them and writes the table) and by
``tests/test_input_checks.py`` (which runs them too and compares with the table).
"""

from __future__ import annotations

import contextlib
import functools
import io
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import mudata as md
import numpy as np
import pandas as pd
import scipy.sparse as sp

N_CELLS = 1024
N_TOP_GENES = 50
FIT = dict(n_top_genes=N_TOP_GENES, max_epochs=1, n_latent=8, n_continuous=2, progress_bar=False)
SMALL = dict(n_latent=8, n_continuous=2, n_hidden=16)


@dataclass
class Case:
    """One bad input: how it is made, the call that meets it, and what must come out."""

    what: str
    entry: str
    run: Callable[[], object]
    expect: type[BaseException] | type[Warning] | str | None
    pattern: str
    data: object | None = None
    files: list[Path] = field(default_factory=list)
    probe: tuple[str, Path] | None = None


class CommandLineError(Exception):
    """The command line's answer: ``(exit status, what it printed on stderr)``."""


# ------------------------------------------------------------------------------------ the data


def base() -> md.MuData:
    """The bundled CITE-seq set (1,024 cells), RNA and protein as float32 CSR counts."""
    import qbm_pyro

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = qbm_pyro.datasets.pbmc_cite_1k()
        mods = {n: a[:N_CELLS].copy() for n, a in full.mod.items()}
        for a in mods.values():
            a.X = sp.csr_matrix(a.X, dtype=np.float32)
        data = md.MuData(mods)
    return data


@functools.cache
def unselected_gene() -> int:
    """Position of the first RNA gene of :func:`base` that ``select_genes(n_top_genes=50)`` leaves out."""
    from qbm_pyro.pp import select_genes

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probe = base()
        select_genes(probe, N_TOP_GENES)
    return int(np.flatnonzero(~probe["rna"].var["qbm_highly_variable"].to_numpy())[0])


def _set(data: md.MuData, mod: str, i: int, j: int, value: float) -> None:
    x = data[mod].X.toarray()
    x[i, j] = value
    data[mod].X = sp.csr_matrix(x)


def _rna_values(data: md.MuData, fn) -> None:
    data["rna"].X = sp.csr_matrix(fn(data["rna"].X.toarray()).astype(np.float32))


def _rebuild(data: md.MuData, **mods) -> md.MuData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = md.MuData({**dict(data.mod), **mods})
    return out


def _tl(data):
    import qbm_pyro

    return lambda: qbm_pyro.tl.qbm(data, **FIT)


def _construct(data):
    import qbm_pyro

    return lambda: qbm_pyro.QBMVAE(data, **SMALL)


# ----------------------------------------------------------------------------------- the cases

CELL = r"cell '[^']+'"
GENE = r"gene '[^']+'"


def _nan_unselected_gene(tmp: Path) -> Case:
    data = base()
    _set(data, "rna", 3, unselected_gene(), np.nan)
    pattern = rf"modality 'rna' X has NaN or infinite values \(1 value\(s\), e.g. nan at {CELL}, {GENE}\)"
    return Case(
        "one NaN in an RNA gene that gene selection leaves out",
        "tl.qbm",
        _tl(data),
        ValueError,
        pattern,
        data,
    )


def _negative_unselected_gene(tmp: Path) -> Case:
    data = base()
    _set(data, "rna", 5, unselected_gene(), -1)
    pattern = rf"modality 'rna' X has negative values \(1 value\(s\), e.g. -1 at {CELL}, {GENE}\)"
    return Case(
        "one negative count in an RNA gene that gene selection leaves out",
        "tl.qbm",
        _tl(data),
        ValueError,
        pattern,
        data,
    )


def _inf_protein(tmp: Path) -> Case:
    data = base()
    _set(data, "prot", 7, 2, np.inf)
    pattern = rf"modality 'prot' X has NaN or infinite values \(1 value\(s\), e.g. inf at {CELL}, protein '"
    return Case("one infinite protein count", "tl.qbm", _tl(data), ValueError, pattern, data)


def _non_integer(tmp: Path) -> Case:
    data = base()
    _set(data, "rna", 0, 0, 2.5)
    pattern = r"modality 'rna' X has non-integer values .*counts are required"
    return Case("one non-integer RNA value (2.5)", "tl.qbm", _tl(data), ValueError, pattern, data)


def _log_transformed(tmp: Path) -> Case:
    data = base()
    _rna_values(data, lambda x: np.log1p(x / np.maximum(x.sum(1, keepdims=True), 1) * 1e4))
    pattern = r"modality 'rna' X has non-integer values .*log-transformed"
    return Case("RNA after normalize_total + log1p", "tl.qbm", _tl(data), ValueError, pattern, data)


def _rounded_cpm(tmp: Path) -> Case:
    from qbm_pyro.pp import NonCountInputWarning

    data = base()
    _rna_values(data, lambda x: np.round(x / np.maximum(x.sum(1, keepdims=True), 1) * 1e6))
    return Case(
        "RNA as rounded CPM",
        "QBMVAE(...)",
        _construct(data),
        NonCountInputWarning,
        r"look normalised rather than counted: every cell sums to about \d+ \(TPM/CPM-like\)",
        data,
    )


def _scaled_counts(tmp: Path) -> Case:
    from qbm_pyro.pp import NonCountInputWarning

    data = base()
    _rna_values(data, lambda x: 7 * x)
    return Case(
        "RNA counts times 7 (rounded FPKM-like scaling)",
        "QBMVAE(...)",
        _construct(data),
        NonCountInputWarning,
        r"smallest nonzero value is 7, not 1 \(scaled\)",
        data,
    )


def _duplicated_cells(tmp: Path) -> Case:
    data = base()
    names = list(data.obs_names)
    names[1] = names[0]
    mods = {}
    for n, a in data.mod.items():
        a = a.copy()
        a.obs_names = names
        mods[n] = a
    data = _rebuild(data, **mods)
    return Case(
        "two cells with the same name",
        "tl.qbm",
        _tl(data),
        ValueError,
        r"duplicated obs name\(s\) \(e.g. '[^']+'\); make them unique",
        data,
    )


def _duplicated_genes(tmp: Path) -> Case:
    data = base()
    rna = data["rna"].copy()
    names = list(rna.var_names)
    names[1] = names[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rna.var_names = names
    data = _rebuild(data, rna=rna)
    return Case(
        "two genes with the same name",
        "tl.qbm",
        _tl(data),
        ValueError,
        r"modality 'rna' has 1 duplicated var name\(s\)",
        data,
    )


def _protein_without_features(tmp: Path) -> Case:
    data = base()
    data = _rebuild(data, prot=data["prot"][:, []].copy())
    return Case(
        "a protein modality with zero features",
        "tl.qbm",
        _tl(data),
        ValueError,
        r"modality 'prot' X is empty: 1024 cells x 0 features",
        data,
    )


def _mismatched_obs(tmp: Path) -> Case:
    data = base()
    prot = data["prot"].copy()
    prot.obs_names = [f"{c}_adt" for c in prot.obs_names]
    data = _rebuild(data, prot=prot)
    return Case(
        "protein cell names that match no RNA cell (suffix _adt)",
        "tl.qbm",
        _tl(data),
        ValueError,
        r"obs names do not match across modalities: 'rna' and 'prot' share no cell",
        data,
    )


def _batch_with_missing(tmp: Path) -> Case:
    import qbm_pyro

    data = base()
    data.obs["batch"] = pd.Series(["a", "b"] * (N_CELLS // 2), index=data.obs_names, dtype=object)
    data.obs.iloc[4, data.obs.columns.get_loc("batch")] = None
    return Case(
        "a batch column with a missing value",
        "tl.qbm",
        lambda: qbm_pyro.tl.qbm(data, batch_key="batch", **FIT),
        ValueError,
        r"batch column 'batch' in mdata.obs has 1 missing value\(s\) \(e.g. cell '[^']+'\)",
        data,
    )


def _empty_cell(tmp: Path) -> Case:
    data = base()
    x = data["rna"].X.toarray()
    x[9] = 0
    data["rna"].X = sp.csr_matrix(x)
    return Case(
        "a cell with no RNA counts",
        "QBMVAE(...)",
        _construct(data),
        UserWarning,
        r"modality 'rna' X: \d+ of 1024 cells have all-zero values .*they are kept",
        data,
    )


def _write(data: md.MuData, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data.write(path)
    return path


def _backed(path: Path) -> md.MuData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return md.read_h5mu(path, backed=True)


def _backed_with_nan(tmp: Path) -> Case:
    data = base()
    _set(data, "rna", 11, unselected_gene(), np.nan)
    path = _write(data, tmp / "backed_nan.h5mu")
    backed = _backed(path)
    pattern = rf"modality 'rna' X has NaN or infinite values \(1 value\(s\), e.g. nan at {CELL}"
    return Case(
        ".h5mu opened with backed modalities, one NaN in an unselected gene",
        "tl.qbm",
        _tl(backed),
        ValueError,
        pattern,
        None,
        [path],
    )


def _backed_valid(tmp: Path) -> Case:
    path = _write(base(), tmp / "backed.h5mu")
    backed = _backed(path)

    def run():
        _tl(backed)()
        return f"fits and writes obsm['X_qbm'] of shape {backed.obsm['X_qbm'].shape}"

    return Case(
        ".h5mu opened with backed modalities (valid counts)",
        "tl.qbm",
        run,
        None,
        r"fits and writes obsm\['X_qbm'\] of shape \(1024, 10\)",
        None,
        [path],
    )


def _cli_nan_unselected_gene(tmp: Path) -> Case:
    from qbm_pyro.cli import main

    data = base()
    _set(data, "rna", 3, unselected_gene(), np.nan)
    path = _write(data, tmp / "cli_nan.h5mu")
    argv = ["fit", str(path), "-o", str(tmp / "out.h5mu"), "--n-top-genes", str(N_TOP_GENES), "--quiet"]

    def run():
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(argv)
        raise CommandLineError(f"exit status {code}", err.getvalue().strip())

    pattern = r"qbm-pyro fit: error: modality 'rna' X has NaN or infinite values"
    return Case(
        "qbm-pyro fit on an .h5mu with one NaN in an unselected gene",
        "qbm-pyro fit",
        run,
        "exit status 2",
        pattern,
        None,
        [path],
    )


def _saved_model(tmp: Path) -> tuple[md.MuData, Path]:
    import qbm_pyro

    data = base()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qbm_pyro.QBMVAE(data, **SMALL).save(tmp / "model", overwrite=True)
    return data, tmp / "model" / "model.pt"


def _load(data, path: Path):
    import qbm_pyro

    return lambda: qbm_pyro.QBMVAE.load(path.parent, data)


def _truncated_model(tmp: Path) -> Case:
    data, path = _saved_model(tmp)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return Case(
        "a truncated model file (half of model.pt)",
        "QBMVAE.load",
        _load(data, path),
        ValueError,
        r"is not a valid qbm_pyro model file \(truncated, corrupted or not written by qbm_pyro",
        data,
        [path],
    )


def _checkpoint_as_model(tmp: Path) -> Case:
    from qbm_pyro.torch_files import atomic_torch_save

    data, path = _saved_model(tmp)
    atomic_torch_save({"epoch": 3, "module": {}, "optimizer": {}}, path)  # a training checkpoint's keys
    return Case(
        "a training checkpoint passed as model.pt",
        "QBMVAE.load",
        _load(data, path),
        ValueError,
        r"is not a QBMVAE model file: it has no 'class_name'",
        data,
        [path],
    )


def _other_class_model(tmp: Path) -> Case:
    import torch

    data, path = _saved_model(tmp)
    torch.save({"model_state_dict": {}, "var_names": np.array(["a", "b"]), "attr_dict": {}}, path)
    return Case(
        "another library's model.pt (scvi-tools layout, numpy strings)",
        "QBMVAE.load",
        _load(data, path),
        ValueError,
        r"unsafe content is refused, never run",
        data,
        [path],
    )


def _other_class_name(tmp: Path) -> Case:
    from qbm_pyro.torch_files import atomic_torch_save, load_torch_file

    data, path = _saved_model(tmp)
    payload = load_torch_file(path, what="model file")
    payload["class_name"] = "SCVI"
    atomic_torch_save(payload, path)
    return Case(
        "a model file of another class (class_name 'SCVI')",
        "QBMVAE.load",
        _load(data, path),
        ValueError,
        r"holds a 'SCVI', not a QBMVAE",
        data,
        [path],
    )


def _tampered_sampler(tmp: Path) -> Case:
    from qbm_pyro.samplers.serialize import SamplerNotRebuildableError
    from qbm_pyro.torch_files import atomic_torch_save, load_torch_file

    data, path = _saved_model(tmp)
    name = "qbm_probe_named_by_a_model_file"  # never imported: the file may not name it
    site = tmp / "site"
    site.mkdir(exist_ok=True)
    ran = tmp / "probe_ran"
    (site / f"{name}.py").write_text(f"open({str(ran)!r}, 'w').write('ran')\ndef make():\n    return None\n")
    payload = load_torch_file(path, what="model file")
    payload["sampler_config"] = {
        "kind": "dimod",
        "backend": f"{name}.make",
        "mode": "anneal",
        "num_sweeps": 10,
        "beta_min": 0.1,
        "burn_in": 0,
        "beta_eff": 1.0,
        "seed": 0,
        "sample_kwargs": {},
    }
    atomic_torch_save(payload, path)  # checksum recomputed, as an attacker would

    def run():
        sys.path.insert(0, str(site))
        try:
            return _load(data, path)()
        finally:
            sys.path.remove(str(site))

    return Case(
        "a model file whose sampler config names a module on sys.path (checksum recomputed)",
        "QBMVAE.load",
        run,
        SamplerNotRebuildableError,
        r"refusing to rebuild the saved dimod sampler 'qbm_probe_named_by_a_model_file\.make'",
        data,
        [path],
        probe=(name, ran),
    )


#: Every case, by name, in the order of the table.
CASES: dict[str, Callable[[Path], Case]] = {
    f.__name__[1:]: f
    for f in [
        _nan_unselected_gene,
        _negative_unselected_gene,
        _inf_protein,
        _non_integer,
        _log_transformed,
        _rounded_cpm,
        _scaled_counts,
        _duplicated_cells,
        _duplicated_genes,
        _protein_without_features,
        _mismatched_obs,
        _batch_with_missing,
        _empty_cell,
        _backed_with_nan,
        _backed_valid,
        _cli_nan_unselected_gene,
        _truncated_model,
        _checkpoint_as_model,
        _other_class_model,
        _other_class_name,
        _tampered_sampler,
    ]
}
