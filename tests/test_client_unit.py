"""Client unit tests that need no server: errors, redaction, Retry-After, paging, types, and the
transport's retry decisions (driven by ``responses`` for exact control of each attempt)."""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import requests
import responses
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from urllib3.exceptions import MaxRetryError, NewConnectionError

from django_connectycube import __version__
from django_connectycube.client import (
    APIError,
    AuthenticationError,
    BadRequest,
    ConfigurationError,
    ConnectyCubeClient,
    ConnectyCubeError,
    DjangoCacheAppSessionStore,
    MemoryAppSessionStore,
    NotFound,
    Page,
    PermissionDenied,
    RateLimited,
    RetryBudget,
    RetryPolicy,
    ServerError,
    Session,
    SessionExpired,
    StoredAppSession,
    TransportError,
    User,
    ValidationError,
    iterate_pages,
    parse_retry_after,
    redact,
    register_secret,
)
from django_connectycube.client.errors import error_for_status, transport_error
from django_connectycube.client.signing import sign
from django_connectycube.client.transport import Transport, provably_unprocessed
from django_connectycube.client.types import parse_expiration_header

API = "https://cc.test"
SECRET = "unit-auth-secret-XYZ"
AUTH_KEY = "unit-auth-key-ABC"


def _refused() -> requests.ConnectionError:
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] refused")
    return requests.ConnectionError(MaxRetryError(None, "/users", reason=reason))


def _v2_page(*users: dict) -> dict:
    return {"limit": 1, "skip": 0, "total_entries": len(users), "items": list(users)}


def _expiry_headers(seconds: int = 7200) -> dict[str, str]:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    return {
        "CB-Token-ExpirationDate": (now + timedelta(seconds=seconds)).strftime(
            "%Y-%m-%d %H:%M:%S UTC"
        ),
        "Date": format_datetime(now, usegmt=True),
    }


def _session_body(token: str, user: dict | None = None) -> dict:
    session = {
        "id": 1,
        "application_id": 1,
        "user_id": user["id"] if user else None,
        "token": token,
        "nonce": 1,
        "ts": 1,
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
    }
    if user:
        session["user"] = user
    return {"session": session}


USER = {
    "id": 7,
    "login": "bob",
    "email": "bob@example.com",
    "custom_data": '{"a": 1}',
    "user_tags": "x, y",
    "external_id": "42",
    "created_at": "2018-12-05T11:58:02Z",
}


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_transport(**kwargs) -> tuple[Transport, Sleeps]:
    sleeps = Sleeps()
    kwargs.setdefault("policy", RetryPolicy(retries=3, max_retry_wait=10.0))
    return Transport(API, sleep=sleeps, **kwargs), sleeps


def make_client(**kwargs) -> tuple[ConnectyCubeClient, Sleeps]:
    sleeps = Sleeps()
    kwargs.setdefault("app_session_store", MemoryAppSessionStore())
    client = ConnectyCubeClient(API, 1, AUTH_KEY, SECRET, sleep=sleeps, **kwargs)
    return client, sleeps


# ---- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequest),
        (401, AuthenticationError),
        (403, PermissionDenied),
        (404, NotFound),
        (422, ValidationError),
        (429, RateLimited),
        (500, ServerError),
        (503, ServerError),
        (409, APIError),
    ],
)
def test_error_class_per_status(status, cls):
    error = error_for_status(status, ["Something broke"], method="GET", path="/users/1")
    assert type(error) is cls
    assert isinstance(error, ConnectyCubeError)
    assert error.status == status
    assert "Something broke" in str(error)
    assert "GET /users/1" in str(error)


def test_session_expired_is_an_authentication_error():
    error = error_for_status(401, {"base": ["Required session does not exist"]})
    assert isinstance(error, SessionExpired)
    assert isinstance(error, AuthenticationError)
    assert error.messages == ["Required session does not exist"]
    wrong_password = error_for_status(401, ["Invalid password"])
    assert type(wrong_password) is AuthenticationError


def test_validation_error_keeps_field_errors():
    error = error_for_status(422, {"login": ["has already been taken."]})
    assert isinstance(error, ValidationError)
    assert error.field_errors == {"login": ["has already been taken."]}
    assert "login has already been taken." in str(error)


def test_rate_limited_carries_retry_after():
    error = error_for_status(429, ["Too many"], retry_after=3.0)
    assert isinstance(error, RateLimited)
    assert error.retry_after == 3.0


