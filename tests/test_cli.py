"""The command line: ``qbm-pyro fit | trajectory | info`` on the bundled CITE-seq data."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import mudata as md
import numpy as np
import pytest
import torch

from qbm_pyro import datasets
from qbm_pyro.cli import main

torch.set_num_threads(1)

FAST = ["--epochs", "2", "--n-latent", "8", "--n-continuous", "2", "--quiet"]


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def cite(tmp_path_factory):
    """The input file and its hash (checked after every command)."""
    path = tmp_path_factory.mktemp("in") / "cite.h5mu"
    datasets.pbmc_cite_2batch().write_h5mu(path)
    return path, digest(path)


@pytest.fixture(scope="module")
def fitted(cite, tmp_path_factory):
    path, sha = cite
    out = tmp_path_factory.mktemp("fit") / "fitted.h5mu"
    assert main(["fit", str(path), "-o", str(out), "--batch-key", "batch", *FAST]) == 0
    assert digest(path) == sha
    return out


def test_fit_writes_latent_and_model(cite, fitted):
    path, sha = cite
    mdata = md.read_h5mu(fitted)
    assert mdata.obsm["X_qbm"].shape == (400, 10)
    assert "qbm_energy" in mdata.obs
    assert mdata.uns["qbm"]["params"]["n_binary"] == 8
    assert (fitted.parent / "fitted_model" / "model.pt").is_file()
    assert not [p for p in fitted.parent.iterdir() if ".tmp-" in p.name]
    assert digest(path) == sha


def test_fit_options_checkpoint_and_sampler(cite, tmp_path):
    path, sha = cite
    out, ckpt = tmp_path / "o.h5mu", tmp_path / "state.pt"
    argv = ["fit", str(path), "-o", str(out), "--modalities", "rna:rna", "prot:protein"]
    argv += ["--sampler", "sa", "--model-dir", str(tmp_path / "m"), "--checkpoint", str(ckpt), "--resume"]
    assert main(argv + FAST) == 0
    assert ckpt.is_file() and (tmp_path / "m" / "model.pt").is_file()
    assert digest(path) == sha


def test_fit_refuses_overwrites(cite, fitted, capsys):
    path, sha = cite
    assert main(["fit", str(path), "-o", str(path), *FAST]) == 2
    assert "OUT is IN" in capsys.readouterr().err
    assert main(["fit", str(path), "-o", str(fitted), *FAST]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert digest(path) == sha


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--modalities", "nope"], "nope"),
        (["--batch-key", "no_such_column"], "no_such_column"),
        (["--modalities", "rna:rna", "prot"], "NAME:KIND"),
        (["--resume"], "--checkpoint"),
    ],
)
def test_fit_bad_input_exits_2(cite, tmp_path, capsys, extra, message):
    path, sha = cite
    code = main(["fit", str(path), "-o", str(tmp_path / "o.h5mu"), *extra, *FAST])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o.h5mu").exists()
    assert digest(path) == sha


def test_usage_errors(tmp_path, capsys):
    assert main(["fit", str(tmp_path / "missing.h5mu"), "-o", str(tmp_path / "o.h5mu")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["fit"]) == 2
    assert main(["fit", "x.h5mu", "-o", "y.h5mu", "--epochs", "0"]) == 2
    assert main([]) == 2
    assert main(["info", str(tmp_path / "data.csv")]) == 2


def test_trajectory_needs_latent(cite, tmp_path, capsys):
    path, sha = cite
    code = main(["trajectory", str(path), "-o", str(tmp_path / "t.h5mu"), "--root", "auto_energy", "-q"])
    assert code == 2
    assert "qbm-pyro fit" in capsys.readouterr().err
    assert digest(path) == sha


def test_trajectory_and_info(fitted, tmp_path, capsys):
    sha = digest(fitted)
    out = tmp_path / "traj.h5mu"
    argv = ["trajectory", str(fitted), "-o", str(out), "--root-key", "batch", "--n-neighbors", "10", "-q"]
    assert main(argv + ["--root-value", "no_such_batch"]) == 2
    assert "no_such_batch" in capsys.readouterr().err
    batch = str(md.read_h5mu(fitted).obs["batch"].iloc[0])
    assert main(argv + ["--root-value", batch]) == 0
    mdata = md.read_h5mu(out)
    assert mdata.obs["qbm_pseudotime"].notna().any()
    assert digest(fitted) == sha

    assert main(["info", str(out), "-q"]) == 0
    text = capsys.readouterr().out
    assert "rna: 400 x 2000" in text and "usable as 'protein'" in text
    assert "batch: 2 levels" in text
    assert "qbm: obsm['X_qbm'] 400 x 10" in text and "qbm_pseudotime" in text
    assert digest(fitted) == sha


def test_trajectory_roots_from_several_energy_columns(fitted, tmp_path, capsys):
    mdata = md.read_h5mu(fitted)
    mdata.obs["other_energy"] = 2.0 * mdata.obs["qbm_energy"] + 1.0  # a second fit's, same ranks
    two = tmp_path / "two.h5mu"
    mdata.write_h5mu(two)
    out = tmp_path / "traj.h5mu"
    argv = ["trajectory", str(two), "-o", str(out), "--root", "auto_energy", "-q", "--energy-key"]
    assert main([*argv, "qbm_energy", "no_such_energy"]) == 2
    assert "no_such_energy" in capsys.readouterr().err and not out.exists()
    assert main([*argv, "qbm_energy", "other_energy"]) == 0
    evidence = md.read_h5mu(out).uns["qbm_trajectory"]["root"]["evidence"]
    assert list(evidence["fits"]) == ["qbm_energy", "other_energy"] and evidence["fits_agree"]


def test_subprocess(cite):
    path, sha = cite
    run = subprocess.run(
        [sys.executable, "-m", "qbm_pyro.cli", "info", str(path), "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "MuData, 400 cells" in run.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "qbm_pyro.cli", "trajectory", str(path), "-o", str(path), "--root", "x"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "OUT is IN" in bad.stderr and "Traceback" not in bad.stderr
    assert digest(path) == sha


def test_fit_device_option(cite, tmp_path, capsys):
    path, _ = cite
    out = tmp_path / "cpu.h5mu"
    assert main(["fit", str(path), "-o", str(out), "--device", "cpu", *FAST]) == 0
    assert main(["fit", str(path), "-o", str(tmp_path / "x.h5mu"), "--device", "tpu", *FAST]) == 2
    assert "--device must be" in capsys.readouterr().err
    if not torch.cuda.is_available():  # asking for CUDA on a machine without it is a usage error
        assert main(["fit", str(path), "-o", str(tmp_path / "y.h5mu"), "--device", "cuda", *FAST]) == 2


@pytest.mark.parametrize(
    ("value", "expected"),
    [(["none"], {}), (["balanced"], {}), (["prot=2", "rna=0.5"], {"protein": 2.0, "rna": 0.5})],
)
def test_fit_likelihood_weights(cite, tmp_path, value, expected):
    """``--likelihood-weights`` reaches the model (CITE-seq has no ATAC: balanced weighs all 1),
    the saved model keeps it, and malformed values or unknown modalities exit 2."""
    import qbm_pyro

    path, sha = cite
    out = tmp_path / "o.h5mu"
    argv = [
        "fit",
        str(path),
        "-o",
        str(out),
        "--model-dir",
        str(tmp_path / "m"),
        "--likelihood-weights",
        *value,
    ]
    assert main(argv + FAST) == 0
    model = qbm_pyro.QBMVAE.load(tmp_path / "m", md.read_h5mu(out))
    assert model.module.likelihood_weights == expected
    assert digest(path) == sha


@pytest.mark.parametrize("value", ["prot", "prot=x", "=1", "atac=0.1", "prot=-1"])
def test_fit_bad_likelihood_weights_exit_2(cite, tmp_path, capsys, value):
    path, _ = cite
    assert main(["fit", str(path), "-o", str(tmp_path / "o.h5mu"), "--likelihood-weights", value, *FAST]) == 2
    err = capsys.readouterr().err
    assert (
        "'atac' is not one of this model's modalities" if value.startswith("atac") else "likelihood"
    ) in err


def test_fit_prior_refit_steps(cite, tmp_path, capsys):
    """``--prior-refit-steps`` reaches training: 0 leaves the prior at its last training iterate,
    a positive count refits it (same seed: the same encoder, so the same latent), -1 exits 2."""
    import numpy as np

    import qbm_pyro

    path, sha = cite
    models = {}
    for steps in ("0", "50"):
        out, model_dir = tmp_path / f"o{steps}.h5mu", tmp_path / f"m{steps}"
        argv = ["fit", str(path), "-o", str(out), "--model-dir", str(model_dir), "--prior-refit-steps", steps]
        assert main(argv + FAST) == 0
        data = md.read_h5mu(out)
        models[steps] = (qbm_pyro.QBMVAE.load(model_dir, data), data.obsm["X_qbm"])
    (off, latent_off), (on, latent_on) = models["0"], models["50"]
    np.testing.assert_array_equal(latent_off, latent_on)
    assert not torch.equal(off.module.prior.h, on.module.prior.h)
    bad = ["fit", str(path), "-o", str(tmp_path / "x.h5mu"), "--prior-refit-steps", "-1", *FAST]
    assert main(bad) == 2
    assert "--prior-refit-steps" in capsys.readouterr().err
    assert digest(path) == sha


@pytest.mark.parametrize(
    ("option", "values", "bad"),
    [
        ("--continuous-kl-weight", ("1", "4"), ("0", "nan", "x")),
        ("--continuous-free-bits", ("0", "3"), ("-1", "inf", "x")),
    ],
)
def test_fit_objective_options(cite, tmp_path, capsys, option, values, bad):
    """``--continuous-kl-weight`` and ``--continuous-free-bits`` reach training (another objective:
    another latent from the same seed); out-of-range numbers and non-numbers exit 2 naming the
    option."""
    path, sha = cite
    latents = []
    for value in values:
        out = tmp_path / f"o{value}.h5mu"
        assert main(["fit", str(path), "-o", str(out), option, value, *FAST]) == 0
        latents.append(md.read_h5mu(out).obsm["X_qbm"])
    assert not np.allclose(*latents)
    for value in bad:
        argv = ["fit", str(path), "-o", str(tmp_path / "x.h5mu"), option, value, *FAST]
        assert main(argv) == 2
        assert option in capsys.readouterr().err
    assert digest(path) == sha
