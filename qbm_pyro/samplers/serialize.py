"""Describe a sampler as plain data and rebuild it, so that a saved model reloads with its sampler.

:func:`sampler_to_config` reads a sampler's public settings into a dict of strings, numbers,
lists and ``None`` (what ``torch.load(weights_only=True)`` accepts); :func:`sampler_from_config`
builds an equal sampler from it. The persistent state (chains, generators) is not part of the
config: it travels separately through ``state_dict()`` / ``load_state_dict()``.

Rebuildable: :class:`~qbm_pyro.samplers.GibbsSampler`,
:class:`~qbm_pyro.samplers.ParallelTemperingSampler`, :class:`~qbm_pyro.samplers.ExactSampler`,
:class:`~qbm_pyro.samplers.DimodSampler` over a software dimod sampler that takes no constructor
arguments (``dwave.samplers.SimulatedAnnealingSampler``, ``neal``, dimod's reference samplers)
in any mode, and :class:`~qbm_pyro.samplers.FallbackSampler` over any of those. A
:class:`~qbm_pyro.samplers.QPUSampler`, a dimod sampler with settings of its own (hardware,
composites, mocks) or a user-defined sampler is recorded by name only: rebuilding it raises
:class:`SamplerNotRebuildableError` with a message asking for ``sampler=``.

**A model file is data.** A config read from a file never names code to run: the dimod backend
is rebuilt only when its name is one of ``REBUILDABLE_DIMOD``, compared as an exact string
*before* anything is imported, and every other name is refused with
:class:`SamplerNotRebuildableError` (nothing imported, nothing called). The other kinds map to
the fixed classes above; their settings are keyword arguments, and settings those classes do
not take are refused with a :class:`ValueError`. The checksum inside a model file only detects
damage: anyone can recompute it, so it is not what keeps a file from running code.
"""

from __future__ import annotations

import importlib
from numbers import Real
from typing import Any

import torch

from qbm_pyro.samplers.base import Sampler
from qbm_pyro.samplers.dimod import DimodSampler
from qbm_pyro.samplers.exact import ExactSampler
from qbm_pyro.samplers.fallback import FallbackSampler
from qbm_pyro.samplers.gibbs import GibbsSampler
from qbm_pyro.samplers.qpu import QPUSampler
from qbm_pyro.samplers.tempering import ParallelTemperingSampler

__all__ = ["REBUILDABLE_DIMOD", "SamplerNotRebuildableError", "sampler_from_config", "sampler_to_config"]

#: dimod samplers built with no arguments, so that a class name is enough to rebuild them.
REBUILDABLE_DIMOD = (
    "dwave.samplers.SimulatedAnnealingSampler",
    "dwave.samplers.SteepestDescentSampler",
    "dwave.samplers.TabuSampler",
    "neal.SimulatedAnnealingSampler",
    "dimod.SimulatedAnnealingSampler",
    "dimod.RandomSampler",
    "dimod.ExactSolver",
)


class SamplerNotRebuildableError(ValueError):
    """A saved sampler cannot be rebuilt from its description; pass ``sampler=`` instead."""


def _class_path(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _plain(value: Any) -> bool:
    """Whether ``value`` survives ``torch.load(weights_only=True)`` as it is."""
    if value is None or isinstance(value, bool | str | Real):
        return True
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _import(path: str) -> Any:
    """The class named by ``path``, which must be one of ``REBUILDABLE_DIMOD``.

    The name is compared as an exact string before anything is imported: a name read from a
    file can only select one of the fixed entries, never choose a module to import.
    """
    if not isinstance(path, str) or path not in REBUILDABLE_DIMOD:
        raise SamplerNotRebuildableError(
            f"refusing to rebuild the saved dimod sampler {path!r}: a model file may only name one "
            f"of {list(REBUILDABLE_DIMOD)} (nothing else is imported from a file); if you trust it, "
            "build the sampler yourself and pass it as QBMVAE.load(..., sampler=...)"
        )
    module_name, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module_name), name)


