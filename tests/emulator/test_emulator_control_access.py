"""Emulator: who may use the control API (``/_emulator/...``).

A web page a developer visits must not read the emulator's tokens or reconfigure it: control
routes carry no CORS headers, refuse a ``Host`` that is not the emulator's own (DNS rebinding)
and an ``Origin`` of another site (a cross-site form post), and take an optional shared token.
The ConnectyCube routes keep their CORS headers: the JS SDK in a browser needs them.
"""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from django_connectycube.emulator import Emulator, EmulatorServer
from django_connectycube.emulator.cli import build_parser, make_server
from django_connectycube.emulator.control_access import (
    CONTROL_TOKEN_HEADER,
    ControlAccess,
    bind_warning,
)

EVIL = "http://evil.example"


@pytest.fixture
def served() -> Iterator[EmulatorServer]:
    with EmulatorServer() as server:
        yield server


@pytest.fixture
def guarded() -> Iterator[EmulatorServer]:
    with EmulatorServer(control_token="s3cret-token") as server:
        yield server


def _get(server: EmulatorServer, path: str, **headers: str) -> requests.Response:
    return requests.get(f"{server.url}{path}", headers=headers, timeout=5)


# -- CORS ---------------------------------------------------------------------------------------


def test_control_routes_send_no_cors_headers(served: EmulatorServer) -> None:
    response = _get(served, "/_emulator/state")
    assert response.status_code == 200
    assert not [name for name in response.headers if name.lower().startswith("access-control")]


def test_cross_origin_request_to_a_control_route_gets_no_allow_origin(
    served: EmulatorServer,
) -> None:
    response = _get(served, "/_emulator/state", Origin=EVIL)
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "users" not in response.text


def test_control_preflight_is_not_granted(served: EmulatorServer) -> None:
    response = requests.options(
        f"{served.url}/_emulator/config",
        headers={
            "Origin": EVIL,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
        timeout=5,
    )
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Methods" not in response.headers


def test_connectycube_routes_keep_their_cors_headers(served: EmulatorServer) -> None:
    response = requests.post(
        f"{served.url}/session",
        json={"application_id": 1, "auth_key": "emulator-auth-key"},
        headers={"Origin": "http://localhost:3000"},
        timeout=5,
    )
    assert response.status_code == 201
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    preflight = requests.options(
        f"{served.url}/users/1",
        headers={"Origin": EVIL, "Access-Control-Request-Method": "PUT"},
        timeout=5,
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"


def test_cross_site_form_post_cannot_reset_the_emulator(served: EmulatorServer) -> None:
    """A page can POST a "simple" request (no preflight) anywhere; its Origin gives it away."""
    served.emulator.create_user(login="kept", password="password1")
    response = requests.post(
        f"{served.url}/_emulator/config",
        data=b'{"v1_users_api": true}',
        headers={"Origin": EVIL, "Content-Type": "text/plain"},
        timeout=5,
    )
    assert response.status_code == 403
    assert response.json()["errors"][0].startswith("Control API refused")
    assert served.emulator.v1_users_api is False
    reset = requests.post(f"{served.url}/_emulator/reset", headers={"Origin": "null"}, timeout=5)
    assert reset.status_code == 403
    assert [u["login"] for u in served.emulator.users] == ["kept"]


def test_same_origin_is_accepted(served: EmulatorServer) -> None:
    response = _get(served, "/_emulator/config", Origin=served.url)
    assert response.status_code == 200


# -- Host ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:{port}", "localhost.evil.example", "127.0.0.1.nip.io"]
)
def test_foreign_host_is_403(served: EmulatorServer, host: str) -> None:
    response = _get(served, "/_emulator/state", Host=host.format(port=served.port))
    assert response.status_code == 403
    assert response.json() == {
        "errors": [f"Control API refused: Host {host.format(port=served.port)!r} is not this "
                   "emulator's (use localhost, a loopback or IP address, or --control-host)"]
    }  # fmt: skip


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:{port}", "LOCALHOST.", "127.0.0.1:{port}", "[::1]:{port}",
             "app.localhost", "10.1.2.3:{port}"]
)  # fmt: skip
def test_loopback_and_address_hosts_are_accepted(served: EmulatorServer, host: str) -> None:
    assert _get(served, "/_emulator/health", Host=host.format(port=served.port)).status_code == 200


