"""A trajectory on the discrete latent: sci-CAR A549 cells after 0, 1 and 3 h of dexamethasone.

    python examples/trajectory.py [--quick] [--epochs 100] [--out trajectory.png]

Fits a QBM-VAE on RNA (raw counts in ``layers["counts"]``) + ATAC, runs
``qbm_pyro.tl.trajectory`` from the 0 h cells, compares the pseudotime with the known time
(Spearman), and plots the states graph and the prior energy along pseudotime.
"""

from __future__ import annotations

import argparse
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

import qbm_pyro  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny settings (seconds)")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--out", default=None, help="save the figure there")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=FutureWarning)

    mdata = qbm_pyro.datasets.a549_scicar()
    if args.quick:  # 300 cells, the 2,000 most accessible peaks
        cells = np.random.default_rng(0).choice(mdata.n_obs, 300, replace=False)
        top = np.argsort(-mdata["atac"].var["frac_cells"].to_numpy())[:2000]
        mdata = mdata[np.sort(cells)].copy()
        mdata.mod["atac"] = mdata["atac"][:, np.sort(top)].copy()
        mdata.update()
    size = dict(n_latent=8, n_continuous=4) if args.quick else dict(n_latent=32, n_continuous=8)
    qbm_pyro.tl.qbm(
        mdata,
        layers={"rna": "counts"},
        max_epochs=2 if args.quick else args.epochs,
        progress_bar=False,
        **size,
    )
    qbm_pyro.tl.trajectory(mdata, root_key="time", root_value="0h", n_neighbors=15)
    rho = spearmanr(mdata.obs["qbm_pseudotime"], mdata.obs["time_hours"], nan_policy="omit")[0]
    print(f"{mdata.n_obs} cells; Spearman(pseudotime, time) = {rho:.2f}")
    print(qbm_pyro.tl.energy_along_pseudotime(mdata))

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    qbm_pyro.pl.state_graph(mdata, ax=axes[0])
    qbm_pyro.pl.pseudotime_energy(mdata, ax=axes[1])
    if args.out:
        fig.savefig(args.out, dpi=120, bbox_inches="tight")
        print(f"wrote {args.out}")
    plt.close(fig)


if __name__ == "__main__":
    main()
