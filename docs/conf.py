"""Sphinx configuration of the gsn_spatial documentation (built by ``tests/test_docs.py``).

Build by hand with ``.venv/bin/sphinx-build -W --keep-going -b html docs docs/_build/html``.
"""

from __future__ import annotations

import re
from pathlib import Path

import gsn_spatial

project = "gsn_spatial"
author = "gsn_spatial developers"
copyright = "2026, gsn_spatial developers"  # noqa: A001
release = version = gsn_spatial.__version__

extensions = [
    "myst_nb",  # markdown pages (MyST) and the tutorial notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",  # numpydoc docstrings
    "sphinx.ext.mathjax",
    "sphinxarg.ext",  # the CLI reference from gsn_spatial.cli.build_parser
]

# Tutorials are notebooks with their outputs stored, paired with percent scripts that the test suite
# executes (tests/test_tutorials.py); they are not executed while building.
nb_execution_mode = "off"
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "conf.py", "**/.ipynb_checkpoints", "README.md", "tutorials/tutorial_output"]
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3

autosummary_generate = False  # the API page documents each namespace with automodule
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_custom_sections = [("Attributes", "params_style")]

html_theme = "furo"
html_title = f"gsn_spatial {version}"
suppress_warnings = ["myst.header"]


# --- Pages that follow the package ------------------------------------------------------------

_DOCS = Path(__file__).resolve().parent
_LISTED = {"index", "installation", "cli", "api", "models", "training"}


def _callables(namespace: str) -> list[str]:
    module = getattr(gsn_spatial, namespace)
    return [n for n in module.__all__ if callable(getattr(module, n)) and not n.startswith("_")]


def _autosummary(match: re.Match) -> str:
    names = "\n".join(f"   {match.group(1)}.{n}" for n in _callables(match.group(1)))
    return f".. currentmodule:: gsn_spatial\n\n.. autosummary::\n   :nosignatures:\n\n{names}\n"


def _expand(app, docname: str, source: list[str]) -> None:
    """Fill ``autogsnsummary`` with a namespace's public functions and ``other-pages`` with new pages.

    So a function added to ``gsn.qc.__all__`` or a page added as ``docs/qc.md`` appears without
    editing the index or the API page (and the warnings-as-errors build does not fail on them).
    """
    if docname == "api":
        source[0] = re.sub(r"^\.\. autogsnsummary:: (\w+)\s*$", _autosummary, source[0], flags=re.M)
    elif docname == "index":
        others = sorted(p.stem for p in _DOCS.glob("*.md") if p.stem not in _LISTED and p.stem != "README")
        source[0] = source[0].replace("\nother-pages\n", "".join(f"\n{p}" for p in others) + "\n")


def setup(app):
    app.connect("source-read", _expand)
