"""The contract between :class:`~qbm_pyro.QBMVAE` and its mixins.

:class:`ModelBase` declares every attribute the mixins (generation, expression, reference
mapping) read, and holds what they share: the one factory of the model's module
(:meth:`ModelBase._build_module`, on the model's device), re-registering the data with other
batch levels (:meth:`ModelBase._use_batch_levels`), minibatches on the device and the
modality-name rule. ``QBMVAE.__init__`` sets the attributes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import anndata as ad
import mudata as md
import numpy as np
import torch

from ..data import DataRegistry, MinibatchLoader
from ..device import batch_to
from ..module import MultiVAE
from ..samplers import Sampler

__all__ = ["ModelBase"]


class ModelBase:
    """Attributes and shared internals of :class:`~qbm_pyro.QBMVAE` (not used on its own)."""

    #: The data the model was set up with (never modified).
    data: md.MuData | ad.AnnData
    #: What the model reads from ``data``: modalities, layers, batch levels, cell rows.
    registry: DataRegistry
    #: The Pyro model and guide (:class:`~qbm_pyro.module.MultiVAE`), on :attr:`device`.
    module: MultiVAE
    #: Where the module, the minibatches and the torch samplers' chains live.
    device: torch.device
    #: The module's arguments (``n_latent``, ``prior``, ..., ``seed``): saved, and given again on load.
    init_args: dict[str, Any]
    #: Seed of the network initialisation, the shuffling and the sampler.
    seed: int
    #: Whether :meth:`~qbm_pyro.QBMVAE.train` has run (``False`` again for a fresh query model).
    is_trained_: bool
    #: Per-epoch training record of the last ``train`` (``{}`` before).
    history_: dict
    #: What the prior's last fit after training did (``Trainer.refit_prior``; ``None``: not run).
    prior_refit_: dict | None
    #: Cell positions trained on and held out for validation by the last ``train`` (``None`` before).
    train_indices_: np.ndarray | None
    validation_indices_: np.ndarray | None
    #: Set on a model of query cells (``load_query_data``): new batch levels, ``freeze``, trainable weights.
    mapping_: dict[str, Any]

    def _build_module(self, sampler: Sampler | None) -> MultiVAE:
        """The one factory of this model's modules: a :class:`~qbm_pyro.module.MultiVAE` sized by
        the registry (features per kind, batch levels), with ``init_args``, on ``self.device``.

        Every place that (re)builds the module goes through here (``__init__``,
        :meth:`_use_batch_levels`), so a module never stays on the CPU of a GPU host.
        """
        n_vars = {spec.kind: spec.n_vars for spec in self.registry.modalities.values()}
        module = MultiVAE(n_vars, self.registry.n_batch, sampler=sampler, **self.init_args)
        return module.to(self.device)

    def _use_batch_levels(self, categories: Mapping[str, Sequence[str]]) -> None:
        """Read :attr:`data` with the batch levels ``categories`` (in code order) and rebuild the
        module (seeded by :attr:`seed`) for that many levels, keeping the prior's sampler.

        For a model trained on other levels than its data has (loading), or a reference's levels
        extended by a query's new ones (mapping). The new module's weights are fresh: the caller
        loads the trained ones.
        """
        self.registry = self.registry.with_batch_levels(self.data, categories)
        prior = self.module.prior
        torch.manual_seed(self.seed)
        self.module = self._build_module(prior.sampler if prior is not None else None)

    def _resolve_modality(self, modality: str) -> tuple[str, str]:
        """``(name, kind)`` of a registered modality given by name or by kind."""
        mods = self.registry.modalities
        if modality in mods:
            return modality, mods[modality].kind
        by_kind = [n for n, s in mods.items() if s.kind == modality]
        if len(by_kind) == 1:
            return by_kind[0], modality
        known = ", ".join(f"{n} ({s.kind})" for n, s in mods.items())
        raise ValueError(f"modality {modality!r} is not one of this model's modalities: {known}")

    def _loader(self, data=None, indices=None, batch_size: int = 512) -> _OnDevice:
        """Minibatches of ``data`` (default: the training data) in cell order, on the model's
        device; ``indices`` (positions or a boolean mask) selects cells."""
        data = self.data if data is None else data
        registry = self.registry if data is self.data else self.registry.transfer(data)
        if indices is not None:
            indices = np.asarray(indices)
            indices = np.flatnonzero(indices) if indices.dtype == bool else indices
        loader = MinibatchLoader(data, registry, batch_size=batch_size, shuffle=False, indices=indices)
        return _OnDevice(loader, self.device)

    @torch.no_grad()
    def _collect(self, fn, data, batch_size) -> np.ndarray:
        """``fn`` of every minibatch of ``data`` (module in eval mode), concatenated on the CPU."""
        self.module.eval()
        parts = [fn(batch) for batch in self._loader(data, batch_size=batch_size)]
        return torch.cat(parts).cpu().numpy()


class _OnDevice:
    """A :class:`~qbm_pyro.data.MinibatchLoader` whose minibatches are moved to ``device``."""

    def __init__(self, loader: MinibatchLoader, device: torch.device):
        self.loader, self.device = loader, device

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        return (batch_to(batch, self.device) for batch in self.loader)

    def batch(self, idx) -> dict[str, torch.Tensor]:
        """The minibatch of the cells at positions ``idx``, on the device."""
        return batch_to(self.loader.batch(idx), self.device)
