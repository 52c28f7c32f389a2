"""``tl.attractors(method="meanfield")``: the prior's states at β = 1, checked on machines with
planted states against exact enumeration (n <= 12)."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
from scipy.special import expit
from sklearn.metrics import adjusted_rand_score

import qbm_pyro
from qbm_pyro.samplers import ExactSampler
from qbm_pyro.tl._barriers import enumerate_landscape
from qbm_pyro.tl._energy_landscape import EnergyLandscape
from qbm_pyro.tl._meanfield_attractors import (
    free_energy,
    line_barriers,
    mean_field_flow,
    mean_field_states,
    meanfield_attractors,
    path_barriers,
)


def hopfield(patterns: np.ndarray, strength: float, bias: np.ndarray | None = None) -> EnergyLandscape:
    """The Hopfield machine storing ``patterns`` (0/1 rows) at coupling ``strength``, written over
    0/1 units: in spins ``s = 2z - 1`` its energy is ``-Σ_{i<j} W_ij s_i s_j`` with ``W = strength
    · ξᵀξ / n``, i.e. ``J = 4 W`` and ``h_i = -2 Σ_j W_ij`` (plus an optional ``bias``)."""
    xi = 2.0 * patterns - 1.0
    n = patterns.shape[1]
    W = strength * xi.T @ xi / n
    np.fill_diagonal(W, 0.0)
    h = -2.0 * W.sum(axis=1) + (0.0 if bias is None else bias)
    return EnergyLandscape.from_boltzmann(h, np.triu(4.0 * W, 1), sample_fn=None)


def exact_sampling(land: EnergyLandscape) -> EnergyLandscape:
    """The same machine, sampled exactly (the basin weights are then only Monte-Carlo noise)."""
    h, J = torch.as_tensor(land.h), torch.as_tensor(np.triu(land.J_sym, 1))

    def sample(num: int, seed: int) -> np.ndarray:
        return ExactSampler(seed=seed).sample(h, J, num).double().numpy()

    return EnergyLandscape.from_boltzmann(land.h, np.triu(land.J_sym, 1), sample_fn=sample)


def cells_near(codes: np.ndarray, per: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    q = (
        np.repeat(codes, per, axis=0) * 0.7
        + 0.15
        + rng.uniform(-0.1, 0.1, (codes.shape[0] * per, codes.shape[1]))
    )
    return q, np.repeat(np.arange(codes.shape[0]), per)


PATTERNS = np.array([[1] * 6 + [0] * 6, [1, 0] * 6], dtype=np.float64)


def test_flow_ends_at_stationary_points_of_the_free_energy():
    rng = np.random.default_rng(0)
    land = EnergyLandscape.from_boltzmann(rng.normal(0, 1, 8), np.triu(rng.normal(0, 1.5, (8, 8)), 1))
    m, converged = mean_field_flow(land.h, land.J_sym, rng.random((20, 8)))
    assert converged.all()
    np.testing.assert_allclose(m, expit(land.h + m @ land.J_sym), atol=1e-5)
    # F's gradient vanishes there (central differences)
    eps = 1e-6

    def f(m):
        return free_energy(land.h, land.J_sym, m)[0]

    for row in m[:3]:
        grad = [(f(row + eps * e) - f(row - eps * e)) / (2 * eps) for e in np.eye(8)]
        np.testing.assert_allclose(grad, 0.0, atol=1e-3)
    # at a code (a corner) F is the energy: no entropy left
    z = (rng.random((4, 8)) < 0.5).astype(float)
    np.testing.assert_allclose(free_energy(land.h, land.J_sym, z), land.energy(z), atol=1e-9)


def test_flow_is_the_same_row_by_row_and_in_blocks(monkeypatch):
    from qbm_pyro.tl import _meanfield_attractors

    rng = np.random.default_rng(1)
    land = EnergyLandscape.from_boltzmann(rng.normal(0, 1, 8), np.triu(rng.normal(0, 1.5, (8, 8)), 1))
    start = rng.random((50, 8))
    whole, _ = mean_field_flow(land.h, land.J_sym, start)
    monkeypatch.setattr(_meanfield_attractors, "CHUNK", 7)
    blocks, converged = mean_field_flow(land.h, land.J_sym, start)
    np.testing.assert_allclose(blocks, whole, rtol=0, atol=1e-12)  # (BLAS may sum in another order)
    single = np.vstack([mean_field_flow(land.h, land.J_sym, row)[0] for row in start])
    np.testing.assert_allclose(single, whole, rtol=0, atol=1e-12)
    assert converged.all()


def test_weakly_coupled_machine_is_one_state_though_it_has_several_code_minima():
    """Below the Hopfield critical coupling (strength < 1) the machine at β = 1 is paramagnetic:
    one state, while its code minima (temperature zero) are the stored patterns and their mirrors."""
    land = hopfield(PATTERNS, strength=0.5)
    assert enumerate_landscape(land)["minima"].size >= 2
    q, _ = cells_near(np.vstack([PATTERNS, 1 - PATTERNS]), per=5)
    out, cell_group, _ = meanfield_attractors(exact_sampling(land), q, 2000, 200, 0)
    assert len(out["states"]) == 1 and (cell_group == 0).all()
    np.testing.assert_allclose(out["magnetisations"][0], 0.5, atol=1e-4)
    assert out["basin_weight"][0] == pytest.approx(1.0)


def test_planted_states_their_cells_and_exact_basin_weights():
    """Strength 3 (well inside the retrieval phase) with a small field favouring the first
    pattern: the cells near each pattern and mirror form one state each, the states' codes are the
    patterns, the lowest free energy is the heaviest state, and the sampled basin weights match the
    exact ones (every code of the 12-unit machine flowed, weighted by its exact probability)."""
    codes = np.vstack([PATTERNS, 1 - PATTERNS])
    land = exact_sampling(hopfield(PATTERNS, strength=3.0, bias=0.15 * (2 * PATTERNS[0] - 1)))
    q, truth = cells_near(codes, per=6)
    out, cell_group, inverse = meanfield_attractors(land, q, 2000, 4000, seed=0)
    assert len(out["states"]) == 4 and adjusted_rand_score(truth, cell_group) == 1.0
    np.testing.assert_array_equal(inverse, cell_group)
    # each state's code is the planted code its cells sit near
    for g in range(4):
        np.testing.assert_array_equal(out["states"][g], codes[truth[cell_group == g][0]])
    assert np.all(np.diff(out["energies"]) >= 0)  # A0 has the lowest free energy
    np.testing.assert_array_equal(out["states"][0], PATTERNS[0])
    # their persistence: three joins, each far above 1 kT (distinct states at the temperature)
    assert out["merge_heights"].shape == (3,) and out["merge_heights"].min() > 1.0
    # exact basin weights: every code's flow, weighted by p(z)
    full = enumerate_landscape(land)
    p = np.exp(-full["energies"] - np.logaddexp.reduce(-full["energies"]))
    ends, _ = mean_field_flow(land.h, land.J_sym, full["codes"].astype(np.float64))
    distance = np.stack([np.abs(ends - c).max(axis=1) for c in out["magnetisations"]], axis=1)
    exact = np.array([p[(distance.argmin(1) == g) & (distance.min(1) < 0.05)].sum() for g in range(4)])
    np.testing.assert_allclose(out["basin_weight"], exact, atol=0.03)
    assert out["prior_unassigned"] == pytest.approx(1 - exact.sum(), abs=0.03)
    assert exact.argmax() == 0
    # barriers: above both states, symmetric, consistent with the table
    b = out["barriers"]
    np.testing.assert_allclose(b, b.T)
    assert (b >= np.maximum.outer(out["energies"], out["energies"]) - 1e-9).all()
    np.testing.assert_allclose(b, path_barriers(land.h, land.J_sym, out["magnetisations"]))
    assert (b <= line_barriers(land.h, land.J_sym, out["magnetisations"]) + 1e-12).all()
    assert (out["table"]["barrier_to_nearest"] > 0).all()
    assert len(out["edges"]) == 3 and set(out["paths"]) == {f"A{g}-A{f}" for g, f in out["edges"]}


def test_states_below_min_barrier_are_merged_by_their_free_energy_barriers():
    """Merging follows the elder rule: after it no two attractors are joined by a barrier less than
    ``min_barrier`` above the higher of their lowest states, and every join was below it (a high
    threshold merges everything, one between the two lowest heights some but not all); a merged
    attractor has the cells and basin weight of all its states, its lowest state's free energy
    and code, and the lowest barrier between its states and another's."""
    codes = np.vstack([PATTERNS, 1 - PATTERNS])
    land = exact_sampling(hopfield(PATTERNS, strength=3.0, bias=0.15 * (2 * PATTERNS[0] - 1)))
    q, truth = cells_near(codes, per=6)
    base, base_cells, _ = meanfield_attractors(land, q, 2000, 4000, seed=0)
    F, B = base["energies"], base["barriers"]
    height = B - np.maximum.outer(F, F)
    np.fill_diagonal(height, np.inf)
    levels = np.unique(height[np.isfinite(height)])
    assert levels.size >= 2  # the planted machine has pairs at different heights
    for threshold in (0.5 * (levels[0] + levels[1]), levels[-1] + 1.0):
        out, cell_group, cell_state = meanfield_attractors(land, q, 2000, 4000, seed=0, min_barrier=threshold)
        np.testing.assert_array_equal(cell_state, base_cells)  # the states themselves are unchanged
        group = out["minimum_attractor"]
        np.testing.assert_array_equal(cell_group, group[cell_state])
        k = group.max() + 1
        assert len(out["states"]) == k
        assert k == 1 if threshold > levels[-1] else 1 < k < len(F)  # some merged, not all
        # no two attractors left that the rule would join
        left = out["barriers"] - np.maximum.outer(out["energies"], out["energies"])
        np.fill_diagonal(left, np.inf)
        assert (left >= threshold).all()
        # each attractor's states hang together below the threshold (a spanning tree of joins)
        for g in range(k):
            members = np.flatnonzero(group == g)
            inside = height[np.ix_(members, members)] < threshold
            np.fill_diagonal(inside, True)
            reach = inside
            for _ in range(members.size):
                reach = reach | ((reach.astype(int) @ inside.astype(int)) > 0)
            assert reach.all()
        np.testing.assert_allclose(out["basin_weight"], np.bincount(group, weights=base["basin_weight"]))
        for g in range(k):
            members = np.flatnonzero(group == g)
            assert out["energies"][g] == pytest.approx(F[members].min())
            np.testing.assert_array_equal(out["states"][g], base["states"][members[F[members].argmin()]])
            assert out["table"]["n_minima"].iloc[g] == members.size
            for f in range(g + 1, k):
                others = np.flatnonzero(group == f)
                assert out["barriers"][g, f] == pytest.approx(B[np.ix_(members, others)].min())
    with pytest.raises(ValueError, match="min_barrier"):
        qbm_pyro.tl.attractors(_adata(land, q, truth), min_barrier=-1.0)


