"""Sphinx configuration of the qbm-pyro documentation (``nox -s docs`` builds it with ``-W``)."""

from __future__ import annotations

import importlib.util
import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "qbm-pyro"
author = "qbm-pyro developers"
copyright = "2025, qbm-pyro developers"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
if importlib.util.find_spec("myst_parser") is not None:
    extensions.append("myst_parser")

napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options: dict = {}
autosummary_generate = False
exclude_patterns = ["_build"]
html_theme = "furo" if importlib.util.find_spec("furo") is not None else "alabaster"
html_title = "qbm-pyro"

# Broken cross-references fail the build (-W). The docs are built offline, without intersphinx,
# so references into other projects and the builtins cannot resolve: ignore those by package.
nitpicky = True
_EXTERNAL = (
    "numpy",
    "np",
    "pandas",
    "pd",
    "scipy",
    "anndata",
    "ad",
    "mudata",
    "md",
    "torch",
    "pyro",
    "matplotlib",
    "networkx",
    "nx",
    "dimod",
    "dwave",
    "sklearn",
    "argparse",
    "pathlib",
    "collections",
    "typing",
    "abc",
    "dataclasses",
    "os",
    "datetime",
    "socket",
    "tempfile",
    "tqdm",
    "Tensor",
    "Axes",
    "Path",
)
nitpick_ignore_regex = [
    (r"py:.*", rf"({'|'.join(_EXTERNAL)})(\..*)?"),
    (r"py:(class|obj|exc|data)", r"(int|float|str|bool|dict|list|tuple|set|object|None|bytes|callable|type)"),
    (r"py:(class|obj|exc)", r".*(Error|Warning|Exception)"),
]
# ExpandedDistribution and _RelaxedBinary come from docstrings inherited from Pyro / a private base.
nitpick_ignore = [
    ("py:class", "ExpandedDistribution"),
    ("py:class", "qbm_pyro.distributions.relaxed._RelaxedBinary"),
    ("py:meth", "qbm_pyro.module.priors.BoltzmannPrior.refresh_log_z"),
    ("py:class", "qbm_pyro.distributions.log_z_cache._Entry"),  # a private record type in signatures
]
