"""The bundled data sets load with the documented shapes and labels."""

from __future__ import annotations

import json
from importlib.resources import files

import numpy as np
import pytest
import scipy.sparse as sp

from qbm_pyro import datasets
from qbm_pyro.data import MinibatchLoader, setup_data

CASES = {
    "mixology_5batch": {"": (1408, 2000)},
    "a549_scicar": {"rna": (2641, 1185), "atac": (2641, 11567)},
    "paul15_myeloid": {"": (2660, 240)},
    "pbmc_cite_1k": {"rna": (1024, 100), "prot": (1024, 17)},
    "pbmc_cite_2batch": {"rna": (400, 2000), "prot": (400, 14)},
    "pbmc_rna_atac_100": {"rna": (100, 200), "atac": (100, 200)},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_shapes_and_provenance(name):
    data = getattr(datasets, name)()
    for mod, shape in CASES[name].items():
        adata = data if mod == "" else data[mod]
        assert adata.shape == shape
        assert sp.issparse(adata.X)
        assert adata.obs_names.is_unique and adata.var_names.is_unique
    provenance = json.loads(data.uns["provenance"])
    assert "source_commit" in provenance or "source_repo" in provenance
    assert provenance["qbm_pyro"]["script"] == "scripts/make_datasets.py"


def test_loaders_return_fresh_objects():
    a = datasets.paul15_myeloid()
    a.obs["cell_type"] = "changed"
    assert datasets.paul15_myeloid().obs["cell_type"].nunique() == 7


def test_labels():
    mix = datasets.mixology_5batch()
    assert mix.obs["batch"].nunique() == 5
    assert int((mix.obs["demuxlet_cls"] == "SNG").sum()) == 1021
    assert sorted(mix.obs["cell_line"].cat.categories) == [
        "A549",
        "H1975",
        "H2228",
        "H838",
        "HCC827",
    ]
    assert mix.X.dtype == np.int32
    a549 = datasets.a549_scicar()
    assert list(a549.obs["time"].cat.categories) == ["0h", "1h", "3h"]
    assert a549["rna"].layers["counts"].dtype == np.int32
    assert set(np.unique(a549["atac"].X.data)) == {1}
    assert (a549["atac"].var["frac_cells"] >= 0.01).all()
    assert sorted(datasets.pbmc_cite_2batch().obs["batch"].unique()) == ["pbmc10k", "pbmc5k"]
    assert datasets.paul15_myeloid().obs["cell_type"].value_counts()["Erythrocyte"] == 1095
    assert datasets.pbmc_cite_1k()["prot"].var["isotype_control"].sum() == 3


def test_datasets_register_and_load():
    mdata = datasets.a549_scicar()
    registry = setup_data(mdata, layers="counts", batch_key="time")
    assert registry.kinds == {"rna": "rna", "atac": "atac"}
    batch = next(iter(MinibatchLoader(mdata, registry, batch_size=16, seed=0)))
    assert batch["x_rna"].shape == (16, 1185) and batch["x_atac"].shape == (16, 11567)
    with pytest.raises(ValueError, match=r"modality 'rna' X has non-integer values"):
        setup_data(mdata)
    registry = setup_data(datasets.mixology_5batch(), batch_key="batch")
    assert registry.n_batch == (5,)


def test_bundled_size_is_small():
    total = sum(p.stat().st_size for p in files(datasets).iterdir() if p.name.endswith(("h5ad", "h5mu")))
    assert total < 20e6
