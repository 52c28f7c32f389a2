"""Gibbs sampling with persistent chains (PCD), vectorised over chains.

A Gibbs sweep visits the units block by block. A block must be an independent set of the
coupling graph (no two of its units coupled): its units are then conditionally independent
given the rest and can be drawn at once. For a fully connected Boltzmann machine every block is a
single unit (sequential scan, ``i = 0 … n-1``); for an RBM the two layers are the two blocks.
Updating all units of a fully connected machine at once is *not* a Gibbs sweep and converges to
the wrong distribution.

The local fields ``F = h + z J̃`` are kept up to date by a rank-``|block|`` update after each
block, so a sweep costs ``O(C n²)`` for ``C`` chains. On CPU the sequential scan runs in a
compiled kernel (``qbm_pyro.samplers._kernels``, numba) that updates the fields only when a
unit flips; elsewhere (GPU) in plain torch operations on the same random thresholds, so one seed
gives the same chains on every device.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..energy import symmetric_couplings
from ._kernels import sequential_sweep_, sweep_thresholds
from .base import Sampler, check_sampler_inputs, make_generator

__all__ = ["GibbsSampler", "check_blocks", "colour_blocks", "default_gibbs", "gibbs_sweep_"]


################################################################################
# Sweep kernel (shared with parallel tempering and AIS).
################################################################################


def colour_blocks(J: torch.Tensor) -> list[torch.Tensor]:
    """Greedy colouring of the coupling graph: a list of independent sets covering all units.

    A dense ``J`` gives ``n`` singleton blocks in order ``0 … n-1``; a bipartite (RBM) ``J``
    gives the two layers.
    """
    adjacency = symmetric_couplings(J) != 0
    n = adjacency.shape[-1]
    colours: list[list[int]] = []
    member = torch.zeros(0, n, dtype=torch.bool)
    for i in range(n):
        row = adjacency[i]
        free = (~(member & row).any(-1)).nonzero() if len(colours) else torch.empty(0, 1)
        if free.numel():
            c = int(free[0, 0])
            colours[c].append(i)
            member[c, i] = True
        else:
            colours.append([i])
            new = torch.zeros(1, n, dtype=torch.bool)
            new[0, i] = True
            member = torch.cat([member, new])
    return [torch.tensor(c, dtype=torch.long) for c in colours]


def check_blocks(blocks: Sequence[torch.Tensor], J: torch.Tensor) -> None:
    """Refuse blocks that are not a Gibbs schedule of ``J`` (``(..., n, n)``): each unit must be in
    exactly one block, and no two units of a block may be coupled (they would be drawn together
    from their marginals given the rest, not from their joint: the chain would converge to the
    wrong distribution)."""
    n = J.shape[-1]
    coupled = (symmetric_couplings(J) != 0).reshape(-1, n, n).any(0)
    seen = torch.zeros(n, dtype=torch.long)
    for k, block in enumerate(blocks):
        if block.numel() and (block.min() < 0 or block.max() >= n):
            raise ValueError(f"Gibbs block {k} has unit indices outside 0..{n - 1}: {block.tolist()}")
        seen.index_add_(0, block, torch.ones_like(block))
        inner = coupled[block][:, block]
        if inner.any():
            i, j = inner.nonzero()[0].tolist()
            value = symmetric_couplings(J).reshape(-1, n, n)[:, block[i], block[j]].abs().max()
            raise ValueError(
                f"Gibbs block {k} holds units {int(block[i])} and {int(block[j])}, which are coupled "
                f"(|J| = {float(value):g}); "
                "a block must be an independent set of the coupling graph: use blocks='auto' or "
                "'sequential'"
            )
    if (seen != 1).any():
        bad = (seen != 1).nonzero().flatten().tolist()
        raise ValueError(f"Gibbs blocks must cover every unit exactly once; units {bad[:10]} are not")


def gibbs_sweep_(
    z: torch.Tensor,
    field: torch.Tensor,
    Jt: torch.Tensor,
    beta: torch.Tensor | float,
    blocks: Sequence[torch.Tensor | slice] | None,
    generator: torch.Generator,
) -> None:
    """One Gibbs sweep over all units, in place.

    Parameters
    ----------
    z
        States, shape ``(..., C, n)``, values in ``{0, 1}``; updated in place.
    field
        Local fields ``h + z J̃`` matching ``z``; updated in place.
    Jt
        Symmetric zero-diagonal couplings ``J̃``, shape ``(n, n)``, or ``(B, n, n)`` for a batch
        of ``B`` different machines with states ``(B, C, n)`` (one vectorised sweep for all).
    beta
        Inverse temperature: a float, or a tensor broadcastable to ``z[..., :1]`` (one β per
        replica for parallel tempering, shape ``(R, 1, 1)``).
    blocks
        Independent sets to update in turn; ``None`` is the sequential scan.
    generator
        Source of randomness.
    """
    if blocks is None:
        sequential_sweep_(z, field, Jt, beta, generator)
        return
    threshold = torch.from_numpy(sweep_thresholds(z.shape, z.dtype, generator)).to(z.device)
    for block in blocks:
        new = (beta * field[..., block] > threshold[..., block]).to(z.dtype)
        delta = new - z[..., block]
        z[..., block] = new
        field.add_(delta @ Jt[..., block, :])


################################################################################
# The sampler.
################################################################################


class GibbsSampler(Sampler):
    """Persistent-chain Gibbs sampler (PCD) for full Boltzmann machines and RBMs.

    Each call advances ``num_samples`` persistent chains by ``num_sweeps`` sweeps (after
    ``burn_in`` sweeps for chains that are new) and returns their states, so successive calls
    with slowly changing parameters track the model as in persistent contrastive divergence.

    Parameters
    ----------
    num_sweeps
        Sweeps per call for chains that already exist.
    burn_in
        Sweeps for newly created chains (first call, new ``n``, or more chains asked for).
    blocks
        ``"sequential"`` (one unit at a time, valid for any ``J``), ``"auto"`` (greedy
        colouring of the nonzero couplings: two blocks for an RBM) or an explicit list of
        index tensors, each an independent set of the coupling graph.
    seed
        Seed of the sampler's own random generator.

    Examples
    --------
    >>> import torch
    >>> from qbm_pyro.samplers import GibbsSampler
    >>> h, J = torch.zeros(4), torch.zeros(4, 4)
    >>> GibbsSampler(seed=0).sample(h, J, 8).shape
    torch.Size([8, 4])
    """

    def __init__(
        self,
        num_sweeps: int = 10,
        burn_in: int = 100,
        *,
        blocks: str | Sequence[torch.Tensor] = "sequential",
        seed: int | None = None,
    ):
        if num_sweeps < 1 or burn_in < 0:
            raise ValueError(f"need num_sweeps >= 1 and burn_in >= 0, got {num_sweeps}, {burn_in}")
        if isinstance(blocks, str) and blocks not in ("sequential", "auto"):
            raise ValueError(
                f"blocks must be 'sequential', 'auto' or a list of index tensors, got {blocks!r}"
            )
        self.num_sweeps = int(num_sweeps)
        self.burn_in = int(burn_in)
        self.blocks = blocks
        self.seed = seed
        self.generator = make_generator(seed)
        self.chains: torch.Tensor | None = None

    def _blocks_for(self, J: torch.Tensor) -> list[torch.Tensor] | None:
        if self.blocks == "sequential":
            return None
        if self.blocks == "auto":
            blocks = colour_blocks(J.reshape(-1, *J.shape[-2:]).ne(0).any(0).to(J.dtype).cpu())
            return None if len(blocks) == J.shape[-1] else blocks
        blocks = [torch.as_tensor(b, dtype=torch.long) for b in self.blocks]
        check_blocks(blocks, J)
        return blocks

    def _chains_for(self, shape: tuple, num_samples: int, dtype: torch.dtype) -> tuple[torch.Tensor, int]:
        """Existing chains ``shape[:-1] + (num_samples, n)`` (grown or cut to ``num_samples``; new
        when the machines' batch shape or ``n`` changed) and how many of them are new."""
        batch, n = tuple(shape[:-1]), shape[-1]
        old = self.chains
        if old is None or tuple(old.shape[:-2]) != batch or old.shape[-1] != n:
            old = torch.empty(batch + (0, n))
        old = old[..., :num_samples, :].to(dtype)
        n_new = num_samples - old.shape[-2]
        fresh = (torch.rand(batch + (n_new, n), generator=self.generator) < 0.5).to(dtype)
        return torch.cat([old.cpu(), fresh], -2), n_new

    def _run(self, h: torch.Tensor, J: torch.Tensor, num_samples: int, beta: float) -> torch.Tensor:
        z, n_new = self._chains_for(tuple(h.shape), num_samples, h.dtype)
        z = z.to(h.device)
        Jt = symmetric_couplings(J)
        burn_in = self.burn_in if n_new else 0
        if n_new and not bool((Jt != 0).any()):  # independent units: draw new chains exactly
            p = torch.sigmoid(beta * h).unsqueeze(-2).cpu()
            exact = (torch.rand(z.shape[:-2] + (n_new, z.shape[-1]), generator=self.generator) < p).to(z)
            z[..., z.shape[-2] - n_new :, :] = exact
            burn_in = 0
        field = h.unsqueeze(-2) + z @ Jt
        blocks = self._blocks_for(J)
        sweeps = self.num_sweeps + burn_in
        for _ in range(sweeps):
            gibbs_sweep_(z, field, Jt, beta, blocks, self.generator)
        self.chains = z.clone()
        return z

    def _sample(self, h, J, num_samples, beta):
        return self._run(h, J, num_samples, beta)

    def sample_batched(
        self, h: torch.Tensor, J: torch.Tensor, num_samples: int, *, beta: float = 1.0
    ) -> torch.Tensor:
        """Draw ``num_samples`` states from each of ``B`` different machines in one vectorised
        sweep: ``h (B, n)``, ``J (B, n, n)`` → ``(B, num_samples, n)``.

        Every machine has its own persistent chains (kept between calls while ``B`` and ``n``
        stay the same), so no machine's chains start from another machine's state.
        """
        if h.dim() != 2 or J.shape != h.shape + h.shape[-1:]:
            raise ValueError(f"need h (B, n) and J (B, n, n), got {tuple(h.shape)} and {tuple(J.shape)}")
        for b in range(h.shape[0]):
            check_sampler_inputs(h[b], J[b], num_samples, beta)
        with torch.no_grad():
            return self._run(h.detach(), J.detach(), int(num_samples), float(beta)).clone()

    def reset(self) -> None:
        self.chains = None

    def state_dict(self) -> dict:
        return {"chains": self.chains, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.chains = state["chains"]
        self.generator.set_state(state["generator"])


def default_gibbs(structure: str = "full", *, seed: int | None = None) -> GibbsSampler:
    """Single-chain persistent Gibbs (PCD-1): the prior's default before tempering, kept for
    comparison and for machines known to have one mode.

    Parameters
    ----------
    structure
        ``"full"`` (sequential scan over all units) or ``"rbm"`` (the two layers as blocks).
    seed
        Seed of the chains.

    Returns
    -------
    GibbsSampler
        One sweep between draws (PCD-1, as in persistent contrastive divergence) after 100
        burn-in sweeps. A training step moves ``h, J`` by about the learning rate, so on a prior
        with one mode the chains track it (``tests/test_gibbs_pcd.py``). On a prior with
        separated modes they do not: each chain stays in the mode it started in, and the mode
        weights are those of the start, not of the prior (two-mode machines: TV 0.15 at
        n = 8 and 0.25 at n = 12 against exact, ``benchmarks/samplers_modes.py``). The prior's
        default is therefore :func:`~qbm_pyro.samplers.default_sampler` (persistent parallel
        tempering).

    Examples
    --------
    >>> default_gibbs("rbm", seed=0).blocks
    'auto'
    """
    if structure not in ("full", "rbm"):
        raise ValueError(f"structure must be 'full' or 'rbm', got {structure!r}")
    blocks = "auto" if structure == "rbm" else "sequential"
    return GibbsSampler(num_sweeps=1, burn_in=100, blocks=blocks, seed=seed)
