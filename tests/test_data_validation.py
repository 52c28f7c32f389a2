"""Bad inputs to the data layer fail (or warn) with messages that name what is wrong."""

from __future__ import annotations

import copy
import hashlib
import warnings

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from qbm_pyro.data import setup_data
from qbm_pyro.data.validation import check_batch_column, check_matrix

FORMATS = ["dense", "csr", "csc"]


def _fmt(x: np.ndarray, fmt: str):
    return {"dense": np.asarray, "csr": sp.csr_matrix, "csc": sp.csc_matrix}[fmt](x)


def make_mdata(n: int = 12, fmt: str = "csr", seed: int = 0) -> md.MuData:
    """A small MuData with rna/prot counts, binary atac and two batch columns."""
    rng = np.random.default_rng(seed)
    obs_names = [f"cell{i}" for i in range(n)]
    rna = rng.poisson(2.0, size=(n, 6)).astype(np.float32)
    rna[:, 0] += 1  # no all-zero cells
    prot = rng.poisson(20.0, size=(n, 3)).astype(np.float32) + 1
    atac = (rng.random((n, 8)) < 0.5).astype(np.float32)
    atac[:, 0] = 1
    mods = {}
    for name, x, prefix in [("rna", rna, "gene"), ("prot", prot, "ab"), ("atac", atac, "peak")]:
        a = ad.AnnData(_fmt(x, fmt))
        a.obs_names = obs_names
        a.var_names = [f"{prefix}{j}" for j in range(x.shape[1])]
        mods[name] = a
    mods["rna"].layers["counts"] = _fmt(rna.copy(), fmt)
    mdata = md.MuData(mods)
    mdata.obs["batch"] = pd.Categorical(np.where(np.arange(n) % 2 == 0, "a", "b"))
    mdata.obs["site"] = np.where(np.arange(n) < n // 2, "x", "y")
    return mdata


def _set(mdata: md.MuData, mod: str, i: int, j: int, value, layer: str | None = None) -> None:
    a = mdata.mod[mod]
    x = a.X if layer is None else a.layers[layer]
    dense = x.toarray() if sp.issparse(x) else np.array(x)
    dense[i, j] = value
    new = type(x)(dense) if sp.issparse(x) else dense
    if layer is None:
        a.X = new
    else:
        a.layers[layer] = new


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("mod", "value", "pattern"),
    [
        (
            "rna",
            np.nan,
            r"modality 'rna' X has NaN or infinite values .*cell 'cell3', gene 'gene2'",
        ),
        ("prot", np.inf, r"modality 'prot' X has NaN or infinite .*cell 'cell3', protein 'ab2'"),
        ("rna", -1.0, r"modality 'rna' X has negative values .*-1 at cell 'cell3', gene 'gene2'"),
        ("atac", -2.0, r"modality 'atac' X has negative values .*cell 'cell3', peak 'peak2'"),
        ("prot", 0.5, r"modality 'prot' X has non-integer values .*0\.5 at cell 'cell3'"),
    ],
)
def test_bad_values_name_modality_cell_and_feature(fmt, mod, value, pattern):
    mdata = make_mdata(fmt=fmt)
    _set(mdata, mod, 3, 2, value)
    with pytest.raises(ValueError, match=pattern):
        setup_data(mdata)


@pytest.mark.parametrize("fmt", FORMATS)
def test_non_integer_rna_points_to_counts_layer(fmt):
    mdata = make_mdata(fmt=fmt)
    x = mdata["rna"].X
    mdata["rna"].X = np.log1p(x) if fmt == "dense" else x.log1p()
    pattern = (
        r"modality 'rna' X has non-integer values \(.*e\.g\. [0-9.]+ at cell '.*', gene '.*'\); "
        r"counts are required — layer 'counts' looks like raw counts: pass "
        r"layers=\{'rna': 'counts'\}"
    )
    with pytest.raises(ValueError, match=pattern):
        setup_data(mdata)
    registry = setup_data(mdata, layers={"rna": "counts"})
    assert registry.modalities["rna"].layer == "counts"
    assert registry.modalities["prot"].layer is None
    mdata["prot"].layers["counts"] = mdata["prot"].X.copy()
    registry = setup_data(mdata, layers="counts")
    assert registry.modalities["prot"].layer == "counts"
    assert registry.modalities["atac"].layer is None  # a str layer applies to count kinds only


def test_non_integer_layer_is_named():
    mdata = make_mdata()
    _set(mdata, "rna", 1, 1, 2.5, layer="counts")
    with pytest.raises(ValueError, match=r"modality 'rna' layer 'counts' has non-integer"):
        setup_data(mdata, layers={"rna": "counts"})


def test_atac_accepts_counts_and_binary():
    mdata = make_mdata()
    _set(mdata, "atac", 0, 1, 7.0)
    setup_data(mdata)  # counts are fine for ATAC
    _set(mdata, "atac", 0, 1, 0.25)
    setup_data(mdata)  # so are non-integer non-negative values (binarised later)


