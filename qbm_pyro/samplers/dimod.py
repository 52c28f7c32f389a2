"""A sampler backend for any dimod sampler, the BQM mapping it needs, and β_eff calibration.

The Boltzmann energy (:mod:`qbm_pyro.energy`) is written as a dimod binary quadratic model in
``BINARY`` vartype with linear biases :math:`a_i = -h_i` and quadratic biases
:math:`b_{ij} = -J_{ij}` (``i < j``), so that ``bqm.energy(z) == E(z)`` for every state.

:class:`DimodSampler` hands that BQM to any object with a dimod-style ``sample(bqm, **kwargs)``
method (``dwave.samplers.SimulatedAnnealingSampler`` by default, ``neal``, a D-Wave QPU behind
``EmbeddingComposite``, ...) and turns the returned ``SampleSet`` into a tensor. How the target
inverse temperature β is reached depends on ``mode``:

``"anneal"``
    Simulated annealing along ``beta_range=(beta_min, β)``: the schedule *ends* at β. (The
    default schedule of dwave-samplers cools to T ≈ 0 and returns minima, not Boltzmann
    samples.)
``"fixed"``
    Metropolis sweeps at the fixed β (``beta_schedule_type="custom"``), started from the states
    returned by the previous call: persistent chains, as in PCD.
``"scaled"``
    For samplers without a β parameter (hardware), which sample at an effective
    :math:`β_{eff}` of the programmed energy: the BQM is multiplied by :math:`β / β_{eff}`.
    :func:`~qbm_pyro.samplers.estimate_beta_eff` measures :math:`β_{eff}` from samples.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any, Literal

import dimod
import numpy as np
import torch

from qbm_pyro._checks import check_choice
from qbm_pyro.energy import local_fields
from qbm_pyro.samplers.base import Sampler, make_generator

__all__ = [
    "DimodSampler",
    "bqm_from_boltzmann",
    "boltzmann_from_bqm",
    "estimate_beta_eff",
    "sampleset_to_tensor",
]

_MODES = ("anneal", "fixed", "scaled")


def bqm_from_boltzmann(h: torch.Tensor, J: torch.Tensor) -> dimod.BinaryQuadraticModel:
    """The ``BINARY`` BQM whose energy is :math:`E(z) = -h^\\top z - \\sum_{i<j} J_{ij} z_i z_j`.

    Parameters
    ----------
    h
        Biases, shape ``(n,)``.
    J
        Couplings, shape ``(n, n)``; only the strict upper triangle is used.

    Returns
    -------
    dimod.BinaryQuadraticModel
        Variables labelled ``0 .. n-1``, linear biases ``-h_i``, quadratic biases ``-J_ij`` for
        every ``i < j`` (zeros included, so the interaction graph is complete), offset 0.

    Examples
    --------
    >>> import torch
    >>> h, J = torch.tensor([1.0, -0.5]), torch.tensor([[0.0, 2.0], [0.0, 0.0]])
    >>> float(bqm_from_boltzmann(h, J).energy({0: 1, 1: 1}))
    -2.5
    """
    h_np = h.detach().cpu().double().numpy()
    n = h_np.shape[0]
    if J.shape != (n, n):
        raise ValueError(f"J must have shape ({n}, {n}) to match h, got {tuple(J.shape)}")
    rows, cols = np.triu_indices(n, k=1)
    couplings = J.detach().cpu().double().numpy()[rows, cols]
    return dimod.BinaryQuadraticModel.from_numpy_vectors(
        linear=-h_np,
        quadratic=(rows, cols, -couplings),
        offset=0.0,
        vartype=dimod.BINARY,
        variable_order=range(n),
    )


def boltzmann_from_bqm(
    bqm: dimod.BinaryQuadraticModel,
    *,
    variable_order: list | None = None,
    dtype: torch.dtype = torch.float64,
    return_offset: bool = False,
) -> tuple[torch.Tensor, ...]:
    """Inverse of :func:`bqm_from_boltzmann`: ``(h, J)`` with ``E(z) = bqm.energy(z) - offset``.

    A ``SPIN`` BQM is first converted to ``BINARY`` (``s = 2z - 1``), which changes its offset
    but not the distribution it defines. The constant offset does not change
    :math:`p(z) \\propto e^{-βE(z)}` either, so by default it is dropped; ask for it with
    ``return_offset=True``.

    Parameters
    ----------
    bqm
        A binary quadratic model, ``BINARY`` or ``SPIN``.
    variable_order
        Which variable becomes index ``i``. Default: ``0 .. n-1`` when those are the labels,
        otherwise the order of ``bqm.variables``.
    dtype
        Floating dtype of the returned tensors.
    return_offset
        Also return the offset of the ``BINARY`` form, a float.

    Returns
    -------
    h : Tensor
        Shape ``(n,)``.
    J : Tensor
        Shape ``(n, n)``, strictly upper triangular.
    offset : float
        Only with ``return_offset=True``; ``bqm.energy(z) == E(z) + offset``.
    """
    binary = bqm.change_vartype(dimod.BINARY, inplace=False)
    n = binary.num_variables
    if variable_order is None:
        labels = list(binary.variables)
        variable_order = list(range(n)) if set(labels) == set(range(n)) else labels
    elif sorted(map(repr, variable_order)) != sorted(map(repr, binary.variables)):
        raise ValueError(
            f"variable_order must list each of the {n} BQM variables once, got {variable_order!r}"
        )
    linear, (rows, cols, quad), offset = binary.to_numpy_vectors(variable_order=variable_order)
    h = -torch.as_tensor(np.asarray(linear, dtype=np.float64), dtype=dtype)
    J = torch.zeros(n, n, dtype=dtype)
    upper_rows = np.minimum(rows, cols)
    upper_cols = np.maximum(rows, cols)
    J[upper_rows, upper_cols] = -torch.as_tensor(np.asarray(quad, dtype=np.float64), dtype=dtype)
    if return_offset:
        return h, J, float(offset)
    return h, J


def sampleset_to_tensor(
    sampleset: dimod.SampleSet, n: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Rows of a ``SampleSet`` as a ``(num_reads, n)`` float tensor of 0/1 in variable order 0..n-1.

    Aggregated rows (``num_occurrences > 1``, e.g. a QPU's histogram answer mode) are repeated,
    then all rows are shuffled with ``generator`` so that no order is implied. ``SPIN`` sample
    sets are mapped to ``BINARY``.
    """
    if sampleset.vartype is dimod.SPIN:
        sampleset = sampleset.change_vartype(dimod.BINARY, inplace=False)
    labels = list(sampleset.variables)
    if set(labels) != set(range(n)):
        raise ValueError(f"expected variables 0..{n - 1} in the sample set, got {labels!r}")
    position = {label: k for k, label in enumerate(labels)}
    record = sampleset.record
    samples = np.asarray(record.sample)[:, [position[i] for i in range(n)]]
    occurrences = np.asarray(record.num_occurrences)
    out = torch.as_tensor(samples.astype(np.float32))
    if (occurrences != 1).any():
        out = torch.repeat_interleave(out, torch.as_tensor(occurrences.astype(np.int64)), dim=0)
        out = out[torch.randperm(out.shape[0], generator=generator)]
    return out


