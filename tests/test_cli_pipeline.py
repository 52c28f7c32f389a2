"""Command line and pipeline polish (issue 12, point 6): per-modality layers, --version, hints in
CLI syntax, batch-key candidates, silenced FutureWarnings, tl.qbm pass-through, the offline QPU
recipe at n_latent=64 and loud fallbacks."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

import qbm_pyro
from qbm_pyro import datasets
from qbm_pyro.cli import main
from qbm_pyro.data.describe import batch_key_candidates, describe, label_columns
from qbm_pyro.samplers import FallbackSampler, GibbsSampler, Sampler, SamplerFallbackWarning

torch.set_num_threads(1)

FAST = ["--epochs", "1", "--n-latent", "6", "--n-continuous", "2", "--quiet"]
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def lognorm(tmp_path_factory):
    """CITE-seq with log-normalised RNA in X and the counts in layers['counts']."""
    mdata = datasets.pbmc_cite_2batch()[::4].copy()
    rna = mdata["rna"]
    counts = sp.csr_matrix(rna.X)
    rna.layers["counts"] = counts.copy()
    normalised = counts.multiply(1e4 / np.maximum(counts.sum(1), 1)).tocsr()
    normalised.data = np.log1p(normalised.data)
    rna.X = normalised
    path = tmp_path_factory.mktemp("in") / "lognorm.h5mu"
    mdata.write_h5mu(path)
    return path


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"qbm-pyro {qbm_pyro.__version__}"


def test_per_modality_layer_and_hint_in_cli_syntax(lognorm, tmp_path, capsys):
    out = tmp_path / "o.h5mu"
    assert main(["fit", str(lognorm), "-o", str(out), "--batch-key", "batch", *FAST]) == 2
    err = capsys.readouterr().err
    assert "--layer rna:counts" in err and "layers={" not in err
    argv = ["fit", str(lognorm), "-o", str(out), "--batch-key", "batch", "--layer", "rna:counts", *FAST]
    assert main(argv) == 0
    import mudata as md

    assert md.read_h5mu(out).obsm["X_qbm"].shape[0] == 100
    bad = ["fit", str(lognorm), "-o", str(tmp_path / "p.h5mu"), "--layer", "rna:counts", "prot", *FAST]
    assert main(bad) == 2
    assert "NAME:LAYER" in capsys.readouterr().err


def test_info_lists_batches_not_labels_or_outputs(lognorm, capsys):
    import mudata as md

    mdata = md.read_h5mu(lognorm)
    n = mdata.n_obs
    mdata.obs["cell_type"] = pd.Categorical(np.arange(n) % 5 == 0).astype(str)
    mdata.obs["qbm_state"] = pd.Categorical(np.arange(n) % 3).astype(str)
    mdata.obs["qbm_branch"] = pd.Categorical(np.arange(n) % 2).astype(str)
    mdata.obs["donor"] = pd.Categorical(np.arange(n) % 4).astype(str)
    candidates = [c for c, _ in batch_key_candidates(mdata)]
    assert candidates[:2] == ["batch", "donor"] or candidates[:2] == ["donor", "batch"]
    assert not {"cell_type", "qbm_state", "qbm_branch"} & set(candidates)
    assert {"cell_type", "qbm_state", "qbm_branch"} <= {c for c, _ in label_columns(mdata)}
    text = "\n".join(describe(mdata, name="x"))
    assert "hint: use --layer rna:counts" in text
    assert "layers={'rna': 'counts'}" in "\n".join(describe(mdata, name="x", cli=False))
    assert main(["info", str(lognorm)]) == 0
    out = capsys.readouterr().out
    assert "batch: 2 levels" in out and "--layer rna:counts" in out


def test_future_warnings_silenced_at_the_cli(lognorm, monkeypatch, capsys):
    import qbm_pyro.data.describe as describe_module

    original = describe_module.describe

    def noisy(*args, **kwargs):
        warnings.warn("this will change", FutureWarning, stacklevel=1)
        return original(*args, **kwargs)

    monkeypatch.setattr(describe_module, "describe", noisy)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert main(["info", str(lognorm)]) == 0
    assert not [w for w in seen if issubclass(w.category, FutureWarning)]
    assert "FutureWarning" not in capsys.readouterr().err
    with pytest.warns(FutureWarning):
        noisy(datasets.pbmc_rna_atac_100())  # the warning is real outside the CLI


def test_tl_qbm_passes_sampler_and_relaxation():
    mdata = datasets.pbmc_cite_2batch()[::4].copy()
    sampler = GibbsSampler(num_sweeps=2, seed=0)
    qbm_pyro.tl.qbm(
        mdata,
        batch_key="batch",
        n_latent=14,
        n_continuous=2,
        sampler=sampler,
        relaxation="spike",
        max_epochs=1,
        progress_bar=False,
    )
    assert mdata.uns["qbm"]["params"]["relaxation"] == "spike"
    assert sampler.chains is not None and sampler.chains.shape[1] == 14  # the sampler was used


class _Broken(Sampler):
    """Fails on every call."""

    def _sample(self, h, J, num_samples, beta):
        raise RuntimeError("device offline")


def test_fallback_is_loud_and_counted():
    mdata = datasets.pbmc_cite_2batch()[::4].copy()
    sampler = FallbackSampler(_Broken(), GibbsSampler(num_sweeps=2, seed=0))
    model = qbm_pyro.QBMVAE(mdata, batch_key="batch", n_latent=14, n_continuous=2, sampler=sampler)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always", SamplerFallbackWarning)
        history = model.train(max_epochs=3, batch_size=50, progress_bar=False, validation_fraction=0)
    epoch_warnings = [w for w in record if "history['sampler_fallbacks']" in str(w.message)]
    assert len(epoch_warnings) == 1  # once, at the first epoch with a fallback
    counts = history["sampler_fallbacks"]
    assert counts == [sampler.n_fallbacks * (e + 1) // 3 for e in range(3)]
    assert counts[-1] == sampler.n_failures > 0
    quiet = qbm_pyro.QBMVAE(mdata, batch_key="batch", n_latent=14, n_continuous=2)
    assert quiet.train(max_epochs=1, progress_bar=False)["sampler_fallbacks"] == [0]


def test_offline_qpu_recipe_embeds_64_units_without_fallback():
    spec = importlib.util.spec_from_file_location("quantum_annealer", EXAMPLES / "quantum_annealer.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    qpu = example.offline_qpu(64, num_probe_samples=200)
    g = torch.Generator().manual_seed(0)
    h = 0.2 * torch.randn(64, generator=g)
    J = torch.triu(0.05 * torch.randn(64, 64, generator=g), 1)
    sampler = FallbackSampler(qpu, GibbsSampler(seed=0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SamplerFallbackWarning)
        z = sampler.sample(h, J, 50)
    assert z.shape == (50, 64) and sampler.n_fallbacks == 0 and qpu.beta_eff_ > 0