@pytest.mark.parametrize("dtype", [object, "U3"])
def test_non_numeric_matrix(dtype):
    a = ad.AnnData(np.array([["1", "2"], ["3", "4"]], dtype=dtype))
    with pytest.raises(TypeError, match=r"modality 'rna' X has dtype (object|<U3).*numeric"):
        setup_data(a)


@pytest.mark.parametrize("shape", [(0, 4), (4, 0)])
def test_empty_matrix(shape):
    a = ad.AnnData(np.zeros(shape, dtype=np.float32))
    with pytest.raises(ValueError, match=r"(0 cells|modality 'rna' X is empty)"):
        setup_data(a)


def test_missing_layer_lists_layers():
    with pytest.raises(KeyError, match=r"modality 'rna' has no layer 'raw'.*\['counts'\]"):
        setup_data(make_mdata(), layers={"rna": "raw"})


def test_unknown_modality_lists_available():
    with pytest.raises(KeyError, match=r"unknown modality name\(s\) \['gex'\].*\['rna', 'prot', "):
        setup_data(make_mdata(), modalities=["rna", "gex"])
    with pytest.raises(KeyError, match=r"layers given for modality name\(s\) \['foo'\]"):
        setup_data(make_mdata(), layers={"foo": "counts"})


def test_unknown_kind_and_two_of_a_kind():
    with pytest.raises(ValueError, match=r"unknown modality kind 'dna' for 'rna'"):
        setup_data(make_mdata(), modalities={"rna": "dna"})
    with pytest.raises(ValueError, match=r"at most one modality per kind.*\['rna', 'prot'\]"):
        setup_data(make_mdata(), modalities={"rna": "rna", "prot": "rna"})


def test_uninferable_modality_name():
    mdata = make_mdata()
    mdata2 = md.MuData({"rna": mdata["rna"].copy(), "hto": mdata["prot"].copy()})
    with pytest.raises(ValueError, match=r"cannot infer the kind of modality 'hto'"):
        setup_data(mdata2, modalities=["hto"])
    with pytest.warns(UserWarning, match=r"modalities \['hto'\] are not registered"):
        registry = setup_data(mdata2)
    assert list(registry.modalities) == ["rna"]


def test_batch_key_missing_lists_columns():
    with pytest.raises(KeyError, match=r"batch_key 'donor' not found in mdata\.obs .*'batch'"):
        setup_data(make_mdata(), batch_key="donor")
    a = make_mdata()["rna"].copy()
    with pytest.raises(KeyError, match=r"batch_key 'donor' not found in adata\.obs"):
        setup_data(a, batch_key="donor")


def test_batch_single_level_nan_and_singleton():
    mdata = make_mdata()
    mdata.obs["one"] = "only"  # a one-batch reference (for mapping query batches onto it)
    registry = setup_data(mdata, batch_key="one")
    assert registry.batch_categories["one"] == ("only",) and registry.n_batch == (1,)
    assert (registry.batch_codes == 0).all()
    mdata.obs["holes"] = pd.Series(["a", None] * 6, index=mdata.obs_names, dtype=object)
    with pytest.raises(ValueError, match=r"batch column 'holes' .*1 missing|6 missing value"):
        setup_data(mdata, batch_key="holes")
    mdata.obs["lonely"] = ["a"] * 11 + ["b"]
    with pytest.warns(UserWarning, match=r"batch column 'lonely'.*\['b'\] hold a single cell"):
        registry = setup_data(mdata, batch_key="lonely")
    assert registry.batch_categories["lonely"] == ("a", "b")


def test_check_batch_column_nan_names_first_cell():
    s = pd.Series([1.0, np.nan, 2.0], index=["x", "y", "z"])
    with pytest.raises(ValueError, match=r"1 missing value\(s\) \(e\.g\. cell 'y'\)"):
        check_batch_column(s, "b")


def test_obs_names_disjoint_and_duplicated():
    mdata = make_mdata()
    atac = mdata["atac"].copy()
    atac.obs_names = [f"{n}_atac" for n in atac.obs_names]
    bad = md.MuData({"rna": mdata["rna"].copy(), "atac": atac})
    with pytest.raises(ValueError, match=r"'rna' and 'atac' share no cell.*'cell0' vs 'cell0_atac'"):
        setup_data(bad)
    a = make_mdata()["rna"].copy()
    a.obs_names = ["dup"] * a.n_obs
    with pytest.raises(ValueError, match=r"duplicated obs name"):
        setup_data(a)


def test_all_zero_cells_warn_and_are_kept():
    mdata = make_mdata()
    x = mdata["rna"].X.toarray()
    x[4] = 0
    x[:, 5] = 0
    mdata["rna"].X = sp.csr_matrix(x)
    with pytest.warns(UserWarning) as record:
        registry = setup_data(mdata)
    messages = " ".join(str(w.message) for w in record)
    assert "modality 'rna' X: 1 of 12 cells have all-zero values (e.g. cell 'cell4')" in messages
    assert "1 of 6 features are zero in every cell (e.g. gene 'gene5')" in messages
    assert registry.n_obs == 12
    assert np.flatnonzero(~registry.nonempty_cells()).tolist() == [4]


