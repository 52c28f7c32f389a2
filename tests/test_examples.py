"""Every script in examples/ (except the demo) runs with --quick."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = [
    "custom_pyro_model.py",
    "getting_started.py",
    "multiomics_integration.py",
    "quantum_annealer.py",
    "trajectory.py",
]
TIMEOUT = 300


@pytest.fixture(scope="module")
def runs():
    """Start all scripts at once (one torch thread each) and collect their results."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg")
    start = time.perf_counter()
    procs = {
        name: subprocess.Popen(
            [sys.executable, str(EXAMPLES / name), "--quick"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=EXAMPLES.parent,
        )
        for name in SCRIPTS
    }
    results = {}
    for name, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=max(1.0, TIMEOUT - (time.perf_counter() - start)))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        results[name] = (proc.returncode, out, err)
    return results


def test_every_example_is_tested():
    present = {p.name for p in EXAMPLES.glob("*.py")} - {"demo.py"}
    assert present == set(SCRIPTS)


@pytest.mark.slow  # five processes training at once (minutes on 2 cores)
@pytest.mark.parametrize("name", SCRIPTS)
def test_example_runs_quick(runs, name):
    code, out, err = runs[name]
    assert code == 0, f"{name} failed:\n{err[-3000:]}"
    assert out.strip(), f"{name} printed nothing"
