"""Emulator: the official JS SDK (connectycube@6.1.2) against it, under Node.

Skips with a reason when node/npm are missing or the npm registry is unreachable, unless ``CI``
is set: then it fails, so CI can never go green without having run the SDK.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from django_connectycube.emulator import EmulatorServer
from tests.conftest import unavailable

JS_DIR = Path(__file__).parent / "js"




@pytest.fixture(scope="module")
def sdk_ready() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        unavailable("needs node and npm on PATH to run the ConnectyCube JS SDK check")
    installed = JS_DIR / "node_modules" / "connectycube" / "package.json"
    if not installed.exists() or json.loads(installed.read_text())["version"] != "6.1.2":
        command = [npm, "ci"] if (JS_DIR / "package-lock.json").exists() else [npm, "install"]
        result = subprocess.run(
            [*command, "--no-audit", "--no-fund"],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0:
            unavailable(f"npm could not install connectycube@6.1.2: {result.stderr[-500:]}")
    return JS_DIR


def test_official_js_sdk_against_the_emulator(sdk_ready: Path) -> None:
    with EmulatorServer(application_id=3, auth_key="sdk-key", auth_secret="sdk-secret") as server:
        result = subprocess.run(
            ["node", "sdk_check.mjs", server.url, "3", "sdk-key"],
            cwd=sdk_ready,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    steps = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    failed = [s for s in steps if s.get("ok") is False]
    assert result.returncode == 0 and not failed, (
        f"failed steps: {json.dumps(failed, indent=1)}\nstderr: {result.stderr[-2000:]}"
    )
    assert steps[-1] == {"summary": True, "failures": 0}
    assert len(steps) > 25
