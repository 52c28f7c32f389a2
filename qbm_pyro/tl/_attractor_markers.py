"""Marker features of attractors: decode each attractor's code and rank features against the others.

With a model, an attractor's profile is what the decoder makes of its code: the decoder input is
drawn from the generative model given the code (:meth:`~qbm_pyro.module.MultiVAE.latent_from_code`:
the smoothed code and, with Gaussian units, ``c ~ p(c | z)``), decoded with the covariates and
size factors of a fixed seeded set of donor cells (the same for every attractor, so that only the
code differs), and averaged: RNA as expression frequencies (the mean over the library size),
protein as expected counts, ATAC as accessibility probabilities. Without a model, the profile is
the mean log-normalised expression of the attractor's member cells in ``data``. A feature's score
for attractor ``a`` is ``log2((x_a + ε) / (mean_{b≠a} x_b + ε))``, ``ε`` = 1% of the feature
mean's median.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

__all__ = ["attractor_profiles", "rank_markers"]


@torch.no_grad()
def _decode_codes(
    model, codes: np.ndarray, kind: str, *, n_donors: int, n_draws: int, seed: int
) -> np.ndarray:
    """Mean decoded values ``(k, n_vars)`` of binary codes ``(k, n)``."""
    m = model.module
    m.eval()
    n_obs = model.registry.n_obs if hasattr(model.registry, "n_obs") else model.data.n_obs
    rng = np.random.default_rng(seed)
    donors = np.sort(rng.choice(n_obs, size=min(n_donors, n_obs), replace=False))
    cells = model._loader().batch(donors)
    D = donors.size
    out = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for code in codes:
            z = torch.as_tensor(np.repeat(code[None, :], D, axis=0), dtype=torch.float32, device=model.device)
            acc = 0.0
            for _ in range(n_draws):
                dist = m.decode(m.latent_from_code(z), cells)[kind]
                mean = dist.mean
                if kind == "rna":
                    mean = mean / mean.sum(-1, keepdim=True)
                acc = acc + mean.mean(0)
            out.append((acc / n_draws).double().cpu().numpy())
    return np.asarray(out)


def attractor_profiles(
    data,
    codes: np.ndarray,
    labels: np.ndarray,
    names: list[str],
    model=None,
    *,
    modality: str | None = None,
    n_donors: int = 32,
    n_draws: int = 4,
    seed: int = 0,
) -> pd.DataFrame | None:
    """Profile ``(k, n_features)`` of each attractor (rows ``names``), decoded or from member cells.

    Parameters
    ----------
    data
        The data object (used without a model).
    codes
        Attractor codes ``(k, n)``.
    labels
        Each cell's attractor name (without a model).
    names
        Attractor names, in the order of ``codes``.

    Returns ``None`` without a model when the data hold no features.
    model
        A fitted :class:`~qbm_pyro.QBMVAE`; ``None`` reads member cells.
    modality
        Modality name or kind (default the model's first, or ``"rna"``; for an AnnData, ``X``).
    n_donors, n_draws, seed
        Donor cells, decoder-input draws per donor, and their seed.
    """
    if model is not None:
        mods = model.registry.modalities
        name = modality if modality is not None else next(iter(mods))
        name, kind = model._resolve_modality(name)
        values = _decode_codes(model, codes, kind, n_donors=n_donors, n_draws=n_draws, seed=seed)
        return pd.DataFrame(values, index=names, columns=list(mods[name].var_names))
    adata = data
    if hasattr(data, "mod"):
        key = modality if modality is not None else ("rna" if "rna" in data.mod else next(iter(data.mod)))
        if key not in data.mod:
            raise KeyError(f"modality {key!r} not in data.mod ({list(data.mod)})")
        adata = data.mod[key]
        labels = pd.Series(labels, index=data.obs_names).reindex(adata.obs_names).to_numpy()
    if adata.n_vars == 0 or adata.X is None:
        return None
    x = adata.X
    x = x.tocsr().astype(np.float64) if sp.issparse(x) else np.asarray(x, dtype=np.float64)
    totals = np.asarray(x.sum(axis=1)).ravel()
    scale = 1e4 / np.maximum(totals, 1e-12)
    x = sp.diags(scale) @ x if sp.issparse(x) else x * scale[:, None]
    x = x.log1p() if sp.issparse(x) else np.log1p(x)
    rows = []
    for name in names:
        member = np.asarray(labels == name)
        rows.append(
            np.asarray(x[member].mean(axis=0)).ravel() if member.any() else np.full(x.shape[1], np.nan)
        )
    return pd.DataFrame(np.asarray(rows), index=names, columns=list(adata.var_names))


def rank_markers(profiles: pd.DataFrame, n_markers: int = 10) -> pd.DataFrame:
    """Top ``n_markers`` features per attractor by ``log2((x_a + ε) / (mean of the others + ε))``.

    Returns a long table with columns ``attractor``, ``rank``, ``feature``, ``log2_ratio`` and
    ``value``."""
    values = profiles.to_numpy(dtype=np.float64)
    k = values.shape[0]
    scale = np.nanmedian(np.nanmean(values, axis=0)) if values.size else 0.0
    eps = 0.01 * scale if np.isfinite(scale) and scale > 0 else 1e-12
    records = []
    for a in range(k):
        others = np.delete(values, a, axis=0)
        ref = np.nanmean(others, axis=0) if k > 1 else np.zeros(values.shape[1])
        ratio = np.log2((values[a] + eps) / (ref + eps))
        ratio = np.where(np.isfinite(ratio), ratio, -np.inf)
        top = np.argsort(-ratio, kind="stable")[:n_markers]
        for r, j in enumerate(top):
            records.append((profiles.index[a], r, profiles.columns[j], float(ratio[j]), float(values[a, j])))
    return pd.DataFrame.from_records(records, columns=["attractor", "rank", "feature", "log2_ratio", "value"])
