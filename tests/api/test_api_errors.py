"""Every failure of the API is JSON with a stable code, and error reports keep secrets out.

ConnectyCube's answers are faked with ``responses`` where the emulator cannot produce them (a
2xx answer whose body is not what the protocol promises).
"""

from __future__ import annotations

import sys

import pytest
import responses
from django.contrib.auth import get_user_model
from django.core.signals import got_request_exception
from django.test import Client
from django.views.debug import ExceptionReporter
from rest_framework.authentication import (
    BaseAuthentication,
    BasicAuthentication,
    SessionAuthentication,
    TokenAuthentication,
)
from rest_framework.test import APIRequestFactory

from django_connectycube.api.views import UserDetailView
from django_connectycube.client import ConnectyCubeClient
from django_connectycube.models import CubeUser
from django_connectycube.sync import mapping

User = get_user_model()
API = "https://api.connectycube.com"
PREFIX = "/api/connectycube/"
LOGIN = PREFIX + "login/"
PASSWORD = "Sup3r-Secret-Pw-41"
pytestmark = [pytest.mark.usefixtures("no_broker", "clean_cache"), pytest.mark.django_db]


@pytest.fixture
def linked_user(settings):
    """A local user already mirrored, so a login goes straight to ``POST /session``."""
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "API_URL": API, "RETRIES": 0}
    user = User.objects.create_user(username="alice", email="alice@example.com", password=PASSWORD)
    CubeUser.objects.filter(user=user).update(
        cube_id=77, login="alice", state=CubeUser.State.SYNCED, password_version=1
    )
    return user


def assert_json_error(response, status, code):
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == code


@responses.activate
@pytest.mark.parametrize(
    "body",
    [
        {"session": {}},  # no token
        {"session": "not an object"},
        {"session": {"token": "t", "user_id": 77, "user": {"id": "not-a-number"}}},
        [],
    ],
)
def test_a_malformed_connectycube_answer_during_login_is_a_json_502(linked_user, body):
    responses.post(f"{API}/session", status=201, json=body)
    client = Client()
    response = client.post(LOGIN, {"username": "alice", "password": PASSWORD})
    assert_json_error(response, 502, "connectycube_error")


@pytest.fixture
def reports():
    """The text and HTML error reports Django would mail to ADMINS for each server error."""
    captured: list[tuple[str, str]] = []

    def capture(sender, request, **kwargs):
        reporter = ExceptionReporter(request, *sys.exc_info())
        captured.append((reporter.get_traceback_text(), reporter.get_traceback_html()))

    got_request_exception.connect(capture)
    yield captured
    got_request_exception.disconnect(capture)


@pytest.fixture
def remote_failure(monkeypatch):
    """A bug deep inside the login, after the derived password was computed."""

    def fail(self, *, login=None, email=None, password=None):
        raise RuntimeError("unexpected failure inside the client")

    monkeypatch.setattr(ConnectyCubeClient, "create_user_session", fail)


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("form", [True, False])
def test_a_server_error_is_json_and_its_report_hides_passwords(
    linked_user, remote_failure, reports, settings, debug, form
):
    settings.DEBUG = debug
    derived = mapping.derive_password(str(linked_user.pk), 1)
    body = {"username": "alice", "password": PASSWORD}
    client = Client(raise_request_exception=False)
    if form:
        response = client.post(LOGIN, body)
    else:
        response = client.post(LOGIN, body, content_type="application/json")
    assert_json_error(response, 500, "server_error")
    for secret in (PASSWORD, derived):
        assert secret not in response.content.decode()
    [(text, html)] = reports
    assert "unexpected failure inside the client" in text
    if not debug:  # Django shows everything while DEBUG is on, by design
        for secret in (PASSWORD, derived):
            assert secret not in text
            assert secret not in html


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "users/abc/"),
        ("get", "users/1/extra/"),
        ("get", "no-such-endpoint/"),
        ("post", "no-such-endpoint/"),
        ("delete", "users/"),
    ],
)
def test_unknown_routes_under_the_api_are_json(method, path, settings):
    user = User.objects.create_user(username="bob", password="pw")
    client = Client(enforce_csrf_checks=method == "post")  # no CSRF token: still JSON
    client.force_login(user)
    response = getattr(client, method)(PREFIX + path)
    expected = (405, "method_not_allowed") if method == "delete" else (404, "not_found")
    assert_json_error(response, *expected)


def test_a_missing_slash_still_redirects_for_reads(settings):
    settings.APPEND_SLASH = True
    response = Client().get(PREFIX + "users")
    assert response.status_code == 301
    assert response["Location"].endswith(PREFIX + "users/")


def test_unauthenticated_calls_are_401_with_a_challenge():
    for path in ("users/?login=x", "users/1/", "session/"):
        response = Client().get(PREFIX + path)
        assert_json_error(response, 401, "not_authenticated")
        assert response["WWW-Authenticate"] == 'Cookie realm="api", cookie-name="sessionid"'
    response = Client().post(PREFIX + "logout/")
    assert_json_error(response, 401, "not_authenticated")
    assert Client().post(LOGIN).status_code == 401


class HeaderlessAuthentication(BaseAuthentication):
    def authenticate(self, request):
        return None


@pytest.mark.parametrize(
    ("classes", "expected"),
    [
        ([BasicAuthentication, SessionAuthentication], 'Basic realm="api"'),
        ([SessionAuthentication, BasicAuthentication], 'Cookie realm="api"'),
        ([HeaderlessAuthentication, TokenAuthentication], "Token"),
        ([HeaderlessAuthentication], None),  # nothing to offer: DRF's 403 stays
    ],
)
def test_the_first_class_with_a_challenge_names_it(classes, expected):
    view = UserDetailView()
    view.authentication_classes = classes
    request = view.initialize_request(APIRequestFactory().get(PREFIX + "users/1/"))
    header = view.get_authenticate_header(request)
    if expected is None:
        assert header is None
    else:
        assert header.startswith(expected)
