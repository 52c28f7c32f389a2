"""Names shared by the data layer and the model: modality kinds and the keys of a minibatch dict.

Every string that names a modality kind or a minibatch entry lives here, in the
:data:`REGISTRY_KEYS` singleton; code elsewhere never spells them out. A leaf module (as in
scvi-tools): it imports nothing, so :mod:`qbm_pyro.module` can use the keys without pulling in
the data layer (anndata, mudata, h5py). :mod:`qbm_pyro.data` re-exports both names.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["MODALITY_ALIASES", "PRIORS", "REGISTRY_KEYS"]

#: The latent priors of :class:`~qbm_pyro.module.MultiVAE` (``prior=``).
PRIORS = ("boltzmann", "rbm", "hidden", "bernoulli", "gaussian")


class _REGISTRY_KEYS_NT(NamedTuple):  # noqa: N801 (scvi-tools naming)
    """Modality kinds and minibatch keys.

    A minibatch holds, for each registered modality of kind ``k``, the entries
    ``x_key(k)`` (counts), ``mask_key(k)`` (which cells have the modality) and
    ``library_key(k)`` (total counts per cell), plus ``BATCH_KEY`` and ``INDEX_KEY``; in training
    with modality dropout also ``encoder_mask_key(k)`` (the modalities the encoders see).
    """

    RNA: str = "rna"
    PROTEIN: str = "protein"
    ATAC: str = "atac"
    X_KEY: str = "x"
    MASK_KEY: str = "mask"
    LIBRARY_KEY: str = "library"
    BATCH_KEY: str = "batch"
    INDEX_KEY: str = "index"

    @property
    def KINDS(self) -> tuple[str, str, str]:  # noqa: N802 (reads like the other constants)
        """All modality kinds, in canonical order."""
        return (self.RNA, self.PROTEIN, self.ATAC)

    @property
    def COUNT_KINDS(self) -> tuple[str, str]:  # noqa: N802
        """Kinds whose matrix must hold non-negative integer counts."""
        return (self.RNA, self.PROTEIN)

    def x_key(self, kind: str) -> str:
        """Minibatch key of the counts of modality kind ``kind`` (``"x_rna"``)."""
        return f"{self.X_KEY}_{kind}"

    def mask_key(self, kind: str) -> str:
        """Minibatch key of the has-modality mask of kind ``kind`` (``"mask_rna"``)."""
        return f"{self.MASK_KEY}_{kind}"

    def encoder_mask_key(self, kind: str) -> str:
        """Minibatch key of the modalities the encoders see, where it differs from
        ``mask_key(kind)`` (``"encoder_mask_rna"``; :mod:`qbm_pyro.module.modality_dropout`)."""
        return f"encoder_{self.MASK_KEY}_{kind}"

    def library_key(self, kind: str) -> str:
        """Minibatch key of the per-cell total of kind ``kind`` (``"library_rna"``)."""
        return f"{self.LIBRARY_KEY}_{kind}"


REGISTRY_KEYS = _REGISTRY_KEYS_NT()

#: Modality names recognised when kinds are inferred (lower-cased name -> kind).
MODALITY_ALIASES: dict[str, str] = {
    "rna": REGISTRY_KEYS.RNA,
    "gex": REGISTRY_KEYS.RNA,
    "prot": REGISTRY_KEYS.PROTEIN,
    "protein": REGISTRY_KEYS.PROTEIN,
    "adt": REGISTRY_KEYS.PROTEIN,
    "atac": REGISTRY_KEYS.ATAC,
    "peaks": REGISTRY_KEYS.ATAC,
    "chromatin": REGISTRY_KEYS.ATAC,
}
