"""Answers that used to be silently wrong (issue 22, "Silently wrong answers")."""

import itertools

import numpy as np
import pytest
import torch

import qbm_pyro.distributions as dist


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("relaxation", ["spike", "overlap"])
def test_relaxed_boltzmann_density_integrates_to_one(n, relaxation):
    """Σ over the atoms (spike: ζ_i = 0) of ∫ over the slabs of exp(log_prob) is 1.

    Gauss-Legendre on (0, 1] per slab coordinate is exact to ~1e-12 for the exponential kernels.
    The spike kernel used to add the slab's density at ζ_i = 0 to the atom's mass (1.05 here).
    """
    gen = torch.Generator().manual_seed(n)
    h = torch.randn(n, dtype=torch.float64, generator=gen)
    J = torch.triu(torch.randn(n, n, dtype=torch.float64, generator=gen), 1)
    prior = dist.RelaxedBoltzmann(dist.Boltzmann(h, J), relaxation, 5.0)
    nodes, weights = np.polynomial.legendre.leggauss(30)
    slab, slab_w = torch.tensor((nodes + 1) / 2), torch.tensor(weights / 2)
    atom, atom_w = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    pieces = [(atom, atom_w), (slab, slab_w)] if relaxation == "spike" else [(slab, slab_w)]
    total = 0.0
    for choice in itertools.product(pieces, repeat=n):
        grid = torch.stack(torch.meshgrid(*[c[0] for c in choice], indexing="ij"), -1).reshape(-1, n)
        w = torch.stack(torch.meshgrid(*[c[1] for c in choice], indexing="ij"), -1).reshape(-1, n).prod(-1)
        total += float((prior.log_prob(grid).exp() * w).sum())
    assert total == pytest.approx(1.0, abs=1e-9)


def test_spike_atom_mass_is_the_probability_of_the_zero_code():
    """P(ζ = 0) under the spike kernel is P(z = 0): the log density at ζ = 0 is log p(z = 0)."""
    h = torch.tensor([0.3, -0.7], dtype=torch.float64)
    J = torch.tensor([[0.0, 0.5], [0.0, 0.0]], dtype=torch.float64)
    base = dist.Boltzmann(h, J)
    prior = dist.RelaxedBoltzmann(base, "spike", 5.0)
    zero = torch.zeros(1, 2, dtype=torch.float64)
    assert torch.allclose(prior.log_prob(zero), base.log_prob(zero))
