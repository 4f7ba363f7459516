"""The documentation site (docs/, Sphinx) builds with no warning: ``-W`` makes every warning an error.

docs/conf.py is strict: every cross-reference must resolve (``nitpicky``), every docstring of the API
pages must be valid reStructuredText with numpydoc sections, README and results/README.md are
included by their headings, and results/README.md's images must resolve. The fast test renders the
tutorials without running them (``nb_execution_mode=off``); the slow one (``.ci/docs``) executes
them as the site is built and checks their figures are on the pages.
"""

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_tutorials import FIGURES

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("index", "getting_started", "tutorials", "model", "results", "api/index", "api/circuits",
         "api/transformer", "api/runs", "api/types")
#: Public API the reference must document (one anchor each).
API = {"api/circuits": ("circuits.head.run_head", "circuits.head.head_spec", "circuits.head.HeadResult",
                        "circuits.runners.CircuitPool", "circuits.runners.make_runner", "circuits.runners.run_heads",
                        "circuits.runners.Runner", "circuits.runners.CircuitSpec", "circuits.feedforward.feedforward_spec",
                        "circuits.linear.linear_spec"),
       "api/transformer": ("transformer.spiking.spiking_minilm", "transformer.forward.forward", "transformer.bill.bill",
                           "transformer.heads.real_qkv", "transformer.minilm.load_model",
                           "transformer.executors.SpikingExecutor"),
       "api/runs": ("runs.nwb.write_nwb", "runs.spikes.save_spikes", "runs.spikes.load_spikes", "runs.neo.to_neo")}


def build(out: Path, *options) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", *options,
                           str(ROOT / "docs"), str(out)], capture_output=True, text=True, cwd=ROOT)


def images(page: Path) -> list:
    """The image files a page shows, resolved against the page's folder."""
    return [(page.parent / src).resolve() for src in re.findall(r'<img [^>]*src="([^"]+)"', page.read_text())
            if not src.startswith("data:")]


def text(page: Path) -> str:
    """A page's text without its markup."""
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))


def test_the_site_builds_without_warnings(tmp_path):
    out = tmp_path / "html"
    result = build(out, "-D", "nb_execution_mode=off")
    assert result.returncode == 0, result.stderr[-5000:]
    for page in PAGES:
        assert (out / f"{page}.html").is_file(), page
    for page, names in API.items():
        source = (out / f"{page}.html").read_text()
        assert all(f'id="{name}"' in source for name in names), [n for n in names if f'id="{n}"' not in source]
    for name in FIGURES:
        assert (out / "tutorials" / f"{name}.html").is_file(), name
    # docs/model.md: every ```math block is rendered as display maths
    model = (ROOT / "docs" / "model.md").read_text()
    assert (out / "model.html").read_text().count('class="math') >= model.count("```math") > 0
    # results/README.md: every image is on the page and copied
    shown = images(out / "results.html")
    assert len(shown) == len(re.findall(r"!\[[^\]]*\]\(", (ROOT / "results" / "README.md").read_text()))
    assert all(path.is_file() for path in shown)
    # getting started: the README's two commands
    assert "pip install -q -e . && .venv/bin/python -m experiments.attention" in text(out / "getting_started.html")


@pytest.mark.slow
def test_the_site_shows_the_executed_tutorials_figures(tmp_path, model):
    out = tmp_path / "html"
    result = build(out)
    assert result.returncode == 0, result.stderr[-5000:]
    for name, figures in FIGURES.items():
        shown = images(out / "tutorials" / f"{name}.html")
        assert len(shown) >= len(figures) and all(path.is_file() for path in shown), name