def _adata(land: EnergyLandscape, q: np.ndarray, truth: np.ndarray) -> ad.AnnData:
    obs = pd.DataFrame({"truth": truth.astype(str)}, index=[f"c{i}" for i in range(len(truth))])
    adata = ad.AnnData(obs=obs)
    adata.obsm["X_qbm"] = q
    adata.uns["qbm"] = {"prior": {"h": land.h, "J": np.triu(land.J_sym, 1)}}
    return adata


def test_tl_attractors_says_when_the_prior_has_one_state(caplog):
    """A paramagnetic machine (one state at β = 1) gets one attractor and a logged warning that says
    why; a machine with planted states does not."""
    q, truth = cells_near(np.vstack([PATTERNS, 1 - PATTERNS]), per=5)
    with caplog.at_level("WARNING", logger="qbm_pyro.tl._attractors"):
        qbm_pyro.tl.attractors(
            _adata(hopfield(PATTERNS, strength=0.5), q, truth), n_prior_samples=0, n_markers=0
        )
    assert "one state at its temperature" in caplog.text and "merge_heights" in caplog.text
    assert "free bits" not in caplog.text  # no training record: nothing said about it
    caplog.clear()
    trained = _adata(hopfield(PATTERNS, strength=0.5), q, truth)
    trained.uns["qbm"]["params"] = {"size_defaults": {"continuous_free_bits": 0.5}}
    with caplog.at_level("WARNING", logger="qbm_pyro.tl._attractors"):
        qbm_pyro.tl.attractors(trained, n_prior_samples=0, n_markers=0)
    assert "continuous_free_bits=0.5" in caplog.text  # the fit's own setting, which flattens states
    caplog.clear()
    trained.uns["qbm"]["params"] = {"size_defaults": {"continuous_free_bits": 0.0}}
    with caplog.at_level("WARNING", logger="qbm_pyro.tl._attractors"):
        qbm_pyro.tl.attractors(trained, n_prior_samples=0, n_markers=0)
    assert "one state" in caplog.text and "free bits" not in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="qbm_pyro.tl._attractors"):
        qbm_pyro.tl.attractors(
            _adata(hopfield(PATTERNS, strength=3.0), q, truth), n_prior_samples=0, n_markers=0
        )
    assert "one state" not in caplog.text