def test_transport_error_is_also_the_requests_exception():
    error = transport_error(requests.ReadTimeout("read timed out"), method="POST", path="/users")
    assert isinstance(error, TransportError)
    assert isinstance(error, requests.ReadTimeout)
    assert isinstance(error, requests.RequestException)
    assert isinstance(error, ConnectyCubeError)
    assert "POST /users" in str(error)


def test_errors_pickle_without_the_response():
    error = error_for_status(422, {"login": ["taken"]}, method="POST", path="/users")
    error.response = requests.Response()
    clone = pickle.loads(pickle.dumps(error))  # noqa: S301
    assert type(clone) is ValidationError
    assert clone.field_errors == {"login": ["taken"]}
    assert clone.response is None
    tclone = pickle.loads(  # noqa: S301
        pickle.dumps(transport_error(requests.ConnectTimeout("x")))
    )
    assert isinstance(tclone, TransportError)


def test_configuration_error_is_improperly_configured_outside_the_tree():
    assert issubclass(ConfigurationError, ImproperlyConfigured)
    assert not issubclass(ConfigurationError, ConnectyCubeError)
    with pytest.raises(ConfigurationError, match="auth_secret"):
        ConnectyCubeClient(API, 1, "key", "")
    with pytest.raises(ConfigurationError, match="api_url"):
        ConnectyCubeClient("ftp://x", 1, "key", "secret")


def test_error_messages_are_redacted():
    register_secret("tok-0123456789abcdef")
    error = error_for_status(401, ["token tok-0123456789abcdef is unknown"])
    assert "tok-0123456789abcdef" not in str(error)
    assert "[redacted]" in str(error)


# ---- redaction -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "CB-Token: s3cr3tvalue",
        "GET /blobs/abc?token=s3cr3tvalue",
        "user[password]=s3cr3tvalue&user[login]=bob",
        '{"password": "s3cr3tvalue"}',
        "{'auth_key': 's3cr3tvalue'}",
        "signature=s3cr3tvalue",
        "auth_secret: s3cr3tvalue",
    ],
)
def test_redact_named_secrets(text):
    assert "s3cr3tvalue" not in redact(text)


def test_redact_registered_values_anywhere():
    register_secret("a-very-known-secret")
    assert redact("x a-very-known-secret y") == "x [redacted] y"
    assert redact("login=bob") == "login=bob"


# ---- Retry-After, expiry header, types, pages ------------------------------------------------


def test_parse_retry_after_seconds_and_dates():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = datetime(2024, 1, 1, tzinfo=timezone.utc)
    http_date = format_datetime(now + timedelta(seconds=20), usegmt=True)
    assert parse_retry_after(http_date, now=now.timestamp()) == pytest.approx(20)
    past = format_datetime(now - timedelta(seconds=20), usegmt=True)
    assert parse_retry_after(past, now=now.timestamp()) == 0.0


def test_parse_expiration_header():
    parsed = parse_expiration_header("2018-12-05 13:58:02 UTC")
    assert parsed == datetime(2018, 12, 5, 13, 58, 2, tzinfo=timezone.utc)
    assert parse_expiration_header(None) is None
    assert parse_expiration_header("2018-12-05T13:58:02Z") == parsed


def test_user_from_api():
    user = User.from_api({"user": USER})
    assert user.id == 7
    assert user.login == "bob"
    assert user.tags == ["x", "y"]
    assert user.custom_data_json == {"a": 1}
    assert user.created_at == datetime(2018, 12, 5, 11, 58, 2, tzinfo=timezone.utc)
    assert user.raw["email"] == "bob@example.com"
    assert User.from_api({"id": 1, "custom_data": "not json"}).custom_data_json == {}


def test_session_repr_hides_the_token():
    session = Session.from_api(_session_body("tok-hidden-123", USER))
    assert session.token == "tok-hidden-123"
    assert "tok-hidden-123" not in repr(session)
    assert session.is_user_session
    assert session.user is not None
    assert session.user.login == "bob"
    assert "tok-hidden" not in repr(StoredAppSession("tok-hidden-123", 1.0))


def test_page_v1_and_v2_next_params():
    v1 = Page.from_v1(
        {"current_page": 1, "per_page": 2, "total_entries": 3, "items": [{"user": USER}] * 2},
        User.from_api,
    )
    assert v1.page == 1
    assert v1.per_page == 2
    assert v1.total == 3
    assert len(v1) == 2
    assert v1.next_params() == {"page": 2}
    last = Page(items=[1], total=3, page=2, per_page=2)
    assert last.next_params() is None
    v2 = Page.from_v2(
        {"limit": 2, "skip": 0, "total_entries": 3, "items": [USER, USER]}, User.from_api
    )
    assert v2.offset == 0
    assert v2.limit == 2
    assert v2.next_params() == {"offset": 2}
    assert Page(items=[], total=5, page=1, per_page=2).next_params() is None


