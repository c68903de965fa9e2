"""The session endpoints (login, logout, session) against the emulator over real HTTP."""

from __future__ import annotations

import io
import threading
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import call_command
from django.db import close_old_connections, connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from django_connectycube.models import CubeSession, CubeUser
from django_connectycube.sync import push as sync

User = get_user_model()
pytestmark = pytest.mark.usefixtures("no_broker", "clean_cache")
LOGIN = "/api/connectycube/login/"
LOGOUT = "/api/connectycube/logout/"
SESSION = "/api/connectycube/session/"
USERS = "/api/connectycube/users/"


@pytest.fixture
def cube(connectycube_emulator, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "RETRIES": 0, "MAX_RETRY_WAIT": 1.0}
    return connectycube_emulator


def make_user(username="alice", password="pw-alice-123", **fields):  # noqa: S107
    return User.objects.create_user(
        username=username, email=f"{username}@example.com", password=password, **fields
    )


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def user_sessions(cube, cube_id):
    return [s for s in cube.sessions if s.get("user_id") == cube_id]


# ---- login ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_login_of_an_authenticated_user_creates_remote_user_and_session(cube):
    user = make_user()
    response = logged_in(user).post(LOGIN)
    assert response.status_code == 200, response.content
    body = response.json()
    link = CubeUser.objects.get(user=user)
    assert link.cube_id is not None and link.state == "synced"  # pushed synchronously
    assert set(body) == {"token", "expires_at", "user_id", "application_id", "api_url"}
    assert body["user_id"] == link.cube_id
    assert body["application_id"] == cube.application_id
    assert body["api_url"] == cube_url(cube)
    assert parse_datetime(body["expires_at"]) > timezone.now() + timedelta(minutes=90)
    assert response["Cache-Control"] == "no-store"
    [remote] = user_sessions(cube, link.cube_id)
    assert remote["token"] == body["token"]


def cube_url(cube):
    from django.conf import settings

    return settings.CONNECTYCUBE["API_URL"]


@pytest.mark.django_db
def test_a_cached_valid_token_costs_no_remote_call(cube):
    user = make_user()
    client = logged_in(user)
    first = client.post(LOGIN).json()
    cube.reset_counters()
    second = client.post(LOGIN).json()
    assert second["token"] == first["token"]
    assert cube.request_count() == 0


@pytest.mark.django_db
def test_login_with_credentials(cube):
    make_user(password="right-password")
    response = Client().post(LOGIN, {"username": "alice", "password": "right-password"})
    assert response.status_code == 200
    assert response.json()["token"]


@pytest.mark.django_db
def test_wrong_password_and_unknown_account_answer_identically(cube):
    make_user(password="right-password")
    wrong = Client().post(LOGIN, {"username": "alice", "password": "nope"})
    unknown = Client().post(LOGIN, {"username": "nobody", "password": "nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert (
        wrong.json()
        == unknown.json()
        == {
            "detail": "Invalid credentials.",
            "code": "invalid_credentials",
        }
    )
    assert cube.request_count() == 0


@pytest.mark.django_db
def test_inactive_user_cannot_log_in(cube):
    user = make_user(password="right-password")
    user.is_active = False
    user.save()
    response = Client().post(LOGIN, {"username": "alice", "password": "right-password"})
    assert response.status_code == 401


@pytest.mark.django_db
def test_anonymous_login_without_credentials_is_401(cube):
    response = Client().post(LOGIN)
    assert response.status_code in (401, 403)
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "alice"}, "password"),
        ({"password": "x"}, "username"),
        ({"provider": "firebase_phone"}, "firebase_phone"),
        ({"provider": "github"}, "provider"),
        ({"firebase_phone": {"access_token": "x"}}, "provider"),
    ],
)
def test_bad_login_input_is_400_with_field_errors(cube, body, field):
    response = Client().post(LOGIN, body, content_type="application/json")
    assert response.status_code == 400
    assert field in response.json()


# ---- lockout -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_five_failures_lock_the_account_even_for_the_right_password(cube):
    make_user(password="right-password")
    for _ in range(5):
        assert Client().post(LOGIN, {"username": "alice", "password": "x"}).status_code == 401
    locked = Client().post(LOGIN, {"username": "alice", "password": "right-password"})
    assert locked.status_code == 429
    assert locked.json()["code"] == "login_locked"
    assert 0 < int(locked["Retry-After"]) <= 900
    # Other accounts are not affected.
    make_user("bob", password="bob-password")
    assert Client().post(LOGIN, {"username": "bob", "password": "bob-password"}).status_code == 200