def test_tl_attractors_defaults_to_mean_field_states():
    land = hopfield(PATTERNS, strength=3.0)
    q, truth = cells_near(np.vstack([PATTERNS, 1 - PATTERNS]), per=5)
    adata = _adata(land, q, truth)
    qbm_pyro.tl.attractors(adata, n_prior_samples=200, n_markers=0)
    info = adata.uns["qbm_attractor"]
    assert info["method"] == "meanfield" and len(info["states"]) == 4
    assert adjusted_rand_score(truth, adata.obs["qbm_attractor"]) == 1.0
    np.testing.assert_allclose(adata.obs["qbm_attractor_energy"].min(), info["energies"][0])
    assert list(info["table"].columns[:2]) == ["energy", "code_energy"]
    # the other methods are still there, and a wrong name says which exist
    qbm_pyro.tl.attractors(adata, method="greedy", n_prior_samples=0, n_markers=0, key_added="g")
    assert adata.uns["g"]["method"] == "greedy"
    with pytest.raises(ValueError, match="'meanfield'"):
        qbm_pyro.tl.attractors(adata, method="mean-field")


def test_meanfield_needs_a_quadratic_prior():
    land = hopfield(PATTERNS, strength=3.0)
    generic = EnergyLandscape(land.energy, land.n)  # an energy without h and J
    with pytest.raises(ValueError, match="quadratic"):
        meanfield_attractors(generic, np.full((3, land.n), 0.5), 100, 0, 0)


