"""The documentation site builds with warnings as errors (what CI publishes)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"

pytest.importorskip("sphinx")
pytest.importorskip("myst_nb")


def test_docs_build_without_warnings(tmp_path):
    # Build from a copy so nothing is written into the working tree.
    src = tmp_path / "docs"
    shutil.copytree(
        DOCS, src, ignore=shutil.ignore_patterns("_build", "generated", "__pycache__", "tutorial_output", "*.zarr")
    )
    out = tmp_path / "html"
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(src), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
    for page in ("index", "installation", "cli", "api", "models", "training", "tutorials/index"):
        assert (out / f"{page}.html").is_file(), page
    api = (out / "api.html").read_text()
    for name in ("io.from_image_and_transcripts", "io.read_cosmx", "tl.segment", "tl.train", "models.load"):
        assert f'id="gsn_spatial.{name}"' in api, name
    cli = (out / "cli.html").read_text()
    for command in ("segment", "train", "qc", "demo", "--labels-keys", "--reference-key"):
        assert command in cli, command
    # Every top-level page is in the navigation, pages added later (e.g. qc.md) included.
    index = (out / "index.html").read_text()
    for page in (p for p in DOCS.glob("*.md") if p.stem != "index"):
        assert f'href="{page.stem}.html"' in index, page.name
    # Tutorials are rendered with the figures they saved.
    for tutorial in sorted((DOCS / "tutorials").glob("0*.py")):
        html = (out / "tutorials" / f"{tutorial.stem}.html").read_text()
        assert "<img" in html, tutorial.name
    assert any((out / "_images").glob("*.png")) or not list((DOCS / "tutorials").glob("0*.py"))
