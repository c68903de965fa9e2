"""``scripts/demo.sh`` (what ``make demo`` runs): ports, its usage text, and a clean Ctrl-C.

The script runs for real, on free ports and throwaway files, in its own session; the Ctrl-C test
gives it a pseudo-terminal and types ^C, as a person does.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# About the repository and its tooling: run once per CI run (scripts/test.sh).
pytestmark = pytest.mark.meta

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "demo.sh"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port something else listens on, as a forgotten ``runserver`` would."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("CELERY_BROKER_URL", "CONNECTYCUBE_API_URL", "DJANGO_SETTINGS_MODULE")
    }
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        MEDIA_ROOT=str(tmp_path / "media"),
        EMULATOR_STATE_FILE=str(tmp_path / "emulator.sqlite3"),
        DEMO_PORT=str(_free_port()),
        EMULATOR_PORT=str(_free_port()),
    )
    env.update(extra)
    return env


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,
        check=False,
    )


@pytest.mark.parametrize("variable", ["DEMO_PORT", "EMULATOR_PORT"])
def test_a_taken_port_is_a_clear_error_before_the_banner(
    tmp_path: Path, held_port: int, variable: str
) -> None:
    started = time.monotonic()
    result = _run(_env(tmp_path, **{variable: str(held_port)}))
    assert result.returncode != 0
    assert time.monotonic() - started < 30  # it stops; it does not hang
    assert f"port {held_port}" in result.stderr and variable in result.stderr, result.stderr
    assert "Example site:" not in result.stdout
    assert not (tmp_path / "demo.sqlite3").exists()  # nothing was started or migrated


def test_the_same_port_twice_is_an_error(tmp_path: Path) -> None:
    port = str(_free_port())
    result = _run(_env(tmp_path, DEMO_PORT=port, EMULATOR_PORT=port))
    assert result.returncode != 0
    assert "DEMO_PORT and EMULATOR_PORT" in result.stderr, result.stderr


@pytest.mark.parametrize("value", ["abc", "0", "70000", ""])
def test_a_port_that_is_no_number_is_an_error(tmp_path: Path, value: str) -> None:
    result = _run(_env(tmp_path, DEMO_PORT=value))
    assert result.returncode != 0
    assert "DEMO_PORT" in result.stderr and "1-65535" in result.stderr, result.stderr


def test_usage_names_the_ports(tmp_path: Path) -> None:
    result = _run(_env(tmp_path), "--help")
    assert result.returncode == 0
    for name in ("DEMO_PORT", "8000", "EMULATOR_PORT", "8765", "CELERY_BROKER_URL"):
        assert name in result.stdout


def _read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return seen


def _wait(pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.1)
    raise AssertionError(f"the demo did not stop within {timeout} s of Ctrl-C")


def _port_listens(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_ctrl_c_stops_everything_and_exits_0(tmp_path: Path) -> None:
    env = _env(tmp_path)
    demo_port, emulator_port = int(env["DEMO_PORT"]), int(env["EMULATOR_PORT"])
    pid, fd = pty.fork()
    if pid == 0:  # the child: a new session whose controlling terminal is the pty
        # As a terminal starts it: a test run launched in the background inherits an ignored
        # SIGINT, and bash cannot trap a signal ignored on entry.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.chdir(ROOT)
        os.execvpe("bash", ["bash", str(SCRIPT)], env)  # noqa: S606
    try:
        output = _read_until(fd, b"Stop with Ctrl-C.", timeout=120)
        assert b"Stop with Ctrl-C." in output, output.decode(errors="replace")
        deadline = time.monotonic() + 30
        while not _port_listens(demo_port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _port_listens(demo_port) and _port_listens(emulator_port)
        os.write(fd, b"\x03")  # ^C: the terminal sends SIGINT to the foreground process group
        output += _read_until(fd, b"demo: stopped.", timeout=30)
        status = _wait(pid, timeout=30)
        pid = 0
    finally:
        if pid:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    text = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "Traceback" not in text, text
    assert "stopped" in text.splitlines()[-1], text
    assert not _port_listens(demo_port) and not _port_listens(emulator_port)
