import math

import pytest
import torch
from conftest import random_machine

from qbm_pyro.samplers.ais import ais_log_partition
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