def test_iterate_pages_walks_every_page():
    data = list(range(7))

    def fetch(page: int = 1, per_page: int = 3) -> Page[int]:
        chunk = data[(page - 1) * per_page : page * per_page]
        return Page(items=chunk, total=len(data), page=page, per_page=per_page)

    assert list(iterate_pages(fetch, per_page=3)) == data

    def fetch_v2(offset: int = 0, limit: int = 3) -> Page[int]:
        return Page(
            items=data[offset : offset + limit], total=len(data), offset=offset, limit=limit
        )

    assert list(iterate_pages(fetch_v2)) == data


# ---- transport retry decisions ---------------------------------------------------------------


def test_backoff_is_full_jitter_and_capped():
    policy = RetryPolicy(backoff_base=1.0, backoff_max=4.0)
    for n in range(6):
        for _ in range(50):
            assert 0 <= policy.backoff(n) <= min(4.0, 2**n)


def test_provably_unprocessed():
    assert provably_unprocessed(_refused())
    assert provably_unprocessed(requests.ConnectTimeout("x"))
    assert not provably_unprocessed(requests.ReadTimeout("x"))
    assert not provably_unprocessed(requests.ConnectionError("Connection aborted."))


@responses.activate
def test_get_503_then_success_is_retried():
    responses.get(f"{API}/users/1", status=503, json={"errors": ["busy"]})
    responses.get(f"{API}/users/1", json={"user": USER})
    transport, sleeps = make_transport()
    assert transport.request("GET", "users/1").json() == {"user": USER}
    assert len(responses.calls) == 2
    assert len(sleeps) == 1


@responses.activate
def test_timed_out_post_users_is_not_resent():
    responses.post(f"{API}/users", body=requests.ReadTimeout("read timed out"))
    transport, sleeps = make_transport()
    with pytest.raises(TransportError) as info:
        transport.request("POST", "users", json={"user": {"login": "bob"}})
    assert isinstance(info.value, requests.ReadTimeout)
    assert info.value.maybe_processed
    assert "not repeated" in str(info.value)
    assert len(responses.calls) == 1
    assert sleeps == []


@responses.activate
def test_refused_post_is_resent():
    responses.post(f"{API}/users", body=_refused())
    responses.post(f"{API}/users", status=201, json={"user": USER})
    transport, _ = make_transport()
    assert transport.request("POST", "users", json={}).status_code == 201
    assert len(responses.calls) == 2


@responses.activate
def test_get_read_timeout_is_retried():
    responses.get(f"{API}/users/1", body=requests.ReadTimeout("slow"))
    responses.get(f"{API}/users/1", json={"user": USER})
    transport, _ = make_transport()
    assert transport.request("GET", "users/1").status_code == 200
    assert len(responses.calls) == 2


@responses.activate
def test_post_500_is_not_retried_but_503_is():
    responses.post(f"{API}/blobs", status=500, json={"errors": ["boom"]})
    transport, _ = make_transport()
    with pytest.raises(ServerError, match="boom"):
        transport.request("POST", "blobs", json={})
    assert len(responses.calls) == 1
    responses.reset()
    responses.post(f"{API}/blobs", status=503, json={"errors": ["down"]})
    responses.post(f"{API}/blobs", status=201, json={})
    assert transport.request("POST", "blobs", json={}).status_code == 201


@responses.activate
def test_429_retry_after_is_waited():
    responses.get(
        f"{API}/users/1", status=429, json={"errors": ["slow down"]}, headers={"Retry-After": "2"}
    )
    responses.get(f"{API}/users/1", json={"user": USER})
    transport, sleeps = make_transport()
    transport.request("GET", "users/1")
    assert sleeps == [2.0]


@responses.activate
def test_429_retry_after_above_cap_raises_at_once():
    responses.get(
        f"{API}/users/1", status=429, json={"errors": ["slow down"]}, headers={"Retry-After": "120"}
    )
    transport, sleeps = make_transport()
    with pytest.raises(RateLimited) as info:
        transport.request("GET", "users/1")
    assert info.value.retry_after == 120.0
    assert len(responses.calls) == 1
    assert sleeps == []


@responses.activate
def test_retries_stop_after_the_limit():
    responses.get(f"{API}/users/1", status=503, json={"errors": ["down"]})
    transport, sleeps = make_transport(policy=RetryPolicy(retries=2))
    with pytest.raises(ServerError):
        transport.request("GET", "users/1")
    assert len(responses.calls) == 3
    assert len(sleeps) == 2


