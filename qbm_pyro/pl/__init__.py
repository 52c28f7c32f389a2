"""Plots (scanpy style): the data object first, keyword-only options, an Axes returned."""

from qbm_pyro.pl._trajectory import pseudotime_energy, state_graph, trajectory

__all__ = ["pseudotime_energy", "state_graph", "trajectory"]
