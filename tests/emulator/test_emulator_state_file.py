"""Emulator: the optional state file keeps users, sessions and blobs across restarts."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from django.core.management import CommandError, call_command

from django_connectycube.emulator import Emulator, EmulatorServer
from django_connectycube.emulator.persistence import StateFileError
from tests.emulator.support import Api


def _serve(path: Path) -> EmulatorServer:
    return EmulatorServer(state_file=path, auth_key="k", auth_secret="s").start()


def _upload(api: Api, data: bytes) -> dict[str, object]:
    created = api.post("/blobs", json={"blob": {"content_type": "text/plain", "name": "a.txt"}})
    blob = created.json()["blob"]
    url = urlsplit(blob["blob_object_access"]["params"])
    response = api.http.post(
        f"{url.scheme}://{url.netloc}{url.path}",
        data=dict(parse_qsl(url.query)),
        files={"file": ("a.txt", data, "text/plain")},
        timeout=10,
    )
    assert response.status_code == 201
    assert api.put(f"/blobs/{blob['id']}/complete", json={"blob": {"size": len(data)}}).ok
    return blob


def test_users_tokens_and_blob_bytes_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    with _serve(path) as first:
        api = Api(first.emulator)
        kept = api.signup("kept", password="kept-password", email="kept@example.com")
        gone = api.signup("gone")
        token = api.user_session("kept", "kept-password")
        blob = _upload(api, b"bytes that must survive")
        api.user_session("gone")
        assert api.delete(f"/users/{gone['id']}").status_code == 200

    with _serve(path) as second:
        api = Api(second.emulator)
        assert [u["login"] for u in second.emulator.users] == ["kept"]
        # The token still works, and so does the password (its hash was kept).
        session = api.get("/session", token=token)
        assert session.status_code == 200 and session.json()["session"]["user_id"] == kept["id"]
        assert api.user_session("kept", "kept-password")
        wrong = api.post(
            "/session", json=api.session_body(user={"login": "kept", "password": "nope"})
        )
        assert wrong.status_code == 401
        download = requests.get(f"{second.url}/blobs/{blob['uid']}?token={token}", timeout=5)
        assert download.content == b"bytes that must survive"
        [state_blob] = second.emulator.blobs
        assert (state_blob["blob_status"], state_blob["owner_id"]) == ("complete", kept["id"])
        # Ids are not reused: the next user gets a new one.
        assert api.signup("newcomer")["id"] > gone["id"]


def test_state_is_written_per_request_not_only_at_exit(tmp_path: Path) -> None:
    """A killed emulator (no clean stop) loses nothing that was answered."""
    path = tmp_path / "state.sqlite3"
    command = [sys.executable, "-m", "django_connectycube.emulator", "--port", "0"]
    process = subprocess.Popen(
        [*command, "--state-file", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        response = requests.post(
            f"{url}/users",
            json={"user": {"login": "durable", "password": "pw-123"}},
            headers={"CB-AuthKey": "emulator-auth-key"},
            timeout=5,
        )
        assert response.status_code == 201
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    restarted = Emulator(state_file=path)
    assert [u["login"] for u in restarted.users] == ["durable"]
    restarted.close()


def test_reset_empties_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    emulator = Emulator(state_file=path)
    emulator.create_user(login="seeded", password="pw")
    emulator.create_session()
    emulator.reset()
    emulator.close()
    again = Emulator(state_file=path)
    assert (again.users, again.sessions) == ([], [])
    assert again.create_user(login="first", password="pw")["id"] == 1
    again.close()


def test_switch_state_and_confirmation_survive(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    emulator = Emulator(state_file=path, require_email_confirmation=True)
    with EmulatorServer(emulator) as server:
        api = Api(server.emulator)
        api.signup("unconfirmed", email="u@example.com")
    restarted = Emulator(state_file=path, require_email_confirmation=True)
    [user] = restarted.users
    assert user["email_confirmed"] is False
    restarted.confirm_email(user["id"])
    restarted.close()
    assert Emulator(state_file=path).users[0]["email_confirmed"] is True


def test_a_file_of_another_schema_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    Emulator(state_file=path).close()
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE meta SET value = '999' WHERE key = 'schema'")
    with pytest.raises(StateFileError, match="delete the file"):
        Emulator(state_file=path)


def test_a_file_that_is_not_sqlite_stops_the_cli_with_a_message(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are not the users you are looking for\n" * 100)
    command = [sys.executable, "-m", "django_connectycube.emulator", "--port", "0"]
    result = subprocess.run(
        [*command, "--state-file", str(path)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"ConnectyCube emulator: cannot use {path}"), result.stderr
    assert "Traceback" not in result.stderr
    with pytest.raises(CommandError):
        call_command("connectycube_emulator", "--port", "0", "--state-file", str(path))


def test_without_a_state_file_nothing_is_written(tmp_path: Path) -> None:
    emulator = Emulator()
    emulator.create_user(login="volatile", password="pw")
    assert emulator.store.state_file is None
    assert list(tmp_path.iterdir()) == []


def test_sessions_that_expired_while_down_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    emulator = Emulator(state_file=path)
    emulator.advance_clock(-3 * 3600)  # this session's 2 hours end an hour before "now"
    stale = emulator.create_session()
    emulator.advance_clock(3 * 3600)
    fresh = emulator.create_session()
    emulator.close()
    restarted = Emulator(state_file=path)
    assert [s["token"] for s in restarted.sessions] == [fresh]
    restarted.close()
    with sqlite3.connect(path) as connection:
        tokens = [t for (t,) in connection.execute("SELECT token FROM sessions")]
    assert stale not in tokens and fresh in tokens