def test_missing_host_is_403(served: EmulatorServer) -> None:
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/_emulator/state"}
    assert ControlAccess().refusal(environ) is not None


def test_host_check_leaves_connectycube_routes_alone(served: EmulatorServer) -> None:
    """A TLS front or a proxy may name the API any way; the API has CORS ``*`` anyway."""
    assert _get(served, "/session", Host="api.example.test").status_code == 401


def test_bound_host_and_extra_names_are_accepted() -> None:
    with EmulatorServer(host="localhost", control_hosts=["emulator"]) as server:
        assert _get(server, "/_emulator/health", Host="emulator:1").status_code == 200
        assert _get(server, "/_emulator/health", Host="Emulator").status_code == 200
        assert _get(server, "/_emulator/health", Host="other").status_code == 403


# -- token --------------------------------------------------------------------------------------


def test_token_is_required_when_set(guarded: EmulatorServer) -> None:
    missing = _get(guarded, "/_emulator/state")
    assert missing.status_code == 403
    assert missing.json() == {"errors": [f"Control API refused: {CONTROL_TOKEN_HEADER} required"]}
    wrong = _get(guarded, "/_emulator/state", **{CONTROL_TOKEN_HEADER: "guess"})
    assert wrong.status_code == 403
    assert wrong.json() == {"errors": [f"Control API refused: wrong {CONTROL_TOKEN_HEADER}"]}
    right = _get(guarded, "/_emulator/state", **{CONTROL_TOKEN_HEADER: "s3cret-token"})
    assert right.status_code == 200 and "users" in right.json()


def test_token_guards_changes_too(guarded: EmulatorServer) -> None:
    refused = requests.post(
        f"{guarded.url}/_emulator/config", json={"v1_users_api": True}, timeout=5
    )
    assert refused.status_code == 403
    assert guarded.emulator.v1_users_api is False


def test_health_and_api_routes_need_no_token(guarded: EmulatorServer) -> None:
    """Readiness probes poll health (it tells nothing); the API is ConnectyCube's own."""
    assert _get(guarded, "/_emulator/health").json()["ok"] is True
    session = requests.post(
        f"{guarded.url}/session",
        json={"application_id": 1, "auth_key": "emulator-auth-key"},
        timeout=5,
    )
    assert session.status_code == 201


def test_token_survives_reset_and_is_not_in_the_config(guarded: EmulatorServer) -> None:
    headers = {CONTROL_TOKEN_HEADER: "s3cret-token"}
    requests.post(f"{guarded.url}/_emulator/reset", headers=headers, timeout=5)
    assert _get(guarded, "/_emulator/state").status_code == 403
    config = _get(guarded, "/_emulator/config", **headers).json()["config"]
    assert "s3cret-token" not in str(config)


def test_empty_token_is_refused_by_the_constructor() -> None:
    with pytest.raises(ValueError, match="control_token"):
        Emulator(control_token="")


# -- CLI / command ------------------------------------------------------------------------------


def test_cli_takes_the_token_from_the_flag_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    options = vars(build_parser().parse_args(["--control-token", "flag-token"]))
    assert make_server(options).emulator.control_access.token == "flag-token"
    monkeypatch.setenv("EMULATOR_CONTROL_TOKEN", "env-token")
    options = vars(build_parser().parse_args([]))
    assert make_server(options).emulator.control_access.token == "env-token"
    monkeypatch.setenv("EMULATOR_CONTROL_TOKEN", "")
    options = vars(build_parser().parse_args([]))
    assert make_server(options).emulator.control_access.token is None