def _dimod_backend_name(inner: Any) -> str | None:
    """The import path of a no-argument dimod sampler, or ``None`` when it cannot be rebuilt."""
    for candidate in REBUILDABLE_DIMOD:
        try:
            cls = _import(candidate)
        except (ImportError, AttributeError):
            continue
        if type(inner) is cls:
            return candidate
    return None


def sampler_to_config(sampler: Sampler | None) -> dict | None:
    """A plain-data description of ``sampler`` (``None`` for ``None``).

    Parameters
    ----------
    sampler
        Any :class:`~qbm_pyro.samplers.Sampler`.

    Returns
    -------
    dict or None
        ``{"kind": ..., settings...}``. ``kind`` is ``"gibbs"``, ``"tempering"``, ``"exact"``,
        ``"dimod"``, ``"fallback"`` (with nested ``primary`` / ``fallback`` configs), ``"qpu"``
        or ``"custom"``. A config with ``"rebuildable": False`` names what cannot be rebuilt.

    Examples
    --------
    >>> from qbm_pyro.samplers import GibbsSampler
    >>> sampler_to_config(GibbsSampler(num_sweeps=5, seed=1))["kind"]
    'gibbs'
    """
    if sampler is None:
        return None
    if isinstance(sampler, FallbackSampler):
        return {
            "kind": "fallback",
            "primary": sampler_to_config(sampler.primary),
            "fallback": sampler_to_config(sampler._fallback),
            "timeout": sampler.timeout,
            "max_failures": sampler.max_failures,
            "seed": sampler.seed,
        }
    if isinstance(sampler, GibbsSampler):
        blocks = sampler.blocks
        if not isinstance(blocks, str):
            blocks = [[int(i) for i in torch.as_tensor(b).reshape(-1).tolist()] for b in blocks]
        return {
            "kind": "gibbs",
            "num_sweeps": sampler.num_sweeps,
            "burn_in": sampler.burn_in,
            "blocks": blocks,
            "seed": sampler.seed,
        }
    if isinstance(sampler, ParallelTemperingSampler):
        return {
            "kind": "tempering",
            "n_replicas": sampler.n_replicas,
            "beta_min": sampler.beta_min,
            "num_sweeps": sampler.num_sweeps,
            "burn_in": sampler.burn_in,
            "hot_chains": sampler.hot_chains,
            "max_chains": sampler.max_chains,
            "thin": sampler.thin,
            "seed": sampler.seed,
        }
    if isinstance(sampler, ExactSampler):
        return {"kind": "exact", "seed": sampler.seed}
    if isinstance(sampler, QPUSampler):
        return {"kind": "qpu", "class": _class_path(sampler), "rebuildable": False, "seed": sampler.seed}
    if isinstance(sampler, DimodSampler):
        backend = _dimod_backend_name(sampler.sampler)
        config = {
            "kind": "dimod",
            "backend": backend or _class_path(sampler.sampler),
            "mode": sampler.mode,
            "num_sweeps": sampler.num_sweeps,
            "beta_min": sampler.beta_min,
            "burn_in": sampler.burn_in,
            "beta_eff": sampler.beta_eff,
            "seed": sampler.seed,
            "sample_kwargs": dict(sampler.sample_kwargs) if _plain(sampler.sample_kwargs) else None,
        }
        if backend is None or config["sample_kwargs"] is None:
            config["rebuildable"] = False
        return config
    return {"kind": "custom", "class": _class_path(sampler), "rebuildable": False}


