"""Minibatches: same content for every storage format, masks for missing modalities, seeds."""

from __future__ import annotations

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from qbm_pyro.data import (
    REGISTRY_KEYS,
    MinibatchLoader,
    setup_data,
    train_validation_split,
)

FORMATS = ["dense", "csr", "csc"]


def _fmt(x: np.ndarray, fmt: str):
    return {"dense": np.asarray, "csr": sp.csr_matrix, "csc": sp.csc_matrix}[fmt](x)


def _counts(rng, n, m, lam):
    x = rng.poisson(lam, size=(n, m)).astype(np.float32)
    x[:, 0] += 1
    return x


def make_mdata(fmt: str = "csr", n: int = 23) -> md.MuData:
    rng = np.random.default_rng(42)
    names = [f"cell{i}" for i in range(n)]
    mods = {}
    for name, x, prefix in [
        ("rna", _counts(rng, n, 7, 2.0), "g"),
        ("prot", _counts(rng, n, 3, 9.0), "p"),
        ("atac", _counts(rng, n, 5, 0.8), "r"),
    ]:
        a = ad.AnnData(_fmt(x, fmt))
        a.obs_names = names
        a.var_names = [f"{prefix}{j}" for j in range(x.shape[1])]
        mods[name] = a
    mdata = md.MuData(mods)
    mdata.obs["batch"] = pd.Categorical(np.array(["b", "a", "c"])[np.arange(n) % 3])
    mdata.obs["site"] = np.where(np.arange(n) < 10, "s1", "s2")
    return mdata


def _collect(loader) -> list[dict[str, torch.Tensor]]:
    return [{k: v.clone() for k, v in batch.items()} for batch in loader]


def _assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            assert x[k].dtype == y[k].dtype, k
            torch.testing.assert_close(x[k], y[k], rtol=0, atol=0)


@pytest.fixture(scope="module")
def reference():
    mdata = make_mdata("csr")
    registry = setup_data(mdata, batch_key=["batch", "site"])
    return _collect(MinibatchLoader(mdata, registry, batch_size=5, seed=3))


@pytest.mark.parametrize("fmt", [*FORMATS, "backed-csr", "backed-csc", "backed-dense"])
def test_formats_give_identical_minibatches(fmt, reference, tmp_path):
    if fmt.startswith("backed"):
        path = tmp_path / "m.h5mu"
        make_mdata(fmt.split("-")[1]).write_h5mu(path)
        mdata = md.read_h5mu(path, backed=True)
        assert mdata["rna"].isbacked
    else:
        mdata = make_mdata(fmt)
    registry = setup_data(mdata, batch_key=["batch", "site"])
    _assert_same(_collect(MinibatchLoader(mdata, registry, batch_size=5, seed=3)), reference)


def test_minibatch_content(reference):
    mdata = make_mdata("dense")
    batch = reference[0]
    idx = batch["index"].numpy()
    assert batch["x_rna"].shape == (5, 7) and batch["x_rna"].dtype == torch.float32
    np.testing.assert_array_equal(batch["x_rna"].numpy(), mdata["rna"].X[idx])
    np.testing.assert_array_equal(batch["x_protein"].numpy(), mdata["prot"].X[idx])
    np.testing.assert_array_equal(batch["x_atac"].numpy(), (mdata["atac"].X[idx] > 0))
    np.testing.assert_array_equal(batch["library_rna"].numpy(), mdata["rna"].X[idx].sum(1))
    assert batch["mask_rna"].dtype == torch.bool and batch["mask_rna"].all()
    assert batch["batch"].dtype == torch.int64 and batch["batch"].shape == (5, 2)
    expected = pd.Categorical(mdata.obs["batch"]).codes[idx]
    np.testing.assert_array_equal(batch["batch"][:, 0].numpy(), expected)
    assert set(batch) == {REGISTRY_KEYS.x_key(k) for k in REGISTRY_KEYS.KINDS} | {
        REGISTRY_KEYS.mask_key(k) for k in REGISTRY_KEYS.KINDS
    } | {REGISTRY_KEYS.library_key(k) for k in REGISTRY_KEYS.KINDS} | {
        REGISTRY_KEYS.BATCH_KEY,
        REGISTRY_KEYS.INDEX_KEY,
    }
    all_idx = np.concatenate([b["index"].numpy() for b in reference])
    assert sorted(all_idx.tolist()) == list(range(23))


