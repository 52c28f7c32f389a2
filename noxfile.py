"""Nox sessions: ``tests``, ``tests-lowest``, ``demo``, ``bench``, ``docs``, ``lint`` (Python 3.11).

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

PYTHON = "3.11"
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


# pytest-xdist: a worker per core (tests/conftest.py caps "auto" at 4), each test sent to the next
# free worker (the tests take from milliseconds to minutes)
PARALLEL = ("-n", "auto", "--dist", "worksteal")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the tests and the docstring examples; arguments after ``--`` go to pytest.

    The tests run in parallel, one pytest-xdist worker per core (at most 4; ``-- -n 0`` runs them
    in one process)."""
    install_package(session, "test")
    session.run("python", "-m", "pytest", *PARALLEL, *session.posargs)


@nox.session(name="tests-lowest", python=PYTHON)
def tests_lowest(session: nox.Session) -> None:
    """The tests with every direct requirement at the lowest version pyproject.toml allows.

    Proves the declared floors: each requirement of ``dependencies`` and of the ``test`` extra is
    pinned to its ``>=`` bound and the rest resolve as usual, like uv's ``--resolution
    lowest-direct``, done with pip and a constraints file so that pip still finds the local torch
    wheel. A requirement without a floor is an error. Runs on Python 3.11, where the CPU torch
    wheel is; pyproject allows 3.10, which this session tests where a 3.10 torch wheel can be had
    (``nox -s tests-lowest --force-python 3.10``). Not part of ``nox -s tests`` (the README's
    command and CI). Arguments after ``--`` go to pytest.
    """
    session.install(TORCH)
    constraints = os.path.join(session.create_tmp(), "lowest-direct.txt")
    with open(constraints, "w") as f:
        f.write("\n".join(_lowest_direct(session)) + "\n")
    # wheels only where one exists: at the floors, pip would otherwise build old transitive sdists
    session.install("--prefer-binary", "-c", constraints, "-e", ".[test]")
    session.run("python", "-W", "ignore", "-c", CHECK_TORCH)
    session.run("python", "-m", "pip", "list")
    session.run("python", "-m", "pytest", *PARALLEL, *session.posargs)


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


def _lowest_direct(session: nox.Session) -> list[str]:
    """``name==floor`` for each requirement of ``dependencies`` and the ``test`` extra that applies here."""
    import tomllib
    from packaging.requirements import Requirement
    from packaging.version import Version

    with open("pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    version = "import platform; print(platform.python_version())"
    python = session.run_install("python", "-c", version, silent=True).strip()  # also with --install-only
    environment = {"python_full_version": python, "python_version": ".".join(python.split(".")[:2])}
    pins = []
    for line in [*project["dependencies"], *project["optional-dependencies"]["test"]]:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        floors = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==", "~=")]
        if not floors:
            session.error(f"pyproject.toml: {line!r} has no lower bound to test")
        pins.append(f"{requirement.name}=={max(floors)}")
    return pins
