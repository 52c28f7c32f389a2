import math

import pytest
import torch
from conftest import random_machine

from qbm_pyro.samplers.ais import ais_log_partition, reweight_log_partition
from qbm_pyro.samplers.exact import exact_log_partition


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ais_matches_exact_at_n16(seed):
    h, J = random_machine(16, seed=seed)
    result = ais_log_partition(h, J, seed=seed)
    exact = float(exact_log_partition(h, J))
    assert abs(result.log_z - exact) < 0.05
    assert 0 < result.stderr < 0.05
    assert result.ess > 10


def test_ais_at_other_beta_and_trivial_machine():
    h, J = random_machine(10, seed=4)
    result = ais_log_partition(h, J, beta=0.5, seed=0)
    assert abs(result.log_z - float(exact_log_partition(h, J, beta=0.5))) < 0.05
    zero = ais_log_partition(torch.zeros(12), torch.zeros(12, 12))
    assert zero.log_z == pytest.approx(12 * math.log(2.0), abs=1e-9)


def test_reweighting_an_ais_run_gives_a_nearby_machines_log_z():
    """The last run's chains reweighted to a moved machine: its exact log Z, where the run's own
    value (what a stale cache holds) is off by more than ten times the tolerance."""
    h, J = random_machine(16, seed=5)
    run = ais_log_partition(h, J, n_chains=256, n_steps=400, seed=0)
    g = torch.Generator().manual_seed(1)
    h2 = h + 0.1 + 0.2 * torch.randn(16, generator=g, dtype=h.dtype)
    J2 = J + torch.triu(0.05 * torch.randn(16, 16, generator=g, dtype=J.dtype), 1)
    exact = float(exact_log_partition(h2, J2))
    assert abs(run.log_z - exact) > 0.5  # the stale value
    moved = reweight_log_partition(run, (h, J), h2, J2)
    assert abs(moved.log_z - exact) < 0.05
    assert 10 < moved.ess < run.ess  # the weights spread as the machines drift apart
    same = reweight_log_partition(run, (h, J), h, J)
    assert same.log_z == pytest.approx(run.log_z, abs=1e-9) and same.ess == pytest.approx(run.ess)


def test_reweighting_refuses_what_it_cannot_use():
    h, J = random_machine(8, seed=0)
    run = ais_log_partition(h, J, n_chains=16, n_steps=20)
    with pytest.raises(ValueError, match="does not match"):
        reweight_log_partition(run, (h, J), torch.zeros(9), torch.zeros(9, 9))
    with pytest.raises(ValueError, match="no final states"):
        reweight_log_partition(run._replace(states=None), (h, J), h, J)