@pytest.mark.parametrize("backed", [False, True])
def test_missing_modality_masks(backed, tmp_path):
    rng = np.random.default_rng(0)
    rna = ad.AnnData(sp.csr_matrix(_counts(rng, 10, 4, 3.0)))
    rna.obs_names = [f"c{i}" for i in range(10)]
    prot = ad.AnnData(sp.csr_matrix(_counts(rng, 8, 2, 10.0)))
    prot.obs_names = [f"c{i}" for i in [14, 13, 12, 11, 10, 9, 8, 7]]  # c7..c9 overlap, reversed
    prot.var_names = ["p0", "p1"]
    mdata = md.MuData({"rna": rna, "prot": prot})
    if backed:
        mdata.write_h5mu(tmp_path / "m.h5mu")
        mdata = md.read_h5mu(tmp_path / "m.h5mu", backed=True)
    registry = setup_data(mdata)
    assert registry.n_obs == 15
    loader = MinibatchLoader(mdata, registry, batch_size=4, shuffle=True, seed=0)
    seen = 0
    for batch in loader:
        names = mdata.obs_names[batch["index"].numpy()]
        has_rna = np.array([int(n[1:]) < 10 for n in names])
        has_prot = np.array([int(n[1:]) >= 7 for n in names])
        np.testing.assert_array_equal(batch["mask_rna"].numpy(), has_rna)
        np.testing.assert_array_equal(batch["mask_protein"].numpy(), has_prot)
        assert (batch["x_rna"][~batch["mask_rna"]] == 0).all()
        assert (batch["x_protein"][~batch["mask_protein"]] == 0).all()
        for k, name in enumerate(names):
            if has_prot[k]:
                row = list(prot.obs_names).index(name)
                np.testing.assert_array_equal(batch["x_protein"][k].numpy(), prot.X[row].toarray()[0])
            if has_rna[k]:
                row = list(rna.obs_names).index(name)
                np.testing.assert_array_equal(batch["x_rna"][k].numpy(), rna.X[row].toarray()[0])
        seen += len(names)
    assert seen == 15


def test_seeded_shuffling_is_reproducible():
    mdata = make_mdata()
    registry = setup_data(mdata)

    def orders(seed):
        loader = MinibatchLoader(mdata, registry, batch_size=6, seed=seed)
        return [np.concatenate([b["index"].numpy() for b in loader]) for _ in range(2)]

    a, b, c = orders(7), orders(7), orders(8)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], a[1])  # a new order each pass
    assert not np.array_equal(a[0], c[0])
    loader = MinibatchLoader(mdata, registry, batch_size=6, shuffle=False)
    np.testing.assert_array_equal(np.concatenate([b["index"] for b in loader]), np.arange(23))


def test_len_drop_last_and_indices():
    mdata = make_mdata()
    registry = setup_data(mdata)
    assert len(MinibatchLoader(mdata, registry, batch_size=5)) == 5
    loader = MinibatchLoader(mdata, registry, batch_size=5, drop_last=True)
    assert len(loader) == 4 and all(b["index"].shape == (5,) for b in loader)
    sub = MinibatchLoader(mdata, registry, batch_size=4, indices=[2, 4, 6], seed=0)
    assert len(sub) == 1
    assert sorted(next(iter(sub))["index"].tolist()) == [2, 4, 6]
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 23\), got 99"):
        MinibatchLoader(mdata, registry, indices=[1, 99])
    with pytest.raises(ValueError, match=r"batch_size must be a positive int, got 0"):
        MinibatchLoader(mdata, registry, batch_size=0)
    other = make_mdata(n=10)
    with pytest.raises(ValueError, match=r"do not have the cells of the registry"):
        MinibatchLoader(other, registry)


