"""``qbm_pyro.tl.qbm``: fit (or apply) a QBM-VAE and write its latent into the data object."""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path

import anndata as ad
import mudata as md
import numpy as np

from ..model import QBMVAE
from ..pp import NonCountInputWarning, check_input, select_genes, size_defaults

__all__ = ["qbm"]

log = logging.getLogger(__name__)


def qbm(
    data: md.MuData | ad.AnnData,
    model: QBMVAE | None = None,
    *,
    modalities=None,
    layers=None,
    batch_key: str | list[str] | None = None,
    n_latent: int | None = None,
    n_continuous: int | None = None,
    prior: str = "boltzmann",
    relaxation: str = "overlap",
    likelihood_weights="balanced",
    sampler=None,
    max_epochs: int | None = None,
    n_top_genes: int | str | None = "auto",
    representation: str | None = None,
    seed: int = 0,
    accelerator: str = "auto",
    device: str | int | None = None,
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
        MuData (RNA, protein, ATAC) or AnnData with counts, in memory or backed. All of it is
        checked first (:func:`qbm_pyro.pp.check_input`: every value of every modality, before
        any gene selection), and it is left untouched when a check fails.
    model
        A fitted model to apply instead of fitting one (its features must match ``data``).
    modalities, layers, batch_key, prior, relaxation, likelihood_weights, sampler, seed
        As for :class:`~qbm_pyro.QBMVAE` (ignored when ``model`` is given): ``sampler`` is any
        :class:`~qbm_pyro.samplers.Sampler` (a ``DimodSampler``, a ``QPUSampler``...).
    accelerator, device
        Where to fit, as for :class:`~qbm_pyro.QBMVAE` and the CLI's ``--device``:
        ``accelerator="auto"`` (CUDA when available), ``"cpu"``, ``"gpu"`` or ``"cuda"``
        (Lightning's and scvi-tools' spellings), and optionally ``device`` (``1``,
        ``"cuda:1"``). Ignored when ``model`` is given (it stays where it is).
    n_latent, n_continuous
        As for :class:`~qbm_pyro.QBMVAE`; ``None``: 64 and 16, resolved with the other sizes by
        :func:`qbm_pyro.pp.size_defaults` (a smaller latent lost on 300 cells).
    max_epochs, progress_bar, **train_kwargs
        As for :meth:`~qbm_pyro.QBMVAE.train`. ``max_epochs=None`` and, when not given in
        ``train_kwargs``, ``validation_fraction`` and ``early_stopping`` follow the number of
        cells (:func:`qbm_pyro.pp.size_defaults`: at most 400 epochs up to 20,000 cells and at
        least 200 above; no validation set or early stopping below 1,000 cells, 10 % validation
        and early stopping from 1,000).
    n_top_genes
        Gene selection of the RNA modality before fitting (:func:`qbm_pyro.pp.select_genes`):
        ``"auto"`` fits on the 2,000 most variable genes (seurat_v3) when there are more than
        4,000, with a :class:`~qbm_pyro.pp.GeneSelectionWarning`; ``None`` uses all genes; a
        number selects that many. ``data`` keeps all its genes; the choice is recorded in the
        RNA modality's ``var['qbm_highly_variable']`` and ``uns['qbm_highly_variable']``.
        Ignored when ``model`` is given (``data`` is then restricted to the model's genes).
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
    >>> mdata.obsm["X_qbm"].shape  # 16 binary + 16 Gaussian units
    (400, 32)
    """
    data = data.copy() if copy else data
    start = time.perf_counter()
    log.info("running qbm_pyro.tl.qbm")
    sizes = fit_data = None
    if model is None:
        # the whole input of every modality, before selection or normalisation touches it
        check_input(data, modalities=modalities, layers=layers, batch_key=batch_key)
        with warnings.catch_warnings():  # check_input warned about non-count values once
            warnings.simplefilter("ignore", NonCountInputWarning)
            fit_data = select_genes(
                data, n_top_genes, modalities=modalities, layers=layers, batch_key=batch_key
            )
        sizes = size_defaults(
            int(data.n_obs),
            n_latent=n_latent,
            n_continuous=n_continuous,
            max_epochs=max_epochs,
            validation_fraction=train_kwargs.pop("validation_fraction", None),
            early_stopping=train_kwargs.pop("early_stopping", None),
            continuous_free_bits=train_kwargs.pop("continuous_free_bits", None),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NonCountInputWarning)
            model = QBMVAE(
                fit_data,
                modalities=modalities,
                layers=layers,
                batch_key=batch_key,
                n_latent=sizes["n_latent"],
                n_continuous=sizes["n_continuous"],
                prior=prior,
                relaxation=relaxation,
                likelihood_weights=likelihood_weights,
                sampler=sampler,
                seed=seed,
                accelerator=accelerator,
                device=device,
            )
        model.train(
            max_epochs=sizes["max_epochs"],
            validation_fraction=sizes["validation_fraction"],
            early_stopping=sizes["early_stopping"],
            continuous_free_bits=sizes["continuous_free_bits"],
            progress_bar=progress_bar,
            **train_kwargs,
        )
    elif not model.is_trained_:
        raise ValueError("the model given is not trained; call model.train() first or pass model=None")
    target = None if model.data is data or model.data is fit_data else _restrict_to_model(data, model)
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
        "n_vars": {n: s.n_vars for n, s in model.registry.modalities.items()},
    }
    if sizes is not None:
        params["size_defaults"] = sizes
    history = {k: np.asarray(v, dtype=np.float64) for k, v in model.history_.items()}
    data.uns[key_added] = {"params": params, "history": history}
    if model.module.n_binary:  # the learned energy, for tl.attractors
        prior = model.module.prior
        data.uns[key_added]["prior"] = {
            "h": prior.h.detach().double().numpy(),
            "J": prior.couplings().detach().double().numpy(),
        }
        if getattr(prior, "n_hidden", 0):  # hidden units (prior="hidden"): b and W as well
            data.uns[key_added]["prior"]["b"] = prior.b.detach().double().numpy()
            data.uns[key_added]["prior"]["W"] = prior.W.detach().double().numpy()
    log.info(
        "    finished (%.1fs): added 'X_%s' (obsm), '%s_energy' (obs), '%s' (uns)",
        time.perf_counter() - start,
        key_added,
        key_added,
        key_added,
    )
    return data if copy else None


def _restrict_to_model(data, model: QBMVAE):
    """``data`` itself, or (when the model was fit on a gene subset of it, e.g. by
    ``n_top_genes``) a view of ``data`` restricted to the model's features."""
    subset = {}
    for name, spec in model.registry.modalities.items():
        mod = data if isinstance(data, ad.AnnData) else data.mod.get(name)
        if mod is None or mod.n_vars == spec.n_vars:
            continue
        missing = np.setdiff1d(np.asarray(spec.var_names), np.asarray(mod.var_names))
        if len(missing):
            return data  # let the registry say what does not fit
        subset[name] = mod[:, list(spec.var_names)]
    if not subset:
        return data
    if isinstance(data, ad.AnnData):
        return next(iter(subset.values()))
    out = md.MuData({n: subset.get(n, m) for n, m in data.mod.items()})
    out.obs = out.obs.join(data.obs[[c for c in data.obs.columns if c not in out.obs.columns]])
    return out
