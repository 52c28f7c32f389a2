"""The whole input is checked before anything touches it, and the bad-input table is true (issue 22).

The table cases live in ``benchmarks/bad_input_cases.py``; ``benchmarks/bad_inputs.py`` runs them
and writes ``benchmarks/results/bad_inputs.json`` and ``docs/bad_inputs.rst``. Here the same
cases run again: each must give its error or warning, leave the input untouched, and say
exactly what the committed table says.
"""

from __future__ import annotations

import copy
import json
import sys
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

import qbm_pyro
from qbm_pyro.data import validation

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

bad_inputs = pytest.importorskip("benchmarks.bad_inputs")
cases = pytest.importorskip("benchmarks.bad_input_cases")

TABLE = json.loads((ROOT / "benchmarks" / "results" / "bad_inputs.json").read_text())["rows"]


def test_the_table_lists_every_case_and_the_docs_show_it():
    assert [row["case"] for row in TABLE] == list(cases.CASES)
    assert len(TABLE) >= 12
    assert all(row["untouched"] and row["as_expected"] for row in TABLE)
    assert (ROOT / "docs" / "bad_inputs.rst").read_text() == bad_inputs.doc_text(TABLE)
    assert "bad_inputs" in (ROOT / "docs" / "index.rst").read_text()


@pytest.mark.parametrize("name", list(cases.CASES))
def test_bad_input_gives_the_message_of_the_table_and_is_untouched(name, tmp_path):
    row = bad_inputs.run_case(name, tmp_path)
    assert row["as_expected"], row
    assert row["untouched"], row
    committed = next(r for r in TABLE if r["case"] == name)
    assert row == committed, "re-run benchmarks/bad_inputs.py: the table no longer says what the code does"


def test_issue_cases_are_genes_the_selection_leaves_out():
    data = cases.base()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = qbm_pyro.pp.select_genes(data.copy(), cases.N_TOP_GENES)
    gene = data["rna"].var_names[cases.unselected_gene()]
    assert gene not in fit["rna"].var_names and fit["rna"].n_vars == cases.N_TOP_GENES


@pytest.mark.parametrize("problem", ["nan", "negative"])
def test_tl_qbm_leaves_a_deep_copy_equal(problem):
    data = cases.base()
    cases._set(data, "rna", 3, cases.unselected_gene(), np.nan if problem == "nan" else -2)
    before = data.copy()  # MuData.copy is deep (copy.deepcopy trips on anndata's file backing)
    with pytest.raises(ValueError, match="modality 'rna' X has"):
        qbm_pyro.tl.qbm(data, **cases.FIT)
    assert bad_inputs.fingerprint(data) == bad_inputs.fingerprint(before)
    assert "qbm_highly_variable" not in data["rna"].var  # the selection never ran


def _matrix(fmt: str, x: np.ndarray):
    return {"dense": lambda: x, "csr": lambda: sp.csr_matrix(x), "csc": lambda: sp.csc_matrix(x)}[fmt]()


@pytest.mark.parametrize("fmt", ["dense", "csr", "csc"])
@pytest.mark.parametrize(
    ("value", "problem"),
    [(np.nan, "NaN or infinite"), (-np.inf, "NaN or infinite"), (-3, "negative"), (1.5, "non-integer")],
)
def test_check_input_names_modality_cell_and_feature_in_every_format(fmt, value, problem):
    x = np.random.default_rng(0).poisson(2, size=(40, 30)).astype(np.float32)
    x[17, 23] = value
    adata = ad.AnnData(X=_matrix(fmt, x))
    adata.obs_names = [f"c{i}" for i in range(40)]
    adata.var_names = [f"g{j}" for j in range(30)]
    before = copy.deepcopy(adata)
    with pytest.raises(
        ValueError,
        match=rf"modality 'rna' X has {problem} values \(1 value\(s\), e.g. .* at cell 'c17', gene 'g23'\)",
    ):
        qbm_pyro.pp.check_input(adata)
    assert bad_inputs.fingerprint(adata) == bad_inputs.fingerprint(before)


@pytest.mark.parametrize("backed", [False, True])
def test_value_check_in_slices_finds_and_counts_late_problems(backed, monkeypatch, tmp_path):
    """The one-pass check reads slices of VALUE_CHUNK values (and blocks of rows when backed);
    problems in a late slice are found, named and counted over the whole block."""
    monkeypatch.setattr(validation, "VALUE_CHUNK", 7)
    monkeypatch.setattr(validation, "CHUNK_SIZE", 16)
    x = np.random.default_rng(1).poisson(3, size=(64, 12)).astype(np.float32)
    x[50, 4] = x[50, 9] = -1
    adata = ad.AnnData(X=sp.csr_matrix(x))
    adata.obs_names = [f"c{i}" for i in range(64)]
    if backed:
        adata.write_h5ad(tmp_path / "x.h5ad")
        adata = ad.read_h5ad(tmp_path / "x.h5ad", backed="r")
    with pytest.raises(
        ValueError,
        match=r"negative values \(2 value\(s\)( in the first block read)?, e.g. -1 at cell 'c50', gene '4'\)",
    ):
        validation.check_matrix(
            adata.X,
            modality="rna",
            kind="rna",
            obs_names=adata.obs_names,
            var_names=adata.var_names,
            chunk_size=16,
        )
    summary = validation.check_matrix(np.abs(x), modality="rna", kind="rna", warn=False)
    assert not summary.is_binary and not summary.empty_features.any()


def test_qbmvae_warns_on_rounded_cpm_but_not_on_counts():
    data = cases.base()
    with warnings.catch_warnings():
        warnings.simplefilter("error", qbm_pyro.pp.NonCountInputWarning)
        warnings.simplefilter("ignore", UserWarning)
        qbm_pyro.QBMVAE(data, **cases.SMALL)  # raw counts: no warning
    cases._rna_values(data, lambda x: np.round(x / np.maximum(x.sum(1, keepdims=True), 1) * 1e4))
    with pytest.warns(qbm_pyro.pp.NonCountInputWarning, match="TPM/CPM-like"):
        qbm_pyro.QBMVAE(data, **cases.SMALL)
