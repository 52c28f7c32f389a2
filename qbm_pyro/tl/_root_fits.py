"""``root="auto_energy"`` over several fits: each fit's root, their consensus and agreement.

One fit's energy can put its peak in a state that a refit with another seed does not: on paul15
the three seeds' energies, read on one cell graph, rooted three different states, and one of
them reversed the erythroid lineage with evidence that counted as clear. Several fits of the
same cells (``tl.qbm`` with other seeds and ``key_added``) measure that: each fit's energy picks
its own root state, the root is chosen from their consensus energy, and the fits' agreement is
part of the evidence.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

from qbm_pyro.tl._diffusion import _pseudotime
from qbm_pyro.tl._roots import (
    MIN_ROOT_DESCENT,
    AmbiguousRootWarning,
    descent_root_group,
    warn_no_clear_root,
    warn_unclear_root,
)

Data = Any  # anndata.AnnData | mudata.MuData; both expose obs.


def energy_keys(data: Data, energy_key: str | Sequence[str], required: bool) -> list[str]:
    """``energy_key`` as a list of ``obs`` columns, checked: one name or several distinct names,
    every one of them present when ``required`` or when several are given."""
    if isinstance(energy_key, str):
        keys = [energy_key]
    elif isinstance(energy_key, Sequence) and all(isinstance(k, str) for k in energy_key):
        keys = list(energy_key)
    else:
        raise TypeError(f"`energy_key` must be an obs column name or a list of them, got {energy_key!r}.")
    if not keys:
        raise ValueError("`energy_key` is an empty list; give at least one obs column of energies.")
    if len(set(keys)) != len(keys):
        raise ValueError(f"`energy_key` names a column more than once: {keys}.")
    missing = [k for k in keys if k not in data.obs]
    if missing and (required or len(keys) > 1):
        raise KeyError(
            f"Energy column(s) {missing} not found in `.obs`. Run `qbm_pyro.tl.qbm` first "
            "(with `key_added=` for each further fit: it writes obs[f'{key_added}_energy'])."
        )
    return keys


def ensemble_energy(energies: Sequence[np.ndarray]) -> np.ndarray:
    """Each cell's energy quantile in every fit (its rank among the finite energies over
    ``n``: near 0 for the lowest, 1 for the highest), averaged over the fits; ``NaN`` where any
    fit's energy is not finite. Ranks, not raw energies: fits differ in scale and offset."""
    energies = [np.asarray(e, dtype=np.float64) for e in energies]
    finite = np.logical_and.reduce([np.isfinite(e) for e in energies])
    out = np.full(finite.size, np.nan)
    if finite.any():
        out[finite] = np.mean([rankdata(e[finite]) / finite.sum() for e in energies], axis=0)
    return out


def consensus_root_group(
    states: np.ndarray,
    energies: dict[str, np.ndarray],
    psi: np.ndarray,
    weights: np.ndarray,
    comp_labels: np.ndarray,
    seed: int,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Root group from several fits' energies and its evidence.

    Each fit's energy picks its own root state (:func:`~qbm_pyro.tl._roots.descent_root_group`
    on this graph); the root is the state picked from the consensus energy
    (:func:`ensemble_energy`), with the same evidence as for one fit plus ``fits`` (the keys),
    ``fit_root_states``, ``fit_spearman`` (each fit's descent from its own root),
    ``fit_pseudotime_spearman`` (the Spearman correlation between the pseudotime from each
    fit's root and from the consensus root: how much the disagreement changes the ordering) and
    ``fits_agree``. ``clear`` needs every fit to root in the consensus state and every fit's own
    descent, not only the consensus's, to be at least ``MIN_ROOT_DESCENT`` (averaging the fits
    strengthens the consensus's correlation, so it alone would pass starts no fit supports);
    :class:`~qbm_pyro.tl._roots.AmbiguousRootWarning` names the fits' roots when they differ
    and the weakest fit when one descends weakly.
    """
    own = {}
    for key, energy in energies.items():
        own[key] = descent_root_group(states, energy, psi, weights, comp_labels, seed, warn=False)
    consensus = ensemble_energy(list(energies.values()))
    members, evidence = descent_root_group(states, consensus, psi, weights, comp_labels, seed, warn=False)
    roots = [ev["root_state"] for _, ev in own.values()]
    pseudotimes = {}  # by root group: fits that root in the consensus state share its members

    def pseudotime_from(group: np.ndarray) -> np.ndarray:
        if group.tobytes() not in pseudotimes:
            pseudotimes[group.tobytes()] = _pseudotime(psi, weights, int(group[0]), comp_labels, group)
        return pseudotimes[group.tobytes()]

    pt = pseudotime_from(members)
    agreement = []
    for fit_members, _ in own.values():
        other = pseudotime_from(fit_members)
        ok = np.isfinite(pt) & np.isfinite(other)
        rho = np.corrcoef(rankdata(pt[ok]), rankdata(other[ok]))[0, 1] if ok.sum() > 2 else np.nan
        agreement.append(float(rho))
    agree = all(r == evidence["root_state"] for r in roots)
    evidence |= {
        "fits": np.asarray(list(energies), dtype=str),
        "fit_root_states": np.asarray(roots, dtype=str),
        "fit_spearman": np.asarray([ev["spearman"] for _, ev in own.values()], dtype=np.float64),
        "fit_pseudotime_spearman": np.asarray(agreement, dtype=np.float64),
        "fits_agree": bool(agree),
    }
    # The consensus averages the fits' noise away, so its descent is stronger than theirs: on a549
    # three fits of weak descent (-0.31 to -0.46) that agreed on a wrong start gave a consensus of
    # -0.50. A clear root needs every fit alone to descend clearly from it.
    weakest = int(np.argmax(evidence["fit_spearman"]))
    fits_clear = evidence["fit_spearman"][weakest] <= -MIN_ROOT_DESCENT
    if not evidence["clear"]:
        warn_unclear_root(evidence, stacklevel=4)
    elif not fits_clear:
        warn_no_clear_root(
            f"from its root state {roots[weakest]!r}, fit {list(energies)[weakest]!r} alone falls in "
            f"energy with Spearman {evidence['fit_spearman'][weakest]:.2f} along the pseudotime, "
            f"weaker than -{MIN_ROOT_DESCENT} (the consensus: {evidence['spearman']:.2f})",
            stacklevel=3,
        )
    evidence["clear"] = bool(evidence["clear"] and fits_clear and agree)
    if not agree:
        picks = ", ".join(
            f"{key}: {root} (pseudotime Spearman {rho:.2f} with the consensus)"
            for key, root, rho in zip(energies, roots, agreement, strict=True)
        )
        warnings.warn(
            f"root='auto_energy': the {len(energies)} fits do not agree on the root state ({picks}); "
            f"the consensus energy roots in {evidence['root_state']!r}. The direction is not stable "
            "across fits: give a root cell or group if you know one.",
            AmbiguousRootWarning,
            stacklevel=3,
        )
    return members, evidence