@responses.activate
def test_retry_budget_caps_retries():
    responses.get(f"{API}/users/1", status=503, json={"errors": ["down"]})
    transport, _ = make_transport(budget=RetryBudget(capacity=1.0, ratio=0.0))
    with pytest.raises(ServerError):
        transport.request("GET", "users/1")
    assert len(responses.calls) == 2  # one retry, then the budget is spent
    with pytest.raises(ServerError):
        transport.request("GET", "users/1")
    assert len(responses.calls) == 3  # no retry at all


@responses.activate
def test_non_json_error_body():
    responses.get(f"{API}/users/1", status=404, body="<html>nope</html>")
    transport, _ = make_transport()
    with pytest.raises(NotFound, match="nope"):
        transport.request("GET", "users/1")


# ---- client over responses -------------------------------------------------------------------


@responses.activate
def test_session_creation_is_signed_and_reused():
    responses.post(
        f"{API}/session", status=201, json=_session_body("app-token-1"), headers=_expiry_headers()
    )
    responses.get(f"{API}/users/v2", json=_v2_page(USER), headers=_expiry_headers())
    client, _ = make_client()
    assert client.get_user(7).login == "bob"
    assert client.get_user(7).login == "bob"
    posts = [c for c in responses.calls if c.request.method == "POST"]
    assert len(posts) == 1
    body = json.loads(posts[0].request.body)
    assert body["application_id"] == 1
    assert body["auth_key"] == AUTH_KEY
    assert body["signature"] == sign(body, SECRET)
    get = responses.calls[1].request
    assert get.headers["CB-Token"] == "app-token-1"
    assert get.headers["User-Agent"] == f"django-connectycube/{__version__}"
    assert not get.url.split("?")[0].endswith(".json")


@responses.activate
def test_app_session_renewed_on_401_transparently():
    responses.post(f"{API}/session", status=201, json=_session_body("old-token-1"))
    responses.post(f"{API}/session", status=201, json=_session_body("new-token-2"))
    responses.get(
        f"{API}/users/v2",
        status=401,
        json={"errors": {"base": ["Required session does not exist"]}},
    )
    responses.get(f"{API}/users/v2", json=_v2_page(USER))
    client, _ = make_client()
    assert client.get_user(7).id == 7
    assert responses.calls[-1].request.headers["CB-Token"] == "new-token-2"
    assert client.store.get(client._store_key).token == "new-token-2"


@responses.activate
def test_app_session_renewed_before_expiry():
    now = [1_000_000.0]
    responses.post(f"{API}/session", status=201, json=_session_body("t-first-1"))
    responses.post(f"{API}/session", status=201, json=_session_body("t-second-2"))
    responses.get(f"{API}/users/v2", json=_v2_page(USER))
    client, _ = make_client(clock=lambda: now[0])
    client.get_user(7)
    now[0] += 7200 - 30  # inside the 60 s safety margin
    client.get_user(7)
    tokens = [
        c.request.headers.get("CB-Token") for c in responses.calls if c.request.method == "GET"
    ]
    assert tokens == ["t-first-1", "t-second-2"]


@responses.activate
def test_user_scope_does_not_renew_the_app_session():
    responses.put(
        f"{API}/users/7", status=401, json={"errors": {"base": ["Required session does not exist"]}}
    )
    client, _ = make_client()
    with pytest.raises(SessionExpired):
        client.as_user("user-token-abc", user_id=7).update_user(full_name="Bob")
    assert [c.request.method for c in responses.calls] == ["PUT"]


def test_password_change_requires_old_password():
    client, _ = make_client()
    with pytest.raises(ValueError, match="old_password"):
        client.as_user("user-token-abc", user_id=7).update_user(password="new-pass-1")


@responses.activate
def test_two_clients_share_the_app_session_through_the_store():
    responses.post(f"{API}/session", status=201, json=_session_body("shared-token-1"))
    responses.get(f"{API}/users/v2", json=_v2_page(USER))
    store = MemoryAppSessionStore()
    first, _ = make_client(app_session_store=store)
    second, _ = make_client(app_session_store=store)
    first.get_user(7)
    second.get_user(7)
    assert sum(c.request.method == "POST" for c in responses.calls) == 1


