"""The package's layers hold: each module imports only from its own layer or those below it.

Layers, bottom to top (DESIGN: energy, then samplers, AIS, distributions, module, training,
model, tl and pl/cli):

0. leaves: ``_checks``, ``_constants``, ``energy``, ``torch_files``, ...;
1. the maths of Boltzmann machines: ``samplers``, ``ais``, ``distributions``;
2. ``module`` (the Pyro model and guide) beside the data layer (``data``, ``datasets``) and
   ``metrics``; ``module`` and ``data`` do not import each other;
3. ``training``;
4. the user-facing model: the ``model`` package (its base, save format, mixins and ``QBMVAE``),
   ``convergence`` (its fit checks), ``distributed``;
5. ``tl`` and ``pl``;
6. ``cli``, which nothing imports.

Distributions and samplers know nothing of cells (no anndata/mudata/scanpy/h5py), nor does
``module``. Checked twice: statically on every import statement, and by importing the lower
layers in a fresh interpreter and reading ``sys.modules``. Inside the ``model`` package the parts
are layered too (base and save format, then the mixins, then ``QBMVAE``), and no module of
qbm_pyro imports, even inside a function, one that imports it back: the import graph (built
statically with :mod:`ast`) is acyclic. No module is over 600 lines.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import networkx as nx  # a dependency of scanpy
import pytest

import qbm_pyro

PACKAGE = Path(qbm_pyro.__file__).resolve().parent

#: Layer of each top-level name inside qbm_pyro (module or subpackage).
LAYER = {
    "_checks": 0,
    "_constants": 0,
    "_lazy": 0,
    "device": 0,
    "energy": 0,
    "flat_parameters": 0,
    "torch_files": 0,
    "samplers": 1,
    "ais": 1,
    "distributions": 1,
    "module": 2,
    "data": 2,
    "datasets": 2,
    "metrics": 2,
    "pp": 3,
    "training": 3,
    "model": 4,
    "convergence": 4,
    "distributed": 4,
    "tl": 5,
    "pl": 5,
    "cli": 6,
}
#: Same-layer pairs that must not import each other.
APART = {("module", "data"), ("data", "module")}
#: Parts that hold no cells and must not import the single-cell stack.
CELL_FREE = {
    "_checks",
    "_constants",
    "_lazy",
    "device",
    "energy",
    "flat_parameters",
    "torch_files",
    "samplers",
    "ais",
    "distributions",
    "module",
}
CELL_PACKAGES = {"anndata", "mudata", "muon", "scanpy", "h5py"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of everything ``path`` imports (``from a import b`` gives ``a`` and ``a.b``)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _part(name: str) -> str | None:
    """The top-level part of qbm_pyro that ``name`` lies in (None for qbm_pyro itself or outside)."""
    parts = name.split(".")
    return parts[1] if parts[0] == "qbm_pyro" and len(parts) > 1 else None


def _sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


def test_every_part_has_a_layer():
    parts = {_part(_module_name(p)) for p in _sources()}
    unknown = sorted(parts - set(LAYER))
    assert not unknown, f"new parts of qbm_pyro {unknown}: give each a layer in tests/test_layers.py"


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_layers(path):
    here = _part(_module_name(path))
    bad = []
    for name in sorted(_imports(path)):
        there = _part(name)
        if name.split(".")[0] in CELL_PACKAGES and here in CELL_FREE:
            bad.append(f"{name} (the single-cell stack, in a part that holds no cells)")
        if there is None or there == here or there not in LAYER:
            continue
        if LAYER[there] > LAYER[here]:
            bad.append(f"{name} (layer {LAYER[there]} above {here}'s {LAYER[here]})")
        elif (here, there) in APART:
            bad.append(f"{name} ({here} and {there} stay apart)")
    assert not bad, f"{path.relative_to(PACKAGE)} imports " + "; ".join(bad)


def test_lower_layers_load_without_the_data_layer():
    """Import the maths in a fresh interpreter (without qbm_pyro/__init__, which loads all)."""
    code = f"""
