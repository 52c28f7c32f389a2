"""Denoised values of one modality from the VAE's posterior: the module side of scvi-tools'
``get_normalized_expression`` (RNA frequencies, protein foreground, ATAC accessibility).

:class:`DenoisedExpressionMixin` is a base of :class:`~qbm_pyro.module.MultiVAE`; it needs the
module's ``n_vars``, ``n_batch``, ``posterior_latent``, ``sample_posterior_latent`` and
``decoder_outputs``.
"""

from __future__ import annotations

import torch

from .._constants import REGISTRY_KEYS as K

__all__ = ["DenoisedExpressionMixin"]


class DenoisedExpressionMixin:
    """``normalized_expression`` for :class:`~qbm_pyro.module.MultiVAE`."""

    @torch.no_grad()
    def normalized_expression(
        self,
        batch: dict[str, torch.Tensor],
        kind: str,
        *,
        n_samples: int = 1,
        use_mean: bool | None = None,
        transform_batch: int | None = None,
        library_size: float = 1.0,
        reduce: bool = True,
    ) -> torch.Tensor:
        """Denoised values of one modality kind, averaged over posterior samples, ``(B, n_vars)``.

        Parameters
        ----------
        batch
            A minibatch dict.
        kind
            ``"rna"``: expression frequencies times ``library_size`` (rows sum to it), as scVI;
            ``"protein"``: the foreground-only denoised counts ``(1 - π) μ_fg`` (``π`` the
            background probability), as totalVI without background; ``"atac"``: the
            accessibility probability of the region ``σ(decoder)`` without the cell and
            region factors, as PeakVI's default.
        n_samples
            Posterior draws decoded (with torch's global generator).
        use_mean
            Decode the posterior mean instead of draws (deterministic). Default: when
            ``n_samples == 1``.
        transform_batch
            Decode every cell as if it came from this level of the first batch covariate
            (``None``: its own batch).
        library_size
            RNA only: the scale of each row.
        reduce
            Average over the draws (``(B, n_vars)``); ``False``: return them all,
            ``(n_samples, B, n_vars)``.
        """
        if kind not in self.n_vars:
            raise ValueError(f"this model has no {kind!r} modality (it has {sorted(self.n_vars)})")
        levels = batch[K.BATCH_KEY]
        if transform_batch is not None:
            if not self.n_batch:
                raise ValueError("transform_batch needs a model with a batch covariate")
            if not 0 <= int(transform_batch) < self.n_batch[0]:
                raise ValueError(f"transform_batch must be in [0, {self.n_batch[0]}), got {transform_batch}")
            levels = levels.clone()
            levels[:, 0] = int(transform_batch)
        if use_mean or (use_mean is None and n_samples == 1):
            latents = self.posterior_latent(batch).unsqueeze(0)
        else:
            latents = self.sample_posterior_latent(batch, int(n_samples))
        out = []
        for latent in latents:
            params = self.decoder_outputs(latent, batch, levels, kinds=(kind,))
            if kind == K.RNA:
                value = library_size * params["rna_scale"]
            elif kind == K.PROTEIN:
                value = params["protein_foreground"] * torch.sigmoid(-params["protein_mixing"])
            else:
                value = torch.sigmoid(params["atac_logits"])
            out.append(value)
        values = torch.stack(out)
        return values.mean(0) if reduce else values
