"""Emulator: the three ways to run it (CLI, management command, pytest plugin)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from io import StringIO
from typing import Any

import pytest
import requests
from django.conf import settings
from django.core.management import call_command

from django_connectycube.emulator import Emulator
from django_connectycube.emulator.cli import build_parser


def _start_cli(*args: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "django_connectycube.emulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    return process, url


def test_cli_prints_url_serves_and_stops_on_sigterm() -> None:
    process, url = _start_cli(
        "--app-id", "7", "--auth-key", "KEY", "--auth-secret", "SECRET",
        "--require-signature", "--deny-auto-create",
    )  # fmt: skip
    try:
        assert url.startswith("http://127.0.0.1:")
        unsigned = requests.post(
            f"{url}/session", json={"application_id": 7, "auth_key": "KEY"}, timeout=5
        )
        assert (unsigned.status_code, unsigned.json()) == (
            422,
            {"errors": ["Unexpected signature"]},
        )
        config = requests.get(f"{url}/_emulator/config", timeout=5).json()["config"]
        assert config["deny_auto_create"] is True and config["auth_secret"] == "SECRET"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_busy_serving_stops_cleanly(signum: int) -> None:
    # A stop raised from the signal handler could land inside the threading machinery of a
    # connection being accepted and end in a traceback: the handler must only note the signal.
    process, url = _start_cli()
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            with contextlib.suppress(requests.RequestException):
                requests.get(f"{url}/_emulator/health", timeout=1)

    clients = [threading.Thread(target=hammer, daemon=True) for _ in range(4)]
    for client in clients:
        client.start()
    try:
        threading.Event().wait(0.5)
        process.send_signal(signum)
        assert process.wait(timeout=10) == 0
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=5)
    assert process.stderr is not None
    assert "Traceback" not in process.stderr.read()


def test_the_stop_signals_are_only_noted_never_raised_into_the_server() -> None:
    from django_connectycube.emulator import cli

    stopped: list[bool] = []

    class Server:
        serving = True

        def start(self) -> None:
            for signum in (signal.SIGINT, signal.SIGTERM):
                handler = signal.getsignal(signum)
                assert callable(handler)
                handler(signum, None)  # as the interpreter would, anywhere in the server

        def stop(self) -> None:
            stopped.append(True)

    before = signal.getsignal(signal.SIGINT)
    cli._serve_until_signalled(Server())  # type: ignore[arg-type]
    assert stopped == [True]
    assert signal.getsignal(signal.SIGINT) is before


def test_cli_options_parse_cidp_mapping() -> None:
    options = build_parser().parse_args(
        ["--cidp-url", "http://x/verify", "--cidp-mapping", '{"uid": "#{user.id}"}']
    )
    assert options.cidp_mapping == {"uid": "#{user.id}"}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--cidp-mapping", "[1]"])


def _held_at_once(threads: int, clients: int) -> int:
    """The most of ``clients`` requests, sent together to a server with ``threads`` threads,
    that its application held at the same moment (each is held 0.3 s, as a latency fault)."""
    from django_connectycube.emulator.server import EmulatorServer

    lock = threading.Lock()
    inside = [0, 0]  # now, most

    def slow_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with lock:
            inside[0] += 1
            inside[1] = max(inside)
        threading.Event().wait(0.3)
        with lock:
            inside[0] -= 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    server = EmulatorServer(app=slow_app, threads=threads).start()
    try:
        barrier = threading.Barrier(clients)

        def call() -> None:
            barrier.wait(timeout=10)
            requests.get(f"{server.url}/", timeout=15).raise_for_status()

        callers = [threading.Thread(target=call) for _ in range(clients)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(timeout=20)
        return inside[1]
    finally:
        server.stop()


def test_the_emulator_serves_as_many_requests_at_once_as_it_has_threads() -> None:
    # Injected latency holds a server thread: with 32 threads, a client with 64 requests in
    # flight measured the emulator's pool, not the latency.
    assert _held_at_once(threads=4, clients=8) == 4
    assert _held_at_once(threads=12, clients=8) == 8


def test_cli_threads_option() -> None:
    assert build_parser().parse_args(["--threads", "200"]).threads == 200
    assert build_parser().parse_args([]).threads == 32
    for bad in ("0", "many"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["--threads", bad])


def test_management_command_uses_settings_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs the command in a thread; SIGINT-free stop via the server it builds."""
    from django_connectycube.emulator import cli

    started: dict[str, Any] = {}
    original = cli.make_server

    def capture(options: Any) -> Any:
        server = original(options)
        started["server"] = server
        started["options"] = dict(options)
        return server

    monkeypatch.setattr(cli, "make_server", capture)
    out, err = StringIO(), StringIO()
    thread = threading.Thread(
        target=call_command,
        args=("connectycube_emulator", "--port", "0"),
        kwargs={"stdout": out, "stderr": err},
        daemon=True,
    )
    thread.start()
    for _ in range(100):
        if "server" in started and out.getvalue():
            break
        threading.Event().wait(0.05)
    server = started["server"]
    try:
        assert out.getvalue().strip() == server.url
        assert started["options"]["auth_key"] == settings.CONNECTYCUBE["AUTH_KEY"]
        assert server.emulator.auth_secret == settings.CONNECTYCUBE["AUTH_SECRET"]
        assert requests.get(f"{server.url}/_emulator/health", timeout=5).json()["ok"] is True
    finally:
        server.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_management_command_takes_the_switch_and_state_file_flags(tmp_path: Any) -> None:
    from django_connectycube.emulator.cli import make_server
    from django_connectycube.management.commands.connectycube_emulator import Command

    parser = Command().create_parser("manage.py", "connectycube_emulator")
    options = parser.parse_args(
        [
            "--enable-v1-users-api",
            "--deny-other-user-info",
            "--admin-api-key",
            "admin-key",
            "--state-file",
            str(tmp_path / "emulator.sqlite3"),
        ]
    )
    emulator = make_server(vars(options)).emulator
    config = emulator.config
    assert (config["v1_users_api"], config["allow_other_user_info"], config["admin_api_key"]) == (
        True,
        False,
        "admin-key",
    )
    assert config["auth_key"] == settings.CONNECTYCUBE["AUTH_KEY"]
    assert emulator.store.state_file is not None
    assert emulator.store.state_file.path == tmp_path / "emulator.sqlite3"
    emulator.close()


