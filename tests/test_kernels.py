"""One kernel contract for the sequential Gibbs sweep: the numba kernel (CPU) and the torch one (any
device, run here on CPU) draw the same thresholds and give the same chains, and both sample the
exact distribution."""

import numpy as np
import pytest
import torch
from conftest import random_machine, total_variation

from qbm_pyro.energy import symmetric_couplings
from qbm_pyro.samplers import ExactSampler
from qbm_pyro.samplers._kernels import sequential_sweep_numba, sequential_sweep_torch, sweep_thresholds

KERNELS = {"numba": sequential_sweep_numba, "torch": sequential_sweep_torch}


def _run(kernel, h, J, shape, beta, sweeps, seed, dtype=torch.float32):
    h, Jt = h.to(dtype), symmetric_couplings(J).to(dtype)
    generator = torch.Generator().manual_seed(seed)
    z = (torch.rand(shape, generator=generator) < 0.5).to(dtype)
    field = (h + z @ Jt).contiguous()
    for _ in range(sweeps):
        kernel(z, field, Jt, beta, sweep_thresholds(z.shape, z.dtype, generator))
    return z, field


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("shape", "beta"),
    [((64, 10), 1.0), ((3, 40, 10), torch.tensor([0.2, 0.5, 1.0], dtype=torch.float64).view(3, 1, 1))],
)
def test_numba_and_torch_kernels_give_the_same_chains(shape, beta, dtype):
    h, J = random_machine(10, seed=2, j_scale=1.0)
    za, fa = _run(sequential_sweep_numba, h, J, shape, beta, 30, seed=5, dtype=dtype)
    zb, fb = _run(sequential_sweep_torch, h, J, shape, beta, 30, seed=5, dtype=dtype)
    assert torch.equal(za, zb)
    assert torch.equal(fa, fb)
    # and the chains moved: the contract is not met by two kernels that do nothing
    z0, _ = _run(sequential_sweep_numba, h, J, shape, beta, 0, seed=5, dtype=dtype)
    assert not torch.equal(za, z0)


def test_thresholds_are_one_seeded_stream():
    a = sweep_thresholds((4, 5), torch.float32, torch.Generator().manual_seed(1))
    b = sweep_thresholds((4, 5), torch.float32, torch.Generator().manual_seed(1))
    c = sweep_thresholds((4, 5), torch.float32, torch.Generator().manual_seed(2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.dtype == np.float32


@pytest.mark.parametrize("name", list(KERNELS))
def test_each_kernel_samples_the_exact_distribution(name):
    h, J = random_machine(8, seed=3)
    z, _ = _run(KERNELS[name], h, J, (20_000, 8), 1.0, 60, seed=0, dtype=torch.float64)
    floor = total_variation(ExactSampler(seed=1).sample(h, J, 20_000), h, J)
    assert total_variation(z, h, J) <= floor + 0.02


@pytest.mark.parametrize("name", list(KERNELS))
def test_each_kernel_samples_per_replica_temperatures(name):
    """One β per leading index: each replica samples its own tempered distribution."""
    from qbm_pyro.samplers.exact import exact_moments

    h, J = random_machine(6, seed=4, j_scale=1.0)
    betas = torch.tensor([0.3, 1.0], dtype=torch.float64)
    z, _ = _run(KERNELS[name], h, J, (2, 20_000, 6), betas.view(2, 1, 1), 40, seed=0, dtype=torch.float64)
    for k, beta in enumerate(betas.tolist()):
        mean, _ = exact_moments(h, J, beta=beta)
        assert (z[k].mean(0) - mean).abs().max() < 0.02
