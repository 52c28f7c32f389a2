"""Minibatches of torch tensors from registered data.

The data stay as stored (sparse, dense or backed); only the rows of one minibatch are read and
densified. Rows are read in increasing order (as ``h5py`` requires) and put back in minibatch
order afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import anndata as ad
import mudata as md
import numpy as np
import scipy.sparse as sp
import torch

from qbm_pyro._checks import check_positive_int
from qbm_pyro._constants import REGISTRY_KEYS
from qbm_pyro.data.registry import DataRegistry, _modality
from qbm_pyro.data.validation import get_matrix

__all__ = ["MinibatchLoader", "read_rows"]


def read_rows(x: Any, rows: np.ndarray) -> np.ndarray:
    """Read rows of a matrix into a dense float32 array, in the order given.

    Parameters
    ----------
    x
        Dense, sparse or backed matrix of shape ``(n, n_vars)``.
    rows
        Integer row indices, any order, repeats allowed.

    Returns
    -------
    numpy.ndarray
        Float32 array of shape ``(len(rows), n_vars)``.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        return np.zeros((0, x.shape[1]), dtype=np.float32)
    unique, inverse = np.unique(rows, return_inverse=True)
    # h5py needs increasing indices; anndata's backed datasets read them in one pass.
    block = x[unique]
    block = block.toarray() if sp.issparse(block) else np.asarray(block)
    return np.asarray(block[inverse], dtype=np.float32)


class MinibatchLoader:
    """Iterate over minibatches of registered data as dicts of torch tensors.

    Each minibatch is a dict with, for every registered modality of kind ``k`` (``"rna"``,
    ``"protein"``, ``"atac"``):

    * ``"x_k"``: float32 tensor ``(B, n_vars)``: the counts (ATAC binarised, ``x > 0``); rows of
      cells that lack the modality are zero.
    * ``"mask_k"``: bool tensor ``(B,)``: the cell has the modality.
    * ``"library_k"``: float32 tensor ``(B,)``: the row sums of ``"x_k"``.

    and ``"batch"``: int64 tensor ``(B, n_batch_keys)`` of batch codes (see
    :attr:`DataRegistry.batch_categories`), ``"index"``: int64 tensor ``(B,)`` of cell positions
    in the data. Keys are built with :data:`~qbm_pyro.data.REGISTRY_KEYS`.

    Parameters
    ----------
    data
        The data that ``registry`` was made from (same cells in the same order).
    registry
        The result of :func:`~qbm_pyro.data.setup_data` (or :meth:`DataRegistry.transfer`).
    batch_size
        Cells per minibatch.
    shuffle
        Shuffle the cells at the start of every pass.
    seed
        Seed of the :class:`numpy.random.Generator` that shuffles. The same seed gives the same
        sequence of passes.
    indices
        Positions of the cells to iterate over (e.g. a training split, or
        ``np.flatnonzero(registry.nonempty_cells())``); all cells if ``None``.
    drop_last
        Drop the last minibatch if it is smaller than ``batch_size``.

    Examples
    --------
    >>> from qbm_pyro import datasets
    >>> from qbm_pyro.data import MinibatchLoader, setup_data
    >>> mdata = datasets.pbmc_rna_atac_100()
    >>> registry = setup_data(mdata)
    >>> loader = MinibatchLoader(mdata, registry, batch_size=32, seed=0)
    >>> batch = next(iter(loader))
    >>> batch["x_atac"].shape, len(loader)
    (torch.Size([32, 200]), 4)
    """

    def __init__(
        self,
        data: md.MuData | ad.AnnData,
        registry: DataRegistry,
        *,
        batch_size: int = 128,
        shuffle: bool = True,
        seed: int | None = None,
        indices: Sequence[int] | np.ndarray | None = None,
        drop_last: bool = False,
    ) -> None:
        check_positive_int("batch_size", batch_size)
        if data.n_obs != registry.n_obs or not data.obs_names.equals(registry.obs_names):
            raise ValueError(
                f"data ({data.n_obs} cells) do not have the cells of the registry "
                f"({registry.n_obs} cells) in the same order; run setup_data on these data or "
                "registry.transfer(data)"
            )
        if indices is None:
            indices = np.arange(registry.n_obs, dtype=np.int64)
        else:
            indices = np.asarray(indices)
            if indices.ndim != 1 or (indices.size and indices.dtype.kind not in "iu"):
                raise ValueError(
                    f"indices must be a 1-D array of ints, got shape {indices.shape} and dtype "
                    f"{indices.dtype}"
                )
            indices = indices.astype(np.int64)
            bad = (indices < 0) | (indices >= registry.n_obs)
            if bad.any():
                raise ValueError(f"indices must lie in [0, {registry.n_obs}), got {int(indices[bad][0])}")
        self.data = data
        self.registry = registry
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = seed
        self.indices = indices
        self.drop_last = bool(drop_last)
        self._rng = np.random.default_rng(seed)
        self._matrices = {
            name: get_matrix(_modality(data, name), spec.layer, modality=name)
            for name, spec in registry.modalities.items()
        }

    def __len__(self) -> int:
        n = len(self.indices)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        order = self._rng.permutation(self.indices) if self.shuffle else self.indices
        for b in range(len(self)):
            yield self.batch(order[b * self.batch_size : (b + 1) * self.batch_size])

    def batch(self, idx: Sequence[int] | np.ndarray) -> dict[str, torch.Tensor]:
        """The minibatch of the cells at positions ``idx``, in that order.

        Parameters
        ----------
        idx
            Cell positions in the data.

        Returns
        -------
        dict of str to torch.Tensor
            See the class docstring.
        """
        idx = np.asarray(idx, dtype=np.int64)
        out: dict[str, torch.Tensor] = {}
        for name, spec in self.registry.modalities.items():
            rows = self.registry.rows[name][idx]
            have = rows >= 0
            x = np.zeros((len(idx), spec.n_vars), dtype=np.float32)
            if have.any():
                x[have] = read_rows(self._matrices[name], rows[have])
            if spec.kind == REGISTRY_KEYS.ATAC:
                x = (x > 0).astype(np.float32)
            out[REGISTRY_KEYS.x_key(spec.kind)] = torch.from_numpy(x)
            out[REGISTRY_KEYS.mask_key(spec.kind)] = torch.from_numpy(have)
            out[REGISTRY_KEYS.library_key(spec.kind)] = torch.from_numpy(x.sum(axis=1))
        out[REGISTRY_KEYS.BATCH_KEY] = torch.from_numpy(self.registry.batch_codes[idx])
        out[REGISTRY_KEYS.INDEX_KEY] = torch.from_numpy(idx)
        return out
