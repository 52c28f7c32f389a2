"""Property-based tests (hypothesis): the count-matrix validator and the Boltzmann <-> BQM mapping."""

from __future__ import annotations

import dimod
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from qbm_pyro.data.validation import check_matrix
from qbm_pyro.energy import energy
from qbm_pyro.samplers import boltzmann_from_bqm, bqm_from_boltzmann

torch.set_num_threads(1)

SETTINGS = settings(max_examples=50, deadline=None)


def _shuffled_coo(x, seed, split=False):
    """COO with the entries in a random order; with ``split``, counts >= 2 stored as two
    duplicated entries ``(v - 1) + 1`` (scipy sums duplicates)."""
    rows, cols = np.nonzero(x)
    values = x[rows, cols]
    if split:
        two = values >= 2
        rows = np.concatenate([rows, rows[two]])
        cols = np.concatenate([cols, cols[two]])
        values = np.concatenate([np.where(two, values - 1, values), np.ones(int(two.sum()), x.dtype)])
    order = np.random.default_rng(seed).permutation(len(values))
    return sp.coo_matrix((values[order], (rows[order], cols[order])), shape=x.shape, dtype=x.dtype)


def _shuffled_dok(x, seed):
    """DOK filled in a random order (its iteration order is the insertion order)."""
    out = sp.dok_matrix(x.shape, dtype=x.dtype)
    rows, cols = np.nonzero(x)
    for k in np.random.default_rng(seed).permutation(len(rows)):
        out[rows[k], cols[k]] = x[rows[k], cols[k]]
    return out


#: Every storage check_matrix accepts: dense, and scipy's sparse matrices and arrays, with
#: entries stored in any order (and, for COO, duplicated).
FORMATS = {
    "dense": lambda x, seed: np.asarray(x),
    "csr": lambda x, seed: sp.csr_matrix(x),
    "csc": lambda x, seed: sp.csc_matrix(x),
    "coo": _shuffled_coo,
    "coo-duplicates": lambda x, seed: _shuffled_coo(x, seed, split=True),
    "lil": lambda x, seed: sp.lil_matrix(x),
    "dok": _shuffled_dok,
    "csr_array": lambda x, seed: sp.csr_array(x),
    "csc_array": lambda x, seed: sp.csc_array(x),
    "coo_array": lambda x, seed: sp.coo_array(_shuffled_coo(x, seed)),
}

shapes = st.tuples(st.integers(1, 8), st.integers(1, 8))
counts = arrays(np.int64, shapes, elements=st.integers(0, 30))
formats = st.sampled_from(sorted(FORMATS))
dtypes = st.sampled_from([np.float32, np.float64, np.int32, np.int64])


def _names(x):
    return [f"c{i}" for i in range(x.shape[0])], [f"g{j}" for j in range(x.shape[1])]


def _check(x, fmt, kind="rna", seed=0):
    obs, var = _names(x)
    matrix = FORMATS[fmt](x, seed)
    np.testing.assert_array_equal(matrix.toarray() if sp.issparse(matrix) else matrix, x)
    return check_matrix(matrix, modality="m", kind=kind, obs_names=obs, var_names=var, warn=False)


@SETTINGS
@given(
    x=counts,
    fmt=formats,
    dtype=dtypes,
    kind=st.sampled_from(["rna", "protein", "atac"]),
    seed=st.integers(0, 2**16),
)
def test_any_nonnegative_integer_matrix_passes(x, fmt, dtype, kind, seed):
    x = x.astype(dtype)
    original = x.copy()
    summary = _check(x, fmt, kind, seed)
    np.testing.assert_array_equal(summary.empty_cells, x.sum(1) == 0)
    np.testing.assert_array_equal(summary.empty_features, x.sum(0) == 0)
    assert summary.is_binary == bool(np.isin(x, (0, 1)).all())
    np.testing.assert_array_equal(x, original)  # the input is not modified


BAD = {
    "negative": (st.integers(1, 50).map(lambda k: -float(k)), r"negative values"),
    "nan": (st.just(np.nan), r"NaN or infinite values"),
    "inf": (st.sampled_from([np.inf, -np.inf]), r"NaN or infinite values"),
    "non-integer": (
        st.tuples(st.integers(0, 20), st.floats(0.01, 0.99)).map(lambda t: t[0] + t[1]),
        r"non-integer values",
    ),
}