def test_nonempty_cells_as_indices():
    mdata = make_mdata()
    x = mdata["rna"].X.toarray()
    x[[1, 5]] = 0
    mdata["rna"].X = sp.csr_matrix(x)
    with pytest.warns(UserWarning, match="2 of 23 cells have all-zero values"):
        registry = setup_data(mdata)
    keep = np.flatnonzero(registry.nonempty_cells())
    loader = MinibatchLoader(mdata, registry, batch_size=50, indices=keep)
    assert sorted(next(iter(loader))["index"].tolist()) == sorted(set(range(23)) - {1, 5})


def test_anndata_kinds_and_batch_from_modality_obs():
    mdata = make_mdata()
    prot = mdata["prot"].copy()
    registry = setup_data(prot, modalities="protein")
    batch = next(iter(MinibatchLoader(prot, registry, batch_size=4, seed=0)))
    assert set(batch) == {"x_protein", "mask_protein", "library_protein", "batch", "index"}

    rna = mdata["rna"].copy()
    rna.obs["donor"] = np.where(np.arange(23) % 2 == 0, "d1", "d2")
    m2 = md.MuData({"rna": rna, "atac": mdata["atac"].copy()})
    if "donor" in m2.obs:
        m2.obs = m2.obs.drop(columns="donor")
    registry = setup_data(m2, batch_key="donor")
    assert registry.batch_categories["donor"] == ("d1", "d2")
    np.testing.assert_array_equal(registry.batch_codes[:, 0], np.arange(23) % 2)


def test_setup_args_summary_compatibility_and_transfer():
    mdata = make_mdata()
    registry = setup_data(mdata, modalities=["rna", "atac"], batch_key="batch")
    assert registry.setup_args == {
        "modalities": {"rna": "rna", "atac": "atac"},
        "layers": {"rna": None, "atac": None},
        "batch_key": ["batch"],
    }
    again = setup_data(mdata, **registry.setup_args)
    np.testing.assert_array_equal(again.batch_codes, registry.batch_codes)
    text = registry.summary()
    assert "23 cells (MuData), 2 modalities" in text and "'batch': 3 levels (a, b, c)" in text
    registry.check_compatible(mdata)

    new = make_mdata(n=9)
    new.obs["batch"] = pd.Categorical(["c"] * 9)  # a subset of the levels
    transferred = registry.transfer(new)
    assert transferred.batch_categories == registry.batch_categories
    assert (transferred.batch_codes[:, 0] == 2).all()

    bad = make_mdata()
    bad.mod["rna"] = bad["rna"][:, ::-1].copy()
    bad.mod["atac"] = bad["atac"][:, :3].copy()
    bad.obs["batch"] = "z"
    with pytest.raises(ValueError) as err:
        registry.check_compatible(bad)
    msg = str(err.value)
    assert "modality 'rna': same features in a different order" in msg
    assert "modality 'atac': 2 feature(s) missing ['r3', 'r4']" in msg
    assert "levels unknown to the registry: ['z']" in msg
    with pytest.raises(ValueError, match=r"expected a MuData, got AnnData"):
        registry.check_compatible(mdata["rna"])


def test_train_validation_split():
    train, val = train_validation_split(100, 0.2, seed=1)
    assert len(train) == 80 and len(val) == 20
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(100))
    t2, v2 = train_validation_split(100, 0.2, seed=1)
    np.testing.assert_array_equal(val, v2)
    assert len(train_validation_split(10, 0.0, seed=0)[1]) == 0
    with pytest.raises(ValueError, match=r"validation_fraction must be in \[0, 1\), got 1\.5"):
        train_validation_split(10, 1.5)
    with pytest.raises(ValueError, match=r"leaves no training cell"):
        train_validation_split(1, 0.6)
