"""Boltzmann samples from annealers: simulated annealing, a (mock) D-Wave QPU, and any dimod sampler.

    python examples/quantum_annealer.py [--quick] [--qpu]

Runs offline: the QPU is ``dwave.system.testing.MockDWaveSampler`` (a classical stand-in with a
Pegasus graph) unless ``--qpu`` is given, which uses ``DWaveSampler()`` and needs Leap
credentials and the ``[qpu]`` extra. Steps:

1. Why the annealing schedule must *end* at β: total variation (TV) to the exact distribution
   of a 10-unit machine for SA ending at β = 1 and for SA's default schedule (cools to T ≈ 0).
2. A QPU behind ``EmbeddingComposite`` (or a clique embedding found once with minorminer),
   with a chain strength, calibrated by pseudo-likelihood (β_eff) and programmed at β/β_eff.
3. Any other annealer, e.g. a coherent Ising machine client: write a ``dimod.Sampler``
   subclass and hand it to :class:`~qbm_pyro.samplers.DimodSampler` or ``QPUSampler``.
4. The annealer (offline: a Pegasus mock QPU with a fixed clique embedding) as the
   negative-phase sampler of a QBM-VAE prior with the documented ``n_latent=64``.
"""

from __future__ import annotations

import argparse
import time

import dimod
import numpy as np
import torch

import qbm_pyro
from qbm_pyro.samplers import DimodSampler, FallbackSampler, QPUSampler, estimate_beta_eff
from qbm_pyro.samplers.exact import exact_log_probs, state_index


def total_variation(samples: torch.Tensor, h: torch.Tensor, J: torch.Tensor) -> float:
    """TV between the empirical distribution of ``samples`` and the exact Boltzmann one."""
    p = exact_log_probs(h.double(), J.double()).exp()
    counts = torch.bincount(state_index(samples), minlength=p.numel()).double()
    return 0.5 * float((counts / counts.sum() - p).abs().sum())


class CoherentIsingMachine(dimod.Sampler):
    """A stand-in for a coherent-Ising-machine (or any other annealer) client.

    A real client would send the Ising problem to the device and read back spins. This one
    runs Metropolis sweeps at a fixed inverse temperature it does not reveal (``_beta_device``),
    like hardware that samples at an unknown effective temperature. Implementing
    ``sample_ising`` and the two Mappings ``parameters``/``properties`` is all dimod asks; the
    ``sample`` and ``sample_qubo`` methods come from the mixins.
    """

    parameters = {"num_reads": [], "seed": []}
    properties = {"description": "toy coherent Ising machine (Metropolis at a hidden beta)"}

    def __init__(self, beta_device: float = 1.7, num_sweeps: int = 200):
        self._beta_device = beta_device
        self._num_sweeps = num_sweeps

    def sample_ising(self, h, J, *, num_reads: int = 10, seed: int | None = None, **kwargs):
        self.remove_unknown_kwargs(**kwargs)  # dimod: warn on unknown keyword arguments
        from dwave.samplers import SimulatedAnnealingSampler

        bqm = dimod.BinaryQuadraticModel.from_ising(h, J)
        beta = self._beta_device
        return SimulatedAnnealingSampler().sample(
            bqm,
            num_reads=num_reads,
            num_sweeps=self._num_sweeps,
            beta_schedule_type="custom",
            beta_schedule=np.full(self._num_sweeps, beta),
            seed=seed,
        )


