"""Modality dropout: in training, each cell's encoders see a random subset of its modalities.

The product-of-experts posterior (:meth:`~qbm_pyro.module.MultiVAE.encode`) adds one expert per
observed modality. Trained only on cells with every modality, each expert learns to be one part
of a sum, so a query with one modality alone is encoded off the reference's latent (a protein-only
CITE-seq query: label transfer 0.52 against 0.94 for a kNN on its raw proteins). Hiding a
modality from the encoders of some cells while the likelihood still scores every modality they
have trains each expert, alone, to explain the cell (the sub-sampled ELBO terms of Wu and
Goodman's multimodal VAE, 2018); the bound stays an ELBO, with another encoder input.
"""

from __future__ import annotations

import torch

from .._constants import REGISTRY_KEYS as K


def drop_modalities(batch: dict[str, torch.Tensor], kinds, p: float) -> dict[str, torch.Tensor]:
    """The minibatch with encoder masks that hide each observed modality of each cell with
    probability ``p``, but never every one: a cell whose draws hid all it has keeps one of them,
    chosen at random. The has-modality masks (what the likelihood scores) are left as they are.

    Parameters
    ----------
    batch
        A minibatch dict (:class:`qbm_pyro.data.MinibatchLoader`).
    kinds
        The model's modality kinds.
    p
        Dropout probability in ``[0, 1)``; ``0`` or a single modality returns ``batch`` itself.

    Returns
    -------
    A shallow copy of ``batch`` with ``encoder_mask_key(kind)`` for every kind (draws from
    torch's global generator: seeded with the epoch by the trainer).
    """
    kinds = list(kinds)
    if p <= 0 or len(kinds) < 2:
        return batch
    has = torch.stack([batch[K.mask_key(kind)].bool() for kind in kinds], -1)
    keep = has & (torch.rand(has.shape, device=has.device) >= p)
    lost = has.any(-1) & ~keep.any(-1)
    if bool(lost.any()):
        pick = torch.rand(has.shape, device=has.device).masked_fill(~has, -1.0).argmax(-1)
        keep[lost, pick[lost]] = True
    out = dict(batch)
    for i, kind in enumerate(kinds):
        out[K.encoder_mask_key(kind)] = keep[:, i]
    return out
