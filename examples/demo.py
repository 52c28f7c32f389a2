"""Placeholder demo: draw samples with the dimod backend and report TV to the exact distribution.

To be replaced by the end-to-end demo.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from qbm_pyro.samplers.dimod import DimodSampler
from qbm_pyro.samplers.exact import exact_log_probs, state_index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("report"))
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    h, J = torch.randn(8, generator=generator), 0.5 * torch.randn(8, 8, generator=generator)
    samples = DimodSampler(num_sweeps=50, seed=0).sample(h, J, 20_000)
    probs = exact_log_probs(h.double(), J.double()).exp()
    counts = torch.bincount(state_index(samples), minlength=probs.shape[0]).double()
    tv = 0.5 * (counts / samples.shape[0] - probs).abs().sum().item()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "demo.json").write_text(json.dumps({"tv_sa_vs_exact_n8": tv}, indent=2) + "\n")
    print(f"TV(simulated annealing ending at beta=1, exact) at n=8, 20,000 samples: {tv:.4f}")


if __name__ == "__main__":
    main()
