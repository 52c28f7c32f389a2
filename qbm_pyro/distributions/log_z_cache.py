"""log Z of Boltzmann machines above ``exact_max_n``, cached across SVI steps.

A custom Pyro model builds a new :class:`~qbm_pyro.distributions.Boltzmann` at every step from the
same parameters. Without a cache each step would rerun annealed importance sampling (AIS: seconds
at ``n = 32``) for a value that only enters the reported loss (the gradient comes from the
sampler). The cache keeps, per set of parameters, the last value of log Z, the machine it belongs
to and a persistent default sampler.

**Key.** The parameter tensors behind ``h`` and ``J``: the leaves of their autograd graph (so
``Boltzmann(h, torch.triu(J, 1))`` with ``J = pyro.param("J")`` is found again at the next step),
or, for tensors outside any graph, the tensors' contents. The *version* of an entry is the tuple
of the leaves' ``_version`` counters (bumped by every in-place update, e.g. an optimiser step).

**Refresh policy.**

1. First use, or ``refresh_every`` parameter changes since the last AIS run: AIS (``ais_options``).
2. Parameters unchanged since the cached value: the cached value.
3. Parameters changed: the last AIS run is continued to the new machine along a short bridge
   (``log_z_bridge_steps`` Gibbs sweeps, :func:`~qbm_pyro.samplers.ais.bridge_log_partition`):
   together with the run it is one AIS run from the uniform distribution to the new machine,
   unbiased for Z, and it does not depend on the training sampler (whose samples can be
   biased on a multimodal machine). If the continued run's effective sample size falls below
   ``log_z_min_ess`` times the AIS run's own (the machine moved too far), AIS is rerun instead.
   This is the mechanism ``track_log_z`` uses in
   training (there with 20 sweeps, an epoch moving the machine further than one step).

**Staleness.** None: every parameter change gets its own estimate. Its error grows slowly with
the number of bridges since the last AIS run, which is rerun every ``refresh_every`` updates;
the tests bound it against exact enumeration. log Z enters the loss value only: the gradient is
the sampled negative phase at every step whatever the cache holds.
"""

from __future__ import annotations

import logging
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field

import torch

__all__ = ["LOG_Z_CACHE", "LogZCache"]

logger = logging.getLogger(__name__)
_ANNOUNCED: set[int] = set()


def announce_ais(n: int, seconds: float, refresh_every: int) -> None:
    """Log, once per machine size and process, that log Z was estimated by AIS and what the
    later steps do (so that a slow first SVI step of a custom model is explained)."""
    if n in _ANNOUNCED:
        return
    _ANNOUNCED.add(n)
    logger.info(
        "log Z of a %d-unit Boltzmann machine (above exact_max_n) estimated by AIS in %.1f s; later "
        "steps continue that run to the new parameters and rerun AIS every %d parameter updates or when "
        "the parameters move far (pass log_z= to skip AIS)",
        n,
        seconds,
        refresh_every,
    )


@dataclass
class _Entry:
    refs: tuple
    versions: tuple
    log_z: torch.Tensor
    stderr: torch.Tensor
    h: torch.Tensor
    J: torch.Tensor
    runs: list = field(default_factory=list)
    anchor_ess: list = field(default_factory=list)
    updates: int = 0
    ais_runs: int = 0
    sampler: object = None


def _leaves(t: torch.Tensor, limit: int = 64) -> list[torch.Tensor]:
    """The leaf tensors ``t`` is computed from (``t`` itself if it is a leaf)."""
    if t.grad_fn is None:
        return [t]
    out, stack, seen = [], [t.grad_fn], set()
    while stack and len(seen) < limit:
        fn = stack.pop()
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        variable = getattr(fn, "variable", None)
        if variable is not None:
            out.append(variable)
        stack.extend(f for f, _ in fn.next_functions)
    return out


class LogZCache:
    """Cached log Z per set of parameter tensors (see the module docstring for the policy).

    Parameters
    ----------
    max_entries
        Entries kept (least recently used dropped first).
    """

    def __init__(self, max_entries: int = 32):
        self.max_entries = int(max_entries)
        self._entries: OrderedDict = OrderedDict()

    def clear(self) -> None:
        """Forget every cached value and sampler."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def key(self, h: torch.Tensor, J: torch.Tensor) -> tuple[tuple, tuple, tuple]:
        """``(key, leaves, versions)`` of the parameters behind ``h`` and ``J``."""
        leaves = []
        for t in (h, J):
            for leaf in _leaves(t):
                if not any(leaf is other for other in leaves):
                    leaves.append(leaf)
        if any(leaf.requires_grad for leaf in leaves):
            key = ("params",) + tuple(id(leaf) for leaf in leaves) + (tuple(h.shape), tuple(J.shape))
            return key, tuple(leaves), tuple(leaf._version for leaf in leaves)
        content = (h.detach().double().cpu().numpy().tobytes(), J.detach().double().cpu().numpy().tobytes())
        return ("values", hash(content), tuple(h.shape), tuple(J.shape)), (), ()

    def get(self, key: tuple, leaves: tuple) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if len(entry.refs) != len(leaves) or any(r() is not t for r, t in zip(entry.refs, leaves)):
            del self._entries[key]  # a new tensor reusing a dead one's id
            return None
        self._entries.move_to_end(key)
        return entry

    def find_machine(self, h: torch.Tensor, J: torch.Tensor) -> _Entry | None:
        """An entry whose last machine is exactly ``h, J`` (e.g. parameters evaluated under
        ``torch.no_grad``, where no graph leads back to them), or ``None``."""
        for entry in reversed(self._entries.values()):
            if entry.h.shape == h.shape and torch.equal(entry.h, h) and torch.equal(entry.J, J):
                return entry
        return None

    def put(self, key: tuple, leaves: tuple, versions: tuple, **fields) -> _Entry:
        entry = _Entry(refs=tuple(weakref.ref(t) for t in leaves), versions=versions, **fields)
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return entry


#: The process-wide cache used by :class:`~qbm_pyro.distributions.Boltzmann`.
LOG_Z_CACHE = LogZCache()