def _not_rebuildable(config: dict) -> SamplerNotRebuildableError:
    kind = config.get("kind")
    name = config.get("backend") or config.get("class") or kind
    if kind == "qpu":
        why = "it was a QPUSampler: hardware samplers (and their credentials) are not saved"
    elif kind == "dimod" and config.get("sample_kwargs") is None:
        why = f"it was a DimodSampler({name}) with sample keywords that cannot be saved"
    elif kind == "dimod":
        what = "hardware, composite, mock"
        why = f"it was a DimodSampler over {name}, whose own settings are not saved ({what})"
    else:
        why = f"it was a {name}, which qbm_pyro does not know how to rebuild"
    return SamplerNotRebuildableError(
        f"the model's sampler cannot be rebuilt from the saved file ({why}); pass one to "
        "QBMVAE.load(..., sampler=...), e.g. the sampler you trained with, or "
        "sampler=qbm_pyro.samplers.GibbsSampler() to continue on Gibbs"
    )


def _find_unrebuildable(config: dict | None) -> dict | None:
    if config is None:
        return None
    if config.get("kind") == "fallback":
        return _find_unrebuildable(config.get("primary")) or _find_unrebuildable(config.get("fallback"))
    return config if config.get("rebuildable", True) is False else None


def sampler_from_config(config: dict | None) -> Sampler | None:
    """Build the sampler that :func:`sampler_to_config` described (without its state).

    Parameters
    ----------
    config
        A dict returned by :func:`sampler_to_config`, or ``None``.

    Returns
    -------
    Sampler or None
        A new sampler with the recorded settings; load its state with ``load_state_dict``.

    Raises
    ------
    SamplerNotRebuildableError
        The config describes a QPU, a dimod sampler with settings of its own or a user-defined
        sampler (also inside a ``FallbackSampler``); the message asks for ``sampler=``.
    ValueError
        The config is not one this function wrote (unknown kind, settings the sampler does not
        take).

    Notes
    -----
    A dimod backend is rebuilt only when its name is in ``REBUILDABLE_DIMOD`` (exact
    string, checked before any import); any other name raises
    :class:`SamplerNotRebuildableError` and nothing is imported.
    """
    if config is None:
        return None
    if not isinstance(config, dict) or "kind" not in config:
        raise ValueError(f"not a sampler config (a dict with a 'kind'): {config!r}")
    bad = _find_unrebuildable(config)
    if bad is not None:
        raise _not_rebuildable(bad)
    kind = config["kind"]
    settings = {k: v for k, v in config.items() if k not in ("kind", "rebuildable")}
    try:
        return _build(kind, settings)
    except (TypeError, KeyError) as error:  # settings the class does not take: an edited or foreign file
        raise ValueError(
            f"the saved sampler config {config!r} does not fit its kind {kind!r}: {error}"
        ) from error


def _build(kind: str, settings: dict) -> Sampler:
    """Step 2 of :func:`sampler_from_config`: the sampler of one (rebuildable) ``kind``."""
    if kind == "gibbs":
        blocks = settings.pop("blocks")
        if not isinstance(blocks, str):
            blocks = [torch.as_tensor(b, dtype=torch.long) for b in blocks]
        return GibbsSampler(blocks=blocks, **settings)
    if kind == "tempering":
        return ParallelTemperingSampler(**settings)
    if kind == "exact":
        return ExactSampler(**settings)
    if kind == "dimod":
        inner = _import(settings.pop("backend", None))()  # refuses any name not in REBUILDABLE_DIMOD
        sample_kwargs = settings.pop("sample_kwargs", None) or {}
        if not isinstance(sample_kwargs, dict):
            raise ValueError(f"the saved sample_kwargs of a dimod sampler are not a dict: {sample_kwargs!r}")
        return DimodSampler(inner, **settings, **sample_kwargs)
    if kind == "fallback":
        return FallbackSampler(
            sampler_from_config(settings["primary"]),
            sampler_from_config(settings.get("fallback")),
            timeout=settings.get("timeout"),
            max_failures=settings.get("max_failures"),
            seed=settings.get("seed"),
        )
    raise ValueError(f"unknown sampler kind {kind!r} (settings {settings!r})")
