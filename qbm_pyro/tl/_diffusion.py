"""Diffusion operator of :func:`qbm_pyro.tl.trajectory`: components and diffusion pseudotime.

See the verb's docstring for the maths (Coifman-Lafon density normalisation, ``eigsh`` on the
symmetric conjugate of the random-walk operator, DPT weights ``lambda / (1 - lambda)``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import eigsh

#: Eigenvalues closer than this to 1 belong to disconnected components and get zero DPT weight.
_UNIT_EIGENVALUE_TOL = 1e-6


def _diffusion_components(
    affinities: sp.csr_matrix, n_dcs: int, seed: int
) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
    """Eigenvalues (descending, trivial first), right eigenvectors ``psi_1..psi_n_dcs`` and K."""
    n_obs = affinities.shape[0]
    w = affinities + sp.identity(n_obs, format="csr")
    d = np.asarray(w.sum(axis=1)).ravel()
    inv_d = sp.diags(1.0 / d)
    kernel = (inv_d @ w @ inv_d).tocsr()  # density normalisation, alpha = 1
    z = np.asarray(kernel.sum(axis=1)).ravel()
    inv_sqrt_z = sp.diags(1.0 / np.sqrt(z))
    sym = (inv_sqrt_z @ kernel @ inv_sqrt_z).tocsr()
    sym = (sym + sym.T) * 0.5  # exact symmetry against round-off
    v0 = np.random.default_rng(seed).uniform(0.5, 1.5, size=n_obs)
    k = n_dcs + 1
    eigvals, phi = eigsh(sym, k=k, which="LA", v0=v0, ncv=min(n_obs, max(2 * k + 1, 24)))
    order = np.argsort(eigvals)[::-1]
    eigvals, phi = np.clip(eigvals[order], -1.0, 1.0), phi[:, order]
    psi = phi[:, 1:] * np.sqrt(z.sum() / z)[:, None]  # unit norm in the stationary measure
    # Deterministic sign: the largest-magnitude entry of each component is positive.
    signs = np.sign(psi[np.abs(psi).argmax(axis=0), np.arange(psi.shape[1])])
    psi = psi * np.where(signs == 0, 1.0, signs)
    return eigvals, psi, kernel


def _dpt_weights(eigvals: np.ndarray) -> np.ndarray:
    """``lambda / (1 - lambda)`` for the non-trivial components; 0 for lambda = 1 or <= 0."""
    lam = eigvals[1:]
    weights = np.zeros_like(lam)
    ok = (lam < 1.0 - _UNIT_EIGENVALUE_TOL) & (lam > 0.0)
    weights[ok] = lam[ok] / (1.0 - lam[ok])
    return weights


#: At most this many cells of a root group are averaged over (a seeded sample of larger groups).
MAX_ROOT_CELLS = 256


def _pseudotime(
    psi: np.ndarray, weights: np.ndarray, root: int, comp_labels: np.ndarray, group: np.ndarray | None = None
) -> np.ndarray:
    """DPT from ``root``, or, with ``group`` (positions of root cells), the mean DPT from the
    group's cells in ``root``'s component, shifted so that its smallest value is 0; then / max."""
    coords = psi * weights
    component = comp_labels == comp_labels[root]
    roots = np.asarray([root]) if group is None else np.asarray(group)[component[group]]
    pt = np.zeros(coords.shape[0])
    for r in roots:  # one pass per root cell: memory stays O(n_obs)
        pt += np.sqrt(((coords - coords[r]) ** 2).sum(axis=1))
    pt /= len(roots)
    pt[~component] = np.nan
    pt -= np.nanmin(pt)
    top = np.nanmax(pt)
    return pt / top if top > 0 else pt
