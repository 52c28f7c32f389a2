"""Small real single-cell data sets bundled with qbm_pyro.

Each loader reads a fresh copy from the package directory, so changing what it returns never
changes the next call's result. Provenance, reductions and licences are in ``README.md`` next to
the files and in each object's ``uns["provenance"]`` (a JSON string). The files were made by
``scripts/make_datasets.py``.
"""

from __future__ import annotations

from importlib.resources import as_file, files

import anndata as ad
import mudata as md

from qbm_pyro.datasets._simulate import simulated_trimodal

__all__ = [
    "a549_scicar",
    "mixology_5batch",
    "paul15_myeloid",
    "pbmc_cite_1k",
    "pbmc_cite_2batch",
    "pbmc_rna_atac_100",
    "simulated_trimodal",
]


def _read(filename: str) -> ad.AnnData | md.MuData:
    with as_file(files(__name__).joinpath(filename)) as path:
        if filename.endswith(".h5mu"):
            return md.read_h5mu(path)
        return ad.read_h5ad(path)


def mixology_5batch() -> ad.AnnData:
    """CellBench lung-adenocarcinoma cell-line mixtures, 5 batches (Tian et al. 2019).

    1,408 cells x 2,000 highly variable genes (Ensembl IDs), chosen on raw counts by scanpy's
    batch-aware ``seurat_v3`` rule from 28,517 genes. ``X`` holds raw UMI counts (int32 CSR).

    ``obs`` columns: ``batch`` (5 experiments: ``sc_celseq2``, ``sc_dropseq``,
    ``sc_celseq2_5cl_p1``/``p2``/``p3``), ``protocol`` (CEL-seq2 / Drop-seq), ``design``
    (``3cl`` / ``5cl``), ``cell_line`` (A549, H1975, H2228, H838, HCC827),
    ``cell_line_demuxlet``, ``demuxlet_cls`` (``SNG`` singlet / ``DBL`` doublet; 1,021
    singlets), ``cells_sorted_per_well``, ``outliers`` and QC columns. ``var``:
    ``n_batches_detected``, ``in_all_batches``, ``n_cells``.

    Returns
    -------
    anndata.AnnData
        Shape ``(1408, 2000)``.

    Examples
    --------
    >>> adata = mixology_5batch()
    >>> clean = adata[adata.obs["demuxlet_cls"] == "SNG"]
    """
    return _read("mixology_5batch.h5ad")


def a549_scicar() -> md.MuData:
    """sci-CAR joint RNA + chromatin accessibility of A549 cells (Cao et al. 2018).

    2,641 A549 cells treated with dexamethasone for 0, 1 or 3 hours.

    * ``rna``: 2,641 x 1,185 genes. ``X`` is log-normalised as given by scAI; raw counts
      (recovered, int32) are in ``layers["counts"]`` — register with ``layers="counts"``.
    * ``atac``: 2,641 x 11,567 peaks accessible in at least 1 % of cells (of 52,761),
      binary uint8 ``X``. ``var``: ``chrom``, ``start``, ``end``, ``frac_cells``.

    ``obs`` (and each modality's ``obs``): ``time`` (ordered categorical ``0h`` / ``1h`` /
    ``3h``) and ``time_hours`` (0, 1, 3).

    Returns
    -------
    mudata.MuData
        Modalities ``rna`` and ``atac`` with the same cells.
    """
    return _read("a549_scicar.h5mu")


def paul15_myeloid() -> ad.AnnData:
    """Mouse bone-marrow myeloid progenitors (Paul et al. 2015), as shipped with tradeSeq.

    2,660 cells x 240 genes, raw UMI counts (float32 CSR). ``obs``: ``cell_type`` (7 classes,
    e.g. Erythrocyte, Monocytes, GMP), ``slingshot_cluster`` (1-7), ``pseudotime_lineage1`` and
    ``pseudotime_lineage2`` (NaN off the lineage), ``weight_lineage1``/``2``.
    ``obsm["X_slingshot_rd"]`` is a 2-D embedding; ``uns["slingshot_lineages"]`` is JSON.

    Returns
    -------
    anndata.AnnData
        Shape ``(2660, 240)``.
    """
    return _read("paul15_myeloid.h5ad")


def pbmc_cite_1k() -> md.MuData:
    """10x PBMC CITE-seq, 1,024 cells, as cut down for the scvi-tools tests.

    * ``rna``: 1,024 x 100 genes (very sparse), raw UMI counts.
    * ``prot``: 1,024 x 17 antibodies (14 markers and 3 isotype controls, flagged in
      ``var["isotype_control"]``), raw counts.

    No cell labels.

    Returns
    -------
    mudata.MuData
        Modalities ``rna`` and ``prot`` with the same cells.
    """
    return _read("pbmc_cite_1k.h5mu")


def pbmc_cite_2batch() -> md.MuData:
    """10x PBMC CITE-seq from two experiments (PBMC 10k and 5k), 200 cells each.

    * ``rna``: 400 x 2,000 highly variable genes (batch-aware ``seurat_v3`` on raw counts, of
      the 15,792 genes shared by both sources), raw UMI counts (int32 CSR).
    * ``prot``: 400 x 14 antibodies (the shared TotalSeq-B panel), raw counts.

    ``obs["batch"]`` is ``pbmc10k`` or ``pbmc5k``.

    Returns
    -------
    mudata.MuData
        Modalities ``rna`` and ``prot`` with the same cells.
    """
    return _read("pbmc_cite_2batch_400.h5mu")


def pbmc_rna_atac_100() -> md.MuData:
    """10x PBMC Multiome (RNA + ATAC from the same nuclei), 100 cells, from the SIMBA tests.

    * ``rna``: 100 x 200 genes, raw counts.
    * ``atac``: 100 x 200 peaks (``chr18_...`` names), raw counts 1-14 (not binarised).

    ``obs["celltype"]`` is a cluster id string (``"1"`` to ``"19"``). A smoke-test data set.

    Returns
    -------
    mudata.MuData
        Modalities ``rna`` and ``atac`` with the same cells.
    """
    return _read("pbmc_rna_atac_100.h5mu")
