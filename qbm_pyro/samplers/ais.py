"""Annealed importance sampling (AIS) estimate of ``log Z`` for Boltzmann machines.

Chains start from the uniform distribution (``β = 0``, ``log Z_0 = n log 2``) and follow a ladder
``0 = β_0 < β_1 < … < β_K = 1``. At each step the importance weight gathers
``(β_k - β_{k-1}) · (-E(z))`` and the chains make one Gibbs sweep at ``β_k``. Then

.. math::
    \\log \\hat Z = n \\log 2 + \\log \\frac{1}{C} \\sum_c w_c ,

an unbiased estimate of ``Z`` (so ``log Ẑ`` is biased low by about half its variance). The
standard error is a bootstrap over chains.

**References:** [1] Neal (2001) "Annealed importance sampling", Statistics and Computing 11,
125-139. [2] Salakhutdinov, Murray (2008) "On the quantitative analysis of deep belief
networks", ICML.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ..energy import energy, symmetric_couplings
from .base import make_generator
from .gibbs import gibbs_sweep_

__all__ = ["AISResult", "ais_log_partition", "bridge_log_partition", "continue_ais_run"]


class AISResult(NamedTuple):
    """An AIS estimate: ``log_z`` (float), its bootstrap standard error ``stderr``, the
    effective sample size of the final importance weights ``ess``; ``states`` ``(C, n)`` and
    ``log_weights`` ``(C,)``, the chains' final states and log importance weights (float64),
    which :func:`bridge_log_partition` continues to a nearby machine."""

    log_z: float
    stderr: float
    ess: float
    states: torch.Tensor | None = None
    log_weights: torch.Tensor | None = None


def ais_log_partition(
    h: torch.Tensor,
    J: torch.Tensor,
    *,
    beta: float = 1.0,
    n_chains: int = 512,
    n_steps: int = 1000,
    n_bootstrap: int = 200,
    seed: int | None = 0,
) -> AISResult:
    """Estimate ``log Z_β = log Σ_z exp(-β E(z))`` by annealed importance sampling.

    Parameters
    ----------
    h, J
        Biases ``(n,)`` and couplings ``(n, n)`` (strict upper triangle used).
    beta
        Target inverse temperature.
    n_chains
        Independent AIS chains.
    n_steps
        Number of intermediate temperatures ``K`` (a sigmoid-spaced ladder, denser at both ends).
    n_bootstrap
        Bootstrap resamples for the standard error.
    seed
        Seed for the chains and the bootstrap.

    Returns
    -------
    AISResult
    """
    if h.dim() != 1 or J.shape != (h.shape[0], h.shape[0]):
        raise ValueError(f"need h (n,) and J (n, n), got {tuple(h.shape)} and {tuple(J.shape)}")
    generator = make_generator(seed)
    with torch.no_grad():
        h = h.detach().double().cpu()
        J = J.detach().double().cpu()
        n = h.shape[0]
        Jt = symmetric_couplings(J)
        ladder = torch.sigmoid(torch.linspace(-6.0, 6.0, n_steps, dtype=torch.float64))
        ladder = beta * (ladder - ladder[0]) / (ladder[-1] - ladder[0])
        z = (torch.rand(n_chains, n, generator=generator, dtype=torch.float64) < 0.5).double()
        field = h + z @ Jt
        log_w = torch.zeros(n_chains, dtype=torch.float64)
        previous = 0.0
        for b in ladder[1:].tolist():
            log_w -= (b - previous) * energy(z, h, J)
            gibbs_sweep_(z, field, Jt, b, None, generator)
            previous = b
    return _result(log_w, z, n_bootstrap, generator)


def _result(log_w: torch.Tensor, z: torch.Tensor, n_bootstrap: int, generator) -> AISResult:
    """``log Ẑ = n log 2 + log mean(w)``, its bootstrap standard error and the weights' ESS."""
    n_chains, n = z.shape
    log_mean = torch.logsumexp(log_w, 0) - math.log(n_chains)
    idx = torch.randint(n_chains, (n_bootstrap, n_chains), generator=generator)
    boot = torch.logsumexp(log_w[idx], -1) - math.log(n_chains)
    ess = float(1.0 / (torch.softmax(log_w, 0) ** 2).sum())
    return AISResult(float(n * math.log(2.0) + log_mean), float(boot.std()), ess, z, log_w)


