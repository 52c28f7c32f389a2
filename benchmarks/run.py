"""Run the sampler benchmark; write ``benchmarks/results/samplers.{json,md}``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # `benchmarks` importable when run as a script

import torch  # noqa: E402

from benchmarks import samplers  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--seed", type=int, default=samplers.SEED)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: dwave-samplers SA is single-threaded, and "
        "small per-site ops slow down badly when torch's thread pool competes for cores)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = samplers.run(seed=args.seed, log=lambda line: print(line, flush=True))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "samplers.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "samplers.md").write_text(samplers.markdown(result))
    print(samplers.markdown(result))


if __name__ == "__main__":
    main()
