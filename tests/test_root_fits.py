"""``tl.trajectory(root="auto_energy")`` over several fits' energies: consensus and agreement."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pytest
from scipy.stats import rankdata

import qbm_pyro
from qbm_pyro.tl._root_fits import ensemble_energy
from qbm_pyro.tl._roots import AmbiguousRootWarning


def path_with_fits(path_cells, slopes):
    """Cells along a path of known order ``t``; fit ``k``'s energy is ``slopes[k] * t`` plus its own
    noise (a negative slope: the energy falls with time, the root is at ``t = 0``)."""
    return path_cells(energies={f"fit{k}_energy": slope for k, slope in enumerate(slopes)})


def spearman_with_time(adata) -> float:
    return adata.obs["qbm_pseudotime"].corr(adata.obs["t"], method="spearman")


def test_fits_that_agree_give_a_clear_root_and_no_warning(path_cells):
    adata = path_with_fits(path_cells, [-3.0, -2.0, -30.0])  # other scales: the consensus reads ranks
    keys = ["fit0_energy", "fit1_energy", "fit2_energy"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", AmbiguousRootWarning)
        qbm_pyro.tl.trajectory(adata, "auto_energy", energy_key=keys)
    evidence = adata.uns["qbm_trajectory"]["root"]["evidence"]
    assert evidence["fits_agree"] and evidence["clear"]
    assert list(evidence["fits"]) == keys
    assert list(evidence["fit_root_states"]) == [evidence["root_state"]] * 3
    np.testing.assert_allclose(evidence["fit_pseudotime_spearman"], 1.0)
    assert np.all(evidence["fit_spearman"] < -0.8)
    assert spearman_with_time(adata) > 0.95
    # the state means are of the consensus energy: quantiles in [0, 1], highest at the start
    means = adata.uns["qbm_trajectory"]["state_mean_energy"]
    assert np.all((means >= 0) & (means <= 1))
    assert adata.uns["qbm_trajectory"]["states"][np.argmax(means)] == evidence["root_state"]


def test_fits_that_disagree_warn_and_are_not_clear(path_cells):
    """Two fits whose energies fall with time and one whose energy rises with it: the third
    fit alone roots at the far end; the consensus keeps the start and says the fits differ."""
    adata = path_with_fits(path_cells, [-3.0, -3.0, 3.0])
    alone = qbm_pyro.tl.trajectory(adata, "auto_energy", energy_key="fit2_energy", copy=True)
    assert alone.obs["qbm_pseudotime"].corr(alone.obs["t"], method="spearman") < -0.9
    assert alone.uns["qbm_trajectory"]["root"]["evidence"]["clear"]  # one fit alone: no warning
    with pytest.warns(AmbiguousRootWarning, match="do not agree on the root state"):
        qbm_pyro.tl.trajectory(adata, "auto_energy", energy_key=["fit0_energy", "fit1_energy", "fit2_energy"])
    evidence = adata.uns["qbm_trajectory"]["root"]["evidence"]
    assert not evidence["fits_agree"] and not evidence["clear"]
    roots = list(evidence["fit_root_states"])
    assert roots[0] == roots[1] == evidence["root_state"] != roots[2]
    assert evidence["fit_pseudotime_spearman"][2] < -0.9
    assert spearman_with_time(adata) > 0.9


def test_fits_of_weak_descent_are_not_clear_even_when_their_consensus_is(path_cells):
    """Three fits that agree on the start but each descend weakly from it (noise as large as the
    slope): averaging their ranks removes noise, so the consensus alone would pass -0.5."""
    adata = path_with_fits(path_cells, [-0.5, -0.5, -0.5])
    with pytest.warns(AmbiguousRootWarning, match="alone falls in energy"):
        qbm_pyro.tl.trajectory(adata, "auto_energy", energy_key=["fit0_energy", "fit1_energy", "fit2_energy"])
    evidence = adata.uns["qbm_trajectory"]["root"]["evidence"]
    assert evidence["fits_agree"] and evidence["spearman"] < -0.5  # the consensus alone: clear
    assert np.all(evidence["fit_spearman"] > -0.5) and not evidence["clear"]
    for key in ("fit0_energy", "fit1_energy", "fit2_energy"):  # each fit alone warns as well
        with pytest.warns(AmbiguousRootWarning, match="weaker than"):
            qbm_pyro.tl.trajectory(adata, "auto_energy", energy_key=key, copy=True)


def test_one_key_in_a_list_is_the_single_fit_call(path_cells):
    adata = path_with_fits(path_cells, [-3.0])
    listed = qbm_pyro.tl.trajectory(adata, "auto_energy", energy_key=["fit0_energy"], copy=True)
    plain = qbm_pyro.tl.trajectory(adata, "auto_energy", energy_key="fit0_energy", copy=True)
    np.testing.assert_array_equal(listed.obs["qbm_pseudotime"], plain.obs["qbm_pseudotime"])
    assert "fits" not in listed.uns["qbm_trajectory"]["root"]["evidence"]


@pytest.mark.parametrize(
    ("energy_key", "error", "match"),
    [
        (["fit0_energy", "missing_energy"], KeyError, "missing_energy"),
        (["fit0_energy", "fit0_energy"], ValueError, "more than once"),
        ([], ValueError, "empty list"),
        (["fit0_energy", 3], TypeError, "energy_key"),
    ],
)
def test_bad_energy_keys_raise_before_anything_is_written(path_cells, energy_key, error, match):
    adata = path_with_fits(path_cells, [-3.0, -2.0])
    before = set(adata.obs.columns), set(adata.uns)
    with pytest.raises(error, match=match):
        qbm_pyro.tl.trajectory(adata, "auto_energy", energy_key=energy_key)
    assert (set(adata.obs.columns), set(adata.uns)) == before


def test_a_missing_key_in_a_list_raises_without_auto_energy(path_cells):
    adata = path_with_fits(path_cells, [-3.0])
    with pytest.raises(KeyError, match="missing_energy"):
        qbm_pyro.tl.trajectory(adata, 0, energy_key=["fit0_energy", "missing_energy"])


def test_ensemble_energy_is_the_mean_quantile_and_ignores_scale():
    rng = np.random.default_rng(0)
    e = rng.normal(size=50)
    np.testing.assert_allclose(ensemble_energy([e, 100.0 * e + 7.0]), rankdata(e) / 50)
    f = rng.normal(size=50)
    np.testing.assert_allclose(ensemble_energy([e, f]), (rankdata(e) + rankdata(f)) / 100)
    e_nan = e.copy()
    e_nan[3] = np.nan
    out = ensemble_energy([e_nan, f])
    assert np.isnan(out[3]) and np.isfinite(np.delete(out, 3)).all()
    expected = (rankdata(np.delete(e, 3)) + rankdata(np.delete(f, 3))) / 98
    np.testing.assert_allclose(np.delete(out, 3), expected)


def test_consensus_evidence_survives_h5ad(path_cells, tmp_path):
    adata = path_with_fits(path_cells, [-3.0, -2.0])
    qbm_pyro.tl.trajectory(adata, "auto_energy", energy_key=["fit0_energy", "fit1_energy"])
    adata.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad").uns["qbm_trajectory"]
    assert list(back["root"]["evidence"]["fit_root_states"]) == list(
        adata.uns["qbm_trajectory"]["root"]["evidence"]["fit_root_states"]
    )
    assert list(back["params"]["energy_key"]) == ["fit0_energy", "fit1_energy"]
