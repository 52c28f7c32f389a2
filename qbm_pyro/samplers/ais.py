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

__all__ = ["AISResult", "ais_log_partition", "reweight_log_partition"]


class AISResult(NamedTuple):
    """An AIS estimate: ``log_z`` (float), its bootstrap standard error ``stderr``, the
    effective sample size of the final importance weights ``ess``; ``states`` ``(C, n)`` and
    ``log_weights`` ``(C,)``, the chains' final states and log importance weights (float64),
    which :func:`reweight_log_partition` reuses for a nearby machine."""

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


def reweight_log_partition(
    result: AISResult,
    reference: tuple[torch.Tensor, torch.Tensor],
    h: torch.Tensor,
    J: torch.Tensor,
    *,
    beta: float = 1.0,
    n_bootstrap: int = 200,
    seed: int | None = 0,
) -> AISResult:
    r"""``log Z_β`` of the machine ``(h, J)`` from an AIS run on a nearby ``reference`` machine.

    The AIS chains' final states ``z_c`` with weights ``w_c`` satisfy
    ``E[w_c f(z_c)] = (Z_ref / Z_0) E_ref[f]``; with ``f = exp(-β (E - E_ref))`` this is
    ``Z / Z_0``, so

    .. math::
        \log \hat Z = n \log 2 + \log \frac{1}{C} \sum_c w_c\, e^{-β (E(z_c) - E_{ref}(z_c))}

    is unbiased for ``Z`` like the run itself, at the cost of one energy per chain. It degrades
    as the machines drift apart: the returned ``ess`` says by how much (compare it with
    ``result.ess``; :meth:`~qbm_pyro.module.priors.BoltzmannPrior.track_log_z` re-runs AIS when it
    has halved).

    Parameters
    ----------
    result
        An :func:`ais_log_partition` result (with its ``states`` and ``log_weights``) at ``beta``.
    reference
        ``(h, J)`` of the machine that run targeted.
    h, J
        The machine whose log Z is wanted (same size).
    beta, n_bootstrap, seed
        As in :func:`ais_log_partition` (``beta`` must be the run's).
    """
    if result.states is None or result.log_weights is None:
        raise ValueError("this AIS result carries no final states to reweight (run ais_log_partition again)")
    with torch.no_grad():
        z = result.states
        h_ref, J_ref = (t.detach().double().cpu() for t in reference)
        h, J = h.detach().double().cpu(), J.detach().double().cpu()
        if h.shape != h_ref.shape or J.shape != J_ref.shape or h.shape[0] != z.shape[1]:
            raise ValueError(
                f"the machine ({tuple(h.shape)}, {tuple(J.shape)}) does not match the AIS run's "
                f"({tuple(h_ref.shape)}, {tuple(J_ref.shape)})"
            )
        log_w = result.log_weights - beta * (energy(z, h, J) - energy(z, h_ref, J_ref))
        return _result(log_w, z, n_bootstrap, make_generator(seed))