@pytest.mark.django_db
def test_lockout_of_unknown_account_looks_like_a_known_one(cube):
    make_user(password="right-password")
    answers = {}
    for name in ("alice", "ghost"):
        for _ in range(5):
            Client().post(LOGIN, {"username": name, "password": "x"})
        locked = Client().post(LOGIN, {"username": name, "password": "x"})
        answers[name] = (locked.status_code, locked.json())
    assert answers["alice"] == answers["ghost"]
    assert answers["alice"][0] == 429


@pytest.mark.django_db
def test_lockout_counts_are_forgotten_when_they_expire(cube):
    make_user(password="right-password")
    for _ in range(5):
        Client().post(LOGIN, {"username": "alice", "password": "x"})
    assert Client().post(LOGIN, {"username": "alice", "password": "x"}).status_code == 429
    cache.clear()  # the counters' and the delay's expiry passed
    ok = Client().post(LOGIN, {"username": "alice", "password": "right-password"})
    assert ok.status_code == 200


@pytest.mark.django_db
def test_failures_per_ip_lock_every_account_from_that_address(cube, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "LOGIN_FAILURE_IP_LIMIT": 3}
    for name in ("a1", "a2", "a3"):
        Client().post(LOGIN, {"username": name, "password": "x"})
    response = Client().post(LOGIN, {"username": "a4", "password": "x"})
    assert response.status_code == 429
    other_ip = Client(REMOTE_ADDR="10.0.0.9").post(LOGIN, {"username": "a4", "password": "x"})
    assert other_ip.status_code == 401


@pytest.mark.django_db
def test_success_resets_the_account_counter(cube):
    make_user(password="right-password")
    for _ in range(4):
        Client().post(LOGIN, {"username": "alice", "password": "x"})
    ok = Client().post(LOGIN, {"username": "alice", "password": "right-password"})
    assert ok.status_code == 200
    for _ in range(4):
        assert Client().post(LOGIN, {"username": "alice", "password": "x"}).status_code == 401


# ---- session, expiry, logout ---------------------------------------------------------------


def writes(queries) -> list[str]:
    """The statements of a captured block that change the database."""
    verbs = ("INSERT", "UPDATE", "DELETE", "REPLACE")
    return [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(verbs)]


@pytest.mark.django_db
@pytest.mark.parametrize("url", [SESSION, LOGIN])
def test_a_valid_stored_token_is_handed_out_without_a_remote_call_or_a_write(cube, url):
    user = make_user()
    client = logged_in(user)
    token = client.post(LOGIN).json()["token"]
    cube.reset_counters()
    with CaptureQueriesContext(connection) as queries:
        response = client.post(url) if url == LOGIN else client.get(url)
    assert response.status_code == 200
    assert response.json()["token"] == token
    assert response["Cache-Control"] == "no-store"
    assert cube.request_count() == 0
    assert writes(queries.captured_queries) == []


@pytest.mark.django_db
def test_session_view_confirms_and_slides_the_token_when_asked(cube):
    user = make_user()
    client = logged_in(user)
    token = client.post(LOGIN).json()["token"]
    CubeSession.objects.filter(user=user).update(expires_at=timezone.now() + timedelta(minutes=30))
    cube.reset_counters()
    response = client.get(SESSION, {"confirm": "1"})
    assert response.status_code == 200
    assert response.json()["token"] == token
    assert cube.request_count("GET /session") == 1
    assert cube.request_count() == 1
    slid = CubeSession.objects.get(user=user).expires_at
    assert slid > timezone.now() + timedelta(minutes=90)


def report_refused(client, how):
    """The frontend tells the site ConnectyCube refused its token (the SDK's sessionExpired)."""
    if how == "post":
        return client.post(SESSION, content_type="application/json")
    return client.get(SESSION, {how: "1"})


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["post", "renew", "confirm"])
def test_expiry_on_the_server_clock_is_renewed_when_the_frontend_reports_it(cube, how):
    user = make_user()
    client = logged_in(user)
    old = client.post(LOGIN).json()["token"]
    cube.advance_clock(2 * 3600 + 60)  # ConnectyCube dropped the token; our row says valid
    assert client.get(SESSION).json()["token"] == old  # no remote call to find out
    response = report_refused(client, how)
    assert response.status_code == 200, response.content
    new = response.json()["token"]
    assert new != old
    link = CubeUser.objects.get(user=user)
    assert new in [s["token"] for s in user_sessions(cube, link.cube_id)]
    assert client.post(LOGIN).json()["token"] == new
    assert client.get(SESSION).json()["token"] == new


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["post", "renew"])
def test_a_reported_refusal_renews_even_a_token_that_looks_valid(cube, how):
    user = make_user()
    client = logged_in(user)
    old = client.post(LOGIN).json()["token"]
    cube.reset_counters()
    new = report_refused(client, how).json()["token"]
    assert new != old
    assert cube.request_count("POST /session") == 1
    assert CubeSession.objects.get(user=user).token == new


