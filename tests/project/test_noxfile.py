"""The compatibility matrix runs as documented: nox finds pyenv's interpreters by itself, and
the session names the docs give are ones ``nox -l`` lists."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

# About the repository and its tooling: run once per CI run (scripts/test.sh).
pytestmark = [
    pytest.mark.meta,
    # Each load of the noxfile registers its sessions again with nox.
    pytest.mark.filterwarnings("ignore:The session .* has already been registered:FutureWarning"),
]

ROOT = Path(__file__).resolve().parents[2]


def load_noxfile():
    spec = importlib.util.spec_from_file_location("noxfile_under_test", ROOT / "noxfile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_pyenv(root: Path, *versions: str) -> Path:
    for version in versions:
        line = ".".join(version.split(".")[:2])
        binary = root / "versions" / version / "bin" / f"python{line}"
        binary.parent.mkdir(parents=True)
        binary.write_text("#!/bin/sh\necho " + version + "\n")
        binary.chmod(0o755)
    return root


def test_the_newest_pyenv_interpreter_of_each_supported_line_is_found(tmp_path):
    noxfile = load_noxfile()
    root = fake_pyenv(tmp_path, "3.9.18", "3.10.2", "3.10.13", "3.13.0", "3.13.0t", "2.7.18")
    found = noxfile.pyenv_interpreters(root)
    assert found == {
        "3.10": root / "versions" / "3.10.13" / "bin" / "python3.10",
        "3.13": root / "versions" / "3.13.0" / "bin" / "python3.13",
    }


def test_found_interpreters_come_first_on_path_by_their_versioned_name(tmp_path, monkeypatch):
    noxfile = load_noxfile()
    root = fake_pyenv(tmp_path / "pyenv", "3.11.7")
    monkeypatch.setenv("PATH", "/usr/bin")
    noxfile.expose(noxfile.pyenv_interpreters(root), tmp_path / "pythons")
    first = os.environ["PATH"].split(os.pathsep)[0]
    assert (Path(first) / "python3.11").resolve() == (
        root / "versions" / "3.11.7" / "bin" / "python3.11"
    )
    assert not (Path(first) / "python").exists()  # nothing else is shadowed


def listed_sessions() -> set[str]:
    done = subprocess.run(
        [sys.executable, "-m", "nox", "-l", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return {session["session"] for session in json.loads(done.stdout)}


def test_every_session_name_the_docs_give_is_listed():
    texts = [(ROOT / "noxfile.py").read_text(), (ROOT / "docs" / "development.md").read_text()]
    examples = {m for text in texts for m in re.findall(r'nox -s "([^"]+)"', text)}
    assert examples, "the docs give no session name to run"
    assert examples <= listed_sessions(), examples
