"""The user-facing model, ``QBMVAE``, as a package with a contract.

* ``_base``: ``ModelBase``, the attributes every part relies on (``registry``,
  ``module``, ``device``, ``history_``, ...) and the one factory of the module;
* ``_save``: the save format (``model.pt``): its one writer and one reader;
* the user-facing mixins: ``_generation`` (marginal likelihood, prior samples, generated
  cells, Pyro ``Predictive``), ``_expression`` (denoised values, differential expression),
  ``_mapping`` (scArches-style reference mapping; ``_query`` reads the reference and
  prepares the query);
* ``_model``: ``QBMVAE`` (setup, training, latent outputs, save/load).

Imports go one way (``tests/test_layers.py`` checks it): ``_base`` and ``_save`` import no other
part, ``_query`` imports ``_save``, the mixins import those, ``_model`` imports the mixins.
"""

from ._base import ModelBase
from ._expression import ExpressionMixin, estimate_pseudocounts_offset, fdr_de_prediction
from ._generation import GenerationMixin
from ._mapping import MIN_FEATURE_OVERLAP, PADDED_KEY, MissingModalityWarning, ReferenceMappingMixin
from ._model import QBMVAE
from ._save import SAVE_KEYS

__all__ = [
    "MIN_FEATURE_OVERLAP",
    "PADDED_KEY",
    "QBMVAE",
    "SAVE_KEYS",
    "ExpressionMixin",
    "GenerationMixin",
    "MissingModalityWarning",
    "ModelBase",
    "ReferenceMappingMixin",
    "estimate_pseudocounts_offset",
    "fdr_de_prediction",
]