# --------------------------------------------------------------------------- the root-free potential


def differentiation(
    n_cells: int = 300, strength: float = 3.0, seed: int = 0, bias: float = 0.3
) -> ad.AnnData:
    """Cells along a path from a progenitor code P to a differentiated code D (time ``t``) on a
    Hopfield machine storing both, with a field that makes D the deeper state: the least stable
    state (highest free energy) is P, where the path starts."""
    P = np.array([1] * 8 + [0] * 8, dtype=np.float64)
    D = np.array([1, 0] * 8, dtype=np.float64)
    land = hopfield(np.vstack([P, D]), strength=strength, bias=bias * (2 * D - 1))
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 1, n_cells))
    q = np.clip((1 - t[:, None]) * P + t[:, None] * D, 0.05, 0.95)
    q = np.clip(q + rng.normal(0, 0.03, q.shape), 0, 1)
    adata = _adata(land, q, np.zeros(n_cells))
    adata.obs["t"] = t
    adata.obs["qbm_energy"] = land.energy(q)
    return adata


def test_auto_energy_roots_at_the_progenitor_end_of_a_prior_path():
    """Cells from a progenitor code P to a differentiated code D on a machine whose field makes D
    much the deeper: the cells' energy falls along the whole path, so the root is P's end."""
    adata = differentiation(strength=1.5, bias=2.0)
    qbm_pyro.tl.trajectory(adata, "auto_energy")
    evidence = adata.uns["qbm_trajectory"]["root"]["evidence"]
    assert evidence["method"] == "descent" and evidence["clear"]
    assert evidence["spearman"] < -0.9
    assert adata.obs["qbm_pseudotime"].corr(adata.obs["t"], method="spearman") > 0.9
    root = adata.uns["qbm_trajectory"]["root"]["index"]
    assert adata.obs["t"].iloc[root] < 0.2


