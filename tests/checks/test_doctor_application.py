"""connectycube_doctor: the users API (v2 look-ups) and the admin API key."""

from __future__ import annotations

import pytest
import responses

from django_connectycube.checks.doctor import DoctorContext, Status, run_checks
from django_connectycube.checks.doctor.application import check_admin_api_key, check_users_api
from django_connectycube.checks.doctor.connection import check_credentials

from .test_doctor_connection import mocked_server

API = "https://cube.test"
USERS_OFF = {"errors": {"base": ["Users retrieving forbidden in admin panel..."]}}


def mocked_app(settings, **extra) -> None:
    mocked_server(settings, API)
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, **extra}
    responses.post(
        f"{API}/session",
        status=201,
        json={"session": {"token": "app-token", "application_id": 1, "user_id": None}},
    )
    responses.delete(f"{API}/session", body="")


def run(*checks):
    named = [("credentials", check_credentials), *((c.__name__, c) for c in checks)]
    return run_checks(DoctorContext(timeout=5), named)[1:]


def test_users_api_is_read_through_v2_only(connectycube_emulator):
    [finding] = run(check_users_api)
    assert finding.status is Status.OK
    assert connectycube_emulator.request_count("GET /users/v2") == 1
    assert connectycube_emulator.request_count("GET /users/{id}") == 0
    assert not connectycube_emulator.users  # the probe read nobody and created nobody


@responses.activate
@pytest.mark.parametrize(
    ("status", "body", "verdict", "words"),
    [
        (200, {"limit": 1, "skip": 0, "total_entries": 0, "items": []}, Status.OK, "answers"),
        (403, USERS_OFF, Status.FAIL, "Refused"),
        (500, {"errors": ["boom"]}, Status.WARN, "failed"),
    ],
)
def test_users_api_verdict_from_a_v2_look_up(settings, status, body, verdict, words):
    mocked_app(settings)
    responses.get(f"{API}/users/v2", status=status, json=body)
    [finding] = run(check_users_api)
    assert finding.status is verdict
    assert words in finding.message
    if verdict is Status.FAIL:
        assert "Allow to retrieve a list of users via API" in finding.action
    assert not [c for c in responses.calls if "/users/0" in c.request.url]


@responses.activate
def test_users_api_is_not_probed_without_a_session(settings):
    mocked_server(settings, API)
    responses.post(f"{API}/session", status=422, json={"errors": ["Unexpected signature"]})
    [finding] = run(check_users_api)
    assert finding.status is Status.SKIP
    assert not [c for c in responses.calls if "/users" in c.request.url]


@responses.activate
@pytest.mark.parametrize(
    ("status", "body", "verdict"),
    [
        (404, {"errors": ["Not found"]}, Status.OK),
        (401, {"errors": ["Invalid administration API key"]}, Status.FAIL),
        (403, {"errors": ["Forbidden"]}, Status.FAIL),
        (500, {"errors": ["boom"]}, Status.WARN),
    ],
)
def test_admin_key_verdict_from_deleting_a_user_that_cannot_exist(settings, status, body, verdict):
    mocked_app(settings, ADMIN_API_KEY="admin-key-1")
    responses.delete(f"{API}/admin/user/0", status=status, json=body)
    [finding] = run(check_admin_api_key)
    assert finding.status is verdict
    [call] = [c for c in responses.calls if "/admin/" in c.request.url]
    assert call.request.headers["CB-Administration-API-Key"] == "admin-key-1"
    if verdict is Status.FAIL:
        assert 'CONNECTYCUBE["ADMIN_API_KEY"]' in finding.action


@responses.activate
def test_no_admin_key_is_skipped_without_a_request(settings):
    mocked_app(settings)
    [finding] = run(check_admin_api_key)
    assert finding.status is Status.SKIP
    assert "ADMIN_API_KEY" in finding.message
    assert not [c for c in responses.calls if "/admin/" in c.request.url]


@pytest.mark.connectycube_emulator(admin_api_key="the-admin-key")
@pytest.mark.parametrize(
    ("configured", "verdict"), [("the-admin-key", Status.OK), ("a-wrong-key", Status.FAIL)]
)
def test_admin_key_accepted_or_refused_by_the_emulator(
    connectycube_emulator, settings, configured, verdict
):
    connectycube_emulator.create_user(login="bystander", password="password-123")
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "ADMIN_API_KEY": configured}
    [finding] = run(check_admin_api_key)
    assert finding.status is verdict
    assert connectycube_emulator.request_count("DELETE /admin/user/{id}") == 1
    assert [u["login"] for u in connectycube_emulator.users] == ["bystander"]  # nothing deleted


def test_a_key_for_an_application_without_the_admin_api_is_refused(connectycube_emulator, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "ADMIN_API_KEY": "some-key"}
    [finding] = run(check_admin_api_key)
    assert finding.status is Status.FAIL
    assert "not enabled" in finding.message
