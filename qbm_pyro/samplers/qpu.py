"""Boltzmann samples from a D-Wave quantum annealer, at a calibrated temperature.

A QPU does not anneal to a chosen β: it returns samples that are roughly Boltzmann at an
unknown effective inverse temperature :math:`β_{eff}` of the energy it was programmed with.
:class:`QPUSampler` measures :math:`β_{eff}` on a probe call (maximum pseudo-likelihood,
:func:`~qbm_pyro.samplers.estimate_beta_eff`) and then programs
:math:`(β / β_{eff})\\,E`, so that the samples follow :math:`p_β`.

The hardware client (``dwave-system``) is imported only when the default sampler is built, on
first use; install it with ``pip install "qbm-pyro[qpu]"``.
"""

from __future__ import annotations

from typing import Any

import torch

from qbm_pyro.samplers.base import Sampler
from qbm_pyro.samplers.dimod import DimodSampler, estimate_beta_eff

__all__ = ["QPUSampler", "default_qpu_sampler"]


def default_qpu_sampler() -> Any:
    """``EmbeddingComposite(DWaveSampler())``; an actionable error when dwave-system is missing."""
    try:
        from dwave.system import DWaveSampler, EmbeddingComposite
    except ImportError as error:
        raise ImportError(
            "QPUSampler needs dwave-system to reach a D-Wave QPU; install it with "
            '`pip install "qbm-pyro[qpu]"` (or pass sampler=... explicitly)'
        ) from error
    return EmbeddingComposite(DWaveSampler())


class QPUSampler(Sampler):
    """Samples from a (quantum) annealer at the requested β, via a calibrated :math:`β_{eff}`.

    Parameters
    ----------
    sampler
        A dimod sampler that takes no β (hardware). Default, built lazily on first use:
        ``EmbeddingComposite(DWaveSampler())``, which needs ``dwave-system`` and Leap
        credentials. Offline, ``EmbeddingComposite(dwave.system.testing.MockDWaveSampler())``
        exercises the same path.
    beta_eff
        Known :math:`β_{eff}` (programmed-energy units); skips calibration.
    num_probe_samples
        Reads of the calibration call.
    recalibrate
        Calibrate on every call (one extra probe call each) instead of on the first only.
        :math:`β_{eff}` depends on the problem and drifts with the hardware; with ``False``
        the first problem's value is reused.
    auto_scale
        Passed to the sampler when not ``None``. Real QPUs rescale every problem to their full
        ``h_range``/``j_range`` by default (``auto_scale=True``), which would undo the
        :math:`β/β_{eff}` scaling; hence the default ``False``. Scaled problems must then fit
        the hardware ranges, so targets far above :math:`β_{eff}` are out of reach.
    seed
        Seed of the shuffle applied to aggregated (histogram) answers.
    **sample_kwargs
        Passed to ``sampler.sample`` on every call (``annealing_time``, ``chain_strength``...).

    Attributes
    ----------
    beta_eff_ : float or None
        The last calibrated (or given) :math:`β_{eff}`.

    Examples
    --------
    >>> from dwave.system import EmbeddingComposite
    >>> from dwave.system.testing import MockDWaveSampler
    >>> qpu = QPUSampler(EmbeddingComposite(MockDWaveSampler(parameter_warnings=False)),
    ...                  beta_eff=2.0)
    >>> qpu.sample(torch.zeros(3), torch.zeros(3, 3), 4).shape
    torch.Size([4, 3])
    """

    def __init__(
        self,
        sampler: Any = None,
        *,
        beta_eff: float | None = None,
        num_probe_samples: int = 1000,
        recalibrate: bool = False,
        auto_scale: bool | None = False,
        seed: int | None = None,
        **sample_kwargs: Any,
    ) -> None:
        if int(num_probe_samples) < 1:
            raise ValueError(f"num_probe_samples must be positive, got {num_probe_samples!r}")
        if auto_scale is not None:
            sample_kwargs["auto_scale"] = bool(auto_scale)
        self._sampler = sampler
        self._beta_eff_given = beta_eff
        self.num_probe_samples = int(num_probe_samples)
        self.recalibrate = bool(recalibrate)
        self.sample_kwargs = sample_kwargs
        self.seed = seed
        self._backend: DimodSampler | None = None
        self.beta_eff_: float | None = None if beta_eff is None else float(beta_eff)

    @property
    def backend(self) -> DimodSampler:
        """The :class:`DimodSampler` in ``"scaled"`` mode doing the work (built on first use)."""
        if self._backend is None:
            sampler = self._sampler if self._sampler is not None else default_qpu_sampler()
            self._backend = DimodSampler(
                sampler,
                mode="scaled",
                beta_eff=self.beta_eff_,
                seed=self.seed,
                **self.sample_kwargs,
            )
        return self._backend

    def calibrate(self, h: torch.Tensor, J: torch.Tensor) -> float:
        """Probe the sampler with :math:`E` programmed as is and return its :math:`β_{eff}`."""
        backend = self.backend
        backend.beta_eff = 1.0
        probe = backend.sample(h, J, self.num_probe_samples, beta=1.0)
        self.beta_eff_ = estimate_beta_eff(probe, h, J)
        backend.beta_eff = self.beta_eff_
        return self.beta_eff_

    def _sample(self, h: torch.Tensor, J: torch.Tensor, num_samples: int, beta: float) -> torch.Tensor:
        if self.beta_eff_ is None or (self.recalibrate and self._beta_eff_given is None):
            self.calibrate(h, J)
        self.backend.beta_eff = self.beta_eff_
        return self.backend._sample(h, J, num_samples, beta)

    def reset(self) -> None:
        """Forget a calibrated :math:`β_{eff}` (a given one is kept)."""
        self.beta_eff_ = None if self._beta_eff_given is None else float(self._beta_eff_given)

    def state_dict(self) -> dict:
        """The calibrated :math:`β_{eff}`."""
        return {"beta_eff": self.beta_eff_}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""
        unknown = set(state) - {"beta_eff"}
        if unknown:
            raise ValueError(f"unknown keys in QPUSampler state: {sorted(unknown)}")
        self.beta_eff_ = state.get("beta_eff")

    def close(self) -> None:
        """Close the hardware client if one was built."""
        if self._backend is not None:
            self._backend.close()