def test_auto_energy_reads_a_ridge_between_two_basins_as_the_start():
    """With a weaker field the path from P to D crosses a ridge (the mixed codes between the two
    stored states have the highest energy): the energy falls both ways from the ridge, so the
    rule roots there, as at a branch point, and the ordering runs from the middle out. A limit
    of reading the cells' energy as a potential, documented in ``tl.trajectory``."""
    adata = differentiation()
    t, energy = adata.obs["t"].to_numpy(), adata.obs["qbm_energy"].to_numpy()
    qbm_pyro.tl.trajectory(adata, "auto_energy")
    root = adata.uns["qbm_trajectory"]["root"]["index"]
    assert 0.2 < t[root] < 0.8 and energy[root] > np.median(energy)
    distance_from_ridge = np.abs(t - t[root])
    assert (
        adata.obs["qbm_pseudotime"].corr(
            pd.Series(distance_from_ridge, index=adata.obs_names), method="spearman"
        )
        > 0.8
    )


def grid_saddle(h: np.ndarray, J: np.ndarray, a: np.ndarray, b: np.ndarray, n_points: int) -> float:
    """The lowest level ``L`` at which the grid points of logit space with ``F <= L`` connect
    the states ``a`` and ``b`` (bisection over levels, connected components by scipy): the
    minimax free-energy barrier between them, up to the grid's resolution."""
    from scipy import ndimage

    axis = np.linspace(-8.0, 8.0, n_points)
    mesh = np.stack(np.meshgrid(*([axis] * h.size), indexing="ij"), -1).reshape(-1, h.size)
    F = free_energy(h, J, expit(mesh)).reshape([n_points] * h.size)
    ia, ib = (tuple(np.abs(axis[:, None] - np.log(m / (1 - m))).argmin(0)) for m in (a, b))
    lo, hi = max(F[ia], F[ib]), F.max()
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        label, _ = ndimage.label(F <= mid)
        lo, hi = (lo, mid) if label[ia] and label[ia] == label[ib] else (mid, hi)
    return hi


# Small machines with two mean-field states (found by a seeded random search): the first two
# n = 2, the third n = 3; in the first and the third the straight line between the states
# passes well above the saddle (its valley bends).
BENT_MACHINES = [
    (np.array([-2.1907, -4.5725]), np.array([[0.0, 7.1554], [7.1554, 0.0]]), 401, 2e-3),
    (np.array([-0.7501, -4.9409]), np.array([[0.0, 5.7099], [5.7099, 0.0]]), 401, 2e-3),
    (
        np.array([-5.011, -0.1911, -0.5684]),
        np.array([[0.0, -2.8066, 6.1573], [-2.8066, 0.0, -3.18], [6.1573, -3.18, 0.0]]),
        121,
        1e-2,
    ),
]