import json, sys, types
pkg = types.ModuleType("qbm_pyro")
pkg.__path__ = [{str(PACKAGE)!r}]
sys.modules["qbm_pyro"] = pkg
import qbm_pyro.module, qbm_pyro.samplers, qbm_pyro.distributions
print(json.dumps(sorted(sys.modules)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "qbm_pyro.module.vae" in loaded  # the check did import something
    forbidden = {"qbm_pyro.data", "qbm_pyro.model", "qbm_pyro.cli", *CELL_PACKAGES}
    assert not loaded & forbidden, f"module/samplers/distributions pulled in {sorted(loaded & forbidden)}"


def test_nothing_imports_the_cli():
    importers = [p for p in _sources() if p.name != "cli.py" and "qbm_pyro.cli" in _imports(p)]
    assert not importers, f"the CLI is imported by {importers}"


#: Layers inside the ``model`` package: each part imports only parts of lower layers.
MODEL_LAYER = {
    "_base": 0,
    "_save": 0,
    "_query": 1,
    "_checkpoint": 1,
    "_expression": 2,
    "_generation": 2,
    "_mapping": 2,
    "_model": 3,
    None: 4,  # __init__
}


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in _sources()}


def _import_graph():
    """Directed graph of qbm_pyro's modules: an edge from each module to every qbm_pyro module it
    imports (at the top or inside a function), each import resolved to the module it names."""
    modules = _modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        for target in _imports(path):
            while target and target not in modules:  # ``a.b.Name`` → module ``a.b``
                target = target.rpartition(".")[0]
            if target and target != name:
                graph.add_edge(name, target)
    return graph


def test_no_import_cycles():
    graph = _import_graph()
    assert graph.has_edge("qbm_pyro.model._model", "qbm_pyro.model._mapping")  # the graph is real
    cycles = sorted(nx.simple_cycles(graph), key=len)[:5]
    assert nx.is_directed_acyclic_graph(graph), "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_import_cycle_is_detected(tmp_path, monkeypatch):
    """The cycle check fails on a cycle (two modules that import each other, one lazily)."""
    pkg = tmp_path / "qbm_pyro"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import f\n")
    (pkg / "b.py").write_text("def f():\n    from .a import g\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    assert not nx.is_directed_acyclic_graph(_import_graph())


@pytest.mark.parametrize(
    "path", sorted((PACKAGE / "model").glob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_model_package_parts_follow_their_layers(path):
    here = None if path.stem == "__init__" else path.stem
    assert here in MODEL_LAYER, f"new part model/{path.name}: give it a layer in MODEL_LAYER"
    bad = []
    for name in _imports(path):
        parts = name.split(".")
        if parts[:2] != ["qbm_pyro", "model"] or len(parts) < 3:
            continue
        there = parts[2] if parts[2] in MODEL_LAYER else None
        if there is not None and there != here and MODEL_LAYER[there] >= MODEL_LAYER[here]:
            bad.append(f"{name} (model layer {MODEL_LAYER[there]}, not below {here}'s {MODEL_LAYER[here]})")
    assert not bad, f"model/{path.name} imports " + "; ".join(bad)


def test_no_file_over_600_lines():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 600
    }
    assert not long, f"split these modules (over 600 lines): {long}"


@pytest.mark.parametrize("part", ["_generation", "_expression", "_mapping"])
def test_mixins_use_only_what_the_base_declares(part):
    """Every ``self.<name>`` (and ``model.<name>``) a mixin reads is declared by
    :class:`~qbm_pyro.model._base.ModelBase` (an annotated attribute or a method) or defined by the
    mixin itself: the mixins rely on no attribute that only ``QBMVAE`` defines."""
    from qbm_pyro.model._base import ModelBase

    tree = ast.parse((PACKAGE / "model" / f"{part}.py").read_text())
    mixin = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name.endswith("Mixin"))
    own = {n.name for n in mixin.body if isinstance(n, ast.FunctionDef)}
    declared = set(ModelBase.__annotations__) | {n for n in dir(ModelBase) if not n.startswith("__")}
    used = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in ("self", "model")
    }
    assert "registry" in used  # the check reads something
    unknown = sorted(used - own - declared)
    assert not unknown, f"model/{part}.py uses {unknown}: declare them on ModelBase (model/_base.py)"


def _private_imports(path: Path) -> list[str]:
    """``module.name`` for every private name (``_x``) ``path`` imports from another part of qbm_pyro."""
    here = _part(_module_name(path))
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        names = {alias.name for alias in node.names}
        for full in _imports(path) & {f"{m}.{n}" for m in _imports(path) for n in names}:
            module, _, name = full.rpartition(".")
            there = _part(module)
            if name.startswith("_") and not name.startswith("__") and there not in (None, here):
                found.append(full)
    return sorted(set(found))


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_parts_use_each_others_public_names(path):
    """A part of qbm_pyro imports only public names from another part (``mapping`` once imported
    ``_build``, ``_rows``, ``_batch_values`` of ``data.registry``)."""
    bad = _private_imports(path)
    assert not bad, f"{path.relative_to(PACKAGE)} imports private names of other parts: {bad}"
