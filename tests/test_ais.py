import math

import pytest
import torch
from conftest import random_machine

from qbm_pyro.samplers.ais import ais_log_partition, bridge_log_partition
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


@pytest.mark.parametrize("n_steps", [0, 20])
def test_continuing_an_ais_run_gives_a_nearby_machines_log_z(n_steps):
    """The last run's chains carried to a moved machine (reweighted only, or along a 20-sweep
    bridge): its exact log Z, where the run's own value (what a stale cache holds) is off by
    more than ten times the tolerance; the bridge keeps more of the run's effective samples."""
    h, J = random_machine(16, seed=5)
    run = ais_log_partition(h, J, n_chains=256, n_steps=400, seed=0)
    g = torch.Generator().manual_seed(1)
    h2 = h + 0.1 + 0.2 * torch.randn(16, generator=g, dtype=h.dtype)
    J2 = J + torch.triu(0.05 * torch.randn(16, 16, generator=g, dtype=J.dtype), 1)
    exact = float(exact_log_partition(h2, J2))
    assert abs(run.log_z - exact) > 0.5  # the stale value
    moved = bridge_log_partition(run, (h, J), h2, J2, n_steps=n_steps)
    assert abs(moved.log_z - exact) < 0.05
    assert (moved.ess > 0.95 * run.ess) if n_steps else (10 < moved.ess < run.ess)
    again = bridge_log_partition(moved, (h2, J2), h, J, n_steps=n_steps)  # and back: a chain of bridges
    assert abs(again.log_z - float(exact_log_partition(h, J))) < 0.05
    same = bridge_log_partition(run, (h, J), h, J, n_steps=0)
    assert same.log_z == pytest.approx(run.log_z, abs=1e-9) and same.ess == pytest.approx(run.ess)


def test_a_bridge_keeps_far_moves_accurate_where_reweighting_degenerates():
    h, J = random_machine(16, seed=6)
    run = ais_log_partition(h, J, n_chains=256, n_steps=400, seed=0)
    h2, J2 = -h, J + torch.triu(0.3 * torch.ones(16, 16, dtype=J.dtype), 1)  # a different machine
    exact = float(exact_log_partition(h2, J2))
    reweighted = bridge_log_partition(run, (h, J), h2, J2, n_steps=0)
    bridged = bridge_log_partition(run, (h, J), h2, J2, n_steps=200)
    assert reweighted.ess < 0.05 * run.ess
    assert bridged.ess > 0.3 * run.ess and abs(bridged.log_z - exact) < 0.1


def test_continuing_refuses_what_it_cannot_use():
    h, J = random_machine(8, seed=0)
    run = ais_log_partition(h, J, n_chains=16, n_steps=20)
    with pytest.raises(ValueError, match="does not match"):
        bridge_log_partition(run, (h, J), torch.zeros(9), torch.zeros(9, 9))
    with pytest.raises(ValueError, match="no final states"):
        bridge_log_partition(run._replace(states=None), (h, J), h, J)