def estimate_beta_eff(
    samples: torch.Tensor,
    h: torch.Tensor,
    J: torch.Tensor,
    *,
    bounds: tuple[float, float] = (1e-4, 1e4),
) -> float:
    """Effective inverse temperature of samples, by maximum pseudo-likelihood.

    Finds the scalar :math:`β > 0` that maximises

    .. math::
        \\mathrm{PL}(β) = \\sum_s \\sum_i \\log σ\\big((2 z_{si} - 1)\\, β F_{si}\\big),
        \\qquad F_s = h + z_s \\tilde J,

    the pseudo-log-likelihood of the samples under :math:`p_β \\propto e^{-βE}`
    (:math:`\\tilde J` is the symmetric coupling matrix, see
    :func:`qbm_pyro.energy.local_fields`). PL is concave in β, so the 1-D maximisation (bounded
    Brent search over log β) has a single optimum. The estimator is consistent: at
    ``n = 8`` with 20,000 exact samples drawn at β = 0.5 it lands within about 2 % of 0.5.

    Parameters
    ----------
    samples
        States in ``{0, 1}``, shape ``(num_samples, n)``.
    h
        Biases, shape ``(n,)``.
    J
        Couplings, shape ``(n, n)``; strict upper triangle used.
    bounds
        Search interval for β. An optimum on the upper bound (samples that all sit in local
        minima, as an optimiser returns) comes with a warning.

    Returns
    -------
    float
        The estimate of β.
    """
    from scipy.optimize import minimize_scalar

    z = samples.detach().cpu().double()
    if z.dim() != 2 or z.shape[1] != h.shape[0]:
        raise ValueError(f"samples must have shape (num_samples, {h.shape[0]}), got {tuple(z.shape)}")
    low, high = (float(b) for b in bounds)
    if not 0 < low < high:
        raise ValueError(f"bounds must satisfy 0 < low < high, got {bounds!r}")
    fields = local_fields(z, h.detach().cpu().double(), J.detach().cpu().double())
    margins = ((2 * z - 1) * fields).flatten().numpy()
    margins = margins[margins != 0]
    if margins.size == 0:
        raise ValueError("every local field is zero: the samples carry no information on beta")

    def negative_pl(log_beta: float) -> float:
        return float(np.logaddexp(0.0, -math.exp(log_beta) * margins).sum())

    if (margins > 0).all():  # every flip raises the energy: PL grows without bound in β
        beta = high
    else:
        result = minimize_scalar(
            negative_pl,
            bounds=(math.log(low), math.log(high)),
            method="bounded",
            options={"xatol": 1e-10},
        )
        beta = math.exp(result.x)
    if beta > high / 1.01:
        warnings.warn(
            f"estimate_beta_eff: the optimum lies at the upper bound {high:g}; the samples look "
            "like minima (an optimiser's output), not Boltzmann samples",
            RuntimeWarning,
            stacklevel=2,
        )
    return beta


