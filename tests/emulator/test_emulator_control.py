"""Emulator: the control API, request counters, and injected faults."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
import requests

from django_connectycube.emulator import Emulator
from tests.emulator.support import Api


@pytest.fixture
def api(connectycube_emulator: Emulator) -> Api:
    api = Api(connectycube_emulator)
    api.app_session()
    return api


def control(api: Api, method: str, path: str, **kwargs: Any) -> requests.Response:
    return api.call(method, f"/_emulator/{path}", token=None, **kwargs)


# -- state, reset, clock, config ----------------------------------------------------------------


def test_state_shape(api: Api) -> None:
    api.signup("stateful", email="s@example.com")
    api.post("/users/password/reset", json={"email": "s@example.com"})
    state = control(api, "GET", "state").json()
    assert set(state) == {"users", "sessions", "blobs", "outbox", "now"}
    assert state["users"][0]["login"] == "stateful" and state["users"][0]["has_password"] is True
    assert "password_hash" not in state["users"][0]
    assert state["sessions"][0]["expires_at"].endswith("Z")
    assert state["outbox"][0]["to"] == "s@example.com"
    assert state["now"].endswith("Z")


def test_reset_forgets_everything(api: Api) -> None:
    api.signup("gone")
    api.emulator.set_fault("GET /nothing", error_rate=1.0)
    api.emulator.advance_clock(100)
    assert control(api, "POST", "reset").json() == {"ok": True}
    state = control(api, "GET", "state").json()
    assert state["users"] == state["sessions"] == []
    assert control(api, "GET", "faults").json() == {"faults": []}
    assert control(api, "GET", "requests").json() == {"total": 0, "routes": {}}
    assert control(api, "GET", "clock").json()["offset"] == 0


def test_clock_advance(api: Api) -> None:
    before = api.emulator.now()
    response = control(api, "POST", "clock", json={"advance": 3600})
    assert response.json()["offset"] == 3600
    assert (api.emulator.now() - before).total_seconds() >= 3600
    assert control(api, "POST", "clock", json={"advance": "soon"}).status_code == 422


def test_config_round_trip(api: Api) -> None:
    response = control(api, "POST", "config", json={"deny_auto_create": True})
    assert response.json()["config"]["deny_auto_create"] is True
    assert api.emulator.deny_auto_create is True
    assert control(api, "POST", "config", json={"bogus": 1}).status_code == 422
    assert control(api, "GET", "config").json()["config"]["application_id"] == 1


def test_control_errors_and_health(api: Api) -> None:
    assert control(api, "GET", "health").json()["ok"] is True
    assert control(api, "GET", "nope").status_code == 404
    bad_json = control(
        api, "POST", "faults", data=b"{", headers={"Content-Type": "application/json"}
    )
    assert bad_json.status_code == 400


# -- counters -----------------------------------------------------------------------------------


def test_request_counter_by_route_template(api: Api) -> None:
    user = api.signup("counted")
    api.get(f"/users/{user['id']}")
    api.get(f"/users/{user['id']}.json")
    api.get("/users/by_login", params={"login": "counted"})
    control(api, "GET", "state")  # control calls are not counted
    counts = control(api, "GET", "requests").json()
    assert counts == {
        "total": 5,
        "routes": {
            "POST /session": 1,
            "POST /users": 1,
            "GET /users/{id}": 2,
            "GET /users/by_login": 1,
        },
    }
    assert api.emulator.request_count("GET /users/{id}") == 2
    assert api.emulator.request_count("GET /users/*") == 3
    assert api.emulator.request_count("/users*") == 4
    assert api.emulator.request_count(r"(POST|GET) /users/\{id\}") == 2
    assert control(api, "DELETE", "requests").json() == {"total": 0, "routes": {}}
    assert api.emulator.request_count() == 0


# -- faults -------------------------------------------------------------------------------------


def test_sequence_fault_503_then_success(api: Api) -> None:
    created = control(api, "POST", "faults", json={"route": "GET /session", "sequence": [503, 200]})
    assert created.status_code == 201
    first = api.get("/session")
    assert (first.status_code, first.json()) == (503, {"errors": ["Service Unavailable"]})
    assert api.get("/session").status_code == 200
    assert api.get("/session").status_code == 200
    assert control(api, "GET", "faults").json() == {"faults": []}  # used up
    assert api.emulator.request_count("GET /session") == 3


def test_count_limits_a_rule(api: Api) -> None:
    api.emulator.set_fault("GET /session", error_rate=1.0, statuses=[500], count=2)
    assert [api.get("/session").status_code for _ in range(3)] == [500, 500, 200]


def test_rate_limit_fault_sends_retry_after(api: Api) -> None:
    api.emulator.set_fault("GET /users/{id}", rate_limit_rate=1.0, retry_after=2, count=1)
    response = api.get("/users/1")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert response.json() == {"errors": ["Too Many Requests"]}


def test_sequence_with_429_and_fault_does_not_touch_state(api: Api) -> None:
    api.emulator.set_fault("POST /users", sequence=[429], retry_after=0.5)
    response = api.post("/users", json={"user": {"login": "notyet", "password": "p"}})
    assert (response.status_code, response.headers["Retry-After"]) == (429, "0.5")
    assert api.emulator.users == []


def test_error_rate_is_seedable_and_statistical(api: Api) -> None:
    api.emulator.set_fault("GET /session", error_rate=0.5, statuses=[500, 503], seed=7)
    first = [api.get("/session").status_code for _ in range(40)]
    api.emulator.clear_faults()
    api.emulator.set_fault("GET /session", error_rate=0.5, statuses=[500, 503], seed=7)
    second = [api.get("/session").status_code for _ in range(40)]
    assert first == second
    assert {500, 503, 200} == set(first)


def test_latency_fault(api: Api) -> None:
    api.emulator.set_fault("GET /session", latency=0.3, count=1)
    started = time.perf_counter()
    assert api.get("/session").status_code == 200
    assert time.perf_counter() - started >= 0.3


def test_a_latency_rule_delays_and_a_later_failure_rule_still_applies(api: Api) -> None:
    # The first matching rule decided alone: a WAN latency on every route hid a 429 rule.
    api.emulator.set_fault("/*", latency=0.2)
    api.emulator.set_fault("GET /session", sequence=[429], retry_after=2)
    started = time.perf_counter()
    refused = api.get("/session")
    assert (refused.status_code, refused.headers.get("Retry-After")) == (429, "2")
    assert time.perf_counter() - started >= 0.2
    started = time.perf_counter()
    assert api.get("/session").status_code == 200  # the sequence is spent, the latency stays
    assert time.perf_counter() - started >= 0.2


def test_latencies_of_matching_rules_add_up(api: Api) -> None:
    api.emulator.set_fault("/*", latency=0.15)
    api.emulator.set_fault("GET /session", latency=0.15, count=1)
    started = time.perf_counter()
    assert api.get("/session").status_code == 200
    assert time.perf_counter() - started >= 0.3


def test_drop_closes_the_connection_without_a_response(api: Api) -> None:
    api.emulator.set_fault("GET /session", drop_rate=1.0, count=1)
    with pytest.raises(requests.ConnectionError):
        api.get("/session")
    assert api.get("/session").status_code == 200  # a fresh connection works


def test_drop_closes_a_keep_alive_connection_without_a_byte(
    capfd: pytest.CaptureFixture[str],
) -> None:
    from django_connectycube.emulator import EmulatorServer

    request = b"GET /session HTTP/1.1\r\nHost: x\r\n\r\n"
    with EmulatorServer() as server:
        server.emulator.set_fault("GET /session", sequence=["ok", "drop"])
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            stream = sock.makefile("rb")
            sock.sendall(request)
            head = b"".join(iter(stream.readline, b"\r\n"))
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            assert b"errors" in stream.read(length)
            sock.sendall(request)
            after_drop = stream.read()
    assert head.startswith(b"HTTP/1.1 401") and b"Connection: close" not in head
    assert after_drop == b""
    assert capfd.readouterr().err == ""  # a drop is no server error


def test_timeout_holds_longer_than_the_client_waits(api: Api) -> None:
    api.emulator.set_fault("GET /session", sequence=["timeout"], timeout_seconds=5)
    with pytest.raises(requests.ReadTimeout):  # held past the client's 0.5 s, not answered
        api.get("/session", timeout=0.5)
    api.emulator.clear_faults()  # releases the held request at once


def test_fault_route_patterns(api: Api) -> None:
    api.emulator.set_fault("GET /users/*", sequence=[500])
    assert api.get("/session").status_code == 200
    assert api.get("/users/7").status_code == 500
    api.emulator.set_fault(r"PUT /users/\d+", sequence=[502])
    assert api.put("/users/7", json={}).status_code == 502


def test_remove_single_fault_and_listing(api: Api) -> None:
    rule = control(api, "POST", "faults", json={"route": "GET /session", "error_rate": 1.0}).json()
    listed = control(api, "GET", "faults").json()["faults"]
    assert listed[0]["id"] == rule["fault"]["id"] and listed[0]["statuses"] == [500, 503]
    assert control(api, "DELETE", f"faults/{rule['fault']['id']}").status_code == 200
    assert control(api, "DELETE", "faults/999").status_code == 404
    assert api.get("/session").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"error_rate": 2},
        {"error_rate": "half"},
        {"statuses": [200]},
        {"statuses": []},
        {"count": 0},
        {"sequence": ["explode"]},
        {"sequence": []},
        {"latency": -1},
        {"route": 5},
        {"seed": "x"},
    ],
)
def test_invalid_fault_bodies_are_422(api: Api, body: dict[str, Any]) -> None:
    response = control(api, "POST", "faults", json=body)
    assert response.status_code == 422
    assert "errors" in response.json()
