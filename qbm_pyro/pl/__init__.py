"""Plots (scanpy style): the data object first (a model only where a plot needs one), keyword-only
options, an Axes returned. Each loads on first use (matplotlib with it)."""

from qbm_pyro._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    attributes={
        "attractors": "._landscape",
        "landscape": "._landscape",
        "persistence": "._landscape",
        "couplings": "._model",
        "energy": "._model",
        "training_curve": "._model",
        "pseudotime_energy": "._trajectory",
        "state_graph": "._trajectory",
        "trajectory": "._trajectory",
        # sampler diagnostics
        "autocorrelation": "._samplers",
        "effective_sample_size": "._samplers",
        "energy_trace": "._samplers",
        "record_energy_trace": "._samplers",
        "swap_acceptance": "._samplers",
    },
)