class DimodSampler(Sampler):
    """Boltzmann samples from any dimod sampler.

    Parameters
    ----------
    sampler
        An object with ``sample(bqm, **kwargs) -> dimod.SampleSet``. Default:
        ``dwave.samplers.SimulatedAnnealingSampler()``. ``neal.SimulatedAnnealingSampler()``
        and QPU samplers are accepted too.
    mode
        ``"anneal"``, ``"fixed"`` or ``"scaled"`` (see the module docstring). Default:
        ``"anneal"`` when the sampler lists ``beta_range`` in its ``parameters``, else
        ``"scaled"``.
    num_sweeps
        Sweeps per call (``"anneal"`` and ``"fixed"``).
    beta_min
        Start of the anneal, ``beta_range=(beta_min, beta)`` (``"anneal"`` only).
    burn_in
        Extra fixed-β sweeps on the first ``"fixed"`` call, when the chains start at random.
    beta_eff
        The sampler's effective inverse temperature in units of the programmed energy
        (``"scaled"`` only): the BQM handed to it is :math:`(β / β_{eff})\\,E`.
    seed
        Seeds the per-call seeds handed to samplers that take a ``seed`` keyword, and the
        shuffle of aggregated sample sets.
    **sample_kwargs
        Passed to ``sampler.sample`` on every call.

    Notes
    -----
    Samples come back as ``num_reads = num_samples`` independent reads. With ``mode="fixed"``
    the last states are kept as ``initial_states`` for the next call (in :meth:`state_dict`);
    calls with more samples than stored states extend them with random states.

    Examples
    --------
    >>> import torch
    >>> h, J = torch.zeros(4), torch.triu(torch.ones(4, 4), 1)
    >>> sampler = DimodSampler(num_sweeps=100, seed=0)
    >>> sampler.sample(h, J, 5, beta=1.0).shape
    torch.Size([5, 4])
    """

    def __init__(
        self,
        sampler: Any = None,
        *,
        mode: Literal["anneal", "fixed", "scaled"] | None = None,
        num_sweeps: int = 1000,
        beta_min: float = 0.1,
        burn_in: int = 100,
        beta_eff: float | None = None,
        seed: int | None = None,
        **sample_kwargs: Any,
    ) -> None:
        if sampler is None:
            from dwave.samplers import SimulatedAnnealingSampler

            sampler = SimulatedAnnealingSampler()
        if not callable(getattr(sampler, "sample", None)):
            raise TypeError(f"sampler must have a dimod-style sample(bqm, **kwargs) method, got {sampler!r}")
        parameters = getattr(sampler, "parameters", None)
        self._parameters = parameters if isinstance(parameters, Mapping) else {}
        if mode is None:
            mode = "anneal" if "beta_range" in self._parameters else "scaled"
        check_choice("mode", mode, _MODES)
        if mode != "scaled" and "beta_range" not in self._parameters:
            warnings.warn(
                f"{type(sampler).__name__} does not list 'beta_range' in its parameters; "
                f"mode={mode!r} may not be understood by it (use mode='scaled' for hardware)",
                UserWarning,
                stacklevel=2,
            )
        if int(num_sweeps) < 1 or int(burn_in) < 0:
            raise ValueError(f"need num_sweeps >= 1 and burn_in >= 0, got {num_sweeps}, {burn_in}")
        if not float(beta_min) > 0:
            raise ValueError(f"beta_min must be positive, got {beta_min!r}")
        if beta_eff is not None and not float(beta_eff) > 0:
            raise ValueError(f"beta_eff must be positive, got {beta_eff!r}")
        self.sampler = sampler
        self.mode = mode
        self.num_sweeps = int(num_sweeps)
        self.beta_min = float(beta_min)
        self.burn_in = int(burn_in)
        self.beta_eff = None if beta_eff is None else float(beta_eff)
        self.sample_kwargs = dict(sample_kwargs)
        self.seed = seed
        self._generator = make_generator(seed)
        self._initial_states: torch.Tensor | None = None
        #: The ``info`` of the last ``SampleSet`` returned by the wrapped sampler.
        self.last_info: dict = {}

    # ------------------------------------------------------------------ sampling

    def _sample(self, h: torch.Tensor, J: torch.Tensor, num_samples: int, beta: float) -> torch.Tensor:
        n = h.shape[0]
        bqm = bqm_from_boltzmann(h, J)
        kwargs: dict[str, Any] = {"num_reads": num_samples}
        if "seed" in self._parameters:
            kwargs["seed"] = int(torch.randint(0, 2**31 - 1, (1,), generator=self._generator))
        if self.mode == "anneal":
            beta_min = min(self.beta_min, beta)
            kwargs.update(beta_range=(beta_min, beta), num_sweeps=self.num_sweeps)
            kwargs.setdefault("beta_schedule_type", "geometric")
        elif self.mode == "fixed":
            states = self._initial_states
            if states is not None and states.shape[1] != n:
                states = None
            sweeps = self.num_sweeps + (self.burn_in if states is None else 0)
            kwargs.update(beta_schedule_type="custom", beta_schedule=[beta] * sweeps)
            if states is not None:
                kwargs["initial_states"] = (
                    states[:num_samples].numpy().astype(np.int8),
                    list(range(n)),
                )
                kwargs["initial_states_generator"] = "random"
        else:
            if self.beta_eff is None:
                raise RuntimeError(
                    "mode='scaled' needs beta_eff: pass it, estimate it with estimate_beta_eff, "
                    "or use QPUSampler, which calibrates it"
                )
            bqm.scale(beta / self.beta_eff)
        kwargs.update(self.sample_kwargs)
        sampleset = self.sampler.sample(bqm, **kwargs)
        self.last_info = dict(getattr(sampleset, "info", {}) or {})
        out = sampleset_to_tensor(sampleset, n, generator=self._generator)
        if self.mode == "fixed":
            self._initial_states = out.clone()
        return out

    # ------------------------------------------------------------------ state

    def reset(self) -> None:
        """Forget the persistent initial states (``mode="fixed"``)."""
        self._initial_states = None

    def state_dict(self) -> dict:
        """Initial states, ``beta_eff`` and the generator state."""
        return {
            "initial_states": None if self._initial_states is None else self._initial_states.clone(),
            "beta_eff": self.beta_eff,
            "generator": self._generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""
        unknown = set(state) - {"initial_states", "beta_eff", "generator"}
        if unknown:
            raise ValueError(f"unknown keys in DimodSampler state: {sorted(unknown)}")
        states = state.get("initial_states")
        self._initial_states = None if states is None else torch.as_tensor(states).clone()
        if "beta_eff" in state:
            self.beta_eff = state["beta_eff"]
        if state.get("generator") is not None:
            self._generator.set_state(state["generator"])

    def close(self) -> None:
        """Close the wrapped sampler when it has a ``close`` method (dimod's ``Scoped``)."""
        close = getattr(self.sampler, "close", None)
        if callable(close):
            close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({type(self.sampler).__name__}(), mode={self.mode!r}, "
            f"num_sweeps={self.num_sweeps})"
        )