def offline_qpu(n_latent: int = 64, *, num_probe_samples: int = 1000, seed: int = 0) -> QPUSampler:
    """A mock D-Wave QPU that embeds a fully connected ``n_latent``-unit machine, offline.

    ``MockDWaveSampler`` (a classical stand-in with the hardware's graph and parameters) on a
    Pegasus P8 graph (1,288 qubits), with a clique embedding found once by minorminer's
    ``busclique`` (chains of at most 7 qubits for 64 units) and reused on every call. The stock
    mock is a small Chimera graph on which no embedding of more than about 20 units is found:
    training with it falls back to Gibbs at every step.
    """
    from dwave.system import FixedEmbeddingComposite
    from dwave.system.testing import MockDWaveSampler
    from minorminer import busclique

    child = MockDWaveSampler(topology_type="pegasus", topology_shape=[8], parameter_warnings=False)
    embedding = busclique.find_clique_embedding(n_latent, child.to_networkx_graph())
    if not embedding:
        raise ValueError(f"no clique embedding of {n_latent} units in a Pegasus P8 mock; use a larger shape")
    return QPUSampler(
        FixedEmbeddingComposite(child, embedding), num_probe_samples=num_probe_samples, seed=seed
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny settings (seconds)")
    parser.add_argument("--qpu", action="store_true", help="use a real D-Wave QPU (needs credentials)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    n_reads = 500 if args.quick else 5000

    # A small machine whose exact distribution we can enumerate.
    g = torch.Generator().manual_seed(0)
    n = 10
    h = torch.randn(n, generator=g, dtype=torch.float64)
    J = torch.triu(0.5 * torch.randn(n, n, generator=g, dtype=torch.float64), 1)

    print("1. simulated annealing: the schedule must end at the target beta")
    ending_at_beta = DimodSampler(num_sweeps=200, beta_min=0.1, seed=0)  # beta_range=(0.1, beta)
    z = ending_at_beta.sample(h, J, n_reads, beta=1.0)
    print(f"   SA ending at beta=1:        TV = {total_variation(z, h, J):.3f}")
    from dwave.samplers import SimulatedAnnealingSampler

    bqm = qbm_pyro.samplers.bqm_from_boltzmann(h, J)
    cold = SimulatedAnnealingSampler().sample(bqm, num_reads=n_reads, num_sweeps=200, seed=0)
    z_cold = torch.tensor(cold.record.sample[:, [cold.variables.index(i) for i in range(n)]], dtype=h.dtype)
    print(f"   SA default schedule (T->0): TV = {total_variation(z_cold, h, J):.3f}  (minima, not samples)")

    print("2. a (mock) D-Wave QPU, calibrated by pseudo-likelihood")
    if args.qpu:
        from dwave.system import DWaveSampler, EmbeddingComposite

        hardware = EmbeddingComposite(DWaveSampler())
    else:
        from dwave.system import EmbeddingComposite
        from dwave.system.testing import MockDWaveSampler

        hardware = EmbeddingComposite(MockDWaveSampler(parameter_warnings=False))
    # auto_scale=False (the default) keeps the β/β_eff scaling intact; sample keywords such as
    # chain_strength or annealing_time are passed on every call.
    qpu = QPUSampler(hardware, num_probe_samples=n_reads, seed=0)
    start = time.perf_counter()
    z_qpu = qpu.sample(h, J, n_reads, beta=1.0)
    print(
        f"   beta_eff = {qpu.beta_eff_:.2f}; programmed (1/beta_eff)*E; TV = "
        f"{total_variation(z_qpu, h, J):.3f} ({time.perf_counter() - start:.1f}s)"
    )
    for strength in (1.0, 4.0):
        other = QPUSampler(hardware, num_probe_samples=n_reads, chain_strength=strength, seed=0)
        other.sample(h, J, 10)
        print(f"   chain_strength={strength}: beta_eff = {other.beta_eff_:.2f} (calibrate after choosing it)")
    # A fixed clique embedding, found once with minorminer, avoids re-embedding every call.
    if not args.qpu:
        import minorminer
        import networkx as nx
        from dwave.system import FixedEmbeddingComposite
        from dwave.system.testing import MockDWaveSampler

        child = MockDWaveSampler(parameter_warnings=False)
        embedding = minorminer.find_embedding(nx.complete_graph(n).edges, child.edgelist, random_seed=0)
        fixed = QPUSampler(FixedEmbeddingComposite(child, embedding), num_probe_samples=n_reads, seed=0)
        fixed.sample(h, J, 10)
        longest = max(len(chain) for chain in embedding.values())
        print(f"   fixed clique embedding: longest chain {longest} qubits; beta_eff = {fixed.beta_eff_:.2f}")

    print("3. any other annealer: a dimod.Sampler subclass (a coherent Ising machine stand-in)")
    cim = CoherentIsingMachine(beta_device=1.7, num_sweeps=50 if args.quick else 200)
    probe = DimodSampler(cim, mode="scaled", beta_eff=1.0, seed=0).sample(h, J, n_reads)
    print(f"   measured beta_eff = {estimate_beta_eff(probe, h, J):.2f} (true 1.7)")
    wrapped = QPUSampler(cim, auto_scale=None, num_probe_samples=n_reads, seed=0)
    z_cim = wrapped.sample(h, J, n_reads, beta=1.0)
    print(f"   calibrated CIM at beta=1: TV = {total_variation(z_cim, h, J):.3f}")

    print("4. the annealer as the negative-phase sampler of a QBM-VAE prior (n_latent=64)")
    mdata = qbm_pyro.datasets.pbmc_cite_2batch()
    if args.qpu:
        from dwave.system import DWaveSampler, EmbeddingComposite

        annealer = QPUSampler(EmbeddingComposite(DWaveSampler()), seed=0)
    else:
        annealer = offline_qpu(64, num_probe_samples=256 if args.quick else 1000)
    sampler = FallbackSampler(annealer, timeout=60.0)  # Gibbs answers (and warns) if it fails
    model = qbm_pyro.QBMVAE(mdata, batch_key="batch", n_latent=64, n_continuous=4, sampler=sampler)
    history = model.train(max_epochs=2 if args.quick else 20, progress_bar=False)
    print(
        f"   trained {len(history['epoch'])} epochs, final loss {history['train_loss'][-1]:.1f}; "
        f"calls answered by the Gibbs fallback: {history['sampler_fallbacks'][-1]}"
    )


if __name__ == "__main__":
    main()
