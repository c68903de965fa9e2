"""The package's layers hold: every import-linter contract in ``pyproject.toml`` is kept.

``scripts/test.sh`` runs ``lint-imports`` before the unit tests; running each contract from
pytest too means a plain ``pytest`` (and every nox session) fails on an import that crosses a
layer the wrong way, with the offending chain in the failure. docs/architecture.md names the
contracts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from importlinter.api import read_configuration

# About the repository and its tooling: run once per CI run (scripts/test.sh).
pytestmark = pytest.mark.meta

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "django_connectycube"


def _lint_imports() -> str:
    found = Path(sys.executable).with_name("lint-imports")
    return str(found) if found.exists() else (shutil.which("lint-imports") or "lint-imports")


def _contract_ids() -> list[str]:
    cwd = Path.cwd()
    os.chdir(ROOT)  # read_configuration() reads the configuration of the working directory
    try:
        return [options["id"] for options in read_configuration()["contracts_options"]]
    finally:
        os.chdir(cwd)


def _run(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = subprocess.run(
        [_lint_imports(), "--no-cache", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.returncode, result.stdout + result.stderr


CONTRACTS = _contract_ids()


def test_the_documented_contracts_are_configured():
    assert {"layers", "acyclic", "client", "emulator", "standalone-root"} <= set(CONTRACTS)
    doc = (ROOT / "docs" / "architecture.md").read_text()
    for contract in CONTRACTS:
        assert f"`{contract}`" in doc, f"docs/architecture.md does not mention {contract!r}"


@pytest.mark.parametrize("contract", CONTRACTS)
def test_contract_is_kept(contract):
    code, output = _run("--contract", contract)
    assert code == 0, output


def test_an_import_hidden_in_a_function_still_breaks_the_layers(tmp_path):
    # The engine never enqueues: even a lazy import of the tasks from the sync engine is an
    # upward import, and the contract sees it (a copy of the package, so nothing here changes).
    copy = tmp_path / "django_connectycube"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with (copy / "sync" / "push.py").open("a") as module:
        module.write("\n\ndef _enqueue_from_the_engine():\n    from . import tasks  # noqa\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}

    code, output = _run("--contract", "sync-layers", cwd=tmp_path, env=env)

    assert code != 0, output
    assert "django_connectycube.sync.push -> django_connectycube.sync.tasks" in output
