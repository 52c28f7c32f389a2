"""Nox sessions: ``tests`` (Python 3.10 and 3.11), ``demo``, ``bench``, ``docs``, ``lint``.

Every session that installs the package installs ``torch==2.13.0`` first, so that pip resolves
the package's ``torch`` requirement against the wheel already there instead of choosing one
itself (on PyPI the default Linux torch wheel pulls in the CUDA libraries, several GB). On a
CPU-only machine point pip at a CPU wheel before running nox, e.g. with
``PIP_FIND_LINKS`` or ``PIP_EXTRA_INDEX_URL``; ``TORCH_SPEC`` overrides the requirement.
"""

from __future__ import annotations

import os

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]

# A missing interpreter (say no Python 3.10 here) skips its session instead of failing the run.
nox.options.error_on_missing_interpreters = False

PYTHON = "3.11"
#: The lowest supported Python (pyproject's requires-python).
LOWEST_PYTHON = "3.10"
TORCH = os.environ.get("TORCH_SPEC", "torch==2.13.0")


def _check_torch(spec: str) -> str:
    """Code that prints the installed torch and, for a pinned ``spec`` (``torch==X``), checks it is X.

    Follows ``TORCH_SPEC``; a spec that pins nothing (a range, a path or URL to a wheel) is only printed.
    """
    head = "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
    name, sep, version = spec.replace(" ", "").partition("==")
    if not sep or name.lower() != "torch" or not version or any(c in version for c in ",;*"):
        return head
    return f"{head}; assert torch.__version__.split('+')[0] == {version!r}, torch.__version__"


CHECK_TORCH = _check_torch(TORCH)
# Packages of the `bench` extra left out of the bench session, comma-separated in the environment
# variable BENCH_SKIP (default: none). scvi-tools and scib-metrics bring jax, lightning and about
# 35 other packages (jaxlib is the large one); with torch pinned in the same pip command they
# resolve without touching torch. `BENCH_SKIP=scvi-tools,scib-metrics nox -s bench` leaves them
# out: benchmarks/run.py then skips the baseline and scib stages (and scVI in the cost stage).
BENCH_SKIP = {n.strip().lower() for n in os.environ.get("BENCH_SKIP", "").split(",") if n.strip()}


def install_package(session: nox.Session, *extras: str) -> None:
    """torch first, then the package (editable) with ``extras``."""
    session.install(TORCH)
    session.run("python", "-W", "ignore", "-c", CHECK_TORCH)
    suffix = f"[{','.join(extras)}]" if extras else ""
    session.install("-e", f".{suffix}")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the tests and the docstring examples; arguments after ``--`` go to pytest."""
    install_package(session, "test")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(name="tests-lowest", python=LOWEST_PYTHON)
def tests_lowest(session: nox.Session) -> None:
    """The same tests on the lowest supported Python (3.10).

    Not part of ``nox -s tests`` (the README's command and CI): it needs a torch wheel for 3.10,
    and a CPU-only machine whose local wheels are built for 3.11 only would otherwise pull the
    multi-GB CUDA build. Run ``nox -s tests-lowest`` where one is available (``TORCH_SPEC``).
    """
    install_package(session, "test")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Run the end-to-end demo, writing its report to ``report/``."""
    install_package(session)
    session.run("python", "examples/demo.py", "--out", "report", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Run the benchmarks into ``benchmarks/results/`` and write ``BENCHMARKS.md``.

    Arguments after ``--`` go to ``benchmarks/run.py`` (e.g. ``--quick``, ``--only cost report``).
    """
    install_package(session)
    # torch again in the same command, so that the extra's requirements cannot move it
    session.install(TORCH, *_bench_requirements())
    session.run("python", "-W", "ignore", "-c", CHECK_TORCH)
    # One OpenMP thread per process, as every benchmark states. Without it we saw a second OpenMP
    # thread of torch's busy in each benchmark process despite torch.set_num_threads(1) (some
    # library raised the count mid-run), and two benchmark processes on 2 cores ran 2-5x slower.
    threads = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
    single = dict.fromkeys(threads, "1")
    session.run("python", "benchmarks/run.py", *session.posargs, env=single)


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the HTML docs with warnings as errors."""
    install_package(session, "docs")
    session.run("sphinx-build", "-W", "-b", "html", "docs", "docs/_build/html")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


def _bench_requirements() -> list[str]:
    import tomllib

    with open("pyproject.toml", "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    return [r for r in extras.get("bench", []) if _name(r) not in BENCH_SKIP]


def _name(requirement: str) -> str:
    for stop in "<>=!~[; ":
        requirement = requirement.split(stop)[0]
    return requirement.strip().lower()
