"""The live contract items are deselected without credentials and selected with them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# About the repository and its tooling: run once per CI run (scripts/test.sh).
pytestmark = pytest.mark.meta

ROOT = Path(__file__).resolve().parents[2]
LIVE = {
    "CONNECTYCUBE_LIVE_APPLICATION_ID": "1",
    "CONNECTYCUBE_LIVE_AUTH_KEY": "key",
    "CONNECTYCUBE_LIVE_AUTH_SECRET": "secret",
}


def collect(*args: str, live: bool) -> str:
    """``pytest --collect-only`` of the contract suite; an argument naming a variable sets it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTYCUBE_LIVE_")}
    if live:
        env.update(LIVE)
    for name in [a for a in args if a.startswith("CONNECTYCUBE_LIVE_")]:
        env[name] = "set"
    args = tuple(a for a in args if not a.startswith("CONNECTYCUBE_LIVE_"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/contract",
            *args,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result.stdout


def test_without_credentials_live_items_are_deselected_not_skipped():
    out = collect(live=False)
    assert "[emulator]" in out
    assert "[live]" not in out
    emulator = out.count("[emulator]")
    assert f"{emulator}/{2 * emulator} tests collected ({emulator} deselected)" in out


def test_with_credentials_marker_live_selects_only_the_live_items():
    out = collect("-m", "live", live=True)
    assert "[live]" in out
    assert "[emulator]" not in out
    # The admin API tests need the optional admin key as well.
    assert "test_admin_api.py" not in out
    with_admin = collect("-m", "live", "CONNECTYCUBE_LIVE_ADMIN_API_KEY", live=True)
    assert "test_admin_api.py::test_the_admin_api_reports_a_missing_user[live]" in with_admin
