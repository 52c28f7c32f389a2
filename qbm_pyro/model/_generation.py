"""Generation from the learned model and held-out likelihood: ``QBMVAE`` methods that sample the
prior (with the model's sampler, annealer included), generate cells, draw posterior-predictive
counts and estimate ``log p(x)`` by importance sampling.

All of them use the one generative model documented in :mod:`qbm_pyro.module.vae`: a binary code
``z`` from the Boltzmann machine, its smoothing ``ζ ~ r(ζ | z)``, Gaussian units
``c ~ N(Wζ + b, I)`` and counts from the decoder's likelihoods given ``(ζ, c)``, the batch and the
observed size factors.
"""

from __future__ import annotations

import copy

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from ..convergence import warn_if_untrained
from ..data import REGISTRY_KEYS
from ..module.marginal import log_marginal
from ._base import ModelBase

__all__ = ["GenerationMixin"]

K = REGISTRY_KEYS


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


class GenerationMixin(ModelBase):
    """Methods of :class:`~qbm_pyro.QBMVAE` that sample from the generative model."""

    # ------------------------------------------------------------------ held-out likelihood

    def get_marginal_ll(
        self,
        data=None,
        *,
        indices=None,
        n_samples: int = 100,
        batch_size: int = 64,
        return_mean: bool = True,
        seed: int | None = 0,
        progress_bar: bool = False,
    ) -> float | np.ndarray:
        """Importance-sampled marginal log-likelihood ``log p(x)`` per cell (higher is better).

        The same quantity as scvi-tools' ``get_marginal_ll``: with ``S = n_samples`` draws from the
        encoder's posterior as proposal,

        .. math::
            \\log \\hat p(x) = \\log \\frac{1}{S} \\sum_s
            \\frac{p(x \\mid ζ_s, c_s)\\, p_θ(z_s)\\, p(c_s \\mid ζ_s)}{q(z_s \\mid x)\\, q(c_s \\mid x)},
            \\quad z_s \\sim q(z \\mid x),\\ ζ_s \\sim r(ζ \\mid z_s),\\ c_s \\sim q(c \\mid x)

        (the smoothing kernel ``r`` cancels). This is the importance-weighted bound (IWAE): for
        exact ``log Z`` its expectation is a lower bound on ``log p(x)`` that tightens as
        ``S`` grows (bias ``O(1/S)``); ``S = 1`` gives the ELBO. Counts are conditioned on the
        cell's observed size factors (RNA library, protein tag depth, ATAC depth), as scVI's
        ``use_observed_lib_size``.

        ``log Z`` of the Boltzmann prior is exact (enumeration) for ``n_latent`` up to the prior's
        ``exact_max_n``; above it is the AIS estimate cached after training
        (``model.module.prior.log_z``; refresh it with more chains through
        ``model.module.prior.refresh_log_z(n_chains=..., n_steps=...)``). AIS under-estimates
        ``log Z`` in expectation (``E[log Ẑ] ≤ log Z``), so with AIS the estimate may exceed the
        IWAE bound by that gap; the fixed Bernoulli prior and the Gaussian twin have exact
        normalisers.

        Parameters
        ----------
        data
            Data with the registered features (default: the training data).
        indices
            Cells (positions) to score; default all. ``model.validation_indices_`` are the cells
            held out from training (none below 1,000 cells unless ``train()`` was given a
            ``validation_fraction``). Selecting no cell is an error.
        n_samples
            Importance samples per cell.
        batch_size
            Cells per forward pass.
        return_mean
            Return the mean over cells (a float) instead of one value per cell.
        seed
            Seed of the importance samples (``None``: the global torch state).
        progress_bar
            Show a progress bar over minibatches.

        Returns
        -------
        The mean log-likelihood per cell, or an array ``(n_cells,)``.
        """
        n_samples = _positive_int("n_samples", n_samples)
        warn_if_untrained(self, "get_marginal_ll")
        loader = self._loader(data, indices, batch_size)
        if len(loader) == 0:
            raise ValueError(
                "get_marginal_ll: `indices` select no cell. Below 1,000 cells train() keeps no "
                "validation set (pp.size_defaults), so `model.validation_indices_` is empty; "
                "pass validation_fraction=0.1 to train() to hold cells out"
            )
        m = self.module
        m.eval()
        values = []
        with torch.no_grad(), torch.random.fork_rng(), _seeded(seed):
            for batch in tqdm(loader, desc="marginal LL", disable=not progress_bar):
                values.append(log_marginal(m, batch, n_samples))
        out = torch.cat(values).double().cpu().numpy()
        return float(out.mean()) if return_mean else out

    # ------------------------------------------------------------------ the prior

    def sample_prior(self, n_samples: int, *, seed: int | None = None) -> np.ndarray:
        """Binary codes drawn from the learned prior with the model's sampler.

        Draws from a copy of the sampler (a Gibbs sampler starts new chains with its burn-in; a
        dimod sampler or annealer anneals as configured), so the persistent training chains are
        left as they are.

        Parameters
        ----------
        n_samples
            Number of codes.
        seed
            Seed of the draw (``None``: not reseeded).

        Returns
        -------
        Array ``(n_samples, n_latent)`` of zeros and ones (float32).
        """
        n_samples = _positive_int("n_samples", n_samples)
        self._binary_prior("sample_prior")  # a clear error for the Gaussian twin
        warn_if_untrained(self, "sample_prior")
        return self._draw_prior(n_samples, seed)

    def _draw_prior(self, n_samples: int, seed: int | None) -> np.ndarray:
        """:meth:`sample_prior` without the checks."""
        prior = self.module.prior
        sampler = copy.deepcopy(prior.sampler)
        sampler.reset()
        if seed is not None and isinstance(getattr(sampler, "generator", None), torch.Generator):
            sampler.generator.manual_seed(int(seed))
        h, J = prior.sampling_machine()  # the joint machine for a prior with hidden units
        with torch.no_grad(), torch.random.fork_rng(), _seeded(seed):
            z = sampler.sample(h, J, n_samples)[:, : prior.n_latent]
        return z.float().cpu().numpy()

    def _binary_prior(self, what: str):
        if not self.module.n_binary:
            raise ValueError(f"{what} needs a binary code; this model ({self!r}) has a Gaussian prior only")
        return self.module.prior

    # ------------------------------------------------------------------ generation

    def generate(
        self,
        n_cells: int,
        *,
        batch: str | dict | None = None,
        seed: int | None = None,
    ) -> md.MuData | ad.AnnData:
        """Generate cells from the model: codes from the prior, then counts.

        Each cell's binary code ``z`` comes from :meth:`sample_prior` (the model's sampler),
        ``ζ ~ r(ζ | z)``, ``c ~ N(Wζ + b, I)``, and counts from the decoder's likelihoods (RNA NB
        or ZINB, protein background/foreground NB mixture, ATAC Bernoulli). Batch covariates and
        size factors (RNA library, protein tag depth, ATAC depth) are those of training cells
        drawn at random (from ``batch`` if given); their names are in ``obs['qbm_size_donor']``.
        For ``prior="gaussian"`` the latent is ``c ~ N(0, I)``.

        Parameters
        ----------
        n_cells
            Number of cells.
        batch
            A level of the (first) batch key, or ``{batch_key: level}``; default: donors from
            every batch, in the data's proportions.
        seed
            Seed of everything drawn.

        Returns
        -------
        A MuData with one modality per trained modality (AnnData when the model has one), counts
        in ``.X`` (float32 CSR), the training ``var_names``, and in ``obs``: ``qbm_code`` (the
        code as a 0/1 string), ``qbm_energy`` (its energy), ``qbm_size_donor`` and one column per
        batch key; the code also in ``obsm['qbm_code']``.
        """
        n_cells = _positive_int("n_cells", n_cells)
        warn_if_untrained(self, "generate")
        m = self.module
        m.eval()
        donors = self._donor_cells(batch, n_cells, seed)
        with torch.no_grad(), torch.random.fork_rng(), _seeded(seed):
            device = self.device
            if m.n_binary:
                z = torch.as_tensor(self._draw_prior(n_cells, seed), device=device)
                energy = m.prior.energy(z).cpu().numpy()
            else:
                z = torch.zeros(n_cells, 0, device=device)
                energy = None
            cells = self._loader().batch(donors)
            for spec in self.registry.modalities.values():  # every generated cell has every modality
                cells[K.mask_key(spec.kind)] = torch.ones(n_cells, dtype=torch.bool, device=device)
            counts = m.sample_counts(m.latent_from_code(z), cells)
        obs = pd.DataFrame(index=pd.Index([f"generated_{i}" for i in range(n_cells)]))
        obs["qbm_size_donor"] = np.asarray(self.registry.obs_names)[donors]
        for j, key in enumerate(self.registry.batch_keys):
            levels = np.asarray(self.registry.batch_categories[key])
            obs[key] = pd.Categorical(levels[cells[K.BATCH_KEY][:, j].cpu().numpy()], categories=levels)
        obsm = {}
        if m.n_binary:
            codes = z.cpu().numpy().astype(np.int8)
            obs["qbm_code"] = ["".join(map(str, row)) for row in codes]
            obs["qbm_energy"] = energy.astype(np.float64)
            obsm["qbm_code"] = codes
        mods = {}
        for name, spec in self.registry.modalities.items():
            x = sp.csr_matrix(counts[spec.kind].cpu().numpy().astype(np.float32))
            mods[name] = ad.AnnData(x, obs=obs.copy(), var=pd.DataFrame(index=pd.Index(spec.var_names)))
            mods[name].obsm.update({k: v.copy() for k, v in obsm.items()})
        if isinstance(self.data, ad.AnnData):
            return next(iter(mods.values()))
        out = md.MuData(mods)
        out.obs = obs.copy()
        out.obsm.update(obsm)
        return out

    def _donor_cells(self, batch, n_cells: int, seed) -> np.ndarray:
        """Training cells whose batch and size factors the generated cells take."""
        reg = self.registry
        pool = reg.nonempty_cells()
        have_all = np.all([reg.rows[n] >= 0 for n in reg.modalities], axis=0)
        if (pool & have_all).any():
            pool = pool & have_all
        if batch is not None:
            if not reg.batch_keys:
                raise ValueError("batch= was given but the model was trained without a batch_key")
            key, level = next(iter(batch.items())) if isinstance(batch, dict) else (reg.batch_keys[0], batch)
            if key not in reg.batch_keys:
                raise ValueError(f"batch key {key!r} is not one of the model's {list(reg.batch_keys)}")
            levels = list(reg.batch_categories[key])
            if level not in levels:
                raise ValueError(f"batch level {level!r} is not one of {key!r}'s levels {levels}")
            pool = pool & (reg.batch_codes[:, list(reg.batch_keys).index(key)] == levels.index(level))
        candidates = np.flatnonzero(pool)
        if candidates.size == 0:
            raise ValueError("no training cell to take size factors from (all are empty or lack a modality)")
        return np.random.default_rng(seed).choice(candidates, size=n_cells, replace=True)

    def posterior_predictive_sample(
        self,
        data=None,
        *,
        indices=None,
        n_samples: int = 1,
        modality: str | None = None,
        batch_size: int = 256,
        seed: int | None = None,
    ) -> np.ndarray | dict[str, np.ndarray]:
        """Counts drawn from the posterior predictive ``p(x̃ | x) = ∫ p(x̃ | ζ, c) q(ζ, c | x)``.

        As scvi-tools' ``posterior_predictive_sample``: for each cell and sample, ``(ζ, c)`` from
        the encoder's posterior, then counts from the decoder with the cell's batch and size
        factors.

        Parameters
        ----------
        data, indices, batch_size
            Cells to use (default: all training cells).
        n_samples
            Draws per cell.
        modality
            A modality's name (``"prot"``) or kind (``"protein"``), as everywhere in
            :class:`~qbm_pyro.QBMVAE`; default: the model's only one, or every modality as a dict
            keyed by name.
        seed
            Seed of the draws.

        Returns
        -------
        Array ``(n_cells, n_features)`` if ``n_samples == 1`` else
        ``(n_cells, n_features, n_samples)``; a dict of these per modality name when the model
        has several and ``modality`` is ``None``.
        """
        n_samples = _positive_int("n_samples", n_samples)
        names = list(self.registry.modalities)
        wanted = [self._resolve_modality(modality)[0]] if modality is not None else names
        warn_if_untrained(self, "posterior_predictive_sample")
        m = self.module
        m.eval()
        out = {name: [] for name in wanted}
        with torch.no_grad(), torch.random.fork_rng(), _seeded(seed):
            for batch in self._loader(data, indices, batch_size):
                draws = {name: [] for name in wanted}
                posterior = m.posterior(batch)
                for _ in range(n_samples):
                    latent = torch.cat([fn.sample() for fn in posterior.values()], -1)
                    counts = m.sample_counts(latent, batch)
                    for name in wanted:
                        draws[name].append(counts[self.registry.modalities[name].kind])
                for name in wanted:
                    out[name].append(torch.stack(draws[name], -1))
        result = {}
        for name in wanted:
            arr = torch.cat(out[name]).cpu().numpy()
            result[name] = arr[..., 0] if n_samples == 1 else arr
        return result if modality is None and len(names) > 1 else result[wanted[0]]

    def predictive(
        self,
        data=None,
        *,
        indices=None,
        num_samples: int = 1,
        posterior: bool = True,
        return_sites: list[str] | None = None,
        batch_size: int = 256,
        seed: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """Pyro's :class:`~pyro.infer.Predictive` on the model's Pyro ``model`` and ``guide``, fed
        with this model's own minibatches (registry, covariates, size factors, device).

        Sites: ``"z"`` (the smoothed binary code ζ), ``"c"`` (the Gaussian part) and one
        ``"x_<kind>"`` per modality (``"x_rna"``, ``"x_protein"``, ``"x_atac"``). Sample sites are
        named by modality *kind*: a model holds at most one modality per kind, so a kind names a
        modality as well as its name does, and every ``modality=`` argument of
        :class:`~qbm_pyro.QBMVAE` takes either (``"prot"`` or ``"protein"``).

        Parameters
        ----------
        data, indices, batch_size
            Cells to condition on (default: all training cells): their batch covariates and size
            factors, and with ``posterior=True`` their counts through the encoder.
        num_samples
            Draws per cell.
        posterior
            ``True``: latents from the guide ``q(ζ, c | x)`` (the posterior predictive, as
            :meth:`posterior_predictive_sample`); ``False``: from the prior (as :meth:`generate`,
            but with these cells' covariates and size factors).
        return_sites
            Sites to return (default: all sample sites).
        seed
            Seed of the draws.

        Returns
        -------
        ``{site: tensor (num_samples, n_cells, ...)}`` on the CPU, cells in the order asked for.

        Examples
        --------
        >>> import qbm_pyro
        >>> mdata = qbm_pyro.datasets.pbmc_cite_2batch()
        >>> model = qbm_pyro.QBMVAE(mdata, batch_key="batch", n_latent=8, n_continuous=4)
        >>> draws = model.predictive(indices=range(5), num_samples=3, seed=0)
        >>> sorted(draws)
        ['c', 'x_protein', 'x_rna', 'z']
        >>> tuple(draws["x_protein"].shape)  # 3 draws, 5 cells, 14 proteins
        (3, 5, 14)
        """
        from pyro.infer import Predictive

        num_samples = _positive_int("num_samples", num_samples)
        m = self.module
        m.eval()
        indices = (
            None if indices is None else np.asarray(list(indices) if isinstance(indices, range) else indices)
        )
        predictive = Predictive(
            m.model, guide=m.guide if posterior else None, num_samples=num_samples, return_sites=return_sites
        )
        parts: dict[str, list[torch.Tensor]] = {}
        # Predictive runs the model once unconditioned per call (to find its plates and sites):
        # that draws from the prior's sampler, so its persistent chains are put back afterwards
        sampler = m.prior.sampler if m.prior is not None else None
        chains = copy.deepcopy(sampler.state_dict()) if sampler is not None else None
        try:
            with torch.no_grad(), torch.random.fork_rng(), _seeded(seed):
                for batch in self._loader(data, indices, batch_size):
                    for site, value in predictive(batch, observe=False).items():
                        parts.setdefault(site, []).append(value.detach().cpu())
        finally:
            if sampler is not None:
                sampler.load_state_dict(chains)
        return {site: torch.cat(values, 1) for site, values in parts.items()}


class _seeded:  # noqa: N801 (used as a lower-case context manager)
    """Seed torch's global generator inside a ``fork_rng`` block (no-op for ``None``)."""

    def __init__(self, seed):
        self.seed = seed

    def __enter__(self):
        if self.seed is not None:
            torch.manual_seed(int(self.seed))

    def __exit__(self, *exc):
        return False
