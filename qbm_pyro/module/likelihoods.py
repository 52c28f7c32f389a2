"""Count likelihoods for the three modalities (pure torch/Pyro maths, no data objects).

- RNA: negative binomial (or zero-inflated NB) with mean ``library × softmax(decoder)``, as in
  scVI [1].
- Protein (ADT): a two-component NB mixture, background and foreground, with the background
  rate learned per protein and batch and the foreground a cell-specific multiple of it, as in
  totalVI [2].
- ATAC: Bernoulli on binarised peaks, ``p = σ(decoder) · σ(cell factor) · σ(region factor)``,
  as in PeakVI/MultiVI [3].

**References:** [1] Lopez et al. (2018) "Deep generative modeling for single-cell
transcriptomics", Nat. Methods 15, 1053. [2] Gayoso et al. (2021) "Joint probabilistic modeling of
single-cell multi-omic data with totalVI", Nat. Methods 18, 272. [3] Ashuach et al. (2023)
"MultiVI: deep generative model for the integration of multimodal data", Nat. Methods 20, 1222.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from pyro.distributions import (
    Bernoulli,
    GammaPoisson,
    TorchDistribution,
    ZeroInflatedDistribution,
    constraints,
)
from pyro.distributions.util import broadcast_shape
from torch.distributions.utils import broadcast_all

from .._checks import check_choice
from .._constants import REGISTRY_KEYS as K

__all__ = [
    "NegativeBinomial",
    "NegativeBinomialMixture",
    "atac_likelihood",
    "resolve_likelihood_weights",
    "rna_likelihood",
]

EPS = 1e-8


class NegativeBinomial(TorchDistribution):
    """NB with mean ``μ`` and inverse dispersion ``θ`` (variance ``μ + μ²/θ``), elementwise.

    The same distribution as ``GammaPoisson(θ, θ / (μ + ε))`` (used for sampling), with a
    cheaper ``log_prob`` for the training loop: ``lgamma(θ)`` is taken on ``θ`` as given (one
    value per gene, not per cell and gene) and the graph is a few elementwise operations,

    .. math::
        \\log p(x) = \\log Γ(x + θ) - \\log Γ(θ) - \\log Γ(x + 1)
                   + θ \\log\\frac{θ}{θ + μ} + x \\log\\frac{μ}{θ + μ}.
    """

    arg_constraints = {"mean": constraints.positive, "inverse_dispersion": constraints.positive}
    support = constraints.nonnegative_integer

    def __init__(self, mean: torch.Tensor, inverse_dispersion: torch.Tensor, *, validate_args=None):
        self._mu = mean + EPS
        self.inverse_dispersion = inverse_dispersion
        shape = torch.Size(broadcast_shape(mean.shape, inverse_dispersion.shape))
        super().__init__(shape, validate_args=validate_args)

    @property
    def mean(self) -> torch.Tensor:
        return self._mu.expand(self.batch_shape)

    @property
    def variance(self) -> torch.Tensor:
        return self.mean + self.mean**2 / self.inverse_dispersion

    def _gamma_poisson(self) -> GammaPoisson:
        theta = self.inverse_dispersion.expand(self.batch_shape)
        return GammaPoisson(theta, theta / self.mean, validate_args=False)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return self._gamma_poisson().sample(sample_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return _nb_shared(value, self.inverse_dispersion) + _nb_mean_part(
            value, self._mu, self.inverse_dispersion
        )

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(NegativeBinomial, _instance)
        batch_shape = torch.Size(batch_shape)
        new._mu = self._mu.expand(batch_shape)
        new.inverse_dispersion = self.inverse_dispersion
        super(NegativeBinomial, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new


def _nb_shared(value: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """The part of the NB log-density that does not depend on the mean."""
    return torch.lgamma(value + theta) - torch.lgamma(value + 1) + (theta * theta.log() - torch.lgamma(theta))


def _nb_mean_part(value: torch.Tensor, mu: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """The part that depends on the mean: ``x log μ - (x + θ) log(θ + μ)``."""
    return value * mu.log() - (value + theta) * torch.log(theta + mu)


def negative_binomial(mean: torch.Tensor, inverse_dispersion: torch.Tensor) -> NegativeBinomial:
    """NB with the given mean and inverse dispersion ``θ`` (variance ``μ + μ²/θ``)."""
    return NegativeBinomial(mean, inverse_dispersion)


def rna_likelihood(
    mean: torch.Tensor, inverse_dispersion: torch.Tensor, gate_logits: torch.Tensor | None = None
) -> TorchDistribution:
    """NB (``gate_logits=None``) or zero-inflated NB over genes, elementwise."""
    nb = negative_binomial(mean, inverse_dispersion)
    if gate_logits is None:
        return nb
    return ZeroInflatedDistribution(nb, gate_logits=gate_logits)


def atac_likelihood(
    region_logits: torch.Tensor, cell_logit: torch.Tensor, region_factor: torch.Tensor
) -> Bernoulli:
    """Bernoulli accessibility ``σ(region_logits) · σ(cell_logit) · σ(region_factor)``."""
    probs = torch.sigmoid(region_logits) * torch.sigmoid(cell_logit) * torch.sigmoid(region_factor)
    return Bernoulli(probs=probs.clamp(EPS, 1 - EPS))


class NegativeBinomialMixture(TorchDistribution):
    r"""Two-component NB mixture (background/foreground) for protein counts, elementwise.

    .. math::
        p(y) = π\,\mathrm{NB}(y; μ_{bg}, θ) + (1 - π)\,\mathrm{NB}(y; μ_{fg}, θ)

    Parameters
    ----------
    mean_background, mean_foreground
        The two means, broadcastable.
    inverse_dispersion
        Shared inverse dispersion ``θ``.
    background_logits
        Logits of ``π``, the probability of the background component.
    """

    arg_constraints = {
        "mean_background": constraints.positive,
        "mean_foreground": constraints.positive,
        "inverse_dispersion": constraints.positive,
        "background_logits": constraints.real,
    }
    support = constraints.nonnegative_integer

    def __init__(
        self,
        mean_background,
        mean_foreground,
        inverse_dispersion,
        background_logits,
        *,
        validate_args=None,
    ):
        self._theta = torch.as_tensor(inverse_dispersion)
        (
            self.mean_background,
            self.mean_foreground,
            self.inverse_dispersion,
            self.background_logits,
        ) = broadcast_all(mean_background, mean_foreground, inverse_dispersion, background_logits)
        super().__init__(self.mean_background.shape, validate_args=validate_args)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        theta = self._theta  # as given (per protein), so lgamma(θ) is not taken per cell
        shared = _nb_shared(value, theta)  # the same for both components
        log_bg = shared + _nb_mean_part(value, self.mean_background + EPS, theta)
        log_fg = shared + _nb_mean_part(value, self.mean_foreground + EPS, theta)
        log_pi = torch.nn.functional.logsigmoid(self.background_logits)
        log_one_minus_pi = torch.nn.functional.logsigmoid(-self.background_logits)
        return torch.logaddexp(log_pi + log_bg, log_one_minus_pi + log_fg)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        """Draw the component (background with probability ``π``), then its NB count."""
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            background = torch.bernoulli(torch.sigmoid(self.background_logits).expand(shape)).bool()
            mean = torch.where(
                background, self.mean_background.expand(shape), self.mean_foreground.expand(shape)
            )
            return negative_binomial(mean, self.inverse_dispersion.expand(shape)).sample()

    @property
    def mean(self) -> torch.Tensor:
        pi = torch.sigmoid(self.background_logits)
        return pi * self.mean_background + (1 - pi) * self.mean_foreground

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(NegativeBinomialMixture, _instance)
        batch_shape = torch.Size(batch_shape)
        for name in self.arg_constraints:
            setattr(new, name, getattr(self, name).expand(batch_shape))
        new._theta = self._theta
        super(NegativeBinomialMixture, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new


def resolve_likelihood_weights(weights, n_vars: Mapping[str, int]) -> dict[str, float]:
    """``{kind: weight}`` of :class:`~qbm_pyro.module.MultiVAE`'s ``likelihood_weights``: only
    weights other than 1, checked (kinds among ``n_vars``, finite weights > 0).

    ``"balanced"``: ATAC weighs ``n_genes / n_peaks`` when RNA is beside it and peaks outnumber
    genes, so that the peaks together count as much as the genes (a binarised peak carries less
    than a gene's counts); every other kind 1. ``None``: all 1, the plain ELBO.
    """
    if weights is None:
        return {}
    if isinstance(weights, str):
        check_choice("likelihood_weights", weights, ("balanced",))
        if K.ATAC in n_vars and K.RNA in n_vars and n_vars[K.ATAC] > n_vars[K.RNA]:
            return {K.ATAC: n_vars[K.RNA] / n_vars[K.ATAC]}
        return {}
    if not isinstance(weights, Mapping):
        raise TypeError(
            f"likelihood_weights must be None, 'balanced' or a mapping {{kind: weight}}, got "
            f"{type(weights).__name__}"
        )
    unknown = sorted(set(map(str, weights)) - set(n_vars))
    if unknown:
        raise ValueError(f"likelihood_weights names {unknown}, not among this model's kinds {sorted(n_vars)}")
    out = {}
    for kind, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w <= 0:
            raise ValueError(f"likelihood_weights[{kind!r}] must be a finite number > 0, got {w!r}")
        if float(w) != 1.0:
            out[str(kind)] = float(w)
    return out
