"""The documentation site builds with warnings as errors: a link to a missing page or anchor,
a page left out of the navigation, or a reference mkdocstrings cannot resolve fails the build."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# About the repository and its tooling: run once per CI run (scripts/test.sh).
pytestmark = pytest.mark.meta

ROOT = Path(__file__).resolve().parents[2]


def test_the_docs_site_builds_strictly(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "reference" / "client" / "index.html").read_text().count(
        "ConnectyCubeClient"
    ) > 1


def test_the_readme_stays_a_landing_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move the detail to docs/"
