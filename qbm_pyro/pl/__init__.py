"""Plots (scanpy style): the data object (or model) first, keyword-only options, an Axes returned."""

from qbm_pyro.pl._landscape import attractors, landscape
from qbm_pyro.pl._model import couplings, energy, training_curve
from qbm_pyro.pl._trajectory import pseudotime_energy, state_graph, trajectory

__all__ = [
    "attractors",
    "couplings",
    "energy",
    "landscape",
    "pseudotime_energy",
    "state_graph",
    "training_curve",
    "trajectory",
]
from qbm_pyro.pl._samplers import (  # noqa: E402  (sampler diagnostics)
    autocorrelation,
    effective_sample_size,
    energy_trace,
    record_energy_trace,
    swap_acceptance,
)

__all__ += [
    "autocorrelation",
    "effective_sample_size",
    "energy_trace",
    "record_energy_trace",
    "swap_acceptance",
]
