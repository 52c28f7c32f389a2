"""``qbm_pyro.tl.qbm``: fit (or apply) a QBM-VAE and write its latent into the data object."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import anndata as ad
import mudata as md
import numpy as np

from ..model import QBMVAE

__all__ = ["qbm"]

log = logging.getLogger(__name__)


def qbm(
    data: md.MuData | ad.AnnData,
    model: QBMVAE | None = None,
    *,
    modalities=None,
    layers=None,
    batch_key: str | list[str] | None = None,
    n_latent: int = 64,
    n_continuous: int = 16,
    prior: str = "boltzmann",
    relaxation: str = "overlap",
    sampler=None,
    max_epochs: int = 200,
    representation: str | None = None,
    seed: int = 0,
    model_dir: str | Path | None = None,
    key_added: str = "qbm",
    progress_bar: bool = True,
    copy: bool = False,
    **train_kwargs,
) -> md.MuData | ad.AnnData | None:
    """Integrate the modalities of ``data`` into a Boltzmann-prior latent space.

    Fits a :class:`~qbm_pyro.QBMVAE` (or uses the fitted ``model``) and writes the per-cell latent
    and prior energy, so that ``sc.pp.neighbors(data, use_rep="X_qbm")``, ``sc.tl.umap`` and
    ``sc.tl.leiden`` follow as usual.

    Parameters
    ----------
    data
        MuData (RNA, protein, ATAC) or AnnData with counts.
    model
        A fitted model to apply instead of fitting one (its features must match ``data``).
    modalities, layers, batch_key, n_latent, n_continuous, prior, relaxation, sampler, seed
        As for :class:`~qbm_pyro.QBMVAE` (ignored when ``model`` is given): ``sampler`` is any
        :class:`~qbm_pyro.samplers.Sampler` (a ``DimodSampler``, a ``QPUSampler``...).
    max_epochs, progress_bar, **train_kwargs
        As for :meth:`~qbm_pyro.QBMVAE.train`.
    representation
        As for :meth:`~qbm_pyro.QBMVAE.get_latent_representation`.
    model_dir
        Save the fitted model there (:meth:`~qbm_pyro.QBMVAE.save`).
    key_added
        Name of the outputs.
    copy
        Return a modified copy instead of writing into ``data``.

    Returns
    -------
    ``None``, or the modified copy if ``copy=True``. Writes, at the MuData level:

    `data.obsm['X_' + key_added]` : :class:`numpy.ndarray` ``(n_obs, d)``, float32
        The latent (see ``representation``).
    `data.obs[key_added + '_energy']` : float
        Each cell's energy under the learned prior (lower is more probable).
    `data.uns[key_added]['params']` : :class:`dict`
        Model and training settings, ``n_binary`` (the first ``n_binary`` columns of the latent
        are Bernoulli probabilities), ``n_continuous`` and ``representation``.
    `data.uns[key_added]['history']` : :class:`dict` of arrays
        The training curves.
    `data.uns[key_added]['prior']` : :class:`dict`
        The learned prior's ``h`` ``(n,)`` and ``J`` ``(n, n)`` (strict upper triangle), for
        :func:`~qbm_pyro.tl.attractors`; absent for the Gaussian twin.

    Examples
    --------
    >>> import qbm_pyro
    >>> mdata = qbm_pyro.datasets.pbmc_cite_2batch()
    >>> qbm_pyro.tl.qbm(mdata, batch_key="batch", n_latent=16, max_epochs=2, progress_bar=False)
    >>> mdata.obsm["X_qbm"].shape
    (400, 32)
    """
    data = data.copy() if copy else data
    start = time.perf_counter()
    log.info("running qbm_pyro.tl.qbm")
    if model is None:
        model = QBMVAE(
            data,
            modalities=modalities,
            layers=layers,
            batch_key=batch_key,
            n_latent=n_latent,
            n_continuous=n_continuous,
            prior=prior,
            relaxation=relaxation,
            sampler=sampler,
            seed=seed,
        )
        model.train(max_epochs=max_epochs, progress_bar=progress_bar, **train_kwargs)
    elif not model.is_trained_:
        raise ValueError("the model given is not trained; call model.train() first or pass model=None")
    target = None if model.data is data else data
    latent = model.get_latent_representation(target, representation=representation)
    energy = model.get_energy(target)
    if model_dir is not None:
        model.save(model_dir, overwrite=False)
    data.obsm[f"X_{key_added}"] = latent.astype(np.float32)
    data.obs[f"{key_added}_energy"] = energy.astype(np.float64)
    params = {k: v for k, v in model.init_args.items() if v is not None}
    params |= {
        "n_binary": model.module.n_binary,
        "n_continuous": model.module.n_continuous,
        "representation": representation or model.default_representation,
        "modalities": [f"{n}:{s.kind}" for n, s in model.registry.modalities.items()],
        "batch_keys": list(model.registry.batch_keys),
    }
    history = {k: np.asarray(v, dtype=np.float64) for k, v in model.history_.items()}
    data.uns[key_added] = {"params": params, "history": history}
    if model.module.n_binary:  # the learned energy, for tl.attractors
        prior = model.module.prior
        data.uns[key_added]["prior"] = {
            "h": prior.h.detach().double().numpy(),
            "J": prior.couplings().detach().double().numpy(),
        }
    log.info(
        "    finished (%.1fs): added 'X_%s' (obsm), '%s_energy' (obs), '%s' (uns)",
        time.perf_counter() - start,
        key_added,
        key_added,
        key_added,
    )
    return data if copy else None
