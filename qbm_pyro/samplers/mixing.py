"""Whether the negative phase mixes: the tempering ladder's diagnostic, per training epoch.

A :class:`~qbm_pyro.samplers.ParallelTemperingSampler` counts its sweeps, swap tries and
acceptances and its *round trips* (chains that went from the hottest replica down to the target,
each bringing a state that crossed the energy barriers). :class:`MixingMonitor` turns the running
totals into one record per epoch (``history["swap_acceptance"]``, ``history["round_trips"]``) and
warns, once, when the ladder does not connect the target to the hot end: a neighbouring pair that
(almost) never swaps, or no round trip at all after ``SWEEPS_PER_REPLICA`` sweeps per replica.
Then the target's chains may stay in the modes they started in and the prior's gradient is
biased (a single Gibbs chain on a two-mode machine is the extreme case).

The diagnostic cannot see a hottest replica that is itself stuck (``beta_min`` too close to 1):
the ladder's hot end must mix on its own, which a small ``beta_min`` (0.05 by default) ensures
for couplings of the size a prior reaches.
"""

from __future__ import annotations

import logging
import math
import warnings

import torch

from .tempering import ParallelTemperingSampler

__all__ = [
    "MIN_SWAP_ACCEPTANCE",
    "SWEEPS_PER_REPLICA",
    "MixingMonitor",
    "SamplerMixingWarning",
    "mixing_problem",
    "tempering_mixing",
]

log = logging.getLogger(__name__)

#: Below this mean acceptance, a neighbouring pair of replicas counts as disconnected.
MIN_SWAP_ACCEPTANCE = 0.01
#: Sweeps per replica after which a ladder with no round trip counts as not mixing.
SWEEPS_PER_REPLICA = 50


class SamplerMixingWarning(UserWarning):
    """The sampler's chains do not mix: its samples may stay in the modes they started in."""


def tempering_mixing(before: dict, after: dict) -> dict:
    """The mixing between two :meth:`~qbm_pyro.samplers.ParallelTemperingSampler.mixing_stats`
    snapshots: ``sweeps`` and ``round_trips`` between them, and ``min_swap_acceptance`` (the
    lowest mean acceptance over the neighbouring pairs; NaN when a pair was not tried)."""
    attempted = after["attempted"] - before["attempted"]
    accepted = after["accepted"] - before["accepted"]
    tried = attempted > 0
    rate = accepted[tried] / attempted[tried]
    return {
        "sweeps": after["sweeps"] - before["sweeps"],
        "round_trips": after["round_trips"] - before["round_trips"],
        "min_swap_acceptance": float(rate.min()) if bool(tried.all()) and rate.numel() else math.nan,
    }


def mixing_problem(window: dict, total: dict, n_replicas: int) -> str | None:
    """Why a ladder does not mix, or ``None`` when it does.

    Parameters
    ----------
    window
        :func:`tempering_mixing` over the calls in question (e.g. one training epoch).
    total
        :meth:`~qbm_pyro.samplers.ParallelTemperingSampler.mixing_stats` since the sampler was made.
    n_replicas
        Replicas in the ladder.

    Returns
    -------
    str or None
        A sentence naming the problem.
    """
    rate = window["min_swap_acceptance"]
    if window["sweeps"] and rate == rate and rate < MIN_SWAP_ACCEPTANCE:
        return (
            f"a pair of neighbouring tempering replicas swapped in {rate:.1%} of its tries, so the "
            "ladder is broken there"
        )
    if total["sweeps"] >= SWEEPS_PER_REPLICA * n_replicas and total["round_trips"] == 0:
        return f"no chain went from the hottest tempering replica to the target in {total['sweeps']} sweeps"
    return None


class MixingMonitor:
    """Per-epoch mixing records of a training run's sampler, with one warning when it does not mix.

    Examples
    --------
    >>> import torch
    >>> from qbm_pyro.samplers import ParallelTemperingSampler
    >>> pt = ParallelTemperingSampler(n_replicas=3, burn_in=5, seed=0)
    >>> _ = pt.sample(torch.zeros(4), torch.zeros(4, 4), 8)
    >>> sorted(MixingMonitor().record(pt, epoch=0))
    ['round_trips', 'swap_acceptance']
    """

    def __init__(self):
        self._before: dict | None = None
        self.warned = False

    def resume(self, sampler) -> None:
        """Start the next record's window at ``sampler``'s current totals (a run resumed from a
        checkpoint: its sampler's totals were restored, the monitor's own baseline was not)."""
        sampler = getattr(sampler, "primary", sampler)
        if isinstance(sampler, ParallelTemperingSampler):
            self._before = sampler.mixing_stats()

    def record(self, sampler, epoch: int) -> dict:
        """``swap_acceptance`` (lowest pair mean) and ``round_trips`` since the last record; NaN
        for samplers other than tempering (also inside a ``FallbackSampler``) and when the
        sampler was not called (exact log Z). Warns (:class:`SamplerMixingWarning`) the first time
        the ladder does not mix."""
        sampler = getattr(sampler, "primary", sampler)
        nan = {"swap_acceptance": math.nan, "round_trips": math.nan}
        if not isinstance(sampler, ParallelTemperingSampler):
            return nan
        total = sampler.mixing_stats()
        before = self._before or {
            "sweeps": 0,
            "round_trips": 0,
            "accepted": torch.zeros_like(total["accepted"]),
            "attempted": torch.zeros_like(total["attempted"]),
        }
        self._before = total
        if total["accepted"].shape != before["accepted"].shape or total["sweeps"] < before["sweeps"]:
            return nan  # the sampler was reset or rebuilt in between
        window = tempering_mixing(before, total)
        problem = mixing_problem(window, total, sampler.n_replicas)
        if problem and not self.warned:
            self.warned = True
            message = (
                f"the prior's negative phase does not mix (epoch {epoch}): {problem}. Its samples may "
                "stay in the modes they started in, which biases the prior's gradient; give the "
                "sampler more replicas or a lower beta_min (see history['swap_acceptance'] and "
                "history['round_trips'])"
            )
            log.warning(message)
            warnings.warn(message, SamplerMixingWarning, stacklevel=3)
        if not window["sweeps"]:
            return nan
        return {"swap_acceptance": window["min_swap_acceptance"], "round_trips": window["round_trips"]}