@pytest.mark.django_db
def test_a_refusal_reported_before_any_session_makes_the_first_one(cube):
    user = make_user()
    response = report_refused(logged_in(user), "post")
    assert response.status_code == 200, response.content
    assert response.json()["user_id"] == CubeUser.objects.get(user=user).cube_id


@pytest.mark.django_db
def test_a_token_we_know_is_dead_is_renewed_by_the_session_view(cube):
    user = make_user()
    client = logged_in(user)
    old = client.post(LOGIN).json()["token"]
    CubeSession.objects.filter(user=user).update(expires_at=timezone.now() - timedelta(seconds=1))
    new = client.get(SESSION).json()
    assert new["token"] != old
    assert parse_datetime(new["expires_at"]) > timezone.now()


@pytest.mark.django_db
@pytest.mark.parametrize("query", [{"renew": "maybe"}, {"confirm": "x"}])
def test_a_bad_session_flag_is_400_with_the_field(cube, query):
    user = make_user()
    response = logged_in(user).get(SESSION, query)
    assert response.status_code == 400
    assert set(response.json()) >= set(query)


@pytest.mark.django_db
def test_expiry_on_our_clock_is_renewed_at_login(cube):
    user = make_user()
    client = logged_in(user)
    old = client.post(LOGIN).json()["token"]
    CubeSession.objects.filter(user=user).update(expires_at=timezone.now() - timedelta(seconds=1))
    new = client.post(LOGIN).json()
    assert new["token"] != old
    assert parse_datetime(new["expires_at"]) > timezone.now()


@pytest.mark.django_db
def test_logout_destroys_the_remote_session(cube):
    user = make_user()
    client = logged_in(user)
    token = client.post(LOGIN).json()["token"]
    response = client.post(LOGOUT)
    assert response.status_code == 204
    assert token not in {s["token"] for s in cube.sessions}
    assert not CubeSession.objects.filter(user=user).exists()
    assert client.post(LOGOUT).status_code == 204  # nothing left: still fine
    assert client.post(LOGIN).json()["token"] != token


@pytest.mark.django_db
def test_logout_and_session_need_authentication(cube):
    assert Client().post(LOGOUT).status_code in (401, 403)
    assert Client().get(SESSION).status_code in (401, 403)
    assert Client().post(SESSION).status_code in (401, 403)


# ---- outages -------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("fault", [{"statuses": [503]}, {"rate_limit_rate": 1, "retry_after": 7}])
def test_connectycube_outage_is_503_with_retry_after(cube, fault):
    user = make_user()
    sync.push_user(user.pk)
    cube.set_fault("POST /session", error_rate=1 if "statuses" in fault else 0, **fault)
    response = logged_in(user).post(LOGIN)
    assert response.status_code == 503
    assert response.json()["code"] == "connectycube_unavailable"
    assert int(response["Retry-After"]) >= 1
    if "retry_after" in fault:
        assert response["Retry-After"] == "7"


@pytest.mark.django_db
def test_unreachable_connectycube_is_503(cube, settings):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    user = make_user()
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "API_URL": f"http://127.0.0.1:{port}"}
    response = logged_in(user).post(LOGIN)
    assert response.status_code == 503
    assert response["Retry-After"]
    assert response.json()["code"] == "connectycube_unavailable"


@pytest.mark.django_db
def test_push_failing_before_login_is_503(cube):
    user = make_user()
    cube.set_fault("POST /users", error_rate=1, statuses=[500])
    response = logged_in(user).post(LOGIN)
    assert response.status_code == 503
    assert CubeUser.objects.get(user=user).cube_id is None


