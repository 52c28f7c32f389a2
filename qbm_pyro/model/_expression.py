"""Decoded outputs of a fitted ``QBMVAE``: denoised expression per modality and differential
expression sampled from the posterior.

Both follow scvi-tools' semantics (``get_normalized_expression`` and ``differential_expression``
of scVI/totalVI/PeakVI, see ``docs/scvi_tools.rst``); the decoding maths is
:meth:`qbm_pyro.module.denoised.DenoisedExpressionMixin.normalized_expression` (a method of
:class:`~qbm_pyro.module.MultiVAE`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..convergence import warn_if_untrained
from ..data import REGISTRY_KEYS
from ._base import ModelBase

__all__ = ["ExpressionMixin", "estimate_pseudocounts_offset", "fdr_de_prediction"]

K = REGISTRY_KEYS
EPS = 1e-8
#: Name of the other cells in a one-vs-rest comparison (scvi-tools' spelling).
REST = "Rest"
#: Features with a lower mean count in a group count as unexpressed there (pseudocount estimate).
THRESHOLD_COUNTS = 0.01


def fdr_de_prediction(proba_de: np.ndarray, fdr: float = 0.05) -> np.ndarray:
    """Call features differential at a target posterior expected FDR (scvi-tools' rule).

    Features are sorted by decreasing ``proba_de``; the largest set whose mean ``1 - proba_de``
    is at most ``fdr`` is called differential.

    Parameters
    ----------
    proba_de
        Posterior probability of differential expression per feature.
    fdr
        Target false discovery rate.

    Returns
    -------
    numpy.ndarray
        Boolean, per feature.

    Examples
    --------
    >>> fdr_de_prediction(np.array([0.99, 0.2, 0.97, 0.5]), 0.05).tolist()
    [True, False, True, False]
    """
    proba_de = np.asarray(proba_de, dtype=np.float64)
    order = np.argsort(-proba_de, kind="stable")
    cumulative = np.cumsum(1.0 - proba_de[order]) / np.arange(1, len(order) + 1)
    n_de = int((cumulative <= fdr).sum())
    out = np.zeros(len(proba_de), dtype=bool)
    out[order[:n_de]] = True
    return out


class ExpressionMixin(ModelBase):
    """Methods of :class:`~qbm_pyro.QBMVAE` that decode the posterior into feature space."""

    # ------------------------------------------------------------------ helpers

    def _batch_level(self, label) -> int:
        """Index of ``label`` in the first batch covariate's categories."""
        if not self.registry.batch_keys:
            raise ValueError("transform_batch needs a model set up with batch_key")
        key = self.registry.batch_keys[0]
        levels = list(self.registry.batch_categories[key])
        if str(label) not in levels:
            raise ValueError(f"transform_batch {label!r} is not a level of obs[{key!r}] (levels: {levels})")
        return levels.index(str(label))

    @torch.no_grad()
    def _decode_values(
        self, data, kind, *, indices=None, n_samples=1, levels=(None,), library_size=1.0, batch_size=512
    ) -> np.ndarray:
        """Decoded values ``(n_cells, n_vars)`` averaged over ``levels`` (batch transforms)."""
        self.module.eval()
        parts = []
        for batch in self._loader(data, indices, batch_size):
            values = [
                self.module.normalized_expression(
                    batch, kind, n_samples=n_samples, transform_batch=level, library_size=library_size
                )
                for level in levels
            ]
            parts.append(torch.stack(values).mean(0))
        return torch.cat(parts).cpu().numpy()

    # ------------------------------------------------------------------ denoised values

    def get_normalized_expression(
        self,
        data=None,
        *,
        modality: str = "rna",
        transform_batch=None,
        n_samples: int = 1,
        library_size: float = 1.0,
        return_pandas: bool = True,
        batch_size: int = 512,
        seed: int | None = None,
    ) -> pd.DataFrame | np.ndarray:
        """Denoised values of one modality, decoded from the posterior.

        Parameters
        ----------
        data
            Data to decode (default: the training data); must have the registered features.
        modality
            A modality name or kind. RNA: expression frequencies times ``library_size`` (rows
            sum to it, as scVI). Protein: foreground-only denoised counts, as totalVI with
            ``include_protein_background=False``. ATAC: accessibility probabilities of the
            regions, without the cell (depth) and region factors, as PeakVI's default.
        transform_batch
            Decode every cell as if from this level of the first batch key (a label), or the
            average over a list of levels; ``None``: each cell's own batch.
        n_samples
            ``1``: decode the posterior mean (deterministic). More: average the values decoded
            from that many posterior draws per cell.
        library_size
            RNA only: the sum of each row.
        return_pandas
            Return a DataFrame indexed by cell names with feature names as columns (default),
            else a numpy array.
        batch_size
            Cells decoded at once.
        seed
            Seed of the posterior draws (default: the model's seed).

        Returns
        -------
        pandas.DataFrame or numpy.ndarray
            ``(n_obs, n_features)``.

        Examples
        --------
        >>> import qbm_pyro
        >>> mdata = qbm_pyro.datasets.pbmc_cite_2batch()
        >>> model = qbm_pyro.QBMVAE(mdata, batch_key="batch", n_latent=8)
        >>> rna = model.get_normalized_expression(transform_batch="pbmc5k", library_size=1e4)
        >>> rna.shape, round(float(rna.iloc[0].sum()))
        ((400, 2000), 10000)
        """
        name, kind = self._resolve_modality(modality)
        if int(n_samples) < 1:
            raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
        warn_if_untrained(self, "get_normalized_expression")
        data = self.data if data is None else data
        if transform_batch is None:
            levels: Sequence = (None,)
        elif isinstance(transform_batch, list | tuple):
            levels = [self._batch_level(b) for b in transform_batch]
        else:
            levels = (self._batch_level(transform_batch),)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed if seed is None else seed)
            values = self._decode_values(
                data,
                kind,
                n_samples=int(n_samples),
                levels=levels,
                library_size=library_size,
                batch_size=batch_size,
            )
        if not return_pandas:
            return values
        return pd.DataFrame(
            values, index=data.obs_names.copy(), columns=self.registry.modalities[name].var_names
        )

    # ------------------------------------------------------------------ differential expression

    def differential_expression(
        self,
        data=None,
        *,
        groupby: str,
        group1: str | Sequence[str] | None = None,
        group2: str | None = None,
        modality: str = "rna",
        mode: Literal["change", "vanilla"] = "change",
        delta: float = 0.25,
        test_mode: Literal["three", "two"] = "three",
        batch_correction: bool = False,
        fdr_target: float = 0.05,
        n_samples: int = 5000,
        n_pairs: int = 10000,
        pseudocounts: float | None = None,
        batch_size: int = 512,
        seed: int | None = None,
        progress_bar: bool = False,
    ) -> pd.DataFrame:
        """Bayesian differential expression between groups of cells, as scvi-tools 1.4 computes it.

        For each comparison, denoised values (:meth:`get_normalized_expression`) are drawn from
        the posterior of cells of ``group1`` and of ``group2`` (``n_samples`` draws per group,
        drawn with replacement over its cells), ``n_pairs`` random pairs are formed and per
        feature:

        - ``mode="change"``: the log2 fold change ``lfc = log2(s1 + pc) - log2(s2 + pc)`` per
          pair, ``p_up = P(lfc >= delta)`` and ``p_down = P(lfc < -delta)``. With scvi-tools
          1.4's default ``test_mode="three"`` (up, down, unchanged), ``proba_de = max(p_up,
          p_down)`` (the larger tail) and ``bayes_factor = sign(p_up - p_down) · log(proba_de /
          (1 - proba_de))``; with ``test_mode="two"`` (scvi-tools' older rule), ``proba_de =
          p_up + p_down`` and ``bayes_factor = log(proba_de / (1 - proba_de))``. Also the mean,
          median, sd, min and max of ``lfc``;
        - ``mode="vanilla"``: ``proba_m1 = P(s1 > s2)`` and its Bayes factor.

        In change mode ``is_de_fdr_<fdr_target>`` calls features at that posterior expected FDR.

        Parameters
        ----------
        data
            Data (default: the training data) whose ``obs[groupby]`` defines the groups.
        groupby
            Categorical ``obs`` column: cell types, or ``qbm_state`` / ``qbm_attractor`` written
            by :func:`qbm_pyro.tl.trajectory`.
        group1
            One group, a list of groups, or ``None`` (every group against the rest).
        group2
            The reference group; ``None``: all other cells.
        modality
            Modality name or kind: RNA (expression), protein (foreground) or ATAC
            (accessibility probabilities; ``lfc`` is then the log2 ratio of probabilities).
        mode, delta
            See above; ``delta`` is the smallest ``|lfc|`` that counts as a change.
        test_mode
            ``"three"`` (default, scvi-tools 1.4's default: ``proba_de`` is the larger tail) or
            ``"two"`` (the sum of both tails: an unchanged gene with a wide ``lfc`` posterior
            gets up to twice the ``proba_de``); see above.
        batch_correction
            Decode the cells of both groups in every level of the first batch key and pair
            draws of the same level only (scvi-tools' ``batch_correction=True``); ``False``:
            each cell in its own batch.
        fdr_target
            FDR of the ``is_de_fdr_*`` column.
        n_samples
            Posterior draws per group: that many cells drawn with replacement, one draw each
            (divided among the batch levels with ``batch_correction``), as scvi-tools.
        n_pairs
            Random pairs of draws the statistics are computed on (``m_permutation``).
        pseudocounts
            Added to the values before the log ratio of ``proba_de``; ``None``: estimated as
            scvi-tools does (``estimate_pseudocounts_offset``). The
            ``lfc_*`` columns use a thousandth of it, as scvi-tools.
        batch_size
            Cells decoded at once.
        seed
            Seed of cell subsampling, posterior draws and pairing (default: the model's seed).
        progress_bar
            Show progress over the comparisons.

        Returns
        -------
        pandas.DataFrame
            One row per feature (indexed by feature name) and comparison, sorted by decreasing
            ``proba_de`` (``bayes_factor`` in vanilla mode) within a comparison, with columns
            ``proba_de``, ``proba_not_de``, ``bayes_factor``, ``scale1``, ``scale2`` (mean
            denoised value per group), ``lfc_mean``, ``lfc_median``, ``lfc_std``, ``lfc_min``,
            ``lfc_max``, ``delta``, ``pseudocounts`` (change mode) or ``proba_m1``, ``proba_m2``
            (vanilla), ``raw_mean1/2``, ``non_zeros_proportion1/2``,
            ``raw_normalized_mean1/2`` (counts per 10,000), ``is_de_fdr_<fdr_target>`` (change
            mode), ``comparison`` (``"<group1> vs <group2>"``), ``group1``, ``group2`` (``"Rest"``
            for all other cells).
        """
        if mode not in ("change", "vanilla"):
            raise ValueError(f"mode must be 'change' or 'vanilla', got {mode!r}")
        if not delta > 0 and mode == "change":
            raise ValueError(f"delta must be positive, got {delta!r}")
        if test_mode not in ("three", "two"):
            raise ValueError(f"test_mode must be 'three' or 'two', got {test_mode!r}")
        if int(n_samples) < 1 or int(n_pairs) < 1:
            raise ValueError(f"n_samples and n_pairs must be positive, got {n_samples}, {n_pairs}")
        name, kind = self._resolve_modality(modality)
        warn_if_untrained(self, "differential_expression")
        data = self.data if data is None else data
        labels = _group_labels(data, groupby)
        comparisons = _comparisons(labels, groupby, group1, group2)
        var_names = self.registry.modalities[name].var_names
        seed = self.seed if seed is None else seed
        rng = np.random.default_rng(seed)
        raw = _raw_group_sums(self, data, kind, labels, batch_size)
        if batch_correction:
            if not self.registry.batch_keys:
                raise ValueError("batch_correction=True needs a model set up with batch_key")
            levels = list(range(self.module.n_batch[0]))
        else:
            levels = [None]
        tables = []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for g1, g2, cells1, cells2 in tqdm(comparisons, desc="DE", disable=not progress_bar):
                draws = [
                    self._posterior_draws(data, kind, cells, n_samples, levels, rng, batch_size)
                    for cells in (cells1, cells2)
                ]
                members2 = [g for g in raw[0] if g != g1] if g2 == REST else [g2]
                raw1, raw2 = _raw_stats(raw, [g1]), _raw_stats(raw, members2)
                where_zero = (raw1["raw_mean"] < THRESHOLD_COUNTS, raw2["raw_mean"] < THRESHOLD_COUNTS)
                stats = _bayes_stats(
                    draws[0], draws[1], mode, delta, pseudocounts, where_zero, n_pairs, rng, test_mode
                )
                table = pd.DataFrame(stats, index=pd.Index(var_names, name=None))
                for suffix, raw_group in (("1", raw1), ("2", raw2)):
                    for stat, values in raw_group.items():
                        table[f"{stat}{suffix}"] = values
                if mode == "change":
                    proba = table["proba_de"].to_numpy()
                    table[f"is_de_fdr_{fdr_target}"] = fdr_de_prediction(proba, fdr_target)
                table["comparison"] = f"{g1} vs {g2}"
                table["group1"], table["group2"] = g1, g2
                sort_by = "proba_de" if mode == "change" else "bayes_factor"
                tables.append(table.sort_values(sort_by, ascending=False, kind="stable"))
        return pd.concat(tables)

    @torch.no_grad()
    def _posterior_draws(self, data, kind, cells, n_samples, levels, rng, batch_size) -> list[np.ndarray]:
        """Per batch level, ``(n, n_vars)`` denoised values: ``n = n_samples / len(levels)``
        cells drawn with replacement from ``cells``, one posterior draw each (as scvi-tools)."""
        n = max(2, int(n_samples) // len(levels))
        self.module.eval()
        out = []
        for level in levels:
            chosen = np.sort(rng.choice(np.asarray(cells), n, replace=True))
            parts = []
            for batch in self._loader(data, chosen, batch_size):
                draws = self.module.normalized_expression(
                    batch, kind, n_samples=1, use_mean=False, transform_batch=level
                )
                parts.append(draws)
            out.append(torch.cat(parts).cpu().numpy())
        return out


def _group_labels(data, groupby: str) -> pd.Series:
    if groupby not in data.obs:
        shown = ", ".join(map(str, list(data.obs.columns)[:30]))
        raise ValueError(
            f"groupby {groupby!r} is not an obs column (columns: {shown}); qbm_state and "
            "qbm_attractor come from qbm_pyro.tl.trajectory"
        )
    labels = data.obs[groupby]
    return labels.astype(str).where(labels.notna())


def _comparisons(labels: pd.Series, groupby, group1, group2) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    categories = sorted(labels.dropna().unique())
    groups = categories if group1 is None else [group1] if isinstance(group1, str) else list(group1)
    for g in [*groups, *([] if group2 is None else [group2])]:
        if str(g) not in categories:
            raise ValueError(f"{g!r} is not a value of obs[{groupby!r}] (values: {categories[:30]})")
    values = labels.to_numpy()
    out = []
    for g1 in map(str, groups):
        cells1 = np.flatnonzero(values == g1)
        if group2 is None:
            g2, cells2 = REST, np.flatnonzero((values != g1) & labels.notna().to_numpy())
        else:
            g2, cells2 = str(group2), np.flatnonzero(values == str(group2))
        if g1 == g2:
            raise ValueError(f"group1 and group2 are the same group {g1!r}")
        if len(cells1) == 0 or len(cells2) == 0:
            raise ValueError(f"comparison {g1} vs {g2} has an empty group")
        out.append((g1, g2, cells1, cells2))
    return out


def _raw_group_sums(model, data, kind, labels: pd.Series, batch_size) -> tuple[list, np.ndarray, np.ndarray]:
    """Per group: sums of counts, of nonzero indicators and of counts per 10,000; cell counts."""
    groups = sorted(labels.dropna().unique())
    codes = pd.Categorical(labels, categories=groups).codes
    sums = np.zeros((len(groups), 3, model.module.n_vars[kind]))
    for batch in model._loader(data, None, batch_size):
        x = batch[K.x_key(kind)].cpu().numpy().astype(np.float64)
        library = np.maximum(x.sum(1, keepdims=True), 1.0)
        c = codes[batch[K.INDEX_KEY].cpu().numpy()]
        keep = c >= 0
        for stat, values in enumerate((x, x > 0, x / library * 1e4)):
            np.add.at(sums[:, stat], c[keep], values[keep])
    n_cells = np.bincount(codes[codes >= 0], minlength=len(groups)).astype(np.float64)
    return groups, sums, n_cells


def _raw_stats(raw, members: list[str]) -> dict[str, np.ndarray]:
    """Raw mean counts, nonzero fraction and mean counts per 10,000 over the groups ``members``."""
    groups, sums, n_cells = raw
    idx = [groups.index(g) for g in members]
    mean = sums[idx].sum(0) / max(n_cells[idx].sum(), 1.0)
    return dict(zip(("raw_mean", "non_zeros_proportion", "raw_normalized_mean"), mean, strict=True))


def estimate_pseudocounts_offset(scales_a, scales_b, where_zero_a, where_zero_b, quantile=0.9) -> float:
    """scvi-tools' pseudocount: the ``quantile`` of the largest decoded value of features that are
    unexpressed in a group (so their log fold changes shrink to 0), divided by the number of
    features, at least ``1e-10``."""
    eps = []
    for scales, where_zero in ((scales_a, where_zero_a), (scales_b, where_zero_b)):
        largest = np.max(scales, 0)
        eps.append(np.quantile(largest[where_zero], q=quantile) if where_zero.sum() >= 1 else 1e-10)
    return float(np.maximum(1e-10, max(eps) / scales_a.shape[1]))


def _bayes_stats(
    draws1, draws2, mode, delta, pseudocounts, where_zero, n_pairs, rng, test_mode="three"
) -> dict[str, np.ndarray]:
    """scvi-tools 1.4's statistics (``DifferentialComputation.get_bayes_factors``) from posterior
    draws of two groups (lists over batch levels)."""
    n_levels = len(draws1)
    per_level = max(1, int(n_pairs) // n_levels)
    a, b = [], []
    for d1, d2 in zip(draws1, draws2, strict=True):  # pairs within the same batch level
        a.append(d1[rng.integers(0, len(d1), per_level)])
        b.append(d2[rng.integers(0, len(d2), per_level)])
    a, b = np.concatenate(a), np.concatenate(b)
    scale1 = np.concatenate(draws1).mean(0)
    scale2 = np.concatenate(draws2).mean(0)
    if mode == "vanilla":
        p1 = (a > b).mean(0)
        return {
            "proba_m1": p1,
            "proba_m2": 1.0 - p1,
            "bayes_factor": np.log(p1 + EPS) - np.log(1.0 - p1 + EPS),
            "scale1": scale1,
            "scale2": scale2,
        }
    if pseudocounts is None:
        pseudocounts = estimate_pseudocounts_offset(a, b, *where_zero)
    lfc = np.log2(a + pseudocounts) - np.log2(b + pseudocounts)
    proba_up, proba_down = (lfc >= delta).mean(0), (lfc < -delta).mean(0)
    if test_mode == "two":
        proba, sign = proba_up + proba_down, 1.0
    else:  # scvi-tools 1.4's default, "three": the larger tail, signed Bayes factor
        proba, sign = np.maximum(proba_up, proba_down), np.sign(proba_up - proba_down)
    lfc = np.log2(a + 1e-3 * pseudocounts) - np.log2(b + 1e-3 * pseudocounts)  # as scvi-tools
    return {
        "proba_de": proba,
        "proba_not_de": 1.0 - proba,
        "bayes_factor": sign * (np.log(proba + EPS) - np.log(1.0 - proba + EPS)),
        "scale1": scale1,
        "scale2": scale2,
        "pseudocounts": np.full(a.shape[1], float(pseudocounts)),
        "delta": np.full(a.shape[1], float(delta)),
        "lfc_mean": lfc.mean(0),
        "lfc_median": np.median(lfc, 0),
        "lfc_std": lfc.std(0),
        "lfc_min": lfc.min(0),
        "lfc_max": lfc.max(0),
    }
