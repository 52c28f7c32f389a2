"""Tools (muon/scanpy style): each verb takes the data object first and writes its results into it.

Each tool loads on first use.
"""

from qbm_pyro._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    attributes={
        "attractors": "._attractors",
        "cell_graph": "._trajectory",
        "energy_along_pseudotime": "._trajectory",
        "modality_reliability": "._reliability",
        "qbm": "._qbm",
        "trajectory": "._trajectory",
        "trajectory_graph": "._trajectory",
        "transfer_labels": "._transfer",
    },
)
