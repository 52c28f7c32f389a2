"""GPU throughput of QBM-VAE against scvi-tools on the same GPU (issue 13).

Runs wherever CUDA is available and skips cleanly (a message, exit status 0, nothing written)
elsewhere. For each data shape of :data:`benchmarks.throughput.SHAPES`, QBM-VAE
(``accelerator="cuda"``) and its scvi-tools anchor (``accelerator="gpu"``) train for the same
epochs and batch size; cells per second and their ratio go to ``benchmarks/results/gpu.json``.

``python benchmarks/gpu.py [--epochs 5] [--protein-cells 100000]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

OUT = HERE / "results" / "gpu.json"


def _fit(method: str, shape: str, epochs: int, protein_cells: int) -> dict:
    import torch

    from benchmarks import quality
    from benchmarks.throughput import load

    data, batch_key, kwargs = load(shape, protein_cells)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    if method in ("scvi", "totalvi"):
        from benchmarks import baselines

        model = baselines.scvi_tools_model(method, data, batch_key)
        start = time.perf_counter()
        model.train(
            max_epochs=epochs, accelerator="gpu", devices=1, enable_progress_bar=False, early_stopping=False
        )
        n_train = int(round(0.9 * data.n_obs))
    else:
        import qbm_pyro

        model = qbm_pyro.QBMVAE(
            data, batch_key=batch_key, seed=0, accelerator="cuda", **kwargs, **quality.METHODS["qbm"]
        )
        start = time.perf_counter()
        model.train(max_epochs=epochs, early_stopping=False, progress_bar=False, validation_fraction=0.1)
        n_train = int(data.n_obs - round(0.1 * data.n_obs))
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {
        "shape": shape,
        "method": method,
        "epochs": epochs,
        "seconds": seconds,
        "cells_per_second": n_train * epochs / seconds,
        "peak_gpu_memory_mb": torch.cuda.max_memory_allocated() / 2**20,
    }


def run(epochs: int = 5, protein_cells: int = 100_000, log=print) -> dict | None:
    """The GPU rows, or ``None`` (after a message) when CUDA is not available."""
    import torch

    from benchmarks.throughput import SHAPES

    if not torch.cuda.is_available():
        log("no CUDA device here: benchmarks/gpu.py skipped")
        return None
    out = {"device": torch.cuda.get_device_name(0), "epochs": epochs, "shapes": {}}
    for shape, anchor in SHAPES.items():
        rows = {m: _fit(m, shape, epochs, protein_cells) for m in (anchor, "qbm")}
        ratio = rows["qbm"]["cells_per_second"] / rows[anchor]["cells_per_second"]
        out["shapes"][shape] = {"anchor": anchor, "rows": rows, "throughput_vs_anchor": ratio}
        log(f"{shape}: qbm / {anchor} = {ratio:.2f}x cells/s")
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--protein-cells", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    result = run(args.epochs, args.protein_cells)
    if result is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
