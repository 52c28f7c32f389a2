r"""Sampler diagnostics: energy traces, parallel-tempering swap acceptance, effective sample size.

The traces are energies :math:`E(z)` of the states the sampler returns at successive calls
(each call advances persistent chains by ``num_sweeps`` sweeps), shape ``(n_steps, n_chains)``.
:func:`energy_trace` records one when given a sampler. The effective sample size uses the
integrated autocorrelation time with Sokal's automatic window:

.. math::
    \tau = 1 + 2 \sum_{t=1}^{M} \bar\rho(t), \qquad M = \min\{m : m \ge c\,\tau(m)\},
    \qquad \mathrm{ESS} = \frac{n_\mathrm{steps}\, n_\mathrm{chains}}{\tau},

with :math:`\bar\rho` the autocorrelation of the energy averaged over chains and :math:`c = 5`.

**References:** [1] Sokal (1997) "Monte Carlo methods in statistical mechanics: foundations and
new algorithms", in *Functional Integration*, Springer. [2] Earl, Deem (2005) "Parallel
tempering: theory, applications, and new perspectives", Phys. Chem. Chem. Phys. 7, 3910.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes

from ..energy import energy as _energy
from ..samplers import ParallelTemperingSampler, Sampler
from ._style import axes, finish

__all__ = [
    "autocorrelation",
    "effective_sample_size",
    "energy_trace",
    "record_energy_trace",
    "swap_acceptance",
]

#: Swap acceptance below this between neighbouring replicas means the ladder is too sparse.
LOW_SWAP_ACCEPTANCE = 0.2


def _as_trace(trace) -> np.ndarray:
    trace = np.asarray(trace, dtype=np.float64)
    if trace.ndim == 1:
        trace = trace[:, None]
    if trace.ndim != 2 or trace.shape[0] < 2:
        raise ValueError(f"trace must have shape (n_steps >= 2, n_chains), got {trace.shape}")
    return trace


################################################################################
# Computations.
################################################################################


def record_energy_trace(
    sampler: Sampler,
    h: torch.Tensor,
    J: torch.Tensor,
    *,
    n_steps: int = 200,
    num_samples: int = 8,
    beta: float = 1.0,
) -> np.ndarray:
    """Energies of the states returned by ``n_steps`` successive calls of ``sampler``.

    Parameters
    ----------
    sampler
        Any :class:`~qbm_pyro.samplers.Sampler`; persistent samplers advance their chains by
        their ``num_sweeps`` per call, so the trace follows the chains.
    h, J
        Biases ``(n,)`` and couplings ``(n, n)``.
    n_steps
        Number of calls.
    num_samples
        Chains (samples per call).
    beta
        Inverse temperature.

    Returns
    -------
    numpy.ndarray
        Shape ``(n_steps, num_samples)``, float64.
    """
    rows = [_energy(sampler.sample(h, J, num_samples, beta=beta), h, J) for _ in range(int(n_steps))]
    return torch.stack(rows).double().numpy()


def _autocorrelation(trace: np.ndarray) -> np.ndarray:
    """Chain-averaged normalised autocorrelation ``ρ(t)``, ``t = 0 … n_steps-1`` (FFT)."""
    n = trace.shape[0]
    centred = trace - trace.mean(0)
    spectrum = np.fft.rfft(centred, n=2 * n, axis=0)
    acov = np.fft.irfft(spectrum * np.conj(spectrum), axis=0)[:n] / n
    var = acov[0]
    ok = var > 0
    if not ok.any():
        return np.r_[1.0, np.zeros(n - 1)]
    return (acov[:, ok] / var[ok]).mean(1)


def effective_sample_size(trace, *, c: float = 5.0) -> float:
    """Effective sample size of an energy trace (see the module docstring).

    Parameters
    ----------
    trace
        Energies, shape ``(n_steps, n_chains)`` or ``(n_steps,)``.
    c
        Sokal's window constant.

    Returns
    -------
    float
        ``n_steps * n_chains / τ``; equals the number of samples for independent draws and is
        much smaller for sticky chains.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> 800 < effective_sample_size(rng.normal(size=(500, 2))) <= 1000 * 1.2
    True
    """
    trace = _as_trace(trace)
    rho = _autocorrelation(trace)
    tau = 1.0
    for m in range(1, len(rho)):
        tau = 1.0 + 2.0 * rho[1 : m + 1].sum()
        if m >= c * tau:
            break
    return float(trace.size / max(tau, 1e-12))


################################################################################
# Plots.
################################################################################


def energy_trace(
    trace,
    h: torch.Tensor | None = None,
    J: torch.Tensor | None = None,
    *,
    n_steps: int = 200,
    num_samples: int = 8,
    beta: float = 1.0,
    max_chains: int = 8,
    ax: Axes | None = None,
    show: bool = False,
    save: str | Path | None = None,
) -> Axes:
    """Energy of each chain over successive sampler calls, with the mean over chains.

    A trace that still drifts at the end has not equilibrated; chains that stay on separate
    levels are stuck in different modes (try :class:`~qbm_pyro.samplers.ParallelTemperingSampler`).

    Parameters
    ----------
    trace
        Energies ``(n_steps, n_chains)``, or a :class:`~qbm_pyro.samplers.Sampler` to record
        them from with :func:`record_energy_trace` (then ``h`` and ``J`` are needed).
    h, J
        Biases and couplings, when ``trace`` is a sampler.
    n_steps, num_samples, beta
        As for :func:`record_energy_trace`, when ``trace`` is a sampler.
    max_chains
        Plot at most this many chains (the mean uses all of them).
    ax
        Axes to draw into (a new figure if ``None``).
    show
        Call :func:`matplotlib.pyplot.show`.
    save
        Save the figure to this path.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes drawn into; the title gives the effective sample size.
    """
    if isinstance(trace, Sampler):
        if h is None or J is None:
            raise ValueError("energy_trace needs h and J to record a trace from a sampler")
        trace = record_energy_trace(trace, h, J, n_steps=n_steps, num_samples=num_samples, beta=beta)
    trace = _as_trace(trace)
    ax = axes(ax)
    steps = np.arange(trace.shape[0])
    ax.plot(steps, trace[:, :max_chains], lw=0.6, alpha=0.6)
    ax.plot(steps, trace.mean(1), color="black", lw=1.5, label="mean over chains")
    ax.set_xlabel("sampler call")
    ax.set_ylabel("energy E(z)")
    ax.set_title(f"energy trace (ESS ≈ {effective_sample_size(trace):.0f} of {trace.size})")
    ax.legend(loc="upper right")
    return finish(ax, show, save)


def autocorrelation(
    trace,
    *,
    max_lag: int | None = None,
    ax: Axes | None = None,
    show: bool = False,
    save: str | Path | None = None,
) -> Axes:
    """Autocorrelation of the energy trace against lag, with the effective sample size.

    Parameters
    ----------
    trace
        Energies, shape ``(n_steps, n_chains)`` (from :func:`record_energy_trace`).
    max_lag
        Largest lag shown (default ``n_steps // 4``).
    ax, show, save
        As for :func:`energy_trace`.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes drawn into.
    """
    trace = _as_trace(trace)
    rho = _autocorrelation(trace)
    max_lag = max(1, trace.shape[0] // 4) if max_lag is None else int(max_lag)
    ax = axes(ax)
    lags = np.arange(min(max_lag + 1, len(rho)))
    ax.plot(lags, rho[: len(lags)], marker=".", lw=1)
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xlabel("lag (sampler calls)")
    ax.set_ylabel("autocorrelation of E")
    ess = effective_sample_size(trace)
    ax.set_title(f"ESS ≈ {ess:.0f} of {trace.size} (τ ≈ {trace.size / ess:.1f} calls)")
    return finish(ax, show, save)


def swap_acceptance(
    sampler,
    *,
    beta: float = 1.0,
    ax: Axes | None = None,
    show: bool = False,
    save: str | Path | None = None,
) -> Axes:
    """Swap acceptance between neighbouring replicas of parallel tempering.

    Pairs with low acceptance (dashed line at 0.2) are bottlenecks: add replicas between those
    temperatures or raise ``beta_min``.

    Parameters
    ----------
    sampler
        A :class:`~qbm_pyro.samplers.ParallelTemperingSampler` that has been called (its
        ``swap_acceptance`` is set), or an array of acceptances ``(n_replicas - 1,)``.
    beta
        Target inverse temperature of the calls, to label the pairs by their β.
    ax, show, save
        As for :func:`energy_trace`.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes drawn into.
    """
    if isinstance(sampler, ParallelTemperingSampler):
        if sampler.swap_acceptance is None:
            raise ValueError("the sampler has not been called yet: swap_acceptance is None")
        accept = sampler.swap_acceptance.double().numpy()
        betas = sampler.ladder(beta).numpy()
        labels = [f"{betas[k]:.2g}–{betas[k + 1]:.2g}" for k in range(len(accept))]
    else:
        accept = np.asarray(sampler, dtype=np.float64).reshape(-1)
        labels = [f"{k}–{k + 1}" for k in range(len(accept))]
    ax = axes(ax)
    colours = ["tab:red" if a < LOW_SWAP_ACCEPTANCE else "tab:blue" for a in accept]
    ax.bar(np.arange(len(accept)), accept, color=colours)
    ax.axhline(LOW_SWAP_ACCEPTANCE, color="grey", ls="--", lw=0.8)
    ax.set_xticks(np.arange(len(accept)), labels, rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_xlabel("neighbouring pair (β)")
    ax.set_ylabel("swap acceptance")
    return finish(ax, show, save)
