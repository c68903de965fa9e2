"""The client against the emulator over real HTTP: every call, every error class, session sharing
and renewal, fault-driven retries, threads, and secret-free logs.

The emulator is driven through its HTTP control API (``/_emulator/...``), as any other client of
it would, so these tests do not depend on its Python internals.
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from django_connectycube.client import (
    AuthenticationError,
    Blob,
    ConnectyCubeClient,
    IdentityProviderRefused,
    MemoryAppSessionStore,
    NotFound,
    Page,
    PermissionDenied,
    RateLimited,
    ServerError,
    SessionExpired,
    TransportError,
    User,
    ValidationError,
)
from django_connectycube.emulator import EmulatorServer
from django_connectycube.emulator.control_access import CONTROL_HEADER
from django_connectycube.sync.connection import build_client

APP_ID = 1
AUTH_KEY = "emu-auth-key-123"
AUTH_SECRET = "emu-auth-secret-456"
FIREBASE_KEY = "emu-firebase-key"
PASSWORD = "password-1234"


class CidpVerifier(BaseHTTPRequestHandler):
    """A minimal Custom Identity Provider: tokens ``good-<uid>`` are valid."""

    def do_GET(self) -> None:
        token = parse_qs(urlsplit(self.path).query).get("token", [""])[0]
        if token.startswith("good-"):
            uid = token.removeprefix("good-")
            body = json.dumps({"uid": uid, "login": f"cidp{uid}", "email": None}).encode()
            self.send_response(200)
        else:
            body = json.dumps({"error": "bad token"}).encode()
            self.send_response(422)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def cidp_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), CidpVerifier)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/verify"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def server(cidp_url):
    emulator = EmulatorServer(
        application_id=APP_ID,
        auth_key=AUTH_KEY,
        auth_secret=AUTH_SECRET,
        require_signature=True,
        cidp_url=cidp_url,
        firebase_key=FIREBASE_KEY,
    ).start()
    yield emulator
    emulator.stop()


def control(server, method: str, path: str, body: dict | None = None) -> dict:
    response = requests.request(
        method,
        f"{server.url}/_emulator/{path}",
        json=body,
        headers={CONTROL_HEADER: "1"},
        timeout=5,
    )
    response.raise_for_status()
    return response.json() if response.content.strip() else {}


def counts(server) -> dict:
    return control(server, "GET", "requests")


def route_count(server, route: str) -> int:
    """Requests served for a route template such as ``GET /users/{id}``."""
    routes = counts(server)["routes"]
    return sum(n for key, n in routes.items() if re.sub(r"\{(\w+):\w+\}", r"{\1}", key) == route)


@pytest.fixture
def emu(server):
    control(server, "POST", "reset")
    control(server, "DELETE", "faults")
    yield server
    control(server, "DELETE", "faults")


def make_client(server, **kwargs) -> ConnectyCubeClient:
    kwargs.setdefault("app_session_store", MemoryAppSessionStore())
    kwargs.setdefault("timeout", (2.0, 5.0))
    return ConnectyCubeClient(server.url, APP_ID, AUTH_KEY, AUTH_SECRET, **kwargs)


@pytest.fixture
def client(emu):
    with make_client(emu) as c:
        yield c


def signup(client: ConnectyCubeClient, n: int = 1, **fields) -> User:
    defaults = {
        "login": f"user{n}",
        "password": PASSWORD,
        "email": f"user{n}@example.com",
        "full_name": f"User Number{n}",
        "external_id": str(100 + n),
    }
    defaults.update(fields)
    return client.create_user(**defaults)


def as_token(client: ConnectyCubeClient, token: str, method: str, path: str, **request):
    """A request the client has no call for, sent under a session token."""
    return client.transport.request(method, path, headers={"CB-Token": token}, **request)


def login(client: ConnectyCubeClient, n: int = 1):
    return client.create_user_session(login=f"user{n}", password=PASSWORD)


# ---- sessions --------------------------------------------------------------------------------


def test_signed_app_session_then_user_session_by_login_and_email(client):
    user = signup(client)
    by_login = client.create_user_session(login="user1", password=PASSWORD)
    assert by_login.user_id == user.id
    assert by_login.user is not None
    assert by_login.user.login == "user1"
    assert by_login.expires_at is not None
    by_email = client.create_user_session(email="user1@example.com", password=PASSWORD)
    assert by_email.user_id == user.id
    assert by_email.token != by_login.token


def test_wrong_password_is_authentication_error(client):
    signup(client)
    with pytest.raises(AuthenticationError, match="Invalid password") as info:
        client.create_user_session(login="user1", password="wrong-password")
    assert info.value.status == 401


def test_firebase_phone_session(client):
    from django_connectycube.emulator.identity import mint_firebase_token

    token = mint_firebase_token(FIREBASE_KEY, "proj-1", phone_number="+15550001")
    session = client.create_firebase_phone_session("proj-1", token)
    assert session.user_id is not None
    again = client.create_firebase_phone_session("proj-1", token)
    assert again.user_id == session.user_id
    with pytest.raises(AuthenticationError):
        client.create_firebase_phone_session("proj-1", "not-a-jwt")


def test_cidp_session(client):
    session = client.create_cidp_session("good-77")
    assert session.user is not None
    assert session.user.external_id == "77"
    assert client.create_cidp_session("good-77").user_id == session.user_id


def test_get_upgrade_downgrade_destroy(client):
    user = signup(client)
    app_session = client.create_app_session()
    assert not app_session.is_user_session
    assert client.get_session(app_session.token).user_id is None
    # The emulator serves POST/DELETE /login (the SDKs' upgrade and downgrade); the client has
    # no call for them, so they are sent as they are.
    body = {"login": "user1", "password": PASSWORD}
    upgraded = as_token(client, app_session.token, "POST", "login", json=body).json()["user"]
    assert upgraded["id"] == user.id
    assert client.get_session(app_session.token).user_id == user.id
    as_token(client, app_session.token, "DELETE", "login")
    assert client.get_session(app_session.token).user_id is None
    client.destroy_session(app_session.token)
    with pytest.raises(SessionExpired):
        client.get_session(app_session.token)


# ---- users -----------------------------------------------------------------------------------


def test_signup_with_all_fields(client):
    user = client.create_user(
        login="marvin18",
        password="supersecurepwd",
        email="awesomeman@gmail.com",
        full_name="Marvin Simon",
        phone="47802323143",
        website="https://dozensofdreams.com",
        tag_list=["iphone", "apple"],
        custom_data={"plan": "pro"},
        external_id=3789,
    )
    assert isinstance(user, User)
    assert user.login == "marvin18"
    assert user.email == "awesomeman@gmail.com"
    assert user.full_name == "Marvin Simon"
    assert user.phone == "47802323143"
    assert user.website == "https://dozensofdreams.com"
    assert user.tags == ["iphone", "apple"]
    assert user.custom_data_json == {"plan": "pro"}
    assert user.external_id == "3789"
    assert user.created_at is not None


def test_signup_duplicate_login_is_validation_error(client):
    signup(client)
    with pytest.raises(ValidationError) as info:
        signup(client, login="user1", email="other@example.com", external_id="999")
    assert info.value.status == 422
    assert "login" in info.value.field_errors
    assert "login" in str(info.value)


def test_update_and_password_change(client):
    user = signup(client)
    me = client.as_user(login(client))
    updated = me.update_user(full_name="New Name", custom_data={"x": 1})
    assert updated.id == user.id
    assert updated.full_name == "New Name"
    assert updated.custom_data_json == {"x": 1}
    me.update_user(user.id, {"password": "new-password-1", "old_password": PASSWORD})
    assert client.create_user_session(login="user1", password="new-password-1").user_id == user.id
    with pytest.raises(AuthenticationError):
        client.create_user_session(login="user1", password=PASSWORD)
    with pytest.raises(ValueError, match="old_password"):
        me.update_user(password="another-password")


def test_app_session_cannot_write(client):
    user = signup(client)
    with pytest.raises(PermissionDenied) as info:
        client.as_user(client.app_token()).update_user(user.id, full_name="nope")
    assert info.value.status == 403


def test_delete_self_and_by_external_id(client):
    first = signup(client, 1)
    second = signup(client, 2, external_user_id=7002)
    client.as_user(login(client, 1)).delete_self()
    with pytest.raises(NotFound) as info:
        client.get_user(first.id)
    assert info.value.status == 404
    # The legacy route addresses the integer external_user_id, not the string external_id.
    token = login(client, 2).token
    with pytest.raises(NotFound):
        as_token(client, token, "DELETE", "users/external/102")
    as_token(client, token, "DELETE", "users/external/7002")
    assert client.find_user(id=second.id) is None


def test_lookups(client):
    users = [
        signup(client, n, phone=f"+1555000{n}", tag_list=["t1"] if n % 2 else ["t2"])
        for n in range(1, 6)
    ]
    first = users[0]
    assert client.get_user(first.id) == first
    assert client.get_user_by_login("user1").id == first.id
    assert client.get_user_by_email("user1@example.com").id == first.id
    assert client.get_user_by_phone("+15550001").id == first.id
    assert client.get_user_by_external_id("101").id == first.id
    assert client.find_user_by_external_id("101").id == first.id
    assert client.find_user_by_external_id("nobody") is None
    for lookup in (
        client.get_user_by_login,
        client.get_user_by_email,
        client.get_user_by_external_id,
    ):
        with pytest.raises(NotFound):
            lookup("missing")
    with pytest.raises(NotFound):
        client.get_user(999_999)


def test_paged_listings(client):
    users = [
        signup(client, n, tag_list=["even" if n % 2 == 0 else "odd", "all"]) for n in range(1, 8)
    ]
    ids = [u.id for u in users]
    page = client.get_users_by_ids(ids, per_page=3)
    assert isinstance(page, Page)
    assert (page.page, page.per_page, page.total) == (1, 3, 7)
    assert [u.id for u in page.items] == ids[:3]
    desc = client.get_users_by_ids(ids, per_page=3, descending=True)
    assert [u.id for u in desc.items] == list(reversed(ids))[:3]
    assert [u.id for u in client.iter_pages(client.get_users_by_ids, ids=ids, per_page=3)] == ids
    odd = client.get_users_by_tags("odd", per_page=2)
    assert odd.total == 4
    all_tagged = list(client.iter_pages(client.get_users_by_tags, tags=["all"], per_page=2))
    assert sorted(u.id for u in all_tagged) == sorted(ids)
    named = client.get_users_by_full_name("User Number3", per_page=5)
    assert [u.id for u in named.items] == [ids[2]]
    by_login = client.get_users_by_ids(ids, per_page=2, order_by="login", descending=True)
    assert [u.login for u in by_login.items] == ["user7", "user6"]
    with pytest.raises(ValueError, match="per_page"):
        client.get_users_by_ids(ids, per_page=101)
    assert client.get_users_by_ids([]).total == 0


def test_lookups_use_only_v2(emu, client):
    users = [signup(client, n, phone=f"+1555000{n}", tag_list=["t1"]) for n in range(1, 3)]
    ids = [u.id for u in users]
    client.get_user(ids[0])
    client.get_user_by_login("user1")
    client.get_user_by_email("user1@example.com")
    client.get_user_by_phone("+15550001")
    client.get_user_by_external_id("101")
    client.find_user_by_external_id("nobody")
    client.find_user(full_name="User Number2")
    client.get_users_by_ids(ids)
    client.get_users_by_full_name("User Number1")
    client.get_users_by_tags(["t1"])
    list(client.iter_pages(client.get_users_by_tags, tags="t1", per_page=1))
    client.as_user(login(client, 1)).get_user(ids[1])
    reads = {k: n for k, n in counts(emu)["routes"].items() if k.startswith("GET /users")}
    assert set(reads) == {"GET /users/v2"}


def test_v2_search(client):
    users = [signup(client, n) for n in range(1, 6)]
    ids = [u.id for u in users]
    page = client.search_users(id__in=ids[:3], sort_desc="id")
    assert (page.offset, page.total) == (0, 3)
    assert [u.id for u in page.items] == list(reversed(ids[:3]))
    assert [u.id for u in client.search_users(login="user4").items] == [ids[3]]
    everything = list(client.iter_pages(client.search_users, id__in=ids, limit=2, sort_asc="id"))
    assert [u.id for u in everything] == ids


def test_password_reset(emu, client):
    signup(client)
    client.reset_password("user1@example.com")
    state = control(emu, "GET", "state")
    assert "user1@example.com" in json.dumps(state)


# ---- blobs and avatar ------------------------------------------------------------------------


def test_blob_lifecycle(client):
    signup(client)
    me = client.as_user(login(client))
    content = b"hello blob" * 100
    blob = me.upload_file(io.BytesIO(content), "hello.txt", "text/plain", public=True)
    assert isinstance(blob, Blob)
    assert blob.size == len(content)
    fetched = me.get_blob(blob.id)
    assert fetched.uid == blob.uid
    assert fetched.is_complete
    public = requests.get(client.blob_public_url(blob.uid), timeout=5)
    assert public.content == content
    download = requests.get(me.get_blob_download_url(blob.uid), timeout=5)
    assert download.content == content

    private = me.upload_file(b"secret bytes", "p.bin", "application/octet-stream")
    assert requests.get(me.private_url(private.uid), timeout=5).content == b"secret bytes"
    assert requests.get(client.blob_public_url(private.uid), timeout=5).status_code != 200

    me.delete_blob(blob.id)
    with pytest.raises(NotFound):
        me.get_blob(blob.id)


def test_blob_steps_one_by_one(client):
    signup(client)
    me = client.as_user(login(client))
    blob = me.create_blob("step.txt", "text/plain")
    assert blob.access is not None
    assert blob.access.params
    me.upload_blob_content(blob, b"abc")
    me.complete_blob(blob.id, 3)
    assert me.get_blob(blob.id).is_complete


def test_set_avatar(client):
    user = signup(client, custom_data={"theme": "dark"})
    me = client.as_user(login(client))
    updated = me.set_avatar(b"\x89PNG fake", "avatar.png", "image/png")
    assert updated.id == user.id
    assert updated.avatar
    assert updated.custom_data_json == {"theme": "dark", "avatar_uid": updated.avatar}
    assert updated.avatar_uid == updated.avatar
    assert requests.get(me.private_url(updated.avatar_uid), timeout=5).content == b"\x89PNG fake"


# ---- application session: sharing, expiry, stampede ------------------------------------------


def test_app_session_shared_between_clients_through_the_store(emu):
    store = MemoryAppSessionStore()
    first = make_client(emu, app_session_store=store)
    user = signup(first)
    second = make_client(emu, app_session_store=store)
    assert second.get_user(user.id).id == user.id
    assert second.app_token() == first.app_token()
    assert route_count(emu, "POST /session") == 1


def test_app_session_shared_through_the_django_cache(emu, settings):
    from django.core.cache import cache

    cache.clear()
    settings.CONNECTYCUBE = {
        "API_URL": emu.url,
        "APPLICATION_ID": APP_ID,
        "AUTH_KEY": AUTH_KEY,
        "AUTH_SECRET": AUTH_SECRET,
    }
    first = build_client()
    user = signup(first)
    build_client().get_user(user.id)
    assert route_count(emu, "POST /session") == 1


def advance_clock(emu, seconds: float) -> None:
    """Move the emulator's clock. Its ``Date`` header stays on real time, so a signed timestamp
    can no longer match its clock (a real server's Date follows its clock): let the client fall
    back to an unsigned session request, which the documented current server accepts."""
    control(emu, "POST", "config", {"require_signature": False})
    control(emu, "POST", "clock", {"advance": seconds})


def test_expired_app_session_is_renewed_transparently(emu):
    client = make_client(emu)
    user = signup(client)
    old_token = client.app_token()
    advance_clock(emu, 3 * 60 * 60)
    assert client.get_user(user.id).id == user.id  # no error reaches the caller
    assert client.app_token() != old_token
    assert route_count(emu, "GET /users/v2") == 2  # the 401, then the success
    # 1 initial + the renewal. Today the emulator's Date header ignores its advanced clock, so
    # the signed attempt is refused for its timestamp and an unsigned one follows (3); once Date
    # follows the clock, the client signs on the server's clock from the 401's Date (2).
    assert route_count(emu, "POST /session") in (2, 3)


def test_app_session_renewed_before_expiry_without_a_401(emu):
    now = [time.time()]
    client = make_client(emu, clock=lambda: now[0])
    user = signup(client)
    now[0] += 2 * 60 * 60 - 30  # inside the renewal margin, on our clock only
    client.get_user(user.id)
    assert route_count(emu, "POST /session") == 2
    assert route_count(emu, "GET /users/v2") == 1


def test_one_renewal_for_many_threads(emu):
    user = signup(make_client(emu))
    store = MemoryAppSessionStore()
    clients = [make_client(emu, app_session_store=store) for _ in range(3)]
    before = route_count(emu, "POST /session")

    def work(i: int) -> int:
        return clients[i % 3].get_user(user.id).id

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(work, range(60)))
    assert results == [user.id] * 60
    assert route_count(emu, "POST /session") - before == 1


def test_concurrent_use_from_threads(client):
    users = [signup(client, n) for n in range(1, 6)]

    def work(i: int) -> tuple[int, int]:
        user = users[i % 5]
        return user.id, client.get_user_by_login(user.login).id

    with ThreadPoolExecutor(max_workers=8) as pool:
        pairs = list(pool.map(work, range(100)))
    assert all(a == b for a, b in pairs)


# ---- errors and retries through fault injection ----------------------------------------------


def test_503_then_success_is_retried(emu, client):
    user = signup(client)
    control(emu, "POST", "faults", {"route": "GET /users/v2", "sequence": [503, 200]})
    before = route_count(emu, "GET /users/v2")
    assert client.get_user(user.id).id == user.id
    assert route_count(emu, "GET /users/v2") - before == 2


def test_persistent_5xx_is_server_error(emu):
    client = make_client(emu, retries=2)
    user = signup(client)
    control(emu, "POST", "faults", {"route": "GET /users/v2", "error_rate": 1.0, "statuses": [500]})
    with pytest.raises(ServerError) as info:
        client.get_user(user.id)
    assert info.value.status == 500
    assert route_count(emu, "GET /users/v2") == 3


def test_429_retry_after_is_waited(emu, client):
    user = signup(client)
    control(
        emu,
        "POST",
        "faults",
        {"route": "GET /users/v2", "rate_limit_rate": 1.0, "retry_after": 1, "count": 1},
    )
    started = time.monotonic()
    assert client.get_user(user.id).id == user.id
    assert time.monotonic() - started >= 1.0


def test_429_retry_after_above_the_cap_raises(emu):
    client = make_client(emu, max_retry_wait=5.0)
    user = signup(client)
    control(
        emu, "POST", "faults", {"route": "GET /users/v2", "rate_limit_rate": 1.0, "retry_after": 60}
    )
    with pytest.raises(RateLimited) as info:
        client.get_user(user.id)
    assert info.value.retry_after == 60
    assert info.value.status == 429


def test_429_on_signup_is_resent(emu, client):
    control(
        emu, "POST", "faults", {"route": "POST /users", "sequence": [429, "ok"], "retry_after": 0}
    )
    assert signup(client).login == "user1"
    assert route_count(emu, "POST /users") == 2


def test_timed_out_signup_is_not_resent(emu):
    client = make_client(emu, timeout=(2.0, 0.5))
    client.app_token()
    control(
        emu,
        "POST",
        "faults",
        {"route": "POST /users", "sequence": ["timeout"], "timeout_seconds": 1.5},
    )
    with pytest.raises(TransportError) as info:
        signup(client)
    assert isinstance(info.value, requests.Timeout)
    assert info.value.maybe_processed
    assert route_count(emu, "POST /users") == 1


def test_500_on_signup_is_not_resent(emu, client):
    control(emu, "POST", "faults", {"route": "POST /users", "sequence": [500]})
    with pytest.raises(ServerError):
        signup(client)
    assert route_count(emu, "POST /users") == 1


def test_dropped_get_is_retried(emu, client):
    user = signup(client)
    control(emu, "POST", "faults", {"route": "GET /users/v2", "sequence": ["drop", "ok"]})
    assert client.get_user(user.id).id == user.id


def test_connection_refused_is_transport_error():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = ConnectyCubeClient(
        f"http://127.0.0.1:{port}",
        APP_ID,
        AUTH_KEY,
        AUTH_SECRET,
        app_session_store=MemoryAppSessionStore(),
        retries=1,
        sleep=lambda s: None,
    )
    with pytest.raises(TransportError) as info:
        client.get_user(1)
    assert isinstance(info.value, requests.ConnectionError)
    assert not info.value.maybe_processed


def test_user_token_401_is_not_renewed(client):
    signup(client)
    session = login(client)
    client.destroy_session(session.token)
    with pytest.raises(SessionExpired):
        client.as_user(session).update_user(full_name="x")


# ---- call counts and logs --------------------------------------------------------------------


def test_one_remote_call_per_lookup_and_update_when_warm(emu):
    client = make_client(emu)
    user = signup(client)
    me = client.as_user(login(client))
    client.get_user(user.id)
    before = counts(emu)["total"]
    client.get_user(user.id)
    assert counts(emu)["total"] - before == 1
    before = counts(emu)["total"]
    me.update_user(full_name="Warm")
    assert counts(emu)["total"] - before == 1


def test_no_secret_in_logs(emu, caplog):
    client = make_client(emu, retries=1)
    with caplog.at_level(logging.DEBUG, logger="django_connectycube"):
        signup(client)
        session = login(client)
        me = client.as_user(session)
        me.update_user(password="changed-pass-99", old_password=PASSWORD)
        control(emu, "POST", "faults", {"route": "GET /users/v2", "sequence": [503, 200]})
        client.get_user(session.user_id)
        advance_clock(emu, 3 * 60 * 60)
        client.get_user(session.user_id)
        errors = []
        for call in (
            lambda: client.create_user_session(login="user1", password="wrong-pass-77"),
            lambda: me.update_user(full_name="expired"),
            lambda: client.blob_private_url("x", session.token) and client.get_user(0),
        ):
            try:
                call()
            except Exception as exc:
                errors.append(str(exc))
    text = caplog.text + "\n".join(errors)
    assert "Application session" in caplog.text
    for secret in (
        AUTH_KEY,
        AUTH_SECRET,
        session.token,
        client.app_token(),
        PASSWORD,
        "changed-pass-99",
        "wrong-pass-77",
    ):
        assert secret not in text


def test_guest_and_failed_identity_sessions(client):
    # The emulator serves guest sessions; the client has no public call for them.
    guest = client._create_session({"user": {"guest": "1", "full_name": "Guest Person"}})
    assert guest.user is not None
    assert guest.user.is_guest
    with pytest.raises(IdentityProviderRefused, match="Bad Authentication data"):
        client.create_cidp_session("bad-token-1")


def test_one_renewal_across_processes_sharing_the_django_cache(emu):
    """Clients with separate in-process locks (as in separate workers) renew once via add()."""
    from django.core.cache import cache

    from django_connectycube.sync.app_session_cache import DjangoCacheAppSessionStore

    cache.clear()
    user = signup(make_client(emu))
    before = route_count(emu, "POST /session")
    clients = [make_client(emu, app_session_store=DjangoCacheAppSessionStore()) for _ in range(4)]
    barrier = threading.Barrier(8)

    def work(i: int) -> int:
        barrier.wait()
        return clients[i % 4].get_user(user.id).id

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(work, range(8))) == [user.id] * 8
    assert route_count(emu, "POST /session") - before == 1