def bridge_log_partition(
    result: AISResult,
    reference: tuple[torch.Tensor, torch.Tensor],
    h: torch.Tensor,
    J: torch.Tensor,
    *,
    beta: float = 1.0,
    n_steps: int = 20,
    n_bootstrap: int = 200,
    seed: int | None = 0,
) -> AISResult:
    r"""``log Z_β`` of the machine ``(h, J)`` by continuing an AIS run on a nearby ``reference``.

    The run's chains (final states ``z_c``, weights ``w_c``) go on annealing, along the straight
    line ``E_s = (1 - s) E_{ref} + s E`` from the reference machine (``s = 0``) to the new one
    (``s = 1``) in ``n_steps`` steps: at each step the log weight gathers
    ``-β (s_k - s_{k-1}) (E(z) - E_{ref}(z))`` and the chains make one Gibbs sweep of ``E_{s_k}``.
    Together with the run this is one AIS run from the uniform distribution to the new machine,
    so

    .. math::
        \log \hat Z = n \log 2 + \log \frac{1}{C} \sum_c w'_c

    is unbiased for ``Z`` like the run itself. ``n_steps=0`` is plain importance reweighting
    (``w'_c = w_c e^{-β (E(z_c) - E_{ref}(z_c))}``), which degrades fast as the machines drift
    apart; a short bridge keeps the weights even at ``n_steps`` sweeps instead of a whole run's.
    The returned ``ess`` says how well it went (compare it with the first run's:
    ``track_log_z`` runs AIS afresh when it has
    halved). The result can be bridged again to the next machine.

    Parameters
    ----------
    result
        An :func:`ais_log_partition` (or earlier bridge) result with its ``states`` and
        ``log_weights``, at ``beta``.
    reference
        ``(h, J)`` of the machine that run targeted.
    h, J
        The machine whose log Z is wanted (same size).
    beta, n_bootstrap, seed
        As in :func:`ais_log_partition` (``beta`` must be the run's).
    n_steps
        Gibbs sweeps along the bridge (``0``: reweighting only).
    """
    if result.states is None or result.log_weights is None:
        raise ValueError("this AIS result carries no final states to continue (run ais_log_partition again)")
    generator = make_generator(seed)
    with torch.no_grad():
        h_ref, J_ref = (t.detach().double().cpu() for t in reference)
        h, J = h.detach().double().cpu(), J.detach().double().cpu()
        if h.shape != h_ref.shape or J.shape != J_ref.shape or h.shape[0] != result.states.shape[1]:
            raise ValueError(
                f"the machine ({tuple(h.shape)}, {tuple(J.shape)}) does not match the AIS run's "
                f"({tuple(h_ref.shape)}, {tuple(J_ref.shape)})"
            )
        z, log_w = result.states.clone(), result.log_weights.clone()
        J_ref, J = torch.triu(J_ref, 1), torch.triu(J, 1)
        dh, dJ = h - h_ref, J - J_ref
        previous = 0.0
        for k in range(1, n_steps + 1):
            s = k / (n_steps + 1)  # the last step, to s = 1, only weighs (as in the first run)
            log_w -= beta * (s - previous) * energy(z, dh, dJ)
            Jt = symmetric_couplings(J_ref + s * dJ)
            field = h_ref + s * dh + z @ Jt
            gibbs_sweep_(z, field, Jt, beta, None, generator)
            previous = s
        log_w -= beta * (1.0 - previous) * energy(z, dh, dJ)
        return _result(log_w, z, n_bootstrap, generator)


def continue_ais_run(
    result: AISResult,
    reference: tuple[torch.Tensor, torch.Tensor],
    h: torch.Tensor,
    J: torch.Tensor,
    *,
    anchor_ess: float,
    min_ess_ratio: float = 0.5,
    beta: float = 1.0,
    n_steps: int = 20,
    seed: int | None = 0,
) -> AISResult | None:
    """:func:`bridge_log_partition`, or ``None`` when the continued run no longer stands for the
    new machine (time for a fresh AIS run): its estimate is not finite, or its effective sample
    size fell below ``min_ess_ratio`` times ``anchor_ess`` (the last full run's). The one rule of
    both log Z trackers: training's ``BoltzmannPrior.track_log_z`` and custom models' cache."""
    tracked = bridge_log_partition(result, reference, h, J, beta=beta, n_steps=n_steps, seed=seed)
    if not math.isfinite(tracked.log_z) or tracked.ess < min_ess_ratio * anchor_ess:
        return None
    return tracked