@SETTINGS
@given(
    x=counts,
    fmt=formats,
    problem=st.sampled_from(sorted(BAD)),
    data=st.data(),
)
def test_one_bad_entry_fails_naming_its_cell_and_feature(x, fmt, problem, data):
    strategy, message = BAD[problem]
    i = data.draw(st.integers(0, x.shape[0] - 1), label="row")
    j = data.draw(st.integers(0, x.shape[1] - 1), label="col")
    bad = x.astype(np.float64)
    bad[i, j] = data.draw(strategy, label="value")
    original = bad.copy()
    seed = data.draw(st.integers(0, 2**16), label="seed")
    with pytest.raises(
        ValueError,
        match=rf"modality 'm' X has {message} \(1 value\(s\), e\.g\. "
        rf"\S+ at cell 'c{i}', gene 'g{j}'\)",
    ):
        _check(bad, fmt, seed=seed)
    np.testing.assert_array_equal(bad, original)


@SETTINGS
@given(x=counts, fmt=formats, data=st.data())
def test_several_bad_entries_name_one_of_them(x, fmt, data):
    cells = data.draw(st.lists(st.integers(0, x.shape[0] - 1), min_size=2, max_size=4), label="rows")
    features = [data.draw(st.integers(0, x.shape[1] - 1), label="col") for _ in cells]
    bad = x.astype(np.float32)
    bad[cells, features] = -1.0
    with pytest.raises(ValueError) as info:
        _check(bad, fmt, seed=data.draw(st.integers(0, 2**16), label="seed"))
    n_bad = int((bad < 0).sum())
    named = [
        (i, j) for i, j in zip(cells, features, strict=True) if f"cell 'c{i}', gene 'g{j}'" in str(info.value)
    ]
    assert named and f"({n_bad} value(s), e.g. -1 at" in str(info.value)


def test_non_integer_atac_is_accepted():
    x = np.array([[0.5, 1.0], [0.0, 2.25]])
    for fmt in FORMATS:
        assert not _check(x, fmt, kind="atac").is_binary


# ---------------------------------------------------------------------------------------------
# Boltzmann <-> BQM.
# ---------------------------------------------------------------------------------------------

finite = st.floats(-5, 5, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def machines(draw):
    n = draw(st.integers(1, 10))
    h = torch.tensor(draw(st.lists(finite, min_size=n, max_size=n)), dtype=torch.float64)
    J = torch.tensor(draw(st.lists(st.lists(finite, min_size=n, max_size=n), min_size=n, max_size=n)))
    return h, J.reshape(n, n).double()


@SETTINGS
@given(machine=machines(), vartype=st.sampled_from(["BINARY", "SPIN"]))
def test_bqm_round_trip_keeps_h_and_upper_j(machine, vartype):
    h, J = machine
    bqm = bqm_from_boltzmann(h, J)
    assert bqm.vartype is dimod.BINARY and bqm.num_variables == h.shape[0]
    if vartype == "SPIN":
        bqm = bqm.change_vartype(dimod.SPIN, inplace=False)
    h2, J2 = boltzmann_from_bqm(bqm)
    torch.testing.assert_close(h2, h, rtol=0, atol=1e-9)
    torch.testing.assert_close(J2, torch.triu(J, 1), rtol=0, atol=1e-9)


@SETTINGS
@given(machine=machines(), data=st.data())
def test_bqm_energy_equals_boltzmann_energy(machine, data):
    h, J = machine
    n = h.shape[0]
    bqm = bqm_from_boltzmann(h, J)
    states = data.draw(
        st.lists(st.lists(st.integers(0, 1), min_size=n, max_size=n), min_size=1, max_size=8),
        label="states",
    )
    z = torch.tensor(states, dtype=torch.float64)
    expected = energy(z, h, J)
    got = torch.tensor(bqm.energies((np.array(states), list(range(n)))), dtype=torch.float64)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-9)
    spin = bqm.change_vartype(dimod.SPIN, inplace=False)
    spins = 2 * np.array(states) - 1
    got_spin = torch.tensor(spin.energies((spins, list(range(n)))), dtype=torch.float64)
    torch.testing.assert_close(got_spin, expected, rtol=0, atol=1e-9)  # offset carried along