def test_cli_binds_to_loopback_by_default() -> None:
    assert build_parser().parse_args([]).host == "127.0.0.1"


@pytest.mark.parametrize(
    ("host", "token", "warned"),
    [
        ("127.0.0.1", None, False),
        ("localhost", None, False),
        ("::1", None, False),
        ("0.0.0.0", None, True),  # noqa: S104
        ("192.168.1.5", "t", True),
    ],
)
def test_bind_warning(host: str, token: str | None, warned: bool) -> None:
    warning = bind_warning(host, token)
    assert bool(warning) is warned
    if warned:
        assert host in warning and "reachable from other machines" in warning
        assert ("--control-token" in warning) is (token is None)


def test_cli_warns_when_bound_beyond_loopback() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "django_connectycube.emulator", "--host", "0.0.0.0", "--port", "0"],  # noqa: S104
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.readline()
        first = process.stderr.readline()
        assert first.startswith("WARNING: the emulator is bound to 0.0.0.0"), first
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_run_prints_no_warning_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    from django_connectycube.emulator import cli

    options = vars(build_parser().parse_args(["--port", "0"]))
    server = make_server(options)
    monkeypatch.setattr(cli, "_serve_until_signalled", lambda served: served.stop())
    monkeypatch.setattr(cli, "make_server", lambda _options: server)
    err = io.StringIO()
    assert cli.run(options, out=io.StringIO(), err=err) == 0
    assert "WARNING" not in err.getvalue()


# -- a web page elsewhere cannot drive the emulator ---------------------------------------------

RAW_IP_PAGE = "http://203.0.113.7"
MARK = {"X-Emulator-Control": "1"}


@pytest.mark.parametrize(
    "origin", [RAW_IP_PAGE, "http://10.0.0.5:8080", "http://[2001:db8::1]", "null", EVIL]
)
def test_a_page_at_a_raw_ip_cannot_change_the_emulator(served: EmulatorServer, origin: str) -> None:
    """The request a page there can send without a preflight: a text/plain POST."""
    served.emulator.create_user(login="kept", password="password1")
    for path, body in [("config", b'{"v1_users_api": true}'), ("reset", b""),
                       ("faults", b'{"route": "*", "sequence": [503]}'),
                       ("clock", b'{"advance": 99999}')]:  # fmt: skip
        response = requests.post(
            f"{served.url}/_emulator/{path}",
            data=body,
            headers={"Origin": origin, "Content-Type": "text/plain", **MARK},
            timeout=5,
        )
        assert response.status_code == 403, (path, response.text)
        assert "Access-Control-Allow-Origin" not in response.headers
    assert served.emulator.v1_users_api is False
    assert [u["login"] for u in served.emulator.users] == ["kept"]
    assert served.emulator.faults.rules() == []
    assert served.emulator.store.clock_offset.total_seconds() == 0


def test_a_text_plain_post_without_the_header_is_refused(served: EmulatorServer) -> None:
    """No Origin (a tool, or a browser that hides it) and no custom header: refused."""
    for origin in ({}, {"Origin": "http://localhost:3000"}):
        response = requests.post(
            f"{served.url}/_emulator/config",
            data=b'{"v1_users_api": true}',
            headers={"Content-Type": "text/plain", **origin},
            timeout=5,
        )
        assert response.status_code == 403
        assert "X-Emulator-Control" in response.json()["errors"][0]
    assert requests.delete(f"{served.url}/_emulator/faults", timeout=5).status_code == 403
    assert served.emulator.v1_users_api is False


