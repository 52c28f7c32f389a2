"""The data layer: register MuData/AnnData, check it, and make minibatches.

>>> from qbm_pyro import datasets
>>> from qbm_pyro.data import MinibatchLoader, setup_data
>>> mdata = datasets.pbmc_cite_2batch()
>>> registry = setup_data(mdata, batch_key="batch")
>>> loader = MinibatchLoader(mdata, registry, batch_size=64, seed=0)
"""

from qbm_pyro._constants import MODALITY_ALIASES, REGISTRY_KEYS
from qbm_pyro.data.cells import batch_column, cell_rows
from qbm_pyro.data.loader import MinibatchLoader, read_rows
from qbm_pyro.data.registry import DataRegistry, ModalitySpec, setup_data
from qbm_pyro.data.split import train_validation_split

__all__ = [
    "MODALITY_ALIASES",
    "REGISTRY_KEYS",
    "DataRegistry",
    "MinibatchLoader",
    "ModalitySpec",
    "batch_column",
    "cell_rows",
    "read_rows",
    "setup_data",
    "train_validation_split",
]
