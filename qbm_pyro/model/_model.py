"""``QBMVAE``: the user-facing model (data setup, training, outputs, save/load).

The maths lives in :mod:`qbm_pyro.module`; this class reads the data through the registry of
:mod:`qbm_pyro.data`, builds the module from its summary statistics, trains it and returns
arrays. Writing results into a MuData is the job of :func:`qbm_pyro.tl.qbm`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import anndata as ad
import mudata as md
import numpy as np
import torch

from ..convergence import check_fit, warn_if_untrained
from ..data import setup_data, train_validation_split
from ..device import resolve_device
from ..pp._input import warn_non_counts
from ..pp._sizes import size_defaults
from ..samplers import (
    ExactSampler,
    FallbackSampler,
    GibbsSampler,
    ParallelTemperingSampler,
    Sampler,
    default_sampler,
)
from ..samplers.serialize import sampler_from_config
from ..training import Trainer, TrainingConfig
from ._checkpoint import check_checkpoint, checkpoint_meta
from ._expression import ExpressionMixin
from ._generation import GenerationMixin
from ._mapping import ReferenceMappingMixin, _use_saved_levels
from ._save import read_model_file, write_model_file

__all__ = ["QBMVAE"]

log = logging.getLogger(__name__)

Representation = Literal["probs", "logits", "hard", "continuous", "joint", "hellinger"]


class QBMVAE(GenerationMixin, ExpressionMixin, ReferenceMappingMixin):
    """Multi-omics VAE with a Boltzmann-machine prior over a binary latent code.

    Parameters
    ----------
    data
        A MuData (RNA, protein and/or ATAC modalities) or an AnnData (one modality); not modified.
    modalities
        Which modalities to model and their kinds: ``None`` (inferred from the names ``rna``,
        ``prot``/``protein``/``adt``, ``atac``/``peaks``), a list of names or ``{name: kind}``.
    layers
        Layer holding counts: one name for all count modalities or ``{name: layer}``.
    batch_key
        Categorical ``obs`` column(s) with batch labels, entered into encoders and decoders.
    n_latent
        Number of binary latent units.
    n_continuous
        Gaussian latent units beside the code (``0``: a purely binary latent).
    prior
        ``"boltzmann"`` (learned, fully coupled), ``"rbm"`` (bipartite), ``"hidden"`` (fully
        coupled plus ``n_prior_hidden`` hidden units of the prior's own, default 32, summed out:
        a product-of-experts marginal over the code that can hold several modes; the DVAE/QVAE
        prior), ``"bernoulli"`` (a fixed
        factorial Bernoulli(1/2) prior on the code: the ablation of the learned prior) or
        ``"gaussian"`` (the twin model with a standard normal prior on a continuous latent, for
        A/B comparison).
    relaxation
        ``"overlap"`` (overlapping exponentials, DVAE++) or ``"spike"`` (spike-and-exponential).
    rna_likelihood
        ``"nb"`` or ``"zinb"``.
    likelihood_weights
        Weight of each modality's log-likelihood in the training loss. ``"balanced"`` (default):
        ATAC weighs ``n_genes / n_peaks`` when RNA is beside it and peaks outnumber genes (the
        peaks together count as much as the genes), every other modality 1; ``None``: all 1
        (the plain ELBO, as MultiVI); or ``{modality: weight}`` by name or kind (others 1). The
        marginal likelihood (:meth:`get_marginal_ll`) is always that of the unweighted model.
        On the sci-CAR A549 set (1,185 genes, 11,567 peaks: ATAC weighs 0.10) the unweighted
        joint latent encodes each cell's ATAC depth and separates treatment time worse than
        RNA alone; balanced: kNN accuracy 0.900 ± 0.008 against 0.864 ± 0.011 (3 seeds;
        ``docs/multiomics.rst``).
    sampler
        Sampler of the prior's negative phase (default: persistent parallel tempering,
        :func:`~qbm_pyro.samplers.default_sampler`). Any
        :class:`~qbm_pyro.samplers.Sampler`, e.g. a :class:`~qbm_pyro.samplers.DimodSampler`.
    sampler_fallback
        Wrap a ``sampler`` that is not one of the torch samplers (Gibbs, parallel tempering,
        exact) nor already a :class:`~qbm_pyro.samplers.FallbackSampler` in
        ``FallbackSampler(sampler, default_sampler(...))``: when it raises or returns samples of
        the wrong shape or values, training warns (``SamplerFallbackWarning``) and goes on with
        tempering samples for that step. No time limit is set; for one, pass your own
        ``FallbackSampler(sampler, timeout=...)``. ``False`` uses ``sampler`` as given (its
        errors then stop training).
    seed
        Seed of the network initialisation, the shuffling and the sampler.
    accelerator
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"`` (also ``"gpu"``, as in
        Lightning; an error if CUDA is not available). The module, the minibatches and the torch
        samplers' chains live there.
    device
        A device of that accelerator (index or name, e.g. ``1`` or ``"cuda:1"``); default its
        current one.
    **module_kwargs
        ``n_hidden``, ``n_layers``, ``dropout``, ``smoothing``, ``num_prior_samples``,
        ``encode_covariates`` (default ``False``: batches reach the decoder only, as in scVI;
        ``True`` was not better beyond seed noise on the benchmark sets, see ``docs/multiomics.rst``),
        ``encoder_input`` (``"log1p"`` default, or ``"depth"``: counts scaled to each cell's depth
        before the encoders), ``protein_depth`` (default ``True``: the protein likelihood is
        scaled by each cell's observed tag depth); see :class:`~qbm_pyro.module.MultiVAE`.

    Examples
    --------
    >>> import qbm_pyro
    >>> from qbm_pyro import datasets
    >>> mdata = datasets.pbmc_cite_2batch()
    >>> model = qbm_pyro.QBMVAE(mdata, batch_key="batch", n_latent=16)
    >>> _ = model.train(max_epochs=2, progress_bar=False)
    >>> model.get_latent_representation().shape
    (400, 32)
    """

    def __init__(
        self,
        data: md.MuData | ad.AnnData,
        *,
        modalities=None,
        layers=None,
        batch_key: str | list[str] | None = None,
        n_latent: int = 64,
        n_continuous: int = 16,
        prior: Literal["boltzmann", "rbm", "hidden", "bernoulli", "gaussian"] = "boltzmann",
        relaxation: Literal["overlap", "spike"] = "overlap",
        rna_likelihood: Literal["nb", "zinb"] = "nb",
        likelihood_weights: Mapping[str, float] | Literal["balanced"] | None = "balanced",
        sampler: Sampler | None = None,
        sampler_fallback: bool = True,
        seed: int = 0,
        accelerator: Literal["auto", "cpu", "cuda", "gpu"] = "auto",
        device: str | int | torch.device | None = None,
        **module_kwargs,
    ):
        self.registry = setup_data(data, modalities=modalities, layers=layers, batch_key=batch_key)
        warn_non_counts(data, self.registry)  # rounded TPM/CPM/FPKM pass the checks: say so
        sampler = _prepare_sampler(sampler, sampler_fallback, prior=prior, seed=seed)
        self.data = data
        if isinstance(likelihood_weights, Mapping):  # modality names to the module's kinds
            likelihood_weights = {self._resolve_modality(str(k))[1]: w for k, w in likelihood_weights.items()}
        self.init_args = dict(
            n_latent=n_latent,
            n_continuous=n_continuous,
            prior=prior,
            relaxation=relaxation,
            rna_likelihood=rna_likelihood,
            likelihood_weights=likelihood_weights,
            seed=seed,
            **module_kwargs,
        )
        self.device = resolve_device(accelerator, device)
        torch.manual_seed(seed)
        self.module = self._build_module(sampler)
        self.seed = seed
        self.is_trained_ = False
        self.history_: dict = {}
        self.prior_refit_: dict | None = None
        #: Cell positions trained on and held out for validation by the last :meth:`train`.
        self.train_indices_: np.ndarray | None = None
        self.validation_indices_: np.ndarray | None = None

    def __repr__(self) -> str:
        kinds = ", ".join(f"{n} ({s.kind})" for n, s in self.registry.modalities.items())
        return (
            f"QBMVAE(prior={self.init_args['prior']!r}, n_latent={self.module.n_binary}, "
            f"n_continuous={self.module.n_continuous}, modalities=[{kinds}], "
            f"batch_keys={list(self.registry.batch_keys)}, trained={self.is_trained_})"
        )

    # ------------------------------------------------------------------ training

    def train(
        self,
        max_epochs: int | None = None,
        *,
        batch_size: int = 128,
        lr: float = 1e-3,
        kl_warmup_epochs: int | None = None,
        validation_fraction: float | None = None,
        early_stopping: bool | None = None,
        patience: int = 45,
        progress_bar: bool = True,
        checkpoint_path: str | Path | None = None,
        resume: bool = False,
        skip_empty_cells: bool = True,
        trainer_cls: type[Trainer] = Trainer,
        **config,
    ) -> dict:
        """Fit by minibatch SVI (Adam) on the analytic-KL ELBO with KL warm-up.

        Parameters
        ----------
        max_epochs
            Passes over the training cells; ``None``: follows the number of cells, 400 up to
            20,000 cells and fewer above, at least 200 (:func:`qbm_pyro.pp.size_defaults`, where
            the measurements are).
        batch_size, lr
            Minibatch size and Adam learning rate.
        kl_warmup_epochs
            The KL weight rises linearly from ``1/kl_warmup_epochs`` to 1 over these epochs
            (default half of ``max_epochs``, 200 of 400). With early stopping as below, measured
            against a warm-up over all 400 epochs that keeps the last state (3 seeds,
            ``benchmarks/training_length.py``): on the a549 RNA + ATAC set, whose validation
            -ELBO is best near epoch 40 and 290 nats per cell worse at 400, kNN accuracy of the
            time point 0.82 -> 0.87 and Leiden ARI 0.12 -> 0.36; paul15 Leiden ARI 0.50 -> 0.52
            and kNN 0.868 -> 0.861; batch mixing 0.77 -> 0.75 on mixology (a quarter, 100 of
            400, gives the same there but paul15 Leiden ARI 0.46). On the 400-cell CITE-seq
            set, with no validation set (below), 0.95 -> 0.97.
        validation_fraction
            Held-out cells for the validation loss (``0``: none). ``None`` follows the number of
            cells, as in :func:`qbm_pyro.tl.qbm` and the CLI (:func:`qbm_pyro.pp.size_defaults`):
            ``0.1`` from 1,000 cells on, none below. On the 400-cell CITE-seq set 10 % is 40
            cells, whose loss is too noisy to choose a state by: with them, one seed in three
            stopped at epoch 184 and batch mixing was 0.74 +- 0.13 (3 seeds); without, all 400
            epochs and the last state, 0.967 +- 0.005 (scVI 0.956, totalVI 0.954).
        early_stopping, patience
            Stop after ``patience`` epochs without a better validation loss (the negative ELBO
            of the held-out cells at KL weight 1, watched from the first epoch, warm-up
            included, as scvi-tools' early stopping on ``elbo_validation``, with its patience
            of 45: with the log Z of each epoch's own prior in that loss, 30 stopped paul15 and
            mixology 30-90 epochs earlier, and mixed mixology's batches less). With a validation
            set the state with the best validation loss is restored at the end, with or without
            early stopping (``restore_best=False`` keeps the last state). ``None``: on when
            there is a validation set.
        progress_bar
            Show a progress bar with the losses.
        checkpoint_path
            Write the full training state there after every epoch (atomically: a crash or
            ``SIGKILL`` leaves the previous epoch's checkpoint intact).
        resume
            Continue from ``checkpoint_path`` if it exists (else start from scratch). With the
            same seed and settings the result is bit-identical to that of an uninterrupted run
            (on CPU, same torch thread count; an unseeded sampler, e.g. hardware, or a
            ``FallbackSampler`` falling back on time-outs breaks this). A checkpoint of another
            model or data is refused; other training settings (``lr``...) are used with a
            warning. Without an explicit ``kl_warmup_epochs`` the resumed fit keeps the
            checkpoint's warm-up (a fit resumed to a larger ``max_epochs`` keeps its KL weight).
        skip_empty_cells
            Leave cells that are all-zero in a modality they have (see
            :meth:`~qbm_pyro.data.DataRegistry.nonempty_cells`; setup warns about them) out of
            training and validation. They are never dropped from the data: every output
            (``get_latent_representation``...) still has one row per cell.
        trainer_cls
            The training loop: :class:`~qbm_pyro.training.Trainer`, or a subclass such as
            :class:`~qbm_pyro.distributed.DistributedTrainer` (data-parallel ranks).
        **config
            More :class:`~qbm_pyro.training.TrainingConfig` fields: ``weight_decay``,
            ``log_z_every``, ``restore_best`` (default ``True``: with a validation set, end in
            the state with the best validation loss; ``False``: the last state),
            ``prior_lr_factor`` (the Boltzmann prior's learning rate is
            ``lr * prior_lr_factor``), ``kl_balance`` (``α`` in ``(0, 1]``: the codes' KL is
            balanced, ``α·KL(sg(q) ‖ p) + (1 − α)·KL(q ‖ sg(p))``, so the prior gets ``α`` and the
            posterior ``1 − α`` of its gradient; default ``None``, the plain KL; see
            ``kl_balanced_code``), ``prior_refit_steps`` (default 2000; 0: off): after the last
            epoch the Boltzmann prior alone is fitted to convergence on the final encoder's
            aggregate posterior (``Trainer.refit_prior``; what it did: ``model.prior_refit_``),
            ``continuous_kl_weight`` (``β``, default 3: the Gaussian units' KL weighed ``β`` times,
            so the code and its prior carry more of the cells' states; 1: the ELBO; docs/landscape.rst),
            ``continuous_free_bits`` (``λ`` nats per Gaussian unit, the first ``λ`` of each unit's
            KL free so none collapses under ``β``; default 0: the floor moves the cells' states
            out of the code, see :func:`qbm_pyro.pp.size_defaults`), ``modality_dropout``
            (``p``, default 0: each cell's encoders miss each modality with probability ``p`` in
            training, never all; for queries
            that lack one, :mod:`qbm_pyro.module.modality_dropout`).

        Warns
        -----
        qbm_pyro.convergence.NotConvergedWarning
            The fit has clearly not converged: the loss still falls fast at ``max_epochs``, or the
            decoder ignores its latent input (see :func:`qbm_pyro.convergence.check_fit`).

        Returns
        -------
        The training history: ``epoch``, ``train_loss``, ``validation_loss`` (negative ELBO per
        cell of the training objective: with ``likelihood_weights`` other than 1, e.g. ATAC
        beside RNA by default, a weighted ELBO, not a bound on ``log p(x)``; for that,
        :meth:`get_marginal_ll`), ``kl_weight``, ``log_z``, ``sampler_fallbacks`` (running total of
        negative-phase calls a :class:`~qbm_pyro.samplers.FallbackSampler` answered with its fallback; the
        first epoch with one also warns, ``SamplerFallbackWarning``).

        Raises
        ------
        NumericalError
            The loss or a gradient became NaN/inf. The model is put back at the end of the last
            complete epoch, which is also what ``checkpoint_path`` holds.
        ValueError
            Bad settings, no cell to train on, or a checkpoint that does not fit this model.
        """
        sizes = size_defaults(
            int(self.registry.n_obs),
            max_epochs=max_epochs,
            validation_fraction=validation_fraction,
            early_stopping=early_stopping,
            continuous_free_bits=config.pop("continuous_free_bits", None),
        )
        config["continuous_free_bits"] = sizes["continuous_free_bits"]
        max_epochs = sizes["max_epochs"]
        validation_fraction, early_stopping = sizes["validation_fraction"], sizes["early_stopping"]
        cfg = TrainingConfig(
            max_epochs=max_epochs,
            batch_size=batch_size,
            lr=lr,
            kl_warmup_epochs=kl_warmup_epochs,
            validation_fraction=validation_fraction,
            early_stopping=early_stopping,
            patience=patience,
            seed=self.seed,
            progress_bar=progress_bar,
            checkpoint_path=checkpoint_path,
            **config,
        )
        if resume and not checkpoint_path:
            raise ValueError("resume=True needs checkpoint_path")
        if checkpoint_path:
            cfg.checkpoint_path = str(checkpoint_path)
            Path(checkpoint_path).parent.mkdir(parents=True, exist_ok=True)
        keep = self.registry.nonempty_cells() if skip_empty_cells else np.ones(self.registry.n_obs, bool)
        cells = np.flatnonzero(keep)
        if len(cells) < 2:
            raise ValueError(
                f"{len(cells)} of {self.registry.n_obs} cells can be trained on: the others are "
                "all-zero in a modality they have (pass skip_empty_cells=False to use them anyway)"
            )
        train_pos, val_pos = train_validation_split(len(cells), validation_fraction, seed=self.seed)
        meta = checkpoint_meta(self)
        trainer = trainer_cls(
            self.module, self.data, self.registry, cells[train_pos], cells[val_pos], cfg, meta=meta
        )
        if resume:
            state = trainer.read_checkpoint(checkpoint_path)
            if state is not None:
                saved_warmup = (state.get("config") or {}).get("kl_warmup_epochs")
                if kl_warmup_epochs is None and isinstance(saved_warmup, int) and saved_warmup >= 1:
                    # the default follows max_epochs; a fit resumed to go further keeps its own
                    cfg.kl_warmup_epochs = saved_warmup
                check_checkpoint(self, state, cfg, checkpoint_path)
                trainer.load_state(state)
                log.info("resuming from %s at epoch %d", checkpoint_path, trainer.epoch)
        self.train_indices_, self.validation_indices_ = cells[train_pos], cells[val_pos]
        self.history_ = trainer.run()
        self.prior_refit_ = trainer.prior_refit
        if self.module.prior is not None and self.prior_refit_ is None:  # (the refit refreshed it)
            self.module.prior.refresh_log_z()
        self.is_trained_ = True
        check_fit(self, stopped_early=len(self.history_.get("epoch", ())) < max_epochs)  # NotConvergedWarning
        return self.history_

    # ------------------------------------------------------------------ outputs

    @property
    def sampler(self) -> Sampler | None:
        """The sampler of the prior's negative phase (``None`` for the Gaussian and Bernoulli
        priors): the ``sampler`` given (a non-torch one such as a ``DimodSampler`` wrapped in a
        :class:`~qbm_pyro.samplers.FallbackSampler` unless ``sampler_fallback=False``), or the
        default, persistent parallel tempering (:func:`~qbm_pyro.samplers.default_sampler`). Its
        persistent chains are the model's
        own; to draw from the learned prior use :meth:`sample_prior`.

        Examples
        --------
        >>> import qbm_pyro
        >>> model = qbm_pyro.QBMVAE(qbm_pyro.datasets.pbmc_cite_2batch(), n_latent=8)
        >>> type(model.sampler).__name__
        'ParallelTemperingSampler'
        """
        prior = self.module.prior
        return None if prior is None else prior.sampler

    @property
    def default_representation(self) -> Representation:
        """``"joint"`` when the latent has binary and Gaussian parts, else the part it has."""
        m = self.module
        if m.n_binary and m.n_continuous:
            return "joint"
        return "probs" if m.n_binary else "continuous"

    def get_latent_representation(
        self, data=None, *, representation: Representation | None = None, batch_size: int = 512
    ) -> np.ndarray:
        """Per-cell latent.

        Parameters
        ----------
        data
            Data to encode (default: the training data); must have the registered features.
        representation
            ``"probs"`` (posterior Bernoulli means ``q``), ``"logits"``, ``"hard"`` (``q > 1/2``,
            the binary code), ``"continuous"`` (posterior means of the Gaussian units),
            ``"joint"`` (``q`` then the Gaussian means) or ``"hellinger"`` (``√q``, ``√(1-q)``,
            then the Gaussian means: ``2 n_binary + n_continuous`` columns whose squared
            Euclidean distance is twice the summed squared Hellinger distances of the units'
            Bernoulli posteriors plus that of the Gaussian means, the geometry of
            :func:`~qbm_pyro.tl.trajectory`'s default metric). Default: ``"joint"`` when the
            model has both parts, else the one it has (``"probs"`` or ``"continuous"``).

            Measured on the default fits of the bundled sets (``BENCHMARKS.md``, "Latent
            representations of the same fits"), none undid the extra Leiden clusters at a fixed
            resolution, and none was better on every set (``"logits"`` with the Gaussian means
            the closest: ahead on paul15 and mixology, behind on a549 and in batch mixing). It
            is not the default for that reason, and
            :func:`~qbm_pyro.tl.trajectory` and :func:`~qbm_pyro.tl.attractors` read the first
            ``n_binary`` columns of ``obsm["X_qbm"]`` as probabilities.

        Returns
        -------
        Array of shape ``(n_obs, d)``.
        """
        warn_if_untrained(self, "get_latent_representation")
        m = self.module
        representation = representation or self.default_representation
        needs = {
            "probs": m.n_binary,
            "logits": m.n_binary,
            "hard": m.n_binary,
            "continuous": m.n_continuous,
            "joint": m.n_binary and m.n_continuous,
            "hellinger": m.n_binary,
        }
        if representation not in needs:
            raise ValueError(f"representation must be one of {sorted(needs)}, got {representation!r}")
        if not needs[representation]:
            raise ValueError(f"representation {representation!r} is not available for this model ({self!r})")

        def fn(batch):
            post = m.encode(batch)
            probs = torch.sigmoid(post["logits"])
            return {
                "probs": lambda: probs,
                "logits": lambda: post["logits"],
                "hard": lambda: (probs > 0.5).float(),
                "continuous": lambda: post["loc"],
                "joint": lambda: torch.cat([probs, post["loc"]], -1),
                "hellinger": lambda: torch.cat([probs.sqrt(), (1.0 - probs).sqrt(), post["loc"]], -1),
            }[representation]()

        return self._collect(fn, data, batch_size)

    def get_energy(self, data=None, *, batch_size: int = 512) -> np.ndarray:
        """Each cell's energy under the learned prior, ``E(q) = E_q[E(z)]`` (the "cell-state
        potential"; lower is more probable). For ``prior="gaussian"``: ``½‖μ‖²``."""
        warn_if_untrained(self, "get_energy")
        m = self.module

        def fn(batch):
            post = m.encode(batch)
            if m.n_binary:
                return m.prior.energy(torch.sigmoid(post["logits"]))
            return 0.5 * (post["loc"] ** 2).sum(-1)

        return self._collect(fn, data, batch_size)

    # ------------------------------------------------------------------ save / load

    def save(self, dir_path: str | Path, *, overwrite: bool = False) -> None:
        """Save to ``dir_path/model.pt`` (weights, sampler state, setup and init arguments,
        feature names, history). Refuses an existing file unless ``overwrite=True``."""
        write_model_file(self, dir_path, overwrite=overwrite)

    @classmethod
    def load(
        cls,
        dir_path: str | Path,
        data: md.MuData | ad.AnnData,
        *,
        sampler: Sampler | None = None,
        sampler_fallback: bool = True,
        accelerator: Literal["auto", "cpu", "cuda", "gpu"] = "auto",
        device: str | int | torch.device | None = None,
    ) -> QBMVAE:
        """Load a model saved by :meth:`save` and attach it to ``data`` (same features), on
        ``accelerator``/``device`` (files are read on the CPU: a GPU-trained model loads anywhere).

        The sampler the model was trained with is rebuilt from its saved settings and state
        (:mod:`qbm_pyro.samplers.serialize`): Gibbs, parallel tempering, exact, a
        :class:`~qbm_pyro.samplers.DimodSampler` over a software sampler (any mode) and a
        :class:`~qbm_pyro.samplers.FallbackSampler` over any of those. A QPU or another sampler
        that cannot be rebuilt from a file must be passed as ``sampler=``.

        Uses ``torch.load(weights_only=True)``: a tampered file cannot run code, and a damaged one
        gives a clear error.

        Parameters
        ----------
        dir_path
            Folder given to :meth:`save`.
        data
            Data with the features the model was trained on.
        sampler
            Use this sampler (its state is not restored) instead of rebuilding the saved one.
        sampler_fallback
            As for :class:`QBMVAE`, for a ``sampler`` given here.

        Raises
        ------
        qbm_pyro.samplers.serialize.SamplerNotRebuildableError
            The saved sampler cannot be rebuilt (a QPU...) and no ``sampler`` was given.
        """
        saved = read_model_file(dir_path, cls.__name__)
        path = saved.path
        restore_sampler = sampler is None
        config = saved.sampler_config
        if sampler is None and config is not None:
            sampler = sampler_from_config(config)  # exactly what was trained: no extra wrapping
            sampler_fallback = False
        # a file from before likelihood_weights was trained unweighted: it stays so if trained on
        settings = {"likelihood_weights": None, **saved.setup_args, **saved.init_args}
        try:
            model = cls(
                data,
                sampler=sampler,
                sampler_fallback=sampler_fallback,
                accelerator=accelerator,
                device=device,
                **settings,
            )
        except TypeError as error:  # settings QBMVAE does not take: an edited or foreign file
            if "argument" not in str(error):
                raise
            raise ValueError(f"{path}: its saved settings do not fit {cls.__name__} ({error})") from error
        _use_saved_levels(model, saved.batch_categories)  # the model's level numbering
        for name, spec in model.registry.modalities.items():
            if list(spec.var_names) != saved.var_names.get(name):
                raise ValueError(
                    f"modality {name!r} of the data does not have the features the model was trained on "
                    f"({spec.n_vars} vs {len(saved.var_names.get(name) or [])} features, or another order)"
                )
        model.module.load_state_dict(saved.state_dict)
        prior = model.module.prior
        if prior is not None and saved.sampler_state and restore_sampler:
            try:
                prior.sampler.load_state_dict(saved.sampler_state)
            except (KeyError, ValueError) as error:
                raise ValueError(
                    f"{path}: the saved sampler state does not fit {type(prior.sampler).__name__} "
                    f"({type(error).__name__}: {error}); the file predates sampler configs: pass "
                    "the sampler it was trained with as QBMVAE.load(..., sampler=...)"
                ) from error
        for key, value in saved.attributes.items():  # only SAVED_ATTRIBUTES: checked on reading
            setattr(model, key, value)
        return model


_TORCH_SAMPLERS = (ExactSampler, FallbackSampler, GibbsSampler, ParallelTemperingSampler)


def _prepare_sampler(sampler, fallback: bool, *, prior: str, seed: int) -> Sampler | None:
    """Check a user's sampler and, unless it is a torch sampler, give it a Gibbs fallback."""
    if sampler is None:
        return None
    if not isinstance(sampler, Sampler):
        hint = (
            " (a dimod sampler: wrap it as qbm_pyro.samplers.DimodSampler(sampler))"
            if callable(getattr(sampler, "sample", None))
            else ""
        )
        raise TypeError(f"sampler must be a qbm_pyro.samplers.Sampler, got {type(sampler).__name__}{hint}")
    if not fallback or isinstance(sampler, _TORCH_SAMPLERS):
        return sampler
    return FallbackSampler(sampler, default_sampler("rbm" if prior == "rbm" else "full", seed=seed))
