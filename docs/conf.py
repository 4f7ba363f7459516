"""Sphinx configuration of the astro-transformer documentation site.

Build it from the repository root (set-up: README, "Tutorials and documentation")::

    .venv/bin/sphinx-build -W -b html docs docs/_build/html

The tutorials live in ``tutorials/`` as jupytext percent-format scripts; each build converts them
into notebooks under ``docs/tutorials/`` (generated, not versioned) and myst-nb executes them, so
the pages show their figures. ``-D nb_execution_mode=off`` renders them without running them
(seconds instead of minutes: what the fast test does).
"""

import re
import sys
from pathlib import Path

import jupytext

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))          # the project's packages, for autodoc, installed or not

project = "astro-transformer"
author = "the astro-transformer authors"
copyright = "2026, " + author
release = "0.1.0"

extensions = [
    "myst_nb",                        # Markdown pages (myst-parser) and notebooks
    "sphinx.ext.autodoc",
    "numpydoc",                       # numpydoc sections (Parameters, Returns, ...)
    "sphinx.ext.mathjax",
]

exclude_patterns = ["_build", "**/.ipynb_checkpoints"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

# --- Markdown: docs/model.md writes display maths as ```math fences
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_fence_as_directive = ["math"]
myst_heading_anchors = 3

# --- API reference from docstrings
autodoc_default_options = {"member-order": "bysource", "show-inheritance": True}
autodoc_typehints = "signature"
# Every cross-reference must resolve (a renamed function breaks the build), except to other projects'
# classes: the build is offline, without intersphinx inventories.
nitpicky = True
nitpick_ignore_regex = [("py:class", r"(numpy|np|abc|collections|pathlib|datetime|brian2|pynwb|neo|quantities)\..*")]
autodoc_preserve_defaults = True
numpydoc_show_class_members = False

# --- Tutorials: executed at build time in a temporary folder (their figure files stay out of the tree)
nb_execution_mode = "force"
nb_execution_in_temp = True
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True

html_theme = "alabaster"
html_title = "astro-transformer"
html_static_path = []


def tutorial_notebooks(source=ROOT / "tutorials", target=DOCS / "tutorials") -> list:
    """Convert every tutorial script (``tutorials/NN_name.py``) into ``docs/tutorials/NN_name.ipynb``,
    rewriting a notebook only when its text changes (Sphinx then rebuilds only that page), and drop
    notebooks whose script is gone."""
    target.mkdir(exist_ok=True)
    written = []
    for script in sorted(source.glob("[0-9][0-9]_*.py")):
        notebook = target / f"{script.stem}.ipynb"
        text = jupytext.writes(jupytext.read(script), fmt="ipynb")
        if not notebook.exists() or notebook.read_text() != text:
            notebook.write_text(text)
        written.append(notebook)
    for stale in set(target.glob("*.ipynb")) - set(written):
        stale.unlink()
    return written


tutorial_notebooks()


def results_links(app, relative_path, parent_docname, content):
    """``include-read`` of results/README.md (docs/results.md): its links to files (tables) become
    downloads, its links to run folders (directories, which a page cannot link) their names; its
    images resolve through ``:relative-images:``."""
    if relative_path.as_posix() != "../results/README.md":
        return

    def link(match):
        text, target = match.groups()
        if re.match(r"[a-z]+:|#", target):
            return match.group(0)
        return text if target.endswith("/") else f"[{text}](path:../results/{target})"

    content[0] = re.sub(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)", link, content[0])


def setup(app):
    app.connect("include-read", results_links)