@pytest.mark.parametrize("h, J, n_points, tol", BENT_MACHINES)
def test_path_barriers_find_the_saddle_where_the_straight_line_does_not(h, J, n_points, tol):
    """The string method's barrier equals the exact minimax barrier (a grid over logit space, up
    to its resolution), and is never above the straight line's."""
    starts = np.random.default_rng(0).uniform(0, 1, (200, h.size))
    _, centres, energy_f, converged = mean_field_states(h, J, starts)
    assert converged.all() and len(energy_f) == 2
    exact = grid_saddle(h, J, centres[0], centres[1], n_points)
    path = path_barriers(h, J, centres)
    line = line_barriers(h, J, centres)
    assert path[0, 1] == pytest.approx(exact, abs=tol)
    assert path[0, 1] <= line[0, 1] + 1e-12
    np.testing.assert_allclose(np.diag(path), energy_f)


def test_the_bent_machines_are_the_case_the_path_search_is_for():
    """On two of the three machines the straight line overestimates the saddle by more than the
    tolerance above (else the previous test could not tell the two apart)."""
    gaps = []
    for h, J, n_points, tol in BENT_MACHINES:
        _, centres, _, _ = mean_field_states(h, J, np.random.default_rng(0).uniform(0, 1, (200, h.size)))
        gaps.append(
            line_barriers(h, J, centres)[0, 1] - grid_saddle(h, J, centres[0], centres[1], n_points) - tol
        )
    assert sum(g > 0.02 for g in gaps) >= 2


def test_path_barriers_between_far_states_go_through_the_near_ones(monkeypatch):
    """With strings only between near states, every pair still gets the barrier of a path: no
    higher than the straight line or than any chain through a third state, and the same as the
    strings between every pair where the chain is as good (here: every pair of planted states)."""
    from qbm_pyro.tl import _meanfield_attractors

    codes = np.vstack([PATTERNS, 1 - PATTERNS])
    land = hopfield(PATTERNS, strength=3.0)
    q, _ = cells_near(codes, per=6)
    _, centres, energy_f, _ = mean_field_states(land.h, land.J_sym, q)
    assert len(energy_f) == 4
    full = path_barriers(land.h, land.J_sym, centres)
    monkeypatch.setattr(_meanfield_attractors, "PATH_NEIGHBOURS", 1)
    near = path_barriers(land.h, land.J_sym, centres)
    assert (near <= line_barriers(land.h, land.J_sym, centres) + 1e-12).all()
    chains = np.maximum(near[:, :, None], near[None, :, :]).min(axis=1)
    assert (near <= chains + 1e-12).all()
    np.testing.assert_allclose(near, near.T)
    np.testing.assert_allclose(near, full, atol=1e-6)


def test_a_shallow_state_joins_a_deep_one_without_chaining_two_deep_ones():
    """Two deep states (free energy 0) 1.5 kT apart, and a shallow one (0.9) between them, 0.6 kT
    below its passes: the shallow state joins one deep state, the deep ones stay apart (single
    linkage would chain all three through the shallow one)."""
    from benchmarks.landscape import single_linkage  # the rule of the landscape table's "line" row
    from qbm_pyro.tl._barriers import merge_by_persistence

    energies = np.array([0.0, 0.0, 0.9])
    barriers = np.array([[0.0, 1.5, 1.5], [1.5, 0.0, 1.5], [1.5, 1.5, 0.9]])
    group = merge_by_persistence(energies, barriers, 1.0)
    assert group[0] != group[1] and group[2] in (group[0], group[1])
    assert (single_linkage(energies, barriers, 1.0) == 0).all()
    np.testing.assert_array_equal(single_linkage(energies, barriers, 0.5), [0, 1, 2])
    assert (merge_by_persistence(energies, barriers, 1.6) == 0).all()
    np.testing.assert_array_equal(merge_by_persistence(energies, barriers, 0.5), [0, 1, 2])