@pytest.mark.django_db
def test_user_being_pushed_by_a_worker_is_503_after_the_bound(cube, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SYNC_ON_LOGIN_TIMEOUT": 0.3}
    user = make_user()
    CubeUser.objects.filter(user=user).update(lease_until=timezone.now() + timedelta(minutes=1))
    response = logged_in(user).post(LOGIN)
    assert response.status_code == 503
    assert response["Retry-After"]


# ---- isolation and storage -----------------------------------------------------------------


@pytest.mark.django_db
def test_user_a_never_gets_user_bs_token(cube):
    alice, bob = make_user("alice"), make_user("bob")
    a_client, b_client = logged_in(alice), logged_in(bob)
    a_token = a_client.post(LOGIN).json()["token"]
    b_token = b_client.post(LOGIN).json()["token"]
    assert a_token != b_token
    b_id = CubeUser.objects.get(user=bob).cube_id
    a_views = [
        a_client.post(LOGIN),
        a_client.get(SESSION),
        a_client.get(USERS, {"ids": f"{b_id}"}),
        a_client.get(f"{USERS}{b_id}/"),
        a_client.get(USERS, {"login": "bob"}),
    ]
    for response in a_views:
        assert response.status_code == 200
        assert b_token not in response.content.decode()
    assert a_views[0].json()["user_id"] != b_id
    # Listing oneself shows no token either.
    assert a_token not in a_client.get(USERS, {"login": "alice"}).content.decode()


@pytest.mark.django_db
def test_no_plaintext_token_in_a_dump_or_the_raw_table(cube):
    user = make_user()
    token = logged_in(user).post(LOGIN).json()["token"]
    out = io.StringIO()
    call_command("dumpdata", "django_connectycube", stdout=out)
    assert token not in out.getvalue()
    assert "fernet:" in out.getvalue()
    table = CubeSession._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT token FROM {table}")
        raw = [row[0] for row in cursor.fetchall()]
    assert raw and all(token not in value for value in raw)
    assert CubeSession.objects.get(user=user).token == token
    assert token not in repr(CubeSession.objects.get(user=user))


@pytest.mark.django_db
def test_a_login_waits_for_a_renewal_in_progress_instead_of_making_another(cube, monkeypatch):
    """The race without threads (SQLite's shared in-memory test database cannot take two
    writers): another request holds the renewal claim and finishes while this one waits."""
    user = make_user()
    sync.push_user(user.pk)
    link = CubeUser.objects.get(user=user)
    other = logged_in(user).post(LOGIN).json()["token"]  # what the other request will store
    CubeSession.objects.filter(user=user).update(
        expires_at=timezone.now() - timedelta(seconds=1),
        renewing_until=timezone.now() + timedelta(seconds=30),
    )
    real_sleep = __import__("time").sleep

    def other_request_finishes(seconds: float) -> None:
        CubeSession.objects.filter(user=user).update(
            expires_at=timezone.now() + timedelta(hours=2), renewing_until=None
        )
        real_sleep(0)

    monkeypatch.setattr("django_connectycube.sessions.login.time.sleep", other_request_finishes)
    cube.reset_counters()
    assert logged_in(user).post(LOGIN).json()["token"] == other
    assert cube.request_count("POST /session") == 0
    assert len(user_sessions(cube, link.cube_id)) == 1


def log_in_twice_at_once(user) -> list[str]:
    """Two requests for the same user's login released together; the tokens they got."""
    barrier = threading.Barrier(2)
    tokens: list[str] = []

    def login() -> None:
        try:
            client = logged_in(user)
            barrier.wait()
            tokens.append(client.post(LOGIN).json()["token"])
        finally:
            close_old_connections()

    threads = [threading.Thread(target=login) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return tokens


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_logins_make_one_remote_session(cube, postgres_db):
    user = make_user()
    sync.push_user(user.pk)
    cube_id = CubeUser.objects.get(user=user).cube_id
    cube.set_fault("POST /session", latency=0.3)  # widen the race window
    tokens = log_in_twice_at_once(user)
    assert len(tokens) == 2 and tokens[0] == tokens[1]
    assert len(user_sessions(cube, cube_id)) == 1


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_first_logins_create_one_remote_user(cube, postgres_db):
    user = make_user()
    tokens = log_in_twice_at_once(user)
    assert len(tokens) == 2 and tokens[0] == tokens[1]
    external_id = CubeUser.objects.get(user=user).external_id
    remotes = [u for u in cube.users if u.get("external_id") == external_id]
    assert len(remotes) == 1
    assert len(user_sessions(cube, remotes[0]["id"])) == 1
