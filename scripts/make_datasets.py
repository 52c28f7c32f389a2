"""Build the reduced datasets bundled in ``qbm_pyro/datasets/`` from ``/work/shared/data``.

This script is the provenance of the bundled files. Developers run it by hand; the package and
the tests never run it. It needs ``scikit-misc`` (for scanpy's ``seurat_v3`` gene selection) on
top of the package's own dependencies::

    python scripts/make_datasets.py --source /work/shared/data --dest qbm_pyro/datasets

What it does, per file (see ``qbm_pyro/datasets/README.md``):

* ``mixology_5batch.h5ad``: all 1,408 cells, the 2,000 highly variable genes chosen by
  :func:`select_hvgs` (batch-aware ``seurat_v3`` on raw counts), ``X`` stored as int32 CSR counts.
* ``a549_scicar.h5mu``: ``rna`` keeps all 1,185 genes, ``X`` (log-normalised as given) and
  ``layers['counts']`` (int32); the duplicate ``layers['lognorm_given']`` is dropped. ``atac``
  keeps the peaks with ``var['frac_cells'] >= 0.01``, binary uint8; ``layers['normalized_given']``
  is dropped.
* ``pbmc_cite_2batch_400.h5mu``: ``rna`` reduced to 2,000 HVGs (batch-aware, on counts), int32;
  ``prot`` as is.
* ``pbmc_cite_1k.h5mu``: unchanged except ``prot.var['isotype_control']``, all False in the
  source, which now marks the 3 isotype controls (names containing ``control``).
* ``paul15_myeloid.h5ad``, ``pbmc_rna_atac_100.h5mu``: content unchanged.

Every file is written with ``compression="gzip"``. ``uns['provenance']`` stays a JSON string: the
source file's record, plus a ``"qbm_pyro"`` entry naming the source file, this script and what
was reduced.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import anndata as ad
import mudata as md
import numpy as np
import scanpy as sc
import scipy.sparse as sp

N_TOP_GENES = 2000
ATAC_MIN_FRAC_CELLS = 0.01
SCRIPT = "scripts/make_datasets.py"


def select_hvgs(adata: ad.AnnData, batch_key: str, n_top_genes: int = N_TOP_GENES) -> np.ndarray:
    """Boolean mask of the highly variable genes of ``adata`` (raw counts in ``X``).

    The rule is scanpy's ``highly_variable_genes(flavor="seurat_v3", batch_key=batch_key)``:
    within each batch, a loess fit of log-variance on log-mean gives a standardised (clipped)
    variance per gene; genes are ranked first by the number of batches in which they are among
    the top ``n_top_genes``, then by their median rank across batches. Genes that are constant
    in a batch get no variance there.

    Parameters
    ----------
    adata
        Raw counts, cells by genes.
    batch_key
        Column of ``adata.obs`` holding the batch.
    n_top_genes
        Number of genes to keep.

    Returns
    -------
    numpy.ndarray
        Boolean mask of shape ``(n_vars,)`` with ``n_top_genes`` true entries.
    """
    work = ad.AnnData(X=sp.csr_matrix(adata.X, dtype=np.float32), obs=adata.obs[[batch_key]].copy())
    work.var_names = adata.var_names
    df = sc.pp.highly_variable_genes(
        work,
        flavor="seurat_v3",
        n_top_genes=n_top_genes,
        batch_key=batch_key,
        inplace=False,
    )
    mask = df["highly_variable"].to_numpy(dtype=bool)
    assert mask.sum() == n_top_genes
    return mask


def _provenance(source: Path, old: str | None, reduction: str) -> str:
    record = json.loads(old) if old else {}
    record["qbm_pyro"] = {"source_file": source.name, "script": SCRIPT, "reduction": reduction}
    return json.dumps(record)


def _as_int_csr(x) -> sp.csr_matrix:
    x = sp.csr_matrix(x)
    if x.nnz and not np.all(x.data == np.round(x.data)):
        raise ValueError("expected integer counts")
    return sp.csr_matrix(x, dtype=np.int32)


def make_mixology(src: Path, dest: Path) -> None:
    adata = ad.read_h5ad(src / "mixology_5batch.h5ad")
    mask = select_hvgs(adata, "batch")
    out = adata[:, mask].copy()
    out.X = _as_int_csr(out.X)
    out.uns["provenance"] = _provenance(
        src / "mixology_5batch.h5ad",
        adata.uns.get("provenance"),
        f"all {adata.n_obs} cells kept; {N_TOP_GENES} of {adata.n_vars} genes kept by "
        "scanpy.pp.highly_variable_genes(flavor='seurat_v3', batch_key='batch', "
        f"n_top_genes={N_TOP_GENES}) on raw counts; X stored as int32 CSR",
    )
    out.write_h5ad(dest / "mixology_5batch.h5ad", compression="gzip")


def make_a549(src: Path, dest: Path) -> None:
    mdata = md.read_h5mu(src / "a549_scicar.h5mu")
    rna = mdata["rna"].copy()
    rna.layers["counts"] = _as_int_csr(rna.layers["counts"])
    del rna.layers["lognorm_given"]
    atac = mdata["atac"]
    keep = atac.var["frac_cells"].to_numpy() >= ATAC_MIN_FRAC_CELLS
    atac = atac[:, keep].copy()
    del atac.layers["normalized_given"]
    x = sp.csr_matrix(atac.X)
    atac.X = sp.csr_matrix((x > 0).astype(np.uint8))
    out = md.MuData({"rna": rna, "atac": atac})
    out.obs = out.obs.join(mdata.obs[["time", "time_hours"]])
    out.uns["provenance"] = _provenance(
        src / "a549_scicar.h5mu",
        mdata.uns.get("provenance"),
        f"rna: all {rna.n_vars} genes; X (log-normalised as given) and layers['counts'] (int32) "
        "kept, layers['lognorm_given'] dropped (same values as X). "
        f"atac: {int(keep.sum())} of {keep.size} peaks kept (var['frac_cells'] >= "
        f"{ATAC_MIN_FRAC_CELLS}); X binary uint8; layers['normalized_given'] dropped.",
    )
    out.write_h5mu(dest / "a549_scicar.h5mu", compression="gzip")


def make_pbmc_cite_2batch(src: Path, dest: Path) -> None:
    mdata = md.read_h5mu(src / "pbmc_cite_2batch_400.h5mu")
    rna = mdata["rna"]
    mask = select_hvgs(rna, "batch")
    rna = rna[:, mask].copy()
    rna.X = _as_int_csr(rna.X)
    out = md.MuData({"rna": rna, "prot": mdata["prot"].copy()})
    out.obs = out.obs.join(mdata.obs[["batch"]])
    out.uns["provenance"] = _provenance(
        src / "pbmc_cite_2batch_400.h5mu",
        mdata.uns.get("provenance"),
        f"rna: {N_TOP_GENES} of {mdata['rna'].n_vars} genes kept by "
        "scanpy.pp.highly_variable_genes(flavor='seurat_v3', batch_key='batch', "
        f"n_top_genes={N_TOP_GENES}) on raw counts, X stored as int32 CSR; prot unchanged",
    )
    out.write_h5mu(dest / "pbmc_cite_2batch_400.h5mu", compression="gzip")


def copy_unchanged(src: Path, dest: Path, name: str) -> None:
    path = src / name
    if name.endswith(".h5ad"):
        data = ad.read_h5ad(path)
    else:
        data = md.read_h5mu(path)
    data.uns["provenance"] = _provenance(path, data.uns.get("provenance"), "none (content unchanged)")
    if name.endswith(".h5ad"):
        data.write_h5ad(dest / name, compression="gzip")
    else:
        data.write_h5mu(dest / name, compression="gzip")


def make_pbmc_cite_1k(src: Path, dest: Path) -> None:
    mdata = md.read_h5mu(src / "pbmc_cite_1k.h5mu")
    prot = mdata["prot"]
    flag = np.asarray(prot.var_names.str.contains("control", case=False), dtype=bool)
    assert flag.sum() == 3, list(prot.var_names)
    prot.var["isotype_control"] = flag
    mdata.uns["provenance"] = _provenance(
        src / "pbmc_cite_1k.h5mu",
        mdata.uns.get("provenance"),
        "content unchanged except prot.var['isotype_control'], which was all False in the "
        "source file and now marks the 3 antibodies named '*_control_*'",
    )
    mdata.write_h5mu(dest / "pbmc_cite_1k.h5mu", compression="gzip")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("/work/shared/data"))
    parser.add_argument("--dest", type=Path, default=Path("qbm_pyro/datasets"))
    args = parser.parse_args(argv)
    args.dest.mkdir(parents=True, exist_ok=True)
    warnings.filterwarnings("ignore", category=FutureWarning)
    md.set_options(pull_on_update=False)
    make_mixology(args.source, args.dest)
    make_a549(args.source, args.dest)
    make_pbmc_cite_2batch(args.source, args.dest)
    make_pbmc_cite_1k(args.source, args.dest)
    for name in ("paul15_myeloid.h5ad", "pbmc_rna_atac_100.h5mu"):
        copy_unchanged(args.source, args.dest, name)
    total = 0
    for path in sorted(args.dest.glob("*.h5*")):
        size = path.stat().st_size
        total += size
        print(f"{path.name:32s} {size / 1e6:7.2f} MB")
    print(f"{'total':32s} {total / 1e6:7.2f} MB")


if __name__ == "__main__":
    main()
