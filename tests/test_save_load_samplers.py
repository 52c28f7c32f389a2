"""A fitted model reloads with the sampler it was trained with (issue 12, point 1).

Every sampler kind is trained briefly, saved, loaded; the latent must be identical, the rebuilt
sampler of the same kind and settings, and its persistent state restored (the next draw from the
reloaded sampler equals the next draw from the original).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dwave.samplers import SimulatedAnnealingSampler

import qbm_pyro
from qbm_pyro import datasets
from qbm_pyro.cli import main
from qbm_pyro.samplers import (
    DimodSampler,
    ExactSampler,
    FallbackSampler,
    GibbsSampler,
    ParallelTemperingSampler,
    QPUSampler,
)
from qbm_pyro.samplers.serialize import SamplerNotRebuildableError, sampler_from_config, sampler_to_config

torch.set_num_threads(1)

#: n_latent above the prior's exact_max_n (12), so that training uses the sampler.
SMALL = dict(batch_key="batch", n_latent=14, n_continuous=2, n_hidden=16)
TRAIN = dict(max_epochs=1, batch_size=200, progress_bar=False, validation_fraction=0.0)


@pytest.fixture(scope="module")
def cite():
    data = datasets.pbmc_cite_2batch()
    return data[::4].copy()  # both batches


def _sa(**kwargs):
    return DimodSampler(SimulatedAnnealingSampler(), num_sweeps=20, seed=1, **kwargs)


SAMPLERS = {
    "default": lambda: None,
    "gibbs_blocks": lambda: GibbsSampler(
        num_sweeps=2, burn_in=3, blocks=[[i] for i in reversed(range(14))], seed=2
    ),
    "tempering": lambda: ParallelTemperingSampler(n_replicas=3, num_sweeps=2, burn_in=3, seed=3),
    "exact": lambda: ExactSampler(seed=4),
    "dimod_anneal": lambda: _sa(),
    "dimod_fixed": lambda: _sa(mode="fixed", burn_in=5),
    "fallback": lambda: FallbackSampler(_sa(mode="fixed"), GibbsSampler(num_sweeps=2, seed=5), timeout=60.0),
}


def _next_draw(model) -> torch.Tensor:
    prior = model.module.prior
    h, J = prior.h.detach(), prior.couplings().detach()
    return prior.sampler.sample(h, J, 7)


@pytest.mark.parametrize("kind", list(SAMPLERS))
def test_every_sampler_kind_round_trips(cite, tmp_path, kind):
    model = qbm_pyro.QBMVAE(cite, sampler=SAMPLERS[kind](), seed=0, **SMALL)
    model.train(**TRAIN)
    model.save(tmp_path / "m")
    loaded = qbm_pyro.QBMVAE.load(tmp_path / "m", cite)

    np.testing.assert_array_equal(model.get_latent_representation(), loaded.get_latent_representation())
    before, after = model.module.prior.sampler, loaded.module.prior.sampler
    assert type(after) is type(before)
    assert sampler_to_config(after) == sampler_to_config(before)
    torch.testing.assert_close(_next_draw(loaded), _next_draw(model), rtol=0, atol=0)


def test_dimod_without_fallback_round_trips(cite, tmp_path):
    model = qbm_pyro.QBMVAE(cite, sampler=_sa(), sampler_fallback=False, **SMALL)
    model.train(**TRAIN)
    model.save(tmp_path / "m")
    loaded = qbm_pyro.QBMVAE.load(tmp_path / "m", cite)
    assert type(loaded.module.prior.sampler) is DimodSampler  # not wrapped on reload


def test_config_round_trip_keeps_settings():
    for make in SAMPLERS.values():
        sampler = make()
        if sampler is None:
            continue
        config = sampler_to_config(sampler)
        assert sampler_to_config(sampler_from_config(config)) == config
    assert sampler_from_config(None) is None
    with pytest.raises(ValueError, match="not a sampler config"):
        sampler_from_config({"mode": "anneal"})


def test_qpu_asks_for_a_sampler(cite, tmp_path):
    from dwave.system import EmbeddingComposite
    from dwave.system.testing import MockDWaveSampler

    qpu = QPUSampler(EmbeddingComposite(MockDWaveSampler(parameter_warnings=False)), beta_eff=2.0, seed=0)
    model = qbm_pyro.QBMVAE(cite, sampler=qpu, **SMALL)
    model.save(tmp_path / "m")
    with pytest.raises(SamplerNotRebuildableError, match=r"QPUSampler.*sampler=") as info:
        qbm_pyro.QBMVAE.load(tmp_path / "m", cite)
    assert "QBMVAE.load(..., sampler=...)" in str(info.value)
    loaded = qbm_pyro.QBMVAE.load(tmp_path / "m", cite, sampler=GibbsSampler(seed=0))
    np.testing.assert_array_equal(model.get_latent_representation(), loaded.get_latent_representation())


def test_unknown_dimod_backend_asks_for_a_sampler():
    from dwave.system.testing import MockDWaveSampler

    sampler = DimodSampler(MockDWaveSampler(parameter_warnings=False), mode="scaled", beta_eff=1.0)
    config = sampler_to_config(sampler)
    assert config["rebuildable"] is False
    with pytest.raises(SamplerNotRebuildableError, match="MockDWaveSampler"):
        sampler_from_config(sampler_to_config(FallbackSampler(sampler)))


def test_cli_sa_fit_reloads(tmp_path):
    path = tmp_path / "cite.h5mu"
    datasets.pbmc_cite_2batch()[::4].copy().write_h5mu(path)
    out, model_dir = tmp_path / "out.h5mu", tmp_path / "sa_model"
    args = ["fit", str(path), "-o", str(out), "--sampler", "sa", "--model-dir", str(model_dir)]
    args += ["--batch-key", "batch", "--epochs", "1", "--n-latent", "14", "--n-continuous", "2", "--quiet"]
    assert main(args) == 0
    import mudata as md

    data = md.read_h5mu(path)
    loaded = qbm_pyro.QBMVAE.load(model_dir, data)
    assert isinstance(loaded.module.prior.sampler, FallbackSampler)
    assert isinstance(loaded.module.prior.sampler.primary, DimodSampler)
    written = md.read_h5mu(out).obsm["X_qbm"]
    np.testing.assert_allclose(loaded.get_latent_representation(), written, rtol=1e-6, atol=1e-6)


def test_file_without_sampler_config_gives_a_clear_error(cite, tmp_path):
    from qbm_pyro.model import SAVE_KEYS
    from qbm_pyro.torch_files import atomic_torch_save, load_torch_file

    model = qbm_pyro.QBMVAE(cite, sampler=SAMPLERS["fallback"](), seed=0, **SMALL)
    model.train(**TRAIN)
    model.save(tmp_path / "m")
    path = tmp_path / "m" / SAVE_KEYS.MODEL_FNAME
    payload = load_torch_file(path, what="model file")
    del payload[SAVE_KEYS.SAMPLER_CONFIG]  # as written before sampler configs existed
    atomic_torch_save(payload, path)
    with pytest.raises(ValueError, match="predates sampler configs.*sampler="):
        qbm_pyro.QBMVAE.load(tmp_path / "m", cite)
    loaded = qbm_pyro.QBMVAE.load(tmp_path / "m", cite, sampler=SAMPLERS["fallback"]())
    np.testing.assert_array_equal(model.get_latent_representation(), loaded.get_latent_representation())
