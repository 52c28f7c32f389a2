"""Reliability of QBMVAE (issue 6): bad input, interrupted training, failing samplers.

Every point is checked end to end through :class:`qbm_pyro.QBMVAE`: bad data fail with messages
that name the modality, column and value, and never modify the data (in memory or on disk); a
run killed with ``SIGKILL`` and resumed from its checkpoint is bit-identical to an uninterrupted
one; NaN/inf stops training with :class:`~qbm_pyro.training.NumericalError` and keeps the last
good checkpoint; failing dimod samplers give way to Gibbs; damaged files give clear errors and
never run code.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import anndata as ad
import dimod
import h5py
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

import qbm_pyro
from qbm_pyro import datasets
from qbm_pyro.module import MultiVAE
from qbm_pyro.samplers import DimodSampler, FallbackSampler, GibbsSampler, SamplerFallbackWarning
from qbm_pyro.torch_files import atomic_torch_save, load_torch_file
from qbm_pyro.training import NumericalError

torch.set_num_threads(1)

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning:mudata"),
    pytest.mark.filterwarnings("ignore:.*features are zero in every cell:UserWarning"),
]

REPO = Path(__file__).resolve().parents[1]
#: A small model: n_latent > 12, so log Z comes from AIS and its gradient from the sampler.
SMALL = dict(n_latent=16, n_continuous=4, n_hidden=32)
QUICK = dict(max_epochs=2, batch_size=32, progress_bar=False)


@functools.lru_cache(maxsize=1)
def _cite80() -> md.MuData:
    return datasets.pbmc_cite_2batch()[::5].copy()  # 80 cells, 40 per batch


def cite() -> md.MuData:
    """80 CITE-seq cells (rna 2000 genes, prot 14), int32 CSR counts, ``obs["batch"]``."""
    return _cite80().copy()


def _dense(x) -> np.ndarray:
    return x.toarray() if sp.issparse(x) else np.asarray(x)


def _set_value(mdata: md.MuData, mod: str, i: int, j: int, value: float) -> tuple[str, str]:
    """Set one entry of ``mdata[mod].X`` (as float32 CSR); returns the cell and feature names."""
    a = mdata.mod[mod]
    x = _dense(a.X).astype(np.float32)
    x[i, j] = value
    a.X = sp.csr_matrix(x)
    return str(a.obs_names[i]), str(a.var_names[j])


# ---------------------------------------------------------------------------------------------
# Snapshots: the user's data object is not modified.
# ---------------------------------------------------------------------------------------------


def _freeze(value):
    """A comparable deep copy: arrays densified (with type, format and dtype), frames copied."""
    if isinstance(value, h5py.Dataset):
        return ("array", value.dtype.str, value[()])
    if hasattr(value, "to_memory"):  # anndata's backed sparse datasets
        value = value.to_memory()
    if sp.issparse(value):
        return ("sparse", value.format, value.dtype.str, value.toarray())
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.copy())
    if isinstance(value, pd.DataFrame | pd.Series):
        return ("pandas", value.copy(deep=True))
    if isinstance(value, dict):
        return ("dict", {k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return ("seq", [_freeze(v) for v in value])
    return ("other", copy.deepcopy(value))


def _assert_frozen_equal(a, b, where=""):
    assert a[0] == b[0], where
    if a[0] == "pandas":
        if isinstance(a[1], pd.DataFrame):
            pd.testing.assert_frame_equal(a[1], b[1], check_exact=True, obj=where)
        else:
            pd.testing.assert_series_equal(a[1], b[1], check_exact=True, obj=where)
    elif a[0] == "dict":
        assert a[1].keys() == b[1].keys(), where
        for k in a[1]:
            _assert_frozen_equal(a[1][k], b[1][k], f"{where}/{k}")
    elif a[0] == "seq":
        assert len(a[1]) == len(b[1]), where
        for k, (x, y) in enumerate(zip(a[1], b[1], strict=True)):
            _assert_frozen_equal(x, y, f"{where}[{k}]")
    elif a[0] in ("sparse", "array"):
        assert a[:-1] == b[:-1], where
        np.testing.assert_array_equal(a[-1], b[-1], err_msg=where)
    else:
        assert a[1] == b[1], where


def snapshot(data: md.MuData | ad.AnnData) -> dict:
    """obs, var, X, layers, obsm, varm, obsp, uns of the object and of every modality."""
    parts = {"": data}
    if isinstance(data, md.MuData):
        parts.update({f"mod/{k}": v for k, v in data.mod.items()})
        out = {"mods": list(data.mod), "obsmap": {k: np.array(v) for k, v in data.obsmap.items()}}
    else:
        out = {}
    for name, a in parts.items():
        for slot in ("obs", "var", "uns"):
            out[f"{name}.{slot}"] = _freeze(getattr(a, slot))
        for slot in ("obsm", "varm", "obsp"):
            out[f"{name}.{slot}"] = _freeze(dict(getattr(a, slot)))
        if isinstance(a, ad.AnnData):
            out[f"{name}.X"] = _freeze(a.X)
            out[f"{name}.layers"] = _freeze(dict(a.layers))
    return out


def assert_unchanged(before: dict, data) -> None:
    after = snapshot(data)
    assert before.keys() == after.keys()
    for key in before:
        if key in ("mods", "obsmap"):
            assert str(before[key]) == str(after[key]), key
        else:
            _assert_frozen_equal(before[key], after[key], key)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# 1. Bad input: clear errors at the QBMVAE level.
# ---------------------------------------------------------------------------------------------


def _nan(m):
    cell, gene = _set_value(m, "rna", 3, 5, np.nan)
    return m, {}, ValueError, rf"modality 'rna' X has NaN or infinite values .*cell '{re.escape(cell)}', gene"


def _inf(m):
    cell, ab = _set_value(m, "prot", 7, 2, np.inf)
    return (
        m,
        {},
        ValueError,
        rf"modality 'prot' X has NaN or infinite .*cell '{re.escape(cell)}', protein '{ab}'",
    )


def _negative(m):
    cell, gene = _set_value(m, "rna", 4, 0, -3)
    pattern = (
        rf"modality 'rna' X has negative values .*-3 at cell '{re.escape(cell)}', gene '{re.escape(gene)}'"
    )
    return m, {}, ValueError, pattern


def _non_integer(m):
    rna = m.mod["rna"]
    rna.layers["counts"] = rna.X.copy()
    rna.X = rna.X.astype(np.float32).log1p()
    pattern = (
        r"modality 'rna' X has non-integer values .*"
        r"layer 'counts' looks like raw counts: pass layers=\{'rna': 'counts'\}"
    )
    return m, {}, ValueError, pattern


def _batch_missing(m):
    return m, {"batch_key": "donor"}, KeyError, r"batch_key 'donor' not found in mdata\.obs .*'batch'"


def _batch_with_holes(m):
    m.obs["holes"] = pd.Series(["a", None] * (m.n_obs // 2), index=m.obs_names, dtype=object)
    return m, {"batch_key": "holes"}, ValueError, r"batch column 'holes' .* missing value"


def _obs_mismatch(m):
    prot = m.mod["prot"].copy()
    prot.obs_names = [f"{n}_adt" for n in prot.obs_names]
    bad = md.MuData({"rna": m.mod["rna"].copy(), "prot": prot})
    return bad, {}, ValueError, r"'rna' and 'prot' share no cell"


def _duplicated_obs(m):
    a = m.mod["rna"].copy()
    a.obs_names = ["same"] * a.n_obs
    return a, {}, ValueError, r"duplicated obs name"


def _unknown_modality(m):
    return (
        m,
        {"modalities": ["rna", "gex"]},
        KeyError,
        r"unknown modality name\(s\) \['gex'\].*\['rna', 'prot'\]",
    )


def _unknown_kind(m):
    return m, {"modalities": {"rna": "dna"}}, ValueError, r"unknown modality kind 'dna' for 'rna'"


def _missing_layer(m):
    return m, {"layers": {"rna": "raw"}}, KeyError, r"modality 'rna' has no layer 'raw'"


def _string_matrix(m):
    a = m.mod["rna"][:, :5].copy()
    a.X = _dense(a.X).astype(str)
    return a, {}, TypeError, r"modality 'rna' X has dtype (<U\d+|object).*numeric"


def _no_cells(m):
    return m[[]].copy(), {}, ValueError, r"0 cells"


def _no_features(m):
    a = m.mod["rna"][:, []].copy()
    return a, {}, ValueError, r"modality 'rna' X is empty: 80 cells x 0 features"


def _not_data(m):
    return _dense(m.mod["rna"].X), {}, TypeError, r"data must be a MuData or an AnnData, got ndarray"


def _batch_key_type(m):
    return m, {"batch_key": 3}, TypeError, r"batch_key must be a str or a list of str, got 3"


def _raw_dimod_sampler(m):
    from dwave.samplers import SimulatedAnnealingSampler

    return (
        m,
        {"sampler": SimulatedAnnealingSampler()},
        TypeError,
        r"wrap it as qbm_pyro.samplers.DimodSampler",
    )


BAD_INPUTS = {
    f.__name__[1:]: f
    for f in [
        _nan,
        _inf,
        _negative,
        _non_integer,
        _batch_missing,
        _batch_with_holes,
        _obs_mismatch,
        _duplicated_obs,
        _unknown_modality,
        _unknown_kind,
        _missing_layer,
        _string_matrix,
        _no_cells,
        _no_features,
        _not_data,
        _batch_key_type,
        _raw_dimod_sampler,
    ]
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_refused_with_a_clear_message(case):
    data, kwargs, exc, pattern = BAD_INPUTS[case](cite())
    before = snapshot(data) if isinstance(data, md.MuData | ad.AnnData) else _dense(data).copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(exc, match=pattern):
            qbm_pyro.QBMVAE(data, **SMALL, **kwargs)
    if isinstance(data, md.MuData | ad.AnnData):
        assert_unchanged(before, data)
    else:
        np.testing.assert_array_equal(before, data)


def test_bad_input_matrix_leaves_files_on_disk_byte_identical(tmp_path):
    """Every bad input, written to a file and opened backed and in memory: refused; the file's
    bytes are unchanged."""
    n_checked = 0
    for case, make in BAD_INPUTS.items():
        data, kwargs, exc, pattern = make(cite())
        if not isinstance(data, md.MuData | ad.AnnData):
            continue  # not a data object: nothing to write
        is_mudata = isinstance(data, md.MuData)
        path = tmp_path / (f"{case}.h5mu" if is_mudata else f"{case}.h5ad")
        try:
            data.write_h5mu(path) if is_mudata else data.write_h5ad(path)
        except Exception:  # noqa: BLE001 (anndata cannot store some bad inputs, e.g. str X)
            continue
        digest = sha256(path)
        for backed in (True, False):
            if is_mudata:
                opened = md.read_h5mu(path, backed=backed)
            else:
                opened = ad.read_h5ad(path, backed="r" if backed else None)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                with pytest.raises(exc, match=pattern):
                    qbm_pyro.QBMVAE(opened, **SMALL, **kwargs)
            if backed:
                opened.file.close()
            assert sha256(path) == digest, f"{case}: the file changed"
            n_checked += 1
    assert n_checked == 2 * (len(BAD_INPUTS) - 1)


# ---------------------------------------------------------------------------------------------
# 1-2. Dense, CSR, CSC and backed inputs all train; the data is never modified.
# ---------------------------------------------------------------------------------------------


def _as_format(data, fmt):
    for a in data.mod.values() if isinstance(data, md.MuData) else [data]:
        x = sp.csr_matrix(a.X)
        a.X = {"dense": x.toarray(), "csr": x, "csc": x.tocsc()}[fmt]
    return data


def _fit_and_query(data, tmp_path, **kwargs):
    model = qbm_pyro.QBMVAE(data, **SMALL, seed=4, **kwargs)
    history = model.train(**QUICK)
    assert np.isfinite(history["train_loss"]).all()
    latent = model.get_latent_representation()
    energy = model.get_energy()
    expression = model.get_normalized_expression()
    model.save(tmp_path / "model", overwrite=True)
    assert latent.shape == (data.n_obs, 20) and energy.shape == (data.n_obs,)
    assert expression.shape[0] == data.n_obs and np.isfinite(expression.to_numpy()).all()
    return latent


@pytest.fixture(scope="module")
def reference_latents(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reference")
    mdata = cite()
    return {
        "mudata": _fit_and_query(mdata, tmp, batch_key="batch"),
        "anndata": _fit_and_query(mdata.mod["rna"].copy(), tmp, batch_key="batch"),
    }


@pytest.mark.parametrize("kind", ["mudata", "anndata"])
@pytest.mark.parametrize("fmt", ["dense", "csr", "csc", "backed-csr", "backed-csc", "backed-dense"])
def test_every_storage_trains_end_to_end_and_data_is_not_modified(kind, fmt, tmp_path, reference_latents):
    data = cite() if kind == "mudata" else cite().mod["rna"].copy()
    data.obsm["X_before"] = np.arange(data.n_obs * 2, dtype=float).reshape(-1, 2)
    data.uns["note"] = {"kept": [1, 2]}
    data = _as_format(data, fmt.removeprefix("backed-"))
    if fmt.startswith("backed"):
        path = tmp_path / ("data.h5mu" if kind == "mudata" else "data.h5ad")
        data.write_h5mu(path) if kind == "mudata" else data.write_h5ad(path)
        digest = sha256(path)
        data = md.read_h5mu(path, backed=True) if kind == "mudata" else ad.read_h5ad(path, backed="r")
    before = snapshot(data)
    latent = _fit_and_query(data, tmp_path, batch_key="batch")
    # same numbers whatever the storage: the loader densifies the same float32 rows
    np.testing.assert_array_equal(latent, reference_latents[kind])
    assert_unchanged(before, data)
    if fmt.startswith("backed"):
        data.file.close()
        assert sha256(path) == digest


def test_all_zero_cells_and_features_warn_are_skipped_in_training_but_encoded(tmp_path):
    mdata = cite()
    x = _dense(mdata.mod["rna"].X).astype(np.float32)
    x[[3, 50]] = 0
    x[:, 0] = 0
    mdata.mod["rna"].X = sp.csr_matrix(x)
    empty_cells = [str(mdata.obs_names[3]), str(mdata.obs_names[50])]
    with pytest.warns(UserWarning) as record:
        model = qbm_pyro.QBMVAE(mdata, batch_key="batch", **SMALL)
    text = " ".join(str(w.message) for w in record)
    assert f"2 of 80 cells have all-zero values (e.g. cell '{empty_cells[0]}')" in text
    assert "features are zero in every cell" in text
    model.train(**QUICK)
    latent = model.get_latent_representation()
    assert latent.shape == (80, 20) and np.isfinite(latent).all()  # a row for every cell
    assert model.get_energy().shape == (80,)
    # on request the empty cells are trained on too
    model.train(**QUICK, skip_empty_cells=False)
    assert np.isfinite(model.history_["train_loss"]).all()
    # nothing left to train on: a clear error
    x[:] = 0
    x[0, 0] = 1
    mdata.mod["rna"].X = sp.csr_matrix(x)
    with pytest.warns(UserWarning, match="all-zero values"):
        model = qbm_pyro.QBMVAE(mdata, **SMALL)
    with pytest.raises(ValueError, match=r"1 of 80 cells can be trained on.*skip_empty_cells=False"):
        model.train(**QUICK)


def test_batch_level_with_one_cell_warns_and_trains():
    mdata = cite()
    mdata.obs["lane"] = ["L1"] * 79 + ["L2"]
    with pytest.warns(UserWarning, match=r"batch column 'lane'.*\['L2'\] hold a single cell"):
        model = qbm_pyro.QBMVAE(mdata, batch_key=["batch", "lane"], **SMALL)
    model.train(**QUICK)
    assert model.get_latent_representation().shape == (80, 20)


# ---------------------------------------------------------------------------------------------
# 3. Checkpoints: SIGKILL mid-training, resume, bit-identical result.
# ---------------------------------------------------------------------------------------------

CKPT_MODEL = dict(batch_key="batch", n_latent=16, n_continuous=4, n_hidden=32, dropout=0.2, seed=7)
CKPT_TRAIN = dict(
    max_epochs=10,
    batch_size=32,
    lr=3e-3,
    kl_warmup_epochs=3,
    validation_fraction=0.1,  # 400 cells: none by default; the resumed history has the losses too
    patience=50,
    log_z_every=3,
    progress_bar=False,
)

CHILD = """
import sys, warnings
import torch
torch.set_num_threads(1)
warnings.simplefilter("ignore")
import qbm_pyro
from qbm_pyro import datasets