def test_merge_heights_are_the_joins_of_the_elder_rule():
    """``merge_heights`` lists the barrier of each join, lowest first: the worked example's shallow
    state joins at 0.6 kT above its floor, the two deep ones at 1.5; on random landscapes the heights
    never fall, there are ``k - 1`` of them, and cutting at any ``t`` leaves ``k`` minus the
    heights below ``t`` groups; minima with no finite barrier between them never join."""
    from qbm_pyro.tl._barriers import merge_by_persistence, merge_heights

    energies = np.array([0.0, 0.0, 0.9])
    barriers = np.array([[0.0, 1.5, 1.5], [1.5, 0.0, 1.5], [1.5, 1.5, 0.9]])
    np.testing.assert_allclose(merge_heights(energies, barriers), [0.6, 1.5])
    rng = np.random.default_rng(0)
    for k in (2, 5, 9, 14):
        energies = rng.normal(size=k)
        barriers = np.maximum.outer(energies, energies) + rng.exponential(size=(k, k))
        barriers = np.minimum(barriers, barriers.T)
        np.fill_diagonal(barriers, energies)
        heights = merge_heights(energies, barriers)
        assert heights.shape == (k - 1,) and (np.diff(heights) >= 0).all() and (heights >= 0).all()
        for t in np.concatenate([heights, heights + 1e-9, [0.0, np.inf]]):
            groups = merge_by_persistence(energies, barriers, t).max() + 1
            assert groups == k - int((heights < t).sum())
    apart = np.array([[0.0, np.inf], [np.inf, 1.0]])
    assert merge_heights(np.array([0.0, 1.0]), apart).size == 0
    np.testing.assert_array_equal(merge_by_persistence(np.array([0.0, 1.0]), apart, np.inf), [0, 1])


def test_landscape_reading_benchmark_on_planted_and_paramagnetic_machines(tmp_path):
    """``benchmarks/landscape_reading.py``'s readings: the planted machine's four states at every
    merging threshold up to 1 kT (its joins all above 1 kT, the widest gap computed from them), one
    state when paramagnetic; two seeds with the same states agree (ARI 1); the report renders."""
    from benchmarks.landscape_reading import BETAS, MIN_BARRIERS, readings, report_section, seed_to_seed

    codes = np.vstack([PATTERNS, 1 - PATTERNS])
    q, truth = cells_near(codes, per=5)
    planted = hopfield(PATTERNS, strength=3.0, bias=0.15 * (2 * PATTERNS[0] - 1))
    labels, persistence = readings(planted.h, planted.J_sym, q)
    assert set(labels) == {f"min_barrier {t:g}" for t in MIN_BARRIERS} | {f"beta {b:g}" for b in BETAS}
    heights = np.asarray(persistence["merge_heights"])
    assert persistence["fixed_points"] == 4 and heights.shape == (3,) and heights.min() > 1.0
    steps = np.diff(np.concatenate([[0.0], heights]))
    assert persistence["widest_gap"] == pytest.approx(steps.max(), abs=1e-3)
    for t in MIN_BARRIERS:
        states = len(set(labels[f"min_barrier {t:g}"]))
        assert states == 4 - int((heights < t).sum())
        if t <= 1.0:
            assert adjusted_rand_score(truth, labels[f"min_barrier {t:g}"]) == 1.0
    paramagnet = hopfield(PATTERNS, strength=0.5)
    flat, flat_persistence = readings(paramagnet.h, paramagnet.J_sym, q)
    assert flat_persistence["fixed_points"] == 1 and flat_persistence["merge_heights"] == []
    assert all(len(set(v)) == 1 for k, v in flat.items() if k.startswith("min_barrier"))
    agree = seed_to_seed({0: labels, 1: {k: v.copy() for k, v in labels.items()}})
    assert agree["min_barrier 1"] == pytest.approx(1.0)

    assert report_section(tmp_path) == []
    row = persistence | {
        "dataset": "toy",
        "seed": 0,
        "states": {k: int(v.max() + 1) for k, v in labels.items()},
    }
    result = {"meta": {"note": "toy"}, "rows": [row, row | {"seed": 1}], "seed_to_seed": {"toy": agree}}
    (tmp_path / "landscape_reading.json").write_text(json.dumps(result))
    md = "\n".join(report_section(tmp_path))
    assert "| toy | min_barrier 1 | 4.0 ± 0.0 | — | 1.000 |" in md and "| toy | 0 | 4 |" in md
