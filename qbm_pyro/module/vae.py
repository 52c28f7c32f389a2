r"""The multi-omics VAE with a Boltzmann-machine prior: Pyro ``model`` and ``guide``.

The generative model (one model, used alike by training, :meth:`MultiVAE.model`, Pyro's
``Predictive``, generation and the marginal likelihood):

.. math::
    z \sim p_θ(z) = e^{-E_θ(z)}/Z_θ, \quad ζ \mid z \sim r_β(ζ \mid z), \quad
    c \mid ζ \sim \mathcal{N}(Wζ + b, I), \quad x \mid ζ, c \sim p(x \mid ζ, c, s),

``n_latent`` binary units ``z`` with a learned Boltzmann machine, their smoothing ``ζ ∈ [0,1]^n``
(:class:`~qbm_pyro.distributions.RelaxedBoltzmann`: overlapping exponentials by default,
spike-and-exponential selectable) that the decoder sees, and optionally ``n_continuous`` Gaussian
units ``c`` whose prior mean depends on the code — a mixture of ``2^n`` Gaussians weighted by the
Boltzmann machine. ``s`` are the batch covariates and the observed size factors (RNA library,
protein tag depth, ATAC depth). ``prior="bernoulli"`` fixes ``h = J = 0``; ``prior="gaussian"``
is the twin with the same encoders/decoders and a standard normal prior on a continuous latent
only (``n_continuous`` units, or ``n_latent`` if ``n_continuous == 0``).

Posterior: each observed modality has its own encoder; experts are multiplied (sum of Bernoulli
logits; precision-weighted Gaussians with a standard normal expert), so a cell that lacks a
modality still gets a latent. ``q(z, ζ | x) = Π_i q(z_i | x) r(ζ_i | z_i)`` marginalises to the
relaxed posterior of ``ζ`` (reparameterised), and the KL of the joint is the analytic
Bernoulli-to-Boltzmann one (``qbm_pyro.distributions.relaxed_boltzmann``), so the loss is the
exact negative ELBO of the model above.

Each piece is written once (the ``inference`` / ``generative`` / ``loss`` split of scvi-tools):
:meth:`MultiVAE.posterior` is the variational family (one distribution per latent site),
:meth:`MultiVAE.latent_prior` the latent part of the model (given a ``sample(site, prior)``
callback) and :meth:`MultiVAE.likelihoods` its observation sites. The Pyro ``guide`` and
``model`` are thin wrappers placing these at ``pyro.sample`` sites; the untraced training loss
(:meth:`MultiVAE.loss_terms`) feeds the posterior's draws to the same callback and takes each
latent site's registered analytic KL, as :class:`~qbm_pyro.module.AnalyticKL_ELBO` does.

Likelihoods: :mod:`qbm_pyro.module.likelihoods`; ``log p(x)`` by importance sampling:
:mod:`qbm_pyro.module.marginal`. This module sees only tensors and sizes.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyro
import torch
from pyro.distributions.util import scale_and_mask
from pyro.nn import PyroModule
from torch import nn
from torch.distributions import kl_divergence

from .. import distributions as dist
from .._checks import check_choice
from .._constants import PRIORS, REGISTRY_KEYS
from ..distributions.kl import kl_balanced_code
from ..distributions.relaxed_boltzmann import RELAXATION_KINDS as RELAXATIONS
from .denoised import DenoisedExpressionMixin
from .free_bits import free_bits_kl
from .likelihoods import NegativeBinomialMixture, atac_likelihood, resolve_likelihood_weights, rna_likelihood
from .nets import MLP, one_hot_batches
from .priors import BoltzmannPrior
from .scales import scaled, site_weight

__all__ = ["MultiVAE"]

K = REGISTRY_KEYS
ENCODER_INPUTS = ("log1p", "depth")


def _masked(mask: torch.Tensor | None, value: torch.Tensor) -> torch.Tensor:
    """``mask * value``, or ``value`` itself for ``mask=None`` (every cell observed)."""
    return value if mask is None else mask * value


class MultiVAE(DenoisedExpressionMixin, PyroModule):
    """Pyro model/guide pair over minibatch dicts of :class:`qbm_pyro.data.MinibatchLoader`.

    Parameters
    ----------
    n_vars
        Features per modality kind, e.g. ``{"rna": 2000, "protein": 14}``.
    n_batch
        Levels of each batch covariate (``()`` for none).
    n_latent
        Binary latent units.
    n_continuous
        Gaussian latent units beside the binary code (0 for a purely binary latent).
    prior
        ``"boltzmann"`` (full couplings), ``"rbm"`` (bipartite), ``"hidden"`` (full couplings plus
        ``n_prior_hidden`` hidden units of the prior's own, summed out:
        :class:`~qbm_pyro.distributions.HiddenBoltzmann`), ``"bernoulli"`` (fixed factorial
        Bernoulli(1/2), the ablation of the learned prior) or ``"gaussian"``.
    n_prior_hidden
        Hidden units of ``prior="hidden"`` (ignored otherwise).
    relaxation
        ``"overlap"`` (overlapping exponentials) or ``"spike"`` (spike-and-exponential).
    smoothing
        Sharpness ``β`` of the relaxation.
    rna_likelihood
        ``"nb"`` or ``"zinb"``.
    n_hidden, n_layers, dropout
        Network sizes.
    encode_covariates
        Give the batch covariates to the encoders too; by default (``False``, as scVI) they reach
        the decoder only.
    encoder_input
        What the RNA and protein encoders see: ``"log1p"`` (of the raw counts, as scVI/totalVI)
        or ``"depth"`` (``log1p(x · n_features / library)``: cells differing only in depth look
        alike). ATAC is always the binary matrix; the likelihoods model the raw counts.
    protein_depth
        Scale the protein background (and so the foreground) by the cell's observed tag depth
        (geometric mean of ``1 + counts``), as the RNA mean by the library; without it the
        latent encodes the tag depth, which differs between batches (docs/multiomics.rst).
    likelihood_weights
        Weight of each kind's log-likelihood in the training loss (a ``poutine.scale`` on its
        site in :meth:`model`): ``"balanced"`` (default; ATAC ``n_genes / n_peaks``), ``{kind:
        w}`` (others 1) or ``None`` (all 1): ``likelihoods.resolve_likelihood_weights``.
        :meth:`log_likelihood` stays the unweighted model.
    sampler, num_prior_samples, seed
        Passed to :class:`~qbm_pyro.module.priors.BoltzmannPrior`.
    """

    def __init__(
        self,
        n_vars: dict[str, int],
        n_batch: tuple[int, ...] = (),
        *,
        n_latent: int = 64,
        n_continuous: int = 16,
        prior: str = "boltzmann",
        n_prior_hidden: int = 32,
        relaxation: str = "overlap",
        smoothing: float = 5.0,
        rna_likelihood: str = "nb",
        n_hidden: int = 128,
        n_layers: int = 1,
        dropout: float = 0.1,
        encode_covariates: bool = False,
        encoder_input: str = "log1p",
        protein_depth: bool = True,
        likelihood_weights: Mapping[str, float] | str | None = "balanced",
        sampler=None,
        num_prior_samples: int = 256,
        seed: int | None = 0,
    ):
        super().__init__()
        check_choice("prior", prior, PRIORS)
        check_choice("relaxation", relaxation, RELAXATIONS)
        check_choice("encoder_input", encoder_input, ENCODER_INPUTS)
        check_choice("rna_likelihood", rna_likelihood, ("nb", "zinb"))
        unknown = set(n_vars) - set(K.KINDS)
        if unknown or not n_vars:
            raise ValueError(f"n_vars needs kinds among {K.KINDS}, got {sorted(n_vars)}")
        self.n_vars = dict(n_vars)
        self.n_batch = tuple(int(b) for b in n_batch)
        self.prior_kind = prior
        self.relaxation = relaxation
        self.smoothing = float(smoothing)
        self.rna_likelihood = rna_likelihood
        self.encoder_input_kind = encoder_input
        self.protein_depth = bool(protein_depth)
        self.likelihood_weights = resolve_likelihood_weights(likelihood_weights, self.n_vars)
        #: ``{kind: bool tensor (n_vars,)}``: features left out of the likelihood (False), e.g.
        #: the zero-padded features of a mapped query (``QBMVAE.load_query_data``); none by default.
        self.feature_masks: dict[str, torch.Tensor] = {}
        self.n_binary = 0 if prior == "gaussian" else int(n_latent)
        self.n_continuous = int(n_continuous) if (prior != "gaussian" or n_continuous > 0) else int(n_latent)
        if self.n_binary + self.n_continuous == 0:
            raise ValueError("the latent is empty: set n_latent or n_continuous > 0")
        n_cov = sum(self.n_batch)
        n_out = self.n_binary + 2 * self.n_continuous

        self.encoders = nn.ModuleDict(
            {
                k: MLP(n, n_hidden, n_layers, n_cov if encode_covariates else 0, dropout)
                for k, n in self.n_vars.items()
            }
        )
        self.encoder_heads = nn.ModuleDict({k: nn.Linear(n_hidden, n_out) for k in self.n_vars})
        self.decoder = MLP(self.n_binary + self.n_continuous, n_hidden, n_layers, n_cov, dropout)
        self.decoder_heads = nn.ModuleDict()
        if K.RNA in self.n_vars:
            g = self.n_vars[K.RNA]
            self.decoder_heads["rna_scale"] = nn.Linear(n_hidden, g)
            self.log_theta_rna = nn.Parameter(torch.zeros(g))
            if rna_likelihood == "zinb":
                self.decoder_heads["rna_gate"] = nn.Linear(n_hidden, g)
        if K.PROTEIN in self.n_vars:
            p = self.n_vars[K.PROTEIN]
            n_bg = self.n_batch[0] if self.n_batch else 1
            self.protein_background = nn.Parameter(torch.zeros(n_bg, p))
            self.log_theta_protein = nn.Parameter(torch.full((p,), 2.0))
            self.decoder_heads["protein_foreground"] = nn.Linear(n_hidden, p)
            self.decoder_heads["protein_mixing"] = nn.Linear(n_hidden, p)
        if K.ATAC in self.n_vars:
            r = self.n_vars[K.ATAC]
            self.decoder_heads["atac"] = nn.Linear(n_hidden, r)
            self.atac_region_factor = nn.Parameter(torch.zeros(r))
            self.atac_depth = nn.Linear(1, 1)  # cell factor from the observed accessibility depth

        if self.n_binary:
            structure = prior if prior in ("rbm", "hidden") else "full"
            self.prior = BoltzmannPrior(
                self.n_binary,
                structure=structure,
                n_hidden=n_prior_hidden,
                learnable=prior != "bernoulli",
                sampler=sampler,
                num_samples=num_prior_samples,
                seed=seed,
            )
            if self.n_continuous:
                self.prior_loc = nn.Linear(self.n_binary, self.n_continuous)
                nn.init.zeros_(self.prior_loc.weight)
                nn.init.zeros_(self.prior_loc.bias)
        else:
            self.prior = None  # the Gaussian twin: no Boltzmann prior (always defined, never missing)

    # ------------------------------------------------------------------ encoder side

    def encoder_input(self, kind: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """What an encoder sees: the binary matrix for ATAC; for RNA/protein ``log1p`` of the
        counts, scaled to ``n_features`` per cell first with ``encoder_input="depth"``."""
        x = batch[K.x_key(kind)]
        if kind == K.ATAC:
            return x
        if self.encoder_input_kind == "depth":
            library = batch[K.library_key(kind)].unsqueeze(-1).clamp_min(1.0)
            x = x * (x.shape[-1] / library)
        return torch.log1p(x)

    def encode(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Posterior parameters combined over observed modalities (product of experts).

        Returns a dict with ``logits`` ``(B, n_binary)``, ``loc`` and ``scale``
        ``(B, n_continuous)``.
        """
        cov = one_hot_batches(batch[K.BATCH_KEY], self.n_batch)
        B = batch[K.BATCH_KEY].shape[0]
        logits = cov.new_zeros(B, self.n_binary)
        precision = cov.new_ones(B, self.n_continuous)  # the standard normal expert
        weighted_loc = cov.new_zeros(B, self.n_continuous)
        out = {}
        for kind in self.n_vars:
            observed = batch.get(K.encoder_mask_key(kind), batch[K.mask_key(kind)])
            # a minibatch in which every cell has the modality (the usual case) skips the masking
            mask = None if bool(observed.all()) else observed.to(cov.dtype).unsqueeze(-1)
            hidden = self.encoders[kind](self.encoder_input(kind, batch), cov)
            head = self.encoder_heads[kind](hidden)
            logits = logits + _masked(mask, head[:, : self.n_binary])
            if self.n_continuous:
                loc, log_var = head[:, self.n_binary :].chunk(2, -1)
                expert_precision = torch.exp(-log_var.clamp(-10, 10))
                precision = precision + _masked(mask, expert_precision)
                weighted_loc = weighted_loc + _masked(mask, expert_precision * loc)
        out["logits"] = logits
        out["loc"] = weighted_loc / precision
        out["scale"] = precision.rsqrt()
        return out

    def posterior(self, batch: dict[str, torch.Tensor]) -> dict[str, dist.TorchDistribution]:
        """The variational family ``q(ζ, c | x)``, one distribution per latent site (written once:
        the guide, the loss and the posterior draws all take it from here): ``"z"`` the relaxed
        code (``relaxation`` of the product-of-experts logits), ``"c"`` the Gaussian units, each
        ``(B,)`` cells by an event of its units; only the sites the model has."""
        posterior = self.encode(batch)
        q = {}
        if self.n_binary:
            q["z"] = RELAXATIONS[self.relaxation](posterior["logits"], self.smoothing).to_event(1)
        if self.n_continuous:
            q["c"] = dist.Normal(posterior["loc"], posterior["scale"]).to_event(1)
        return q

    def inference(self, batch: dict[str, torch.Tensor]) -> dict[str, dict]:
        """``{"posterior": q, "latent": draws}``: :meth:`posterior` and one reparameterised draw
        of each latent site from it (in site order, as the guide draws them)."""
        q = self.posterior(batch)
        return {"posterior": q, "latent": {site: fn.rsample() for site, fn in q.items()}}

    def guide(self, batch: dict[str, torch.Tensor], observe: bool = True, kl_weight=1.0) -> None:
        """The Pyro guide: :meth:`posterior`'s sites (``observe`` is accepted to mirror
        :meth:`model`); ``kl_weight`` scales the latent sites (KL warm-up) as in :meth:`model`."""
        pyro.module("qbm_vae", self)
        q = self.posterior(batch)
        with pyro.plate("cells", batch[K.BATCH_KEY].shape[0]):
            for site, fn in q.items():
                with scaled(site_weight(kl_weight, site)):
                    pyro.sample(site, fn)

    # ------------------------------------------------------------------ generative side

    def decoder_outputs(
        self,
        latent: torch.Tensor,
        batch: dict[str, torch.Tensor],
        levels: torch.Tensor | None = None,
        kinds: tuple[str, ...] | None = None,
    ) -> dict[str, torch.Tensor]:
        """The decoder's parameters of ``p(x | ζ, c, s)``, ``(B, n_vars)`` each: ``rna_scale``
        (expression frequencies, rows sum to 1), ``rna_gate`` (zero-inflation logits, ZINB),
        ``protein_background`` and ``protein_foreground`` (means), ``protein_mixing`` (logit of
        the background), ``atac_logits``. ``levels``: the batch covariates to decode with
        (default the batch's own); ``kinds``: the modality kinds wanted (default all)."""
        levels = batch[K.BATCH_KEY] if levels is None else levels
        kinds = tuple(self.n_vars) if kinds is None else kinds
        hidden = self.decoder(latent, one_hot_batches(levels, self.n_batch))
        heads = self.decoder_heads
        out = {}
        if K.RNA in kinds:
            out["rna_scale"] = torch.softmax(heads["rna_scale"](hidden), -1)
            if "rna_gate" in heads:
                out["rna_gate"] = heads["rna_gate"](hidden)
        if K.PROTEIN in kinds:
            out["protein_background"], out["protein_foreground"] = self._protein_means(hidden, batch, levels)
            out["protein_mixing"] = heads["protein_mixing"](hidden)
        if K.ATAC in kinds:
            out["atac_logits"] = heads["atac"](hidden)
        return out

    def decode(self, latent: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict:
        """Likelihood distributions (elementwise, ``(B, n_vars)``) per modality kind, from
        :meth:`decoder_outputs` and the observed size factors."""
        out = self.decoder_outputs(latent, batch)
        likelihoods = {}
        if K.RNA in self.n_vars:
            library = batch[K.library_key(K.RNA)].unsqueeze(-1)
            likelihoods[K.RNA] = rna_likelihood(
                library * out["rna_scale"], self.log_theta_rna.exp(), out.get("rna_gate")
            )
        if K.PROTEIN in self.n_vars:
            likelihoods[K.PROTEIN] = NegativeBinomialMixture(
                out["protein_background"],
                out["protein_foreground"],
                self.log_theta_protein.exp(),
                out["protein_mixing"],
            )
        if K.ATAC in self.n_vars:
            cell = self.atac_depth(torch.log1p(batch[K.library_key(K.ATAC)]).unsqueeze(-1))
            likelihoods[K.ATAC] = atac_likelihood(out["atac_logits"], cell, self.atac_region_factor)
        return likelihoods

    def likelihoods(self, latent: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict:
        """The observation sites ``p(x | ζ, c, s)`` per modality kind, as scored (written once: the
        model, the loss and :meth:`log_likelihood` take them from here): :meth:`decode`'s
        distributions over a cell's features (an event), without the features the likelihood
        leaves out (``feature_masks``), masked to the cells that have the modality."""
        out = {}
        for kind, fn in self.decode(latent, batch).items():
            if kind in self.feature_masks:  # zero-padded features of a query model: not scored
                fn = fn.mask(self.feature_masks[kind])
            fn = fn.to_event(1)
            mask = batch[K.mask_key(kind)]
            if not bool(mask.all()):  # (the usual minibatch has the modality in every cell)
                fn = fn.mask(mask)
            out[kind] = fn
        return out

    def _protein_means(
        self, hidden: torch.Tensor, batch: dict[str, torch.Tensor], levels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Background and foreground protein means; the background is per batch level
        (first covariate, ``levels[:, 0]``), times the observed tag depth with ``protein_depth``."""
        level = (
            levels[:, 0]
            if self.n_batch
            else torch.zeros(levels.shape[0], dtype=torch.long, device=levels.device)
        )
        background = self.protein_background[level].exp()
        if self.protein_depth:  # observed per-cell tag depth: geometric mean of (1 + counts)
            x = batch[K.x_key(K.PROTEIN)]
            background = background * torch.log1p(x).mean(-1, keepdim=True).exp()
        head = self.decoder_heads["protein_foreground"](hidden)
        return background, background * (1 + torch.nn.functional.softplus(head))

    def prior_code(self) -> dist.RelaxedBoltzmann:
        """The prior of the decoder's code input ``ζ`` (the smoothed Boltzmann machine)."""
        return dist.RelaxedBoltzmann(self.prior.distribution(), self.relaxation, self.smoothing)

    def latent_prior(self, sample, n_cells: int) -> torch.Tensor:
        """The latent part of the generative model, written once: ``ζ ~`` :meth:`prior_code`,
        ``c | ζ ~ N(Wζ + b, I)`` (``N(0, I)`` for the Gaussian twin). ``sample(site, prior)``
        gives each site's value (``pyro.sample`` in :meth:`model`, the posterior's draw in
        :meth:`loss_terms`, an ancestral draw in :meth:`latent_from_code`); returns the decoder
        input ``(n_cells, n_binary + n_continuous)``."""
        parts = []
        if self.n_binary:
            zeta = sample("z", self.prior_code())
            parts.append(zeta)
        if self.n_continuous:
            parts.append(sample("c", self.continuous_prior(zeta if self.n_binary else None, n_cells)))
        return torch.cat(parts, -1)

    def continuous_prior(self, zeta: torch.Tensor | None, n_cells: int) -> dist.TorchDistribution:
        """``p(c | ζ) = N(Wζ + b, I)`` over the Gaussian units, or ``N(0, I)`` for ``zeta=None``
        (the Gaussian twin), ``n_cells`` cells."""
        if zeta is not None:
            loc = self.prior_loc(zeta)
        else:  # on the module's device, in its dtype
            loc = next(self.decoder.parameters()).new_zeros(n_cells, self.n_continuous)
        return dist.Normal(loc, 1.0).to_event(1)

    def model(self, batch: dict[str, torch.Tensor], observe: bool = True, kl_weight=1.0) -> None:
        """The Pyro model: :meth:`latent_prior` and :meth:`likelihoods` as sites. ``observe=False``
        samples the counts instead of scoring ``batch``'s (``batch`` then only supplies
        covariates and size factors), as with Pyro's ``Predictive``. ``kl_weight`` (a number or
        ``{site: weight}``, :func:`~qbm_pyro.module.scales.site_weight`) scales the latent sites
        (``poutine.scale``), so that with :class:`~qbm_pyro.module.AnalyticKL_ELBO` their KL terms
        are weighted."""
        pyro.module("qbm_vae", self)
        B = batch[K.BATCH_KEY].shape[0]

        def sample(site, fn):
            with scaled(site_weight(kl_weight, site)):
                return pyro.sample(site, fn)

        with pyro.plate("cells", B):
            latent = self.latent_prior(sample, B)
            for kind, fn in self.likelihoods(latent, batch).items():
                with scaled(self.likelihood_weights.get(kind, 1.0)):
                    pyro.sample(K.x_key(kind), fn, obs=batch[K.x_key(kind)] if observe else None)

    # ------------------------------------------------------------------ the ELBO

    def loss_terms(
        self, batch: dict, inference_outputs: dict | None = None, kl_balance=None, free_bits=None
    ) -> dict[str, dict[str, torch.Tensor]]:
        """The ELBO's terms per cell, untraced: ``{"kl": {site: (B,)}, "log_likelihood":
        {kind: (B,)}}``, from the same :meth:`posterior`, :meth:`latent_prior` and
        :meth:`likelihoods` as the Pyro :meth:`guide` and :meth:`model`.

        ``inference_outputs``: :meth:`inference`'s ``{"posterior", "latent"}`` to score (default:
        a fresh one), e.g. a recorded guide trace's distributions and values. Each latent site's
        term is its registered analytic ``KL(q ‖ p)`` (``qbm_pyro.distributions.kl``; that of
        the codes for the relaxed sites, the smoothing being shared), as in
        :class:`~qbm_pyro.module.AnalyticKL_ELBO`. ``kl_balance``: the codes' KL is
        ``kl_balanced_code`` with that ``α`` (the same value; the prior's gradient ``α``, the
        posterior's ``1 - α`` times the plain one). ``free_bits``: the Gaussian units' KL floored
        at that many nats per unit (:mod:`~qbm_pyro.module.free_bits`). ``None``: plain.
        """
        if inference_outputs is None:
            inference_outputs = self.inference(batch)
        q, draws = inference_outputs["posterior"], inference_outputs["latent"]
        priors = {}

        def posterior_draw(site, prior):
            priors[site] = prior
            return draws[site]

        # the model's likelihoods first (decoder dropout draws), then the KLs, as Pyro computes
        # them after the model's trace (a prior with hidden units draws codes for its KL)
        latent = self.latent_prior(posterior_draw, batch[K.BATCH_KEY].shape[0])
        likelihoods = self.likelihoods(latent, batch)
        return {
            "kl": {  # the code's KL balanced (the same value, its gradient split), the Gaussians' floored
                site: kl_balanced_code(fn.base_dist.logits, priors[site].base, kl_balance)
                if kl_balance is not None and site == "z"
                else free_bits_kl(fn.base_dist, priors[site].base_dist, free_bits)
                if free_bits and site == "c"
                else kl_divergence(fn, priors[site])
                for site, fn in q.items()
            },
            "log_likelihood": {kind: fn.log_prob(batch[K.x_key(kind)]) for kind, fn in likelihoods.items()},
        }

    def loss(
        self, batch: dict, kl_weight=1.0, inference_outputs=None, kl_balance=None, free_bits=None
    ) -> torch.Tensor:
        """The negative ELBO of a minibatch (summed over cells) from :meth:`loss_terms`, each
        latent site's KL scaled by ``kl_weight`` (as in :meth:`model`): the training loop's hot path.

        The same number as ``AnalyticKL_ELBO().differentiable_loss(self.model, self.guide, batch,
        kl_weight=...)`` on the same latent draws (``tests/test_elbo_parity.py``), without Pyro's
        tracing. ``kl_balance``, ``free_bits``: as in :meth:`loss_terms` (training's options).
        """
        terms = self.loss_terms(batch, inference_outputs, kl_balance, free_bits)
        elbo = 0.0  # in AnalyticKL_ELBO's order: the latent sites' KLs, then the likelihoods
        for site, kl in terms["kl"].items():
            elbo = elbo - scale_and_mask(kl, site_weight(kl_weight, site)).sum()
        for kind, log_likelihood in terms["log_likelihood"].items():
            elbo = elbo + scale_and_mask(log_likelihood, self.likelihood_weights.get(kind, 1.0)).sum()
        return -elbo

    # ------------------------------------------------------------------ generation and likelihood

    def code_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """``log p_θ(z)`` of binary codes ``(..., n_binary)``: ``-E(z) - log Z`` with log Z exact
        (enumeration) up to the prior's ``exact_max_n``, else the cached AIS value
        (``prior.log_z``). No sampler is run."""
        prior = self.prior
        if prior.n_latent <= prior.exact_max_n:
            log_z = prior.distribution().log_partition_function.detach()
        else:
            if torch.isnan(prior.log_z):
                prior.refresh_log_z()
            log_z = prior.log_z
        return -prior.energy(z) - log_z

    def latent_from_code(self, z: torch.Tensor) -> torch.Tensor:
        """Ancestral draw of the decoder input ``(ζ, c)`` given binary codes ``z`` ``(B, n)``
        (or ``c ~ N(0, I)`` alone for the Gaussian twin, when ``z`` has no columns)."""
        parts = []
        zeta = None
        if self.n_binary:
            zeta = dist.smooth_code(z, self.relaxation, self.smoothing)
            parts.append(zeta)
        if self.n_continuous:
            parts.append(self.continuous_prior(zeta, z.shape[0]).sample())
        return torch.cat(parts, -1)

    def sample_counts(self, latent: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Counts drawn from ``p(x | latent, s)`` per modality kind, zero where a cell lacks it."""
        out = {}
        for kind, fn in self.decode(latent, batch).items():
            x = fn.sample()
            out[kind] = x * batch[K.mask_key(kind)].unsqueeze(-1).to(x.dtype)
        return out

    def log_likelihood(self, latent: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``log p(x | latent, s)`` per cell ``(B,)``: the :meth:`likelihoods` (the modalities the
        cell has, the features the likelihood scores), as in :meth:`model` and :meth:`loss`."""
        total = 0.0
        for kind, fn in self.likelihoods(latent, batch).items():
            total = total + fn.log_prob(batch[K.x_key(kind)])
        return total

    # ------------------------------------------------------------------ inference helpers

    @torch.no_grad()
    def posterior_latent(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Decoder input at the posterior mean: ``(q, loc)`` concatenated."""
        posterior = self.encode(batch)
        binary = [torch.sigmoid(posterior["logits"])] if self.n_binary else []
        return torch.cat(binary + ([posterior["loc"]] if self.n_continuous else []), -1)

    def sample_posterior_latent(self, batch: dict[str, torch.Tensor], n_samples: int) -> torch.Tensor:
        """``n_samples`` decoder inputs per cell drawn from the guide, ``(n_samples, B, d)``: the
        relaxed binary code (as the decoder saw it in training) and the Gaussian units."""
        return torch.cat([fn.sample((n_samples,)) for fn in self.posterior(batch).values()], -1)