data = datasets.pbmc_cite_2batch()[::5].copy()
model = qbm_pyro.QBMVAE(data, **{model!r})
checkpoint = sys.argv[1] if sys.argv[1] != "-" else None
model.train(checkpoint_path=checkpoint, resume=checkpoint is not None, **{train!r})
if len(sys.argv) > 2:  # save what the parent compares
    torch.save(
        {{
            "state": model.module.state_dict(),
            "sampler": model.module.prior.sampler.state_dict(),
            "history": model.history_,
            "latent": torch.as_tensor(model.get_latent_representation()),
        }},
        sys.argv[2],
    )
print("finished", flush=True)
"""


def _wait_for_epoch(path: Path, proc: subprocess.Popen, epoch: int, timeout: float = 120.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the child ended before the kill: {proc.communicate()}")
        if path.exists():
            seen = int(load_torch_file(path, what="checkpoint")["epoch"])
            if seen >= epoch:
                return seen
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint of epoch {epoch} within {timeout} s")


@pytest.mark.slow  # trains in three processes
def test_sigkill_mid_training_then_resume_is_bit_identical(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(CHILD.format(model=CKPT_MODEL, train=CKPT_TRAIN)))
    ckpt = tmp_path / "run" / "state.pt"
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    proc = subprocess.Popen(
        [sys.executable, str(script), str(ckpt)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        seen = _wait_for_epoch(ckpt, proc, epoch=2)
        time.sleep(0.07)  # land inside the next epoch
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = int(load_torch_file(ckpt, what="checkpoint")["epoch"])
    assert 2 <= seen <= killed_at < CKPT_TRAIN["max_epochs"]
    leftovers = [p.name for p in ckpt.parent.iterdir() if p.name != ckpt.name]
    assert all(name.startswith(f".{ckpt.name}.tmp-") for name in leftovers)  # at most a dead temp

    # The uninterrupted run and the resumed run each run in a fresh process, as a user's would
    # (same thread settings as the killed one: a long-lived process may have had its OpenMP
    # thread count changed by other libraries, which changes float rounding).
    uninterrupted = subprocess.run(
        [sys.executable, str(script), "-", str(tmp_path / "uninterrupted.pt")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert uninterrupted.returncode == 0, uninterrupted.stderr.decode()[-2000:]
    resumed = subprocess.run(
        [sys.executable, str(script), str(ckpt), str(tmp_path / "resumed.pt")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    first = torch.load(tmp_path / "uninterrupted.pt", weights_only=True)
    second = torch.load(tmp_path / "resumed.pt", weights_only=True)
    a, b = first["state"], second["state"]
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"tensors differ after resume: {differ}"
    timing = "epoch_seconds"  # wall time, the one record a resumed run cannot reproduce
    assert {k: v for k, v in first["history"].items() if k != timing} == {
        k: v for k, v in second["history"].items() if k != timing
    }
    sa, sb = first["sampler"], second["sampler"]
    assert torch.equal(sa["chains"], sb["chains"]) and torch.equal(sa["generator"], sb["generator"])
    assert torch.equal(first["latent"], second["latent"])


def test_resume_refuses_foreign_checkpoints_and_warns_on_changed_settings(tmp_path):
    data = cite()
    ckpt = tmp_path / "state.pt"
    qbm_pyro.QBMVAE(data, batch_key="batch", **SMALL).train(checkpoint_path=ckpt, **QUICK)
    other = qbm_pyro.QBMVAE(data, batch_key="batch", **(SMALL | {"n_latent": 8}))
    before = {k: v.clone() for k, v in other.module.state_dict().items()}
    with pytest.raises(ValueError, match=r"written by another model or for other data \(init_args"):
        other.train(checkpoint_path=ckpt, resume=True, **QUICK)
    assert _state_equal(other.module, before)
    fewer = qbm_pyro.QBMVAE(data[:60].copy(), batch_key="batch", **SMALL)
    with pytest.raises(ValueError, match=r"another model or for other data \(n_obs"):
        fewer.train(checkpoint_path=ckpt, resume=True, **QUICK)
    same = qbm_pyro.QBMVAE(data, batch_key="batch", **SMALL)
    with pytest.warns(UserWarning, match=r"other training settings \{'lr': \(0\.001, 0\.01\)\}"):
        same.train(checkpoint_path=ckpt, resume=True, **(QUICK | {"max_epochs": 16}), lr=1e-2)
    assert same.history_["epoch"] == list(range(16))
    # the default warm-up follows max_epochs (half: 8 of 16 epochs, which would give epoch 2 a KL
    # weight of 3/8), but a resumed fit keeps the checkpoint's (1 epoch of 2)
    assert same.history_["kl_weight"] == [1.0] * 16
    with pytest.raises(ValueError, match="resume=True needs checkpoint_path"):
        same.train(resume=True, **QUICK)


# ---------------------------------------------------------------------------------------------
# 4. Numerical faults.
# ---------------------------------------------------------------------------------------------


def _inject(monkeypatch, at_call: int, fault, on_fault=lambda: None):
    """Make the ``at_call``-th training loss evaluation (grad enabled) return ``fault(loss, module)``
    (after calling ``on_fault()``)."""
    original = MultiVAE.loss  # the training loop's loss (AnalyticKL_ELBO's number, untraced)
    calls = {"n": 0}

    def patched(self, batch, kl_weight=1.0, **kwargs):
        loss = original(self, batch, kl_weight, **kwargs)
        if torch.is_grad_enabled():
            calls["n"] += 1
            if calls["n"] == at_call:
                on_fault()
                return fault(loss, self)
        return loss

    monkeypatch.setattr(MultiVAE, "loss", patched)


def _state_equal(module, state) -> bool:
    """Every tensor equal, bit for bit (NaN equal to NaN: ``log_z`` is NaN until computed)."""
    current = module.state_dict()
    return current.keys() == state.keys() and all(
        torch.equal(v.view(-1).view(torch.uint8), state[k].view(-1).view(torch.uint8))
        for k, v in current.items()
    )


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (lambda loss, module: loss * torch.nan, r"the loss became nan in epoch 2 \(training step 2"),
        (lambda loss, module: loss * torch.inf, r"the loss became inf in epoch 2 \(training step 2"),
        (
            # finite value, NaN gradient: 0 * d sqrt(x)/dx at x = 0
            lambda loss, module: loss + 0.0 * torch.sqrt(0.0 * module.prior.h.sum()),
            r"the gradient of 'prior\.h' became non-finite in epoch 2",
        ),
    ],
    ids=["nan-loss", "inf-loss", "nan-gradient"],
)
def test_numerical_fault_stops_and_keeps_last_good_checkpoint(fault, message, tmp_path, monkeypatch):
    data = cite()
    ckpt = tmp_path / "state.pt"
    model = qbm_pyro.QBMVAE(data, batch_key="batch", **SMALL)
    steps_per_epoch = 3  # 72 training cells, batch_size 32
    on_disk = {}
    _inject(monkeypatch, 2 * steps_per_epoch + 2, fault, lambda: on_disk.update(sha=sha256(ckpt)))
    with pytest.raises(NumericalError, match=message) as info:
        model.train(**(QUICK | {"max_epochs": 5}), checkpoint_path=ckpt)
    text = str(info.value)
    assert info.value.epoch == 2
    assert f"back at the end of epoch 1; {ckpt} holds that state" in text
    assert "Likely causes: a learning rate too high" in text
    assert not model.is_trained_
    assert sha256(ckpt) == on_disk["sha"]  # the checkpoint of epoch 1 is left as it was
    state = load_torch_file(ckpt, what="checkpoint")
    assert state["epoch"] == 2 and state["history"]["epoch"] == [0, 1]
    assert _state_equal(model.module, state["module"])  # the model is back at that state too
    prior = model.module.prior
    assert torch.isfinite(prior.h).all() and torch.isfinite(prior.J).all()
    monkeypatch.undo()
    resumed = qbm_pyro.QBMVAE(data, batch_key="batch", **SMALL)
    resumed.train(**(QUICK | {"max_epochs": 4}), checkpoint_path=ckpt, resume=True)
    assert resumed.history_["epoch"] == [0, 1, 2, 3]


def test_diverging_learning_rate_is_a_numerical_error_and_couplings_stay_finite(tmp_path):
    model = qbm_pyro.QBMVAE(cite(), batch_key="batch", **SMALL)
    initial = {k: v.clone() for k, v in model.module.state_dict().items()}
    with pytest.raises(NumericalError, match=r"in epoch 0 .*lr=1e\+06; try 100000") as info:
        model.train(**(QUICK | {"max_epochs": 3}), lr=1e6, checkpoint_path=tmp_path / "c.pt")
    assert "state before training" in str(info.value)
    assert _state_equal(model.module, initial)
    prior = model.module.prior
    assert torch.isfinite(prior.h).all() and torch.isfinite(prior.J).all()
    assert prior.h.abs().max() <= prior.coupling_bound


def test_prior_clamp_keeps_couplings_finite():
    prior = qbm_pyro.QBMVAE(cite(), **SMALL).module.prior
    with torch.no_grad():
        prior.h[0], prior.J[0, 1], prior.J[2, 3] = torch.nan, torch.inf, -1e9
    prior.clamp_()
    assert torch.isfinite(prior.h).all() and torch.isfinite(prior.J).all()
    assert prior.J[0, 1] == prior.coupling_bound and prior.J[2, 3] == -prior.coupling_bound


# ---------------------------------------------------------------------------------------------
# 5. Failing samplers fall back to Gibbs; training goes on.
# ---------------------------------------------------------------------------------------------


class _DimodBase(dimod.Sampler):
    """A dimod sampler that answers like simulated annealing would (random states)."""

    parameters = {"beta_range": [], "num_sweeps": [], "beta_schedule_type": []}
    properties: dict = {}

    def __init__(self):
        self.calls = 0

    def answer(self, bqm, num_reads):
        rng = np.random.default_rng(self.calls)
        states = rng.integers(0, 2, size=(num_reads, bqm.num_variables))
        return dimod.SampleSet.from_samples_bqm((states, list(bqm.variables)), bqm)

    def sample(self, bqm, num_reads=1, **kwargs):
        self.calls += 1
        return self.answer(bqm, num_reads)


class RaisingDimod(_DimodBase):
    def sample(self, bqm, num_reads=1, **kwargs):
        self.calls += 1
        raise ConnectionError("solver unreachable")


class WrongVariablesDimod(_DimodBase):
    def sample(self, bqm, num_reads=1, **kwargs):
        self.calls += 1
        smaller = bqm.copy()
        smaller.remove_variable(next(iter(bqm.variables)))
        return self.answer(smaller, num_reads)


class WrongReadsDimod(_DimodBase):
    def sample(self, bqm, num_reads=1, **kwargs):
        self.calls += 1
        return self.answer(bqm, max(1, num_reads // 2))


class SlowDimod(_DimodBase):
    def __init__(self):
        super().__init__()
        self.release = threading.Event()

    def sample(self, bqm, num_reads=1, **kwargs):
        self.calls += 1
        self.release.wait(2.0)
        return self.answer(bqm, num_reads)


@pytest.mark.parametrize("bad", [RaisingDimod, WrongVariablesDimod, WrongReadsDimod, SlowDimod])
@pytest.mark.parametrize("wrapping", ["explicit", "automatic"])
def test_failing_dimod_sampler_falls_back_to_gibbs_and_training_finishes(bad, wrapping):
    backend = bad()
    if wrapping == "explicit":
        sampler = FallbackSampler(DimodSampler(backend, num_sweeps=10, seed=0), timeout=0.3)
    elif bad is SlowDimod:
        pytest.skip("automatic wrapping sets no time limit")
    else:
        sampler = DimodSampler(backend, num_sweeps=10, seed=0)
    model = qbm_pyro.QBMVAE(cite(), batch_key="batch", sampler=sampler, **SMALL)
    used = model.module.prior.sampler
    assert isinstance(used, FallbackSampler) and used.primary is (
        sampler.primary if wrapping == "explicit" else sampler
    )
    with warnings.catch_warnings(record=True) as record:  # also the per-epoch count warning
        warnings.simplefilter("always", SamplerFallbackWarning)
        history = model.train(**QUICK, early_stopping=False)
    failed = r"DimodSampler failed \((ConnectionError|ValueError|RuntimeError|TimeoutError)"
    assert any(re.search(failed, str(w.message)) for w in record if w.category is SamplerFallbackWarning)
    if bad is SlowDimod:
        backend.release.set()
    assert history["epoch"] == [0, 1] and np.isfinite(history["train_loss"]).all()
    assert backend.calls >= 1 and used.n_failures >= 1 and used.n_fallbacks >= used.n_failures
    assert np.isfinite(model.get_latent_representation()).all()


def test_healthy_dimod_sampler_is_used_and_torch_samplers_are_not_wrapped():
    backend = _DimodBase()
    model = qbm_pyro.QBMVAE(cite(), sampler=DimodSampler(backend, num_sweeps=5, seed=0), **SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SamplerFallbackWarning)
        model.train(**QUICK)
    assert backend.calls > 0 and model.module.prior.sampler.n_fallbacks == 0
    gibbs = GibbsSampler(seed=1)
    assert qbm_pyro.QBMVAE(cite(), sampler=gibbs, **SMALL).module.prior.sampler is gibbs


def test_without_fallback_a_failing_sampler_stops_training():
    sampler = DimodSampler(RaisingDimod(), num_sweeps=10, seed=0)
    model = qbm_pyro.QBMVAE(cite(), sampler=sampler, sampler_fallback=False, **SMALL)
    assert model.module.prior.sampler is sampler
    with pytest.raises(ConnectionError, match="solver unreachable"):
        model.train(**QUICK)


# ---------------------------------------------------------------------------------------------
# 6. Loading: weights_only everywhere; damaged or tampered files give clear errors.
# ---------------------------------------------------------------------------------------------


def test_every_torch_load_uses_weights_only():
    calls = []
    for path in sorted((REPO / "qbm_pyro").rglob("*.py")):
        text = path.read_text()
        for match in re.finditer(r"torch\.load\(", text):
            depth, end = 1, match.end()
            while depth:
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                end += 1
            call = text[match.start() : end]
            line = text.count("\n", 0, match.start()) + 1
            calls.append((f"{path.relative_to(REPO)}:{line}", call))
    assert calls, "no torch.load found: the scan is broken"
    unsafe = [where for where, call in calls if not re.search(r"weights_only\s*=\s*True", call)]
    assert not unsafe, f"torch.load without weights_only=True at {unsafe}"


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def _flip_inside_tensor(path: Path, tensor: torch.Tensor) -> None:
    raw = bytearray(path.read_bytes())
    needle = tensor.detach().contiguous().numpy().tobytes()[:64]
    pos = bytes(raw).find(needle)
    assert pos > 0
    raw[pos + 32] ^= 0x10
    path.write_bytes(bytes(raw))


@pytest.fixture(scope="module")
def trained_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("files")
    model = qbm_pyro.QBMVAE(cite(), batch_key="batch", **SMALL)
    model.train(**QUICK, checkpoint_path=tmp / "state.pt")
    model.save(tmp / "model")
    return model, tmp / "state.pt", tmp / "model" / "model.pt"


def _damaged(kind: str, raw: bytes, path: Path, weight: torch.Tensor, tmp: Path) -> None:
    if kind == "truncated-half":
        path.write_bytes(raw[: len(raw) // 2])
    elif kind == "truncated-tail":
        path.write_bytes(raw[:-10])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "bit-flip":
        path.write_bytes(raw)
        _flip_inside_tensor(path, weight)
    elif kind == "evil-pickle":
        path.write_bytes(pickle.dumps({"epoch": _Evil(tmp / "pwned")}))
    elif kind == "evil-torch":
        torch.save({"epoch": _Evil(tmp / "pwned")}, path)
    elif kind == "not-a-dict":
        torch.save([1, 2, 3], path)


DAMAGE = {
    "truncated-half": "not a valid qbm_pyro {what} .*truncated",
    "truncated-tail": "not a valid qbm_pyro {what} .*truncated",
    "empty": "not a valid qbm_pyro {what} .*truncated",
    "garbage": "not a valid qbm_pyro {what} .*truncated",
    "bit-flip": "not a valid qbm_pyro {what}: its contents do not match the checksum",
    "evil-pickle": "not a valid qbm_pyro {what} .*unsafe content is refused, never run",
    "evil-torch": "not a valid qbm_pyro {what} .*unsafe content is refused, never run",
    "not-a-dict": "not a valid qbm_pyro {what}: expected a dict, got list",
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damaged_checkpoint_and_model_file_give_clear_errors(kind, trained_files, tmp_path):
    model, ckpt, model_file = trained_files
    weight = model.module.decoder_heads["rna_scale"].weight
    # checkpoint, through train(resume=True)
    path = tmp_path / "state.pt"
    _damaged(kind, ckpt.read_bytes(), path, weight, tmp_path)
    fresh = qbm_pyro.QBMVAE(cite(), batch_key="batch", **SMALL)
    before = {k: v.clone() for k, v in fresh.module.state_dict().items()}
    with pytest.raises(ValueError, match=DAMAGE[kind].format(what="checkpoint")):
        fresh.train(**QUICK, checkpoint_path=path, resume=True)
    assert _state_equal(fresh.module, before)
    # model file, through QBMVAE.load
    folder = tmp_path / "model"
    folder.mkdir()
    _damaged(kind, model_file.read_bytes(), folder / "model.pt", weight, tmp_path)
    with pytest.raises(ValueError, match=DAMAGE[kind].format(what="model file")):
        qbm_pyro.QBMVAE.load(folder, cite())
    assert not (tmp_path / "pwned").exists()  # no code ran


def test_checkpoint_without_training_state_or_as_a_folder(tmp_path):
    model = qbm_pyro.QBMVAE(cite(), batch_key="batch", **SMALL)
    atomic_torch_save({"epoch": 1}, tmp_path / "c.pt")
    with pytest.raises(ValueError, match="not a qbm_pyro training checkpoint"):
        model.train(**QUICK, checkpoint_path=tmp_path / "c.pt", resume=True)
    (tmp_path / "folder.pt").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no checkpoint at .*folder\.pt \(that is a directory\)"):
        model.train(**QUICK, checkpoint_path=tmp_path / "folder.pt", resume=True)


def test_checkpoint_of_an_earlier_format_says_so(trained_files, tmp_path):
    """A v1 checkpoint (per-parameter optimiser state) is refused by name, the model untouched."""
    _, ckpt, _ = trained_files
    state = load_torch_file(ckpt, what="checkpoint")
    state["format"] = "qbm_pyro.checkpoint.v1"
    atomic_torch_save(state, tmp_path / "old.pt")
    fresh = qbm_pyro.QBMVAE(cite(), batch_key="batch", **SMALL)
    before = {k: v.clone() for k, v in fresh.module.state_dict().items()}
    with pytest.raises(ValueError, match="written by an earlier qbm_pyro.*resume=False"):
        fresh.train(**QUICK, checkpoint_path=tmp_path / "old.pt", resume=True)
    assert _state_equal(fresh.module, before)


# ---------------------------------------------------------------------------------------------
# Output files are written atomically.
# ---------------------------------------------------------------------------------------------


def test_failed_writes_leave_the_previous_file_intact(trained_files, tmp_path, monkeypatch):
    model, ckpt, _ = trained_files
    target = tmp_path / "state.pt"
    target.write_bytes(ckpt.read_bytes())
    model.save(tmp_path / "model")
    saved = (tmp_path / "model" / "model.pt").read_bytes()

    def disk_full(obj, f, *args, **kwargs):
        if hasattr(f, "write"):
            f.write(b"PK\x03\x04 partial")
        else:  # a path: torch.save would open it
            Path(f).write_bytes(b"PK\x03\x04 partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        atomic_torch_save({"epoch": 99}, target)
    with pytest.raises(OSError, match="No space left"):
        model.save(tmp_path / "model", overwrite=True)
    monkeypatch.undo()
    assert target.read_bytes() == ckpt.read_bytes()
    assert (tmp_path / "model" / "model.pt").read_bytes() == saved
    assert sorted(p.name for p in tmp_path.rglob("*tmp*")) == []  # no temporary left behind
    assert load_torch_file(target, what="checkpoint")["epoch"] == 2
    qbm_pyro.QBMVAE.load(tmp_path / "model", cite())


def test_early_stopping_keeps_the_best_held_out_state_warm_up_included():
    """The validation loss (KL weight 1) is watched from the first epoch: a minimum reached while
    the KL weight is still rising is kept, training stops ``patience`` epochs after it, and the
    module ends in exactly that epoch's state (a fit that overfits its training cells does not
    end in its last, worse state)."""
    from qbm_pyro.training import Trainer

    scripted = [10.0, 8.0, 9.0, 9.5, 9.7, 7.0, 6.0]
    states: list[dict] = []

    class ScriptedValidation(Trainer):
        def evaluate(self, indices):
            # the parameters (the prior's log Z cache is refreshed after the validation pass)
            states.append({k: v.detach().clone() for k, v in self.module.named_parameters()})
            return scripted[len(states) - 1]

    model = qbm_pyro.QBMVAE(cite(), batch_key="batch", **SMALL)
    history = model.train(
        **(QUICK | {"max_epochs": 7}),
        kl_warmup_epochs=7,
        patience=3,
        validation_fraction=0.1,  # 400 cells: no validation set by default
        trainer_cls=ScriptedValidation,
        prior_refit_steps=0,  # the state kept is the best epoch's, as it was (no fit after training)
    )
    assert history["validation_loss"] == [10.0, 8.0, 9.0, 9.5, 9.7]  # stopped 3 epochs after the best
    assert history["kl_weight"][1] < 1.0  # the best epoch was in the warm-up
    best = states[1]
    assert all(torch.equal(v, best[k]) for k, v in model.module.named_parameters())
    assert not all(torch.equal(v, states[-1][k]) for k, v in model.module.named_parameters())
    # without early stopping every epoch runs, and the best state (epoch 6) is still the one kept
    states.clear()
    model = qbm_pyro.QBMVAE(cite(), batch_key="batch", **SMALL)
    history = model.train(
        **(QUICK | {"max_epochs": 7}),
        kl_warmup_epochs=7,
        validation_fraction=0.1,
        early_stopping=False,
        trainer_cls=ScriptedValidation,
        prior_refit_steps=0,
    )
    assert len(history["epoch"]) == 7
    assert all(torch.equal(v, states[6][k]) for k, v in model.module.named_parameters())
    # restore_best=False: early stopping still stops 3 epochs after the best, the last state stays
    states.clear()
    model = qbm_pyro.QBMVAE(cite(), batch_key="batch", **SMALL)
    history = model.train(
        **(QUICK | {"max_epochs": 7}),
        kl_warmup_epochs=7,
        patience=3,
        validation_fraction=0.1,
        restore_best=False,
        trainer_cls=ScriptedValidation,
        prior_refit_steps=0,
    )
    assert history["validation_loss"] == [10.0, 8.0, 9.0, 9.5, 9.7]
    assert not all(torch.equal(v, states[1][k]) for k, v in model.module.named_parameters())
    assert all(torch.equal(v, states[-1][k]) for k, v in model.module.named_parameters())
