"""A Pyro model written from scratch with a Boltzmann-machine prior (``dist.Boltzmann``).

    python examples/custom_pyro_model.py [--quick]

Two models on synthetic binary data:

1. A fully visible Boltzmann machine fitted by maximum likelihood: ``pyro.sample("x",
   dist.Boltzmann(h, J), obs=x)`` with an empty guide. Its gradient is the data term minus the
   model term, ``z_i z_j - E_p[z_i z_j]``; for n > ``exact_max_n`` the model term comes from
   the persistent chains of the attached sampler.
2. A discrete VAE (DVAE++): a binary latent ``z ~ Boltzmann(h, J)``, a decoder
   ``x ~ Bernoulli(σ(W ζ + b))`` of the relaxed code ζ, and an encoder
   ``ζ ~ OverlappingExponentials(logits(x))``. ``TraceMeanField_ELBO`` uses the analytic KL
   that qbm_pyro registers for ``Independent(<factorial binary>) ‖ Boltzmann``.
"""

from __future__ import annotations

import argparse

import pyro
import torch
from pyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO
from pyro.optim import Adam
from torch import nn

import qbm_pyro.distributions as dist
from qbm_pyro.samplers import GibbsSampler
from qbm_pyro.samplers.exact import exact_log_probs


def synthetic_machine(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    h = 0.5 * torch.randn(n, generator=g)
    J = torch.triu(torch.randn(n, n, generator=g), 1)
    return h, J


################################################################################
# 1. A fully visible Boltzmann machine.
################################################################################


def fit_visible(x: torch.Tensor, steps: int, *, exact_max_n: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = x.shape[1]
    sampler = GibbsSampler(num_sweeps=5, burn_in=50, seed=0)  # persistent chains (PCD)

    def model(x):
        h = pyro.param("h", torch.zeros(n))
        J = pyro.param("J", torch.zeros(n, n))
        # log_z is only the reported value of log Z above exact_max_n (AIS on demand otherwise);
        # its gradient always comes from the sampler's chains.
        prior = dist.Boltzmann(h, J, sampler=sampler, exact_max_n=exact_max_n, log_z=0.0, num_samples=256)
        with pyro.plate("cells", x.shape[0], subsample_size=256) as idx:  # minibatches of 256
            pyro.sample("x", prior, obs=x[idx])

    def guide(x):
        pass

    pyro.clear_param_store()
    svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO())
    for _ in range(steps):
        svi.step(x)
    return pyro.param("h").detach(), torch.triu(pyro.param("J").detach(), 1)


################################################################################
# 2. A discrete VAE with a Boltzmann prior.
################################################################################


class DVAE(nn.Module):
    def __init__(self, n_obs: int, n_latent: int):
        super().__init__()
        self.n_latent = n_latent
        self.encoder = nn.Sequential(nn.Linear(n_obs, 64), nn.ReLU(), nn.Linear(64, n_latent))
        self.decoder = nn.Linear(n_latent, n_obs)
        self.h = nn.Parameter(torch.zeros(n_latent))
        self.J = nn.Parameter(torch.zeros(n_latent, n_latent))

    def model(self, x):
        pyro.module("dvae", self)
        prior = dist.Boltzmann(self.h, torch.triu(self.J, 1), relaxed=True)  # scores relaxed ζ
        with pyro.plate("cells", x.shape[0]):
            zeta = pyro.sample("z", prior)  # the guide's relaxed ζ ∈ [0, 1]^n is replayed here
            pyro.sample("x", dist.Bernoulli(logits=self.decoder(zeta)).to_event(1), obs=x)

    def guide(self, x):
        pyro.module("dvae", self)
        with pyro.plate("cells", x.shape[0]):
            logits = self.encoder(x)
            pyro.sample("z", dist.OverlappingExponentials(logits, beta=5.0).to_event(1))


def fit_dvae(x: torch.Tensor, n_latent: int, epochs: int) -> list[float]:
    pyro.clear_param_store()
    torch.manual_seed(0)
    vae = DVAE(x.shape[1], n_latent)
    svi = SVI(vae.model, vae.guide, Adam({"lr": 3e-3}), TraceMeanField_ELBO())
    losses = []
    for _ in range(epochs):
        total = sum(svi.step(batch) for batch in x.split(128))
        losses.append(total / x.shape[0])
    return losses


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny settings (seconds)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    pyro.set_rng_seed(0)

    n = 8
    h_true, J_true = synthetic_machine(n)
    x = dist.Boltzmann(h_true, J_true).sample((2000 if args.quick else 20000,))  # exact draws
    p_true = exact_log_probs(h_true, J_true).exp()
    print("1. fully visible Boltzmann machine, maximum likelihood")
    for label, exact_max_n in (("exact log Z", 20), ("sampled (PCD)", 0)):
        h, J = fit_visible(x, 40 if args.quick else 600, exact_max_n=exact_max_n)
        tv = 0.5 * float((exact_log_probs(h, J).exp() - p_true).abs().sum())
        print(
            f"   {label:>14}: TV(fitted, true) = {tv:.3f}, |J - J_true|_max = {(J - J_true).abs().max():.2f}"
        )

    print("2. discrete VAE with a learned Boltzmann prior")
    n_obs, n_latent = 40, 6
    z = dist.Boltzmann(*synthetic_machine(n_latent, seed=1)).sample((500 if args.quick else 10000,))
    W = torch.randn(n_latent, n_obs, generator=torch.Generator().manual_seed(2)) * 3
    data = torch.bernoulli(torch.sigmoid(z @ W - 1.5))
    losses = fit_dvae(data, n_latent, 3 if args.quick else 50)
    print(f"   negative ELBO per cell: {losses[0]:.2f} -> {losses[-1]:.2f}")


if __name__ == "__main__":
    main()