def _snapshot(mdata: md.MuData) -> dict:
    out = {"mods": list(mdata.mod), "obs": mdata.obs.copy(), "uns": copy.deepcopy(mdata.uns)}
    for name, a in mdata.mod.items():
        out[name] = (
            a.X.toarray() if sp.issparse(a.X) else np.array(a.X),
            type(a.X),
            {k: (v.toarray() if sp.issparse(v) else np.array(v)) for k, v in a.layers.items()},
            a.obs.copy(),
            a.var.copy(),
        )
    return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_setup_does_not_modify_input(fmt):
    mdata = make_mdata(fmt=fmt)
    mdata.obs["lonely"] = ["a"] * 11 + ["b"]
    before = _snapshot(mdata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        setup_data(mdata, batch_key=["batch", "lonely"], layers={"rna": "counts"})
    after = _snapshot(mdata)
    assert before["mods"] == after["mods"]
    pd.testing.assert_frame_equal(before["obs"], after["obs"])
    assert set(before["uns"]) == set(after["uns"])
    for name in before["mods"]:
        np.testing.assert_array_equal(before[name][0], after[name][0])
        assert before[name][1] is after[name][1]
        assert before[name][2].keys() == after[name][2].keys()
        pd.testing.assert_frame_equal(before[name][3], after[name][3])
        pd.testing.assert_frame_equal(before[name][4], after[name][4])


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_backed_validation_leaves_file_unchanged(tmp_path):
    path = tmp_path / "data.h5mu"
    make_mdata(n=30).write_h5mu(path)
    digest = _sha(path)
    mdata = md.read_h5mu(path, backed=True)
    assert mdata["rna"].isbacked
    registry = setup_data(mdata, batch_key="batch")
    from qbm_pyro.data import MinibatchLoader

    for _ in MinibatchLoader(mdata, registry, batch_size=7, seed=1):
        pass
    mdata.file.close()
    assert _sha(path) == digest


@pytest.mark.parametrize("fmt", FORMATS)
def test_backed_chunks_locate_bad_value(tmp_path, fmt):
    """Backed CSR/dense are read by rows, CSC by columns; the message names the right entry."""
    rng = np.random.default_rng(0)
    x = rng.poisson(1.0, size=(25, 9)).astype(np.float32)
    x[:, 0] += 1
    x[17, 6] = 1.5
    a = ad.AnnData(_fmt(x, fmt))
    a.obs_names = [f"c{i}" for i in range(25)]
    a.var_names = [f"g{j}" for j in range(9)]
    path = tmp_path / "a.h5ad"
    a.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    with pytest.raises(ValueError, match=r"non-integer values .*1\.5 at cell 'c17', gene 'g6'"):
        check_matrix(
            backed.X,
            modality="rna",
            kind="rna",
            obs_names=backed.obs_names,
            var_names=backed.var_names,
            chunk_size=4,
        )
    backed.file.close()
    x[17, 6] = 0
    x[3] = 0
    a = ad.AnnData(_fmt(x, fmt))
    a.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    with pytest.warns(UserWarning, match="1 of 25 cells have all-zero values"):
        summary = check_matrix(backed.X, modality="rna", kind="rna", chunk_size=4)
    assert np.flatnonzero(summary.empty_cells).tolist() == [3]
    assert not summary.empty_features.any()
    backed.file.close()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    x=arrays(np.int64, st.tuples(st.integers(1, 6), st.integers(1, 6)), elements=st.integers(0, 50)),
    fmt=st.sampled_from(FORMATS),
    data=st.data(),
)
def test_property_counts_pass_and_a_negative_is_located(x, fmt, data):
    obs_names = [f"c{i}" for i in range(x.shape[0])]
    var_names = [f"g{j}" for j in range(x.shape[1])]
    kwargs = dict(modality="rna", kind="rna", obs_names=obs_names, var_names=var_names, warn=False)
    original = x.copy()
    summary = check_matrix(_fmt(x.astype(np.float32), fmt), **kwargs)
    assert summary.empty_cells.tolist() == (x.sum(axis=1) == 0).tolist()
    np.testing.assert_array_equal(x, original)

    i = data.draw(st.integers(0, x.shape[0] - 1))
    j = data.draw(st.integers(0, x.shape[1] - 1))
    bad = x.astype(np.float32)
    bad[i, j] = -data.draw(st.integers(1, 9))
    with pytest.raises(
        ValueError,
        match=rf"negative values \(1 value\(s\), e\.g\. -\d at cell 'c{i}', gene 'g{j}'\)",
    ):
        check_matrix(_fmt(bad, fmt), **kwargs)
