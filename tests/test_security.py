"""A model file is data: loading one never imports or runs what the file names (issue 22).

The checksum inside ``model.pt`` only detects damage (anyone can recompute it with the public
helpers), so these tests recompute it after tampering, as an attacker would.
"""

from __future__ import annotations

import sys
import uuid
import warnings

import pytest
import torch

import qbm_pyro
from qbm_pyro import datasets
from qbm_pyro.samplers.serialize import (
    REBUILDABLE_DIMOD,
    SamplerNotRebuildableError,
    sampler_from_config,
    sampler_to_config,
)
from qbm_pyro.torch_files import atomic_torch_save, load_torch_file

torch.set_num_threads(1)

SMALL = dict(n_latent=8, n_continuous=2, n_hidden=16)


@pytest.fixture(scope="module")
def small():
    data = datasets.pbmc_cite_2batch()[:60].copy()
    return data


@pytest.fixture
def saved(small, tmp_path):
    model = qbm_pyro.QBMVAE(small, **SMALL)
    model.save(tmp_path / "model")
    return tmp_path / "model" / "model.pt"


@pytest.fixture
def probe(tmp_path, monkeypatch):
    """A module on ``sys.path`` whose import, and whose function ``make``, write a file."""
    name = f"qbm_probe_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "site"
    folder.mkdir()
    imported, called = tmp_path / "imported", tmp_path / "called"
    (folder / f"{name}.py").write_text(
        f"open({str(imported)!r}, 'w').write('imported')\n"
        f"def make():\n    open({str(called)!r}, 'w').write('called')\n    return object()\n"
    )
    monkeypatch.syspath_prepend(str(folder))
    yield name, imported, called
    sys.modules.pop(name, None)


def _dimod_config(backend: str) -> dict:
    return {
        "kind": "dimod",
        "backend": backend,
        "mode": "anneal",
        "num_sweeps": 10,
        "beta_min": 0.1,
        "burn_in": 0,
        "beta_eff": 1.0,
        "seed": 0,
        "sample_kwargs": {},
    }


def _tamper(path, config) -> None:
    payload = load_torch_file(path, what="model file")
    payload["sampler_config"] = config
    atomic_torch_save(payload, path)  # the checksum is recomputed: it does not protect


@pytest.mark.parametrize("nest", ["plain", "inside-fallback"])
def test_tampered_sampler_config_is_refused_and_the_probe_leaves_no_trace(saved, small, probe, nest):
    name, imported, called = probe
    backend = f"{name}.make"
    config = _dimod_config(backend)
    if nest == "inside-fallback":
        config = {"kind": "fallback", "primary": config, "fallback": {"kind": "exact", "seed": 0}}
    assert "sampler_config" in load_torch_file(saved, what="model file")
    _tamper(saved, config)
    refused = f"refusing to rebuild the saved dimod sampler '{backend}'"
    with pytest.raises(SamplerNotRebuildableError, match=refused):
        qbm_pyro.QBMVAE.load(saved.parent, small)
    assert name not in sys.modules
    assert not imported.exists() and not called.exists()


@pytest.mark.parametrize(
    "backend",
    [
        "os.system",  # importable, callable
        "dwave.samplers.SimulatedAnnealingSampler ",  # allow-listed name with a trailing space
        "dwave.samplers.sa.sampler.SimulatedAnnealingSampler",  # the same class by another path
        ["dimod.ExactSolver"],  # not a string
        None,
    ],
)
def test_only_exact_allow_listed_names_are_rebuilt(backend):
    with pytest.raises(SamplerNotRebuildableError, match="refusing to rebuild the saved dimod sampler"):
        sampler_from_config(_dimod_config(backend))


def test_allow_listed_dimod_backend_still_rebuilds():
    assert "dimod.ExactSolver" in REBUILDABLE_DIMOD
    config = _dimod_config("dwave.samplers.SimulatedAnnealingSampler")
    sampler = sampler_from_config(config)
    assert type(sampler.sampler).__name__ == "SimulatedAnnealingSampler"
    assert sampler_to_config(sampler) == config


def test_foreign_settings_in_a_sampler_config_are_a_clear_error():
    with pytest.raises(ValueError, match="does not fit its kind 'exact'"):
        sampler_from_config({"kind": "exact", "seed": 0, "callback": "os.system"})
    with pytest.raises(ValueError, match="does not fit its kind 'gibbs'"):
        sampler_from_config({"kind": "gibbs", "seed": 0})


def test_saved_attributes_outside_the_known_ones_are_refused(saved, small):
    payload = load_torch_file(saved, what="model file")
    payload["attributes"]["module"] = "not a module"
    atomic_torch_save(payload, saved)
    with pytest.raises(ValueError, match="unknown attribute"):
        qbm_pyro.QBMVAE.load(saved.parent, small)


def test_truncated_model_file_is_a_clear_error(saved, small):
    raw = saved.read_bytes()
    saved.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"is not a valid qbm_pyro model file \(truncated, corrupted"):
        qbm_pyro.QBMVAE.load(saved.parent, small)


@pytest.mark.parametrize("other", ["class-name", "checkpoint", "state-dict", "pickled-module"])
def test_model_file_of_another_kind_is_a_clear_error(saved, small, other, tmp_path):
    if other == "class-name":
        payload = load_torch_file(saved, what="model file")
        payload["class_name"] = "SCVI"
        atomic_torch_save(payload, saved)
        pattern = "holds a 'SCVI', not a QBMVAE"
    elif other == "checkpoint":
        model = qbm_pyro.QBMVAE(small, **SMALL)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            model.train(max_epochs=1, progress_bar=False, checkpoint_path=tmp_path / "state.pt")
        saved.write_bytes((tmp_path / "state.pt").read_bytes())
        pattern = "is not a QBMVAE model file"
    elif other == "state-dict":
        torch.save(torch.nn.Linear(2, 2).state_dict(), saved)
        pattern = "is not a QBMVAE model file"
    else:
        torch.save(torch.nn.Linear(2, 2), saved)
        pattern = "unsafe content is refused, never run"
    with pytest.raises(ValueError, match=pattern):
        qbm_pyro.QBMVAE.load(saved.parent, small)


def test_saved_settings_the_model_does_not_take_are_a_clear_error(saved, small):
    payload = load_torch_file(saved, what="model file")
    payload["init_args"]["callback"] = "os.system"
    atomic_torch_save(payload, saved)
    with pytest.raises(ValueError, match="its saved settings do not fit QBMVAE"):
        qbm_pyro.QBMVAE.load(saved.parent, small)