@pytest.mark.parametrize(
    "origin", [None, "http://127.0.0.1:3000", "https://127.8.9.10", "http://[::1]:5173",
               "http://localhost", "http://LOCALHOST:8000"]
)  # fmt: skip
def test_a_loopback_caller_with_the_header_works(served: EmulatorServer, origin: str) -> None:
    headers = {**MARK, **({"Origin": origin} if origin else {})}
    response = requests.post(
        f"{served.url}/_emulator/config", json={"v1_users_api": True}, headers=headers, timeout=5
    )
    assert response.status_code == 200, response.text
    assert served.emulator.v1_users_api is True
    if origin:  # the page may read the answer
        assert response.headers["Access-Control-Allow-Origin"] == origin


def test_the_token_header_marks_a_call_too(guarded: EmulatorServer) -> None:
    response = requests.post(
        f"{guarded.url}/_emulator/reset",
        headers={CONTROL_TOKEN_HEADER: "s3cret-token"},
        timeout=5,
    )
    assert response.status_code == 200


def test_reads_need_no_header(served: EmulatorServer) -> None:
    assert _get(served, "/_emulator/state").status_code == 200


def test_preflight_is_granted_to_loopback_pages_only(served: EmulatorServer) -> None:
    def preflight(origin: str) -> requests.Response:
        return requests.options(
            f"{served.url}/_emulator/config",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, x-emulator-control",
            },
            timeout=5,
        )

    local = preflight("http://localhost:3000")
    assert local.status_code == 204
    assert local.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "X-Emulator-Control" in local.headers["Access-Control-Allow-Headers"]
    assert "POST" in local.headers["Access-Control-Allow-Methods"]
    for origin in (RAW_IP_PAGE, EVIL, "null"):
        refused = preflight(origin)
        assert refused.status_code == 403
        assert not [h for h in refused.headers if h.lower().startswith("access-control")]


# -- cidp_url: no fetching of other machines' URLs ----------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://203.0.113.7/verify", "http://169.254.169.254/latest/meta-data/",
            "http://internal.example/verify", "http://10.0.0.1:8000/", "file:///etc/passwd",
            "http://127.0.0.1.nip.io/verify", "gopher://127.0.0.1:6379/_FLUSHALL"]
)  # fmt: skip
def test_cidp_url_beyond_loopback_is_refused(served: EmulatorServer, url: str) -> None:
    response = requests.post(
        f"{served.url}/_emulator/config", json={"cidp_url": url}, headers=MARK, timeout=5
    )
    assert response.status_code == 422
    [message] = response.json()["errors"]["cidp_url"]
    assert "loopback" in message and "--allow-remote-cidp" in message
    assert served.emulator.cidp_url is None


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/verify", "https://localhost/v", "http://[::1]:9/v", ""]
)
def test_cidp_url_on_loopback_is_accepted(served: EmulatorServer, url: str) -> None:
    response = requests.post(
        f"{served.url}/_emulator/config", json={"cidp_url": url}, headers=MARK, timeout=5
    )
    assert response.status_code == 200
    assert served.emulator.cidp_url == (url or None)


def test_allow_remote_cidp_lets_other_http_urls_through() -> None:
    with EmulatorServer(allow_remote_cidp=True) as server:
        server.emulator.configure(cidp_url="https://idp.example/verify")
        assert server.emulator.cidp_url == "https://idp.example/verify"
        with pytest.raises(Exception, match="http"):
            server.emulator.configure(cidp_url="file:///etc/passwd")
    options = vars(build_parser().parse_args(["--allow-remote-cidp"]))
    assert options["allow_remote_cidp"] is True


def test_cli_refuses_a_remote_cidp_url_without_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    from django_connectycube.emulator import cli

    def serve(server: Any) -> None:
        server.stop()
        raise AssertionError("served with a remote cidp_url")

    monkeypatch.setattr(cli, "_serve_until_signalled", serve)
    options = vars(build_parser().parse_args(["--cidp-url", "http://203.0.113.7/verify"]))
    err = io.StringIO()
    assert cli.run(options, out=io.StringIO(), err=err) == 2
    assert "--allow-remote-cidp" in err.getvalue()