@responses.activate
@override_settings(
    CONNECTYCUBE={
        "API_URL": API,
        "APPLICATION_ID": 3,
        "AUTH_KEY": "k-settings-1",
        "AUTH_SECRET": "s-settings-1",
        "TIMEOUT": [2, 9],
        "RETRIES": 1,
    }
)
def test_from_settings_uses_the_django_cache():
    from django.core.cache import cache

    cache.clear()
    responses.post(f"{API}/session", status=201, json=_session_body("cached-token-1"))
    responses.get(f"{API}/users/v2", json=_v2_page(USER))
    client = ConnectyCubeClient.from_settings()
    assert client.application_id == 3
    assert client.transport.timeout == (2.0, 9.0)
    assert client.transport.policy.retries == 1
    assert isinstance(client.store, DjangoCacheAppSessionStore)
    client.get_user(7)
    ConnectyCubeClient.from_settings().get_user(7)
    assert sum(c.request.method == "POST" for c in responses.calls) == 1


@override_settings(CONNECTYCUBE={"API_URL": API, "APPLICATION_ID": 3, "AUTH_KEY": "k"})
def test_from_settings_names_the_missing_setting():
    with pytest.raises(ImproperlyConfigured, match="AUTH_SECRET"):
        ConnectyCubeClient.from_settings()


@responses.activate
def test_logs_never_show_secrets(caplog):
    responses.post(f"{API}/session", status=201, json=_session_body("log-token-xyz-1"))
    responses.get(f"{API}/users/v2", status=503, json={"errors": ["busy"]})
    responses.get(f"{API}/users/v2", json=_v2_page(USER))
    responses.post(f"{API}/users", body=requests.ReadTimeout("timed out"))
    client, _ = make_client()
    with caplog.at_level(logging.DEBUG, logger="django_connectycube"):
        client.get_user(7)
        with pytest.raises(TransportError) as info:
            client.create_user(login="carol", password="pw-carol-secret")
    text = caplog.text + str(info.value)
    assert caplog.records
    for secret in ("log-token-xyz-1", SECRET, AUTH_KEY, "pw-carol-secret"):
        assert secret not in text


@responses.activate
def test_session_retry_is_signed_with_a_fresh_nonce():
    responses.post(f"{API}/session", status=503, json={"errors": ["down"]})
    responses.post(f"{API}/session", status=201, json=_session_body("fresh-token-1"))
    client, sleeps = make_client()
    assert client.create_app_session().token == "fresh-token-1"
    bodies = [json.loads(c.request.body) for c in responses.calls]
    assert len(bodies) == 2
    assert bodies[0]["nonce"] != bodies[1]["nonce"]
    for body in bodies:
        assert body["signature"] == sign(body, SECRET)
    assert len(sleeps) == 1


def test_client_imports_without_django_settings_and_without_models():
    code = (
        "import sys; import django_connectycube.client as c; "
        "assert 'django_connectycube.models' not in sys.modules; "
        "assert 'django_connectycube.conf' not in sys.modules; "
        "print(c.ConnectyCubeClient.__name__)"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ConnectyCubeClient"


def test_memory_store_lock_is_exclusive_and_expires():
    store = MemoryAppSessionStore()
    owner = store.acquire_lock("k", timeout=30)
    assert owner
    assert store.acquire_lock("k", timeout=30) is None
    store.release_lock("k", "someone-else")
    assert store.acquire_lock("k", timeout=30) is None
    store.release_lock("k", owner)
    assert store.acquire_lock("k", timeout=0.0) is not None  # expires at once
    assert store.acquire_lock("k", timeout=30) is not None


def test_django_cache_store_round_trip_and_lock():
    from django.core.cache import cache

    cache.clear()
    store = DjangoCacheAppSessionStore()
    assert store.get("k") is None
    store.set("k", StoredAppSession("cache-token-1", time.time() + 100))
    assert store.get("k").token == "cache-token-1"
    owner = store.acquire_lock("k", timeout=30)
    assert owner
    assert store.acquire_lock("k", timeout=30) is None
    store.release_lock("k", owner)
    assert store.acquire_lock("k", timeout=30)
    store.delete("k")
    assert store.get("k") is None


class BrokenStore(MemoryAppSessionStore):
    def get(self, key):
        raise ConnectionError("cache down")

    def acquire_lock(self, key, timeout):
        raise ConnectionError("cache down")


@responses.activate
def test_broken_store_degrades_to_a_process_local_session(caplog):
    responses.post(f"{API}/session", status=201, json=_session_body("local-token-1"))
    responses.get(f"{API}/users/v2", json=_v2_page(USER))
    client, _ = make_client(app_session_store=BrokenStore(), lock_wait=0.0)
    assert client.get_user(7).id == 7
    assert client.get_user(7).id == 7
    assert sum(c.request.method == "POST" for c in responses.calls) == 1
    assert "cache down" in caplog.text
