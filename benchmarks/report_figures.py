"""The figures of ``BENCHMARKS.md`` (bar charts of the tables, cost scaling) and their links."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from benchmarks.methods import METHOD_NAMES
from benchmarks.report_tables import _order


def bar_figure(summary: dict, metrics: list[str], path: Path, title: str) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = [d for d in summary if any(m in s for s in summary[d].values() for m in metrics)]
    if not datasets:
        return False
    metrics = [m for m in metrics if any(m in s for d in datasets for s in summary[d].values())]
    fig, axes = plt.subplots(
        len(datasets), 1, figsize=(max(8, 1.4 * len(metrics) + 2), 3.2 * len(datasets)), squeeze=False
    )
    for ax, dataset in zip(axes[:, 0], datasets, strict=True):
        methods = _order(summary[dataset])
        width = 0.8 / max(1, len(methods))
        for i, method in enumerate(methods):
            stats = summary[dataset][method]
            means = [stats[m][0] if m in stats else np.nan for m in metrics]
            sds = [stats[m][1] if m in stats else 0 for m in metrics]
            x = np.arange(len(metrics)) + (i - (len(methods) - 1) / 2) * width
            ax.bar(x, means, width, yerr=sds, capsize=2, label=METHOD_NAMES.get(method, method))
        ax.set_xticks(np.arange(len(metrics)), metrics, rotation=20, ha="right", fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{dataset}", fontsize=10)
        ax.legend(fontsize=7, ncol=4, loc="lower left")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def scaling_figure(cost: dict, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = (cost or {}).get("scaling", {}).get("rows", [])
    prior = (cost or {}).get("prior", {}).get("rows", [])
    if not rows and not prior:
        return False
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    if rows:
        n = [r["n_cells"] for r in rows]
        axes[0].loglog(
            n, [r["seconds_per_epoch_extrapolated"] for r in rows], "o-", label="s / epoch (extrap.)"
        )
        axes[0].loglog(n, [r["setup_seconds"] for r in rows], "s--", label="setup s (validation scan)")
        axes[0].set_xlabel("cells")
        axes[0].set_ylabel("seconds")
        axes[0].legend(fontsize=8)
        axes[0].set_title("QBM-VAE time vs cells (backed h5ad)")
        axes[1].semilogx(n, [r["peak_rss_mb"] for r in rows], "o-", label="peak RSS")
        axes[1].semilogx(n, [r["rss_after_open_mb"] for r in rows], "s--", label="after opening (backed)")
        axes[1].semilogx(n, [r["rss_after_setup_mb"] for r in rows], "^:", label="after setup")
        axes[1].set_xlabel("cells")
        axes[1].set_ylabel("MB")
        axes[1].set_ylim(bottom=0)
        axes[1].legend(fontsize=8)
        axes[1].set_title("memory vs cells")
    if prior:
        k = [r["n_latent"] for r in prior]
        axes[2].plot(k, [r["sampler_seconds_per_step"] * 1e3 for r in prior], "o-", label="prior sampler")
        axes[2].plot(k, [r["rest_seconds_per_step"] * 1e3 for r in prior], "s-", label="rest of the step")
        axes[2].set_xscale("log", base=2)
        axes[2].set_xlabel("binary latent units")
        axes[2].set_ylabel("ms per step")
        axes[2].legend(fontsize=8)
        axes[2].set_title("prior share of a training step")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _figure(alt: str, path: Path, out_dir: Path, figures: list[Path]) -> list[str]:
    """Record a written figure and return the markdown lines that link it."""
    figures.append(path)
    return [f"![{alt}]({_rel(path, out_dir)})", ""]


def _rel(path: Path, out_dir: Path) -> str:
    return os.path.relpath(path.resolve(), out_dir.resolve())
