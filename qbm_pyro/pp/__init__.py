"""Preprocessing (scanpy style): steps run on the data before a model is fit.

:func:`highly_variable_genes` flags genes (scanpy's flavours, ``seurat_v3`` by default) and
:func:`select_genes` returns the data a model is fit on; :func:`qbm_pyro.tl.qbm` calls it with
``n_top_genes="auto"``. :func:`size_defaults` holds the settings that follow the number of cells.
:func:`check_input` checks the whole input of every modality before any of these steps (the
first step of ``tl.qbm`` and ``qbm-pyro fit``); :func:`check_count_input` warns on rounded
TPM/CPM/FPKM.
"""

from qbm_pyro.pp._genes import (
    AUTO_SELECT_ABOVE,
    DEFAULT_N_TOP_GENES,
    GeneSelectionWarning,
    highly_variable_genes,
    resolve_n_top_genes,
    select_genes,
)
from qbm_pyro.pp._input import NonCountInputWarning, check_count_input, check_input, warn_non_counts
from qbm_pyro.pp._sizes import SMALL_DATA_CELLS, size_defaults

__all__ = [
    "AUTO_SELECT_ABOVE",
    "DEFAULT_N_TOP_GENES",
    "SMALL_DATA_CELLS",
    "GeneSelectionWarning",
    "NonCountInputWarning",
    "check_count_input",
    "check_input",
    "highly_variable_genes",
    "resolve_n_top_genes",
    "select_genes",
    "size_defaults",
    "warn_non_counts",
]
