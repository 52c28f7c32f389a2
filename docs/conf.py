"""Sphinx configuration (minimal: API pages of the samplers)."""

project = "qbm-pyro"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon"]
napoleon_google_docstring = False
napoleon_numpy_docstring = True
autodoc_member_order = "bysource"
html_theme = "furo"
exclude_patterns = ["_build"]
