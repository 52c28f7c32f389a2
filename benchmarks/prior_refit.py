"""The prior's last fit on saved fits: what ``Trainer.refit_prior`` changes, before against after.

Each saved QBM-VAE (trained before the refit existed, so its prior is the last training iterate)
is loaded; its Boltzmann prior is then fitted to the aggregate posterior of its training cells with
``BoltzmannPrior.fit_moments`` at the defaults training now uses (2,000 steps), the encoder and
decoder untouched. Before and after: held-out log p(x) (the model's validation cells, 1,000
importance samples, log Z by AIS with 512 chains x 1,000 steps), the largest gap between the
prior's marginals and the aggregate posterior's (long tempering reference), and the prior's basins
(tempering draws descended to their minima) against the cells' (posterior-mode codes descended):
the total variation between the two weightings and the basins of weight >= 2 %; and generated
cells against held-out cells: the type proportions' total variation and the C2ST accuracy (as in
``prior_matters.py``).

Usage: ``python benchmarks/prior_refit.py --fits DIR [--datasets paul15 mixology a549] [--seeds 0 1 2]
[--out benchmarks/results/prior_refit.json]``; ``DIR/<set>/seed<k>`` as ``quality.py --reuse`` reads.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` importable as a script

import numpy as np  # noqa: E402
import torch  # noqa: E402

import qbm_pyro  # noqa: E402
from benchmarks.prior_levers import _descend  # noqa: E402
from benchmarks.prior_matters import generation_scores  # noqa: E402
from benchmarks.quality import load  # noqa: E402
from qbm_pyro.samplers import ParallelTemperingSampler  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "prior_refit.json"
AIS = dict(n_chains=512, n_steps=1000, seed=0)
N_IS = 1000


def measure(model, data, label_key, probs: np.ndarray, mean: torch.Tensor, seed: int) -> dict:
    prior = model.module.prior
    n = prior.n_latent
    h, J = prior.sampling_machine()
    with torch.no_grad():
        reference = ParallelTemperingSampler(
            n_replicas=16, beta_min=0.05, num_sweeps=5, burn_in=1000, seed=seed
        )
        draws = reference.sample(h, J, 2000)[:, :n]
        prior_minima = _descend(prior, draws).numpy().astype(np.uint8)
        cell_minima = _descend(prior, torch.as_tensor(probs > 0.5, dtype=h.dtype)).numpy().astype(np.uint8)
    cells, draws_at = Counter(c.tobytes() for c in cell_minima), Counter(c.tobytes() for c in prior_minima)
    tv = 0.5 * sum(
        abs(cells[k] / len(cell_minima) - draws_at[k] / len(prior_minima)) for k in set(cells) | set(draws_at)
    )
    prior.refresh_log_z(**AIS)
    ll = model.get_marginal_ll(indices=model.validation_indices_, n_samples=N_IS, seed=seed)
    return generation_scores(model, data, label_key, seed) | {
        "heldout_log_px": float(ll),
        "mean_gap": float((draws.double().mean(0) - mean).abs().max()),
        "basin_weight_tv": float(tv),
        "n_basins": int(sum(1 for v in draws_at.values() if v / len(prior_minima) >= 0.02)),
        "basin_weights": sorted((v / len(prior_minima) for v in draws_at.values()), reverse=True)[:8],
        "cell_basin_weights": sorted((v / len(cell_minima) for v in cells.values()), reverse=True)[:8],
    }


def run(fits: Path, dataset: str, seed: int) -> dict:
    data, label_key, _, _ = load(dataset)
    model = qbm_pyro.QBMVAE.load(fits / dataset / f"seed{seed}", data)
    probs = model.get_latent_representation(representation="probs").astype(np.float64)
    train = np.setdiff1d(np.arange(len(probs)), np.asarray(model.validation_indices_))
    model.train_indices_ = train  # (what generation_scores fits its PCA on)
    q = torch.as_tensor(probs[train])
    mean, second = q.mean(0), q.T @ q / len(q)  # fit_moments reads the strict upper triangle
    before = measure(model, data, label_key, probs, mean, seed)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gaps = model.module.prior.fit_moments(mean, second)
    seconds = time.perf_counter() - start
    after = measure(model, data, label_key, probs, mean, seed)
    return {
        "dataset": dataset,
        "seed": seed,
        "before": before,
        "after": after,
        "fit": gaps,
        "fit_seconds": seconds,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fits", type=Path, required=True)
    parser.add_argument("--datasets", nargs="+", default=["paul15", "mixology", "a549"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--note", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    study = json.loads(args.out.read_text()) if args.out.exists() else {"rows": [], "meta": {}}
    for dataset in args.datasets:
        for seed in args.seeds:
            row = run(args.fits, dataset, seed)
            study["rows"] = [r for r in study["rows"] if (r["dataset"], r["seed"]) != (dataset, seed)] + [row]
            if args.note:
                study["meta"]["note"] = args.note
            args.out.write_text(json.dumps(study, indent=1))
            print(json.dumps(row), flush=True)


def report_section(results: Path) -> list[str]:
    """Markdown lines of the prior-refit section of ``BENCHMARKS.md`` (empty without results)."""
    from benchmarks.tables import mean_sd

    path = Path(results) / "prior_refit.json"
    if not path.exists():
        return []
    study = json.loads(path.read_text())
    rows, meta = study["rows"], study.get("meta", {})
    out = [
        "## The prior's last fit (benchmarks/prior_refit.py)",
        "",
        "Saved default fits (their prior: the last training iterate), before and after "
        "`BoltzmannPrior.fit_moments` at the training defaults (2,000 steps on the training cells' "
        "aggregate posterior; encoder and decoder untouched, so every latent metric is unchanged). "
        "Held-out log p(x): the validation cells, 1,000 importance samples, AIS log Z (512 x 1,000); "
        "marginal gap: largest |E_p[z_i] - E_q[z_i]|; basin TV: the prior's basin weights against "
        "the cells' (posterior-mode codes descended); generated cells (as many as held-out cells) "
        "against held-out cells: the type proportions' total variation and the C2ST accuracy (as in "
        "`prior_matters.py`). Mean ± sd over seeds (n)." + (f" {meta['note']}" if meta.get("note") else ""),
        "",
        "| data set | n | log p(x) after − before (nats/cell) | marginal gap before / after "
        "| basin TV before / after | basins ≥ 2 % before / after "
        "| generated cells' type TV before / after | C2ST before / after | fit seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == dataset]

        def pair(key, mine=mine):
            return f"{mean_sd([r['before'][key] for r in mine])} / {mean_sd([r['after'][key] for r in mine])}"

        gain = mean_sd([r["after"]["heldout_log_px"] - r["before"]["heldout_log_px"] for r in mine])
        out.append(
            f"| {dataset} | {len(mine)} | {gain} | {pair('mean_gap')} | {pair('basin_weight_tv')} "
            f"| {pair('n_basins')} | {pair('generated_type_tv')} | {pair('generated_c2st')} "
            f"| {mean_sd([r['fit_seconds'] for r in mine])} |"
        )
    return out + [""]


if __name__ == "__main__":
    main()
