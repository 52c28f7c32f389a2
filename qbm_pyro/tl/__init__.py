"""Tools (muon/scanpy style): each verb takes the data object first and writes its results into it."""

from qbm_pyro.tl._attractors import attractors
from qbm_pyro.tl._qbm import qbm
from qbm_pyro.tl._trajectory import cell_graph, energy_along_pseudotime, trajectory, trajectory_graph
from qbm_pyro.tl._transfer import transfer_labels

__all__ = [
    "attractors",
    "cell_graph",
    "energy_along_pseudotime",
    "qbm",
    "trajectory",
    "trajectory_graph",
    "transfer_labels",
]
