"""Oversized or pathological input gets a 4xx JSON answer on every view of the API, never a 500,
an HTML page or an ERROR log.

The limits are Django's own (``DATA_UPLOAD_MAX_MEMORY_SIZE``, ``DATA_UPLOAD_MAX_NUMBER_FIELDS``)
and the recursion limit of ``json``; these tests send input well past each of them. ``DEBUG`` is
on, where Django's own handler would answer with its HTML debug page.
"""

from __future__ import annotations

import functools
import json
import logging
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from django_connectycube.sync import push as sync

User = get_user_model()
pytestmark = [pytest.mark.usefixtures("no_broker", "clean_cache"), pytest.mark.django_db]

#: Every view of ``django_connectycube.api.urls`` with the method it answers.
VIEWS = {
    "login": ("POST", {}),
    "logout": ("POST", {}),
    "session": ("GET", {}),
    "user-list": ("GET", {}),
    "user-detail": ("GET", {"user_id": 1}),
    "password-reset": ("POST", {}),
    "cidp-verify": ("POST", {}),
}
JSON, FORM = "application/json", "application/x-www-form-urlencoded"


@functools.cache
def payload(name: str) -> tuple[str, bytes]:
    if name == "10 MB JSON":
        return JSON, json.dumps({"email": "a@example.com", "pad": "x" * 10_000_000}).encode()
    if name == "JSON nested 1000 deep":
        return JSON, ("[" * 1000 + "]" * 1000).encode()
    if name == "JSON nested 40 deep":  # decodes on every Python: only our own limit refuses it
        return JSON, ('{"email": ' + "[" * 40 + "]" * 40 + "}").encode()
    if name == "2000 form fields":
        return FORM, urlencode({f"f{i}": "1" for i in range(2000)}).encode()
    return JSON, json.dumps({f"key{i}": 0 for i in range(200_000)}).encode()


INPUTS = ["10 MB JSON", "JSON nested 1000 deep", "2000 form fields", "200000 keys"]


@pytest.fixture
def client(connectycube_emulator, settings) -> Client:
    """A logged-in user with a ConnectyCube account, so every view gets past its permissions;
    CSRF checks on (with a cookie but no header), as for a browser's form post."""
    settings.DEBUG = True
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "RETRIES": 0}
    user = User.objects.create_user(username="alice", email="alice@example.com", password="pw")
    sync.push_user(user.pk)
    client = Client(raise_request_exception=False, enforce_csrf_checks=True)
    client.force_login(user)
    client.cookies[settings.CSRF_COOKIE_NAME] = "k" * 32
    return client


def send(
    client: Client,
    name: str,
    content_type: str,
    body: bytes,
    *,
    query: bool = False,
    csrf: bool = False,
):
    """``csrf``: with the token the cookie holds, so the input is the request's one fault
    (which check answers a body past a limit first, CSRF or the limit, differs between
    Django releases; both are 4xx)."""
    method, kwargs = VIEWS[name]
    url = reverse(f"connectycube:{name}", kwargs=kwargs)
    if query:
        return client.get(url + "?" + body.decode())
    headers = {"HTTP_X_CSRFTOKEN": client.cookies[settings.CSRF_COOKIE_NAME].value} if csrf else {}
    return client.generic(method, url, body, content_type=content_type, **headers)


def assert_json_4xx(response) -> None:
    assert 400 <= response.status_code < 500, response.content[:300]
    assert response["Content-Type"] == "application/json", response.content[:300]
    assert set(response.json()) >= {"detail", "code"}, response.content[:300]


def errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("kind", INPUTS)
@pytest.mark.parametrize("name", VIEWS)
def test_bad_input_is_a_json_4xx_without_an_error_log(client, caplog, name, kind):
    """A view that reads a body refuses a bad one (logout's is read by the CSRF check); a
    read-only view takes input only in its query string, where too many fields are refused."""
    content_type, body = payload(kind)
    if VIEWS[name][0] == "GET":
        # The same input as a query string: a nested text is one value, keys are fields.
        if kind == "JSON nested 1000 deep":
            content_type, body = FORM, urlencode({"ids": body.decode()}).encode()
        elif content_type == JSON:
            content_type, body = FORM, urlencode(json.loads(body)).encode()
    with caplog.at_level(logging.WARNING):
        response = send(client, name, content_type, body, query=VIEWS[name][0] == "GET")
    if VIEWS[name][0] == "GET" and kind in ("JSON nested 1000 deep", "10 MB JSON"):
        # A value of a query parameter is only a string: the view answers as it would anyway.
        assert response.status_code < 500, response.content[:300]
        assert response["Content-Type"] == "application/json"
    else:
        assert_json_4xx(response)
    assert errors(caplog) == []


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("10 MB JSON", 413, "request_too_large"),
        ("200000 keys", 413, "request_too_large"),
        ("JSON nested 1000 deep", 400, "parse_error"),
        ("JSON nested 40 deep", 400, "parse_error"),
        ("2000 form fields", 400, "too_many_fields"),
    ],
)
@pytest.mark.parametrize("name", ["login", "logout", "password-reset", "cidp-verify"])
def test_each_limit_has_its_own_status_and_code(client, caplog, name, kind, status, code):
    """The views that read a body say which limit it broke, the DRF views and the plain one."""
    response = send(client, name, *payload(kind), csrf=True)
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == code
    assert errors(caplog) == []


@pytest.mark.parametrize("name", ["user-list", "session", "logout"])
def test_a_body_nothing_reads_is_ignored_even_when_too_large(client, name):
    """Nothing reads the body of a GET, nor of a logout without CSRF checks: no limit applies
    to it and no error comes of it."""
    client.handler.enforce_csrf_checks = False
    response = send(client, name, *payload("10 MB JSON"))
    assert response.status_code == send(client, name, JSON, b"").status_code < 500