def test_fixture_points_settings_at_the_emulator(connectycube_emulator: Emulator) -> None:
    from django_connectycube.conf import app_settings

    assert settings.CONNECTYCUBE["API_URL"] == connectycube_emulator.url
    assert connectycube_emulator.url == app_settings.API_URL
    assert connectycube_emulator.auth_key == app_settings.AUTH_KEY
    connectycube_emulator.create_user(login="leftover", password="p")


def test_fixture_resets_between_tests(connectycube_emulator: Emulator) -> None:
    assert connectycube_emulator.users == []
    assert connectycube_emulator.request_count() == 0


def test_settings_are_restored_after_the_fixture() -> None:
    assert settings.CONNECTYCUBE["API_URL"] == "https://api.connectycube.com"


def test_plugin_module_does_not_import_django_settings() -> None:
    code = (
        "import sys; import django_connectycube.testing; "
        "assert 'django.conf' not in sys.modules or "
        "not __import__('django.conf').conf.settings.configured; print('ok')"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert result.stdout.strip() == "ok", result.stderr


def _python(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter without Django settings (a hang fails the test)."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )


def test_the_emulator_imports_nothing_of_the_app_and_no_django() -> None:
    """The emulator is the server side: it must run from any Python process, and a client bug
    must not hide in code the emulator shares with the client."""
    result = _python(
        "import sys, requests\n"
        "from django_connectycube.emulator import EmulatorServer\n"
        "from django_connectycube.emulator import cli\n"
        "with EmulatorServer(require_signature=True) as s:\n"
        "    r = requests.post(s.url + '/session', json={'application_id': 1,"
        " 'auth_key': 'emulator-auth-key', 'nonce': 1, 'timestamp': 1, 'signature': 'ab'})\n"
        "    assert r.status_code == 422, r.text\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'"
        " or m.startswith('django_connectycube.')"
        " and not m.startswith('django_connectycube.emulator')))\n"
    )
    assert result.stdout.strip() == "[]", result.stderr


def test_a_server_nobody_stopped_does_not_keep_the_process_alive() -> None:
    # As when a test fails between start() and stop(): the test run must still end.
    code = (
        "import requests\n"
        "from django_connectycube.emulator import EmulatorServer\n"
        "server = EmulatorServer().start()\n"
        "requests.get(server.url + '/_emulator/health', timeout=5).raise_for_status()\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr


_WITHOUT_CHEROOT = "import sys; sys.modules['cheroot'] = None\n"


def test_without_the_extra_starting_a_server_names_it() -> None:
    result = _python(
        _WITHOUT_CHEROOT + "import django_connectycube.testing\n"
        "from django_connectycube.emulator import Emulator, EmulatorServer, ServerNotInstalled\n"
        "Emulator()  # the WSGI app needs no server\n"
        "try:\n"
        "    EmulatorServer().start()\n"
        "except ServerNotInstalled as exc:\n"
        "    print(exc)\n"
    )
    assert 'pip install "django-connectycube[emulator]"' in result.stdout, result.stderr


def test_without_the_extra_the_cli_says_what_to_install() -> None:
    result = _python(
        _WITHOUT_CHEROOT + "from django_connectycube.emulator.cli import main\n"
        "sys.exit(main(['--port', '0']))\n"
    )
    assert result.returncode == 2
    assert 'pip install "django-connectycube[emulator]"' in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_the_cli_on_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "django_connectycube.emulator", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 2
    assert f"127.0.0.1:{port}: the port is taken" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_seeding_helpers(connectycube_emulator: Emulator) -> None:
    user = connectycube_emulator.create_user(login="seeded", password="p", tag_list=["x"])
    token = connectycube_emulator.create_session(user["id"])
    response = requests.get(
        f"{connectycube_emulator.url}/session", headers={"CB-Token": token}, timeout=5
    )
    assert response.json()["session"]["user"]["login"] == "seeded"
    with pytest.raises(KeyError):
        connectycube_emulator.create_session(999)
