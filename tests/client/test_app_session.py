"""The client over ``responses``: signed session creation, the shared application session
and its renewals, stores, and what reaches the logs."""

from __future__ import annotations

import json
import logging

import pytest
import requests
import responses
from cube_doubles import (
    API,
    AUTH_KEY,
    SECRET,
    USER,
    expiry_headers,
    make_client,
    session_body,
    v2_page,
)

from django_connectycube.client import (
    ConnectyCubeClient,
    MemoryAppSessionStore,
    SessionExpired,
    TransportError,
)
from django_connectycube.client.signing import sign


@responses.activate
def test_session_creation_is_signed_and_reused():
    responses.post(
        f"{API}/session", status=201, json=session_body("app-token-1"), headers=expiry_headers()
    )
    responses.get(f"{API}/users/v2", json=v2_page(USER), headers=expiry_headers())
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
    assert get.headers["User-Agent"] == "django-connectycube"
    assert not get.url.split("?")[0].endswith(".json")


@responses.activate
def test_the_caller_names_the_user_agent():
    responses.post(f"{API}/session", status=201, json=session_body("app-token-1"))
    client, _ = make_client(user_agent="my-app/2.1")
    client.create_app_session()
    assert responses.calls[0].request.headers["User-Agent"] == "my-app/2.1"


@responses.activate
def test_app_session_renewed_on_401_transparently():
    responses.post(f"{API}/session", status=201, json=session_body("old-token-1"))
    responses.post(f"{API}/session", status=201, json=session_body("new-token-2"))
    responses.get(
        f"{API}/users/v2",
        status=401,
        json={"errors": {"base": ["Required session does not exist"]}},
    )
    responses.get(f"{API}/users/v2", json=v2_page(USER))
    client, _ = make_client()
    assert client.get_user(7).id == 7
    assert responses.calls[-1].request.headers["CB-Token"] == "new-token-2"
    assert client.store.get(client.app_session_key).token == "new-token-2"


@responses.activate
def test_app_session_renewed_before_expiry():
    now = [1_000_000.0]
    responses.post(f"{API}/session", status=201, json=session_body("t-first-1"))
    responses.post(f"{API}/session", status=201, json=session_body("t-second-2"))
    responses.get(f"{API}/users/v2", json=v2_page(USER))
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
    responses.post(f"{API}/session", status=201, json=session_body("shared-token-1"))
    responses.get(f"{API}/users/v2", json=v2_page(USER))
    store = MemoryAppSessionStore()
    first, _ = make_client(app_session_store=store)
    second, _ = make_client(app_session_store=store)
    first.get_user(7)
    second.get_user(7)
    assert sum(c.request.method == "POST" for c in responses.calls) == 1


@responses.activate
def test_logs_never_show_secrets(caplog):
    responses.post(f"{API}/session", status=201, json=session_body("log-token-xyz-1"))
    responses.get(f"{API}/users/v2", status=503, json={"errors": ["busy"]})
    responses.get(f"{API}/users/v2", json=v2_page(USER))
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
    responses.post(f"{API}/session", status=201, json=session_body("fresh-token-1"))
    client, sleeps = make_client()
    assert client.create_app_session().token == "fresh-token-1"
    bodies = [json.loads(c.request.body) for c in responses.calls]
    assert len(bodies) == 2
    assert bodies[0]["nonce"] != bodies[1]["nonce"]
    for body in bodies:
        assert body["signature"] == sign(body, SECRET)
    assert len(sleeps) == 1


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


class BrokenStore(MemoryAppSessionStore):
    def get(self, key):
        raise ConnectionError("cache down")

    def acquire_lock(self, key, timeout):
        raise ConnectionError("cache down")


@responses.activate
def test_broken_store_degrades_to_a_process_local_session(caplog):
    responses.post(f"{API}/session", status=201, json=session_body("local-token-1"))
    responses.get(f"{API}/users/v2", json=v2_page(USER))
    client, _ = make_client(app_session_store=BrokenStore(), lock_wait=0.0)
    assert client.get_user(7).id == 7
    assert client.get_user(7).id == 7
    assert sum(c.request.method == "POST" for c in responses.calls) == 1
    assert "cache down" in caplog.text


def test_without_a_store_the_token_stays_in_the_process():
    client = ConnectyCubeClient(API, 1, AUTH_KEY, SECRET)
    assert isinstance(client.store, MemoryAppSessionStore)
    other = ConnectyCubeClient(API, 1, AUTH_KEY, SECRET)
    assert other.store is not client.store
    assert other.app_session_key == client.app_session_key
    assert AUTH_KEY not in client.app_session_key


def test_the_session_settings_stay_attributes_of_the_client():
    client, _ = make_client(renew_margin=5.0, lock_wait=1.0)
    assert (client.renew_margin, client.lock_wait, client.store_refresh_interval) == (5, 1, 300)
    store = MemoryAppSessionStore()
    client.store = store
    client.renew_margin = 7.0
    assert client.shared_app_session.store is store
    assert client.shared_app_session.renew_margin == 7.0
