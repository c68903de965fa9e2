"""What the source distribution holds: the package and its documents, and no half test suite."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

# About the repository and its tooling: run once per CI run (scripts/test.sh).
pytestmark = pytest.mark.meta

ROOT = Path(__file__).resolve().parents[2]


def test_sdist_ships_the_package_and_no_tests(tmp_path: Path) -> None:
    # What a release runs: pip installs the build backend pyproject.toml asks for.
    done = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [archive] = tmp_path.glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    top = {name.split("/", 1)[0] for name in names}
    assert top <= {
        "django_connectycube",
        "django_connectycube.egg-info",
        "README.md",
        "CHANGELOG.md",
        "LICENSE",
        "pyproject.toml",
        "MANIFEST.in",
        "PKG-INFO",
        "setup.cfg",
    }, sorted(top)
    assert {"README.md", "CHANGELOG.md", "LICENSE", "pyproject.toml"} <= names
    assert "django_connectycube/py.typed" in names
    assert "django_connectycube/emulator/app.py" in names
    assert any(name.startswith("django_connectycube/migrations/0001") for name in names)
    assert not [name for name in names if name.startswith("tests/") or "/tests/" in name]
    assert not [name for name in names if name.endswith((".pyc", ".sqlite3"))]
