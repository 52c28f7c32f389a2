"""Experiment: a two-group hierarchical (conditional) binary posterior, DVAE++-style, on paul15.

DESIGN §7 asks whether a posterior that can express correlations between binary units lets the
learned Boltzmann couplings matter (with a factorial posterior a fixed Bernoulli(½) prior does as
well). Here the 64 binary units are split in two groups: ``q(z1 | x)`` factorial, ``q(z2 | x, ζ1)``
factorial with logits ``a(x) + W ζ1`` where ``ζ1`` is the relaxed sample of the first group. The KL
is estimated with that one sample,

.. math::
    KL ≈ -H(q_1) - H(q_2(\\cdot \\mid ζ_1)) + E([ζ_1, q_2(ζ_1)]) + \\log Z ,

and the embedding uses ``q2`` at ``ζ1 = q1``. Everything else (networks, hybrid 16 Gaussian units,
training) is the default QBM-VAE. Not part of the library: it did not help (see
``benchmarks/results/hierarchical_posterior.json`` and BENCHMARKS.md).

Usage: ``python benchmarks/hierarchical_posterior.py [--priors boltzmann bernoulli] [--seeds 0 1 2]
[--epochs 100]``
"""

from __future__ import annotations

import argparse
import json
import sys
import types
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # `benchmarks` importable when run as a script

import pyro  # noqa: E402
import pyro.distributions as pdist  # noqa: E402
import torch  # noqa: E402
from pyro.distributions.torch_distribution import TorchDistribution  # noqa: E402
from torch.distributions import constraints, register_kl  # noqa: E402
from torch.nn.functional import logsigmoid  # noqa: E402

import qbm_pyro  # noqa: E402
from benchmarks import quality  # noqa: E402
from benchmarks.environment import run_meta  # noqa: E402
from qbm_pyro.data import REGISTRY_KEYS as K  # noqa: E402
from qbm_pyro.distributions import Boltzmann, OverlappingExponentials  # noqa: E402

warnings.filterwarnings("ignore")
OUT = HERE / "results" / "hierarchical_posterior.json"


class HierarchicalSample(TorchDistribution):
    """The guide's two-group relaxed sample ``[ζ1, ζ2]`` with the logits it was drawn from."""

    arg_constraints = {}
    support = constraints.unit_interval
    has_rsample = True

    def __init__(self, zeta: torch.Tensor, logits1: torch.Tensor, logits2: torch.Tensor):
        self.zeta, self.logits1, self.logits2 = zeta, logits1, logits2
        super().__init__(zeta.shape[:-1], zeta.shape[-1:], validate_args=False)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return self.zeta

    def expand(self, batch_shape, _instance=None):
        return self


def _neg_entropy(logits: torch.Tensor) -> torch.Tensor:
    q = torch.sigmoid(logits)
    return (q * logsigmoid(logits) + (1 - q) * logsigmoid(-logits)).sum(-1)


@register_kl(HierarchicalSample, Boltzmann)
def _kl_hierarchical_boltzmann(q: HierarchicalSample, p: Boltzmann) -> torch.Tensor:
    g = q.logits1.shape[-1]
    state = torch.cat([q.zeta[..., :g], torch.sigmoid(q.logits2)], -1)
    return _neg_entropy(q.logits1) + _neg_entropy(q.logits2) + p.energy(state) + p.log_partition_surrogate


def make_hierarchical(module) -> None:
    """Give a :class:`~qbm_pyro.module.MultiVAE` the two-group conditional binary posterior."""
    g = module.n_binary // 2
    module.cond = torch.nn.Linear(g, module.n_binary - g)
    torch.nn.init.zeros_(module.cond.weight)
    torch.nn.init.zeros_(module.cond.bias)
    base_encode = module.encode

    def encode(self, batch):  # deterministic path (embeddings): ζ1 := q1
        post = dict(base_encode(batch))
        l1 = post["logits"][:, :g]
        post["logits"] = torch.cat([l1, post["logits"][:, g:] + self.cond(torch.sigmoid(l1))], -1)
        return post

    def guide(self, batch):
        pyro.module("qbm_vae", self)
        post = base_encode(batch)
        with pyro.plate("cells", batch[K.BATCH_KEY].shape[0]):
            l1 = post["logits"][:, :g]
            z1 = OverlappingExponentials(l1, self.smoothing).rsample()
            l2 = post["logits"][:, g:] + self.cond(z1)
            z2 = OverlappingExponentials(l2, self.smoothing).rsample()
            pyro.sample("z", HierarchicalSample(torch.cat([z1, z2], -1), l1, l2))
            if self.n_continuous:
                pyro.sample("c", pdist.Normal(post["loc"], post["scale"]).to_event(1))

    module.encode = types.MethodType(encode, module)
    module.guide = types.MethodType(guide, module)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--priors", nargs="+", default=["boltzmann", "bernoulli"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data, label, _, _ = quality.load("paul15")
    rows = []
    for prior in args.priors:
        for seed in args.seeds:
            model = qbm_pyro.QBMVAE(data, seed=seed, prior=prior, n_latent=64, n_continuous=16)
            make_hierarchical(model.module)
            history = model.train(max_epochs=args.epochs, progress_bar=False)
            scores = quality.score(model.get_latent_representation(), data, label, None, seed)
            row = {"dataset": "paul15", "method": f"hierarchical_{prior}", "seed": seed, **scores}
            row |= {"epochs_run": len(history["epoch"]), "validation_loss": history["validation_loss"][-1]}
            shown = {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
            print(json.dumps(shown), flush=True)
            rows.append(row)
    meta = run_meta("pyro-ppl", torch_threads=1, epochs=args.epochs, seeds=args.seeds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
