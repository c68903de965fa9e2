"""This site as ConnectyCube's Custom Identity Provider: the verify endpoint and CIdP logins.

The end-to-end tests serve the verify endpoint from a live server and point the emulator's
``cidp_url`` at it, so ConnectyCube's call to us goes over real HTTP as in production.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core import signing
from django.test import Client

from django_connectycube.models import CubeUser
from django_connectycube.sync import cidp, policy
from django_connectycube.sync import push as sync

User = get_user_model()
pytestmark = pytest.mark.usefixtures("no_broker", "clean_cache")
VERIFY = "/api/connectycube/cidp/verify/"
LOGIN = "/api/connectycube/login/"


def make_user(username="alice", **fields):
    return User.objects.create_user(
        username=username, email=f"{username}@example.com", first_name="Alice", **fields
    )


# ---- the verify endpoint -------------------------------------------------------------------


@pytest.mark.django_db
def test_verify_answers_the_starter_kit_shape():
    user = make_user()
    uid = CubeUser.objects.get(user=user).external_id
    token = cidp.make_login_token(user.pk)
    response = Client().get(VERIFY, {"token": token})
    assert response.status_code == 200
    assert response.json() == {
        "uid": uid,
        "login": "alice",
        "email": "alice@example.com",
        "full_name": "Alice",
        "user": {"id": uid, "login": "alice", "email": "alice@example.com"},
    }
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_verify_accepts_post_form_and_json():
    user = make_user()
    form = Client().post(VERIFY, {"token": cidp.make_login_token(user.pk)})
    as_json = Client().post(
        VERIFY, {"token": cidp.make_login_token(user.pk)}, content_type="application/json"
    )
    assert form.status_code == as_json.status_code == 200
    assert form.json()["uid"] == as_json.json()["uid"] == user.connectycube.external_id


@pytest.mark.django_db
def test_verify_refuses_bad_tokens_with_422(monkeypatch):
    user = make_user()
    inactive = make_user("carol")
    inactive.is_active = False
    inactive.save()
    forged = signing.dumps({"u": str(user.pk)}, salt="another-salt")
    monkeypatch.setattr(cidp, "TOKEN_MAX_AGE", -1)
    expired = cidp.make_login_token(user.pk)
    for params in (
        {},
        {"token": "garbage"},
        {"token": forged},
        {"token": expired},
    ):
        response = Client().get(VERIFY, params)
        assert response.status_code == 422, params
        assert set(response.json()) == {"error"}
    monkeypatch.setattr(cidp, "TOKEN_MAX_AGE", 60)
    for pk in (inactive.pk, 999999, "not-a-pk"):
        response = Client().get(VERIFY, {"token": cidp.make_login_token(pk)})
        assert response.status_code == 422
    wrong_method = Client().put(VERIFY)
    assert wrong_method.status_code == 405
    assert wrong_method.json()["code"] == "method_not_allowed"
    assert set(wrong_method["Allow"].replace(" ", "").split(",")) == {"GET", "POST"}


@pytest.mark.django_db
@pytest.mark.parametrize("case", ["surrogate-json", "bad-multipart", "too-many-fields", "too-big"])
def test_verify_answers_json_4xx_to_malformed_requests(settings, case):
    settings.DEBUG = True  # the debug page is what a malformed request used to get
    client = Client(raise_request_exception=False)
    if case == "surrogate-json":
        response = client.post(VERIFY, '{"token": "\\ud800:x:y"}', content_type="application/json")
    elif case == "bad-multipart":
        response = client.generic(
            "POST", VERIFY, b"--x\r\ngarbage", content_type="multipart/form-data; boundary="
        )
    elif case == "too-many-fields":
        settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 3
        response = client.get(VERIFY + "?" + "&".join(f"f{i}=1" for i in range(10)))
    else:
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10
        response = client.post(VERIFY, {"token": "x" * 100}, content_type="application/json")
    assert 400 <= response.status_code < 500, response.status_code
    assert response["Content-Type"] == "application/json"
    # A limit the request broke is worded as every API view words it ({"detail", "code"}).
    assert set(response.json()) in ({"error"}, {"detail", "code"})


def test_tokens_expire_after_the_configured_age(settings, monkeypatch):
    token = cidp.make_login_token(7)
    assert cidp.read_login_token(token) == "7"
    monkeypatch.setattr(cidp, "TOKEN_MAX_AGE", 60)
    import time as time_module

    later = time_module.time() + 61
    monkeypatch.setattr("django.core.signing.time.time", lambda: later)
    with pytest.raises(signing.SignatureExpired):
        cidp.read_login_token(token)


def mint_at(monkeypatch, when, user_pk):
    """A login token as if signed at ``when`` (a server whose clock is off, or a forger)."""

    with monkeypatch.context() as patch:
        patch.setattr("django.core.signing.time.time", lambda: when)
        return cidp.make_login_token(user_pk)


@pytest.mark.django_db
def test_a_token_is_accepted_once():
    user = make_user()
    token = cidp.make_login_token(user.pk)
    assert Client().get(VERIFY, {"token": token}).status_code == 200
    for _ in range(2):
        replay = Client().post(VERIFY, {"token": token})
        assert replay.status_code == 422
        assert replay.json() == {"error": "token already used"}


@pytest.mark.django_db
def test_two_tokens_minted_in_the_same_second_are_both_usable(monkeypatch):
    import time as time_module

    user = make_user()
    now = time_module.time()
    first, second = mint_at(monkeypatch, now, user.pk), mint_at(monkeypatch, now, user.pk)
    assert first != second
    assert Client().get(VERIFY, {"token": first}).status_code == 200
    assert Client().get(VERIFY, {"token": second}).status_code == 200


@pytest.mark.django_db
def test_a_token_dated_in_the_future_is_refused(monkeypatch):
    import time as time_module

    monkeypatch.setattr(cidp, "CLOCK_SKEW", 5)
    user = make_user()
    now = time_module.time()
    future = mint_at(monkeypatch, now + 3600, user.pk)
    response = Client().get(VERIFY, {"token": future})
    assert response.status_code == 422
    assert response.json() == {"error": "invalid or expired token"}
    with pytest.raises(signing.BadSignature):
        cidp.read_login_token(mint_at(monkeypatch, now + 3600, user.pk))
    within_skew = mint_at(monkeypatch, now + 3, user.pk)
    assert Client().get(VERIFY, {"token": within_skew}).status_code == 200


# ---- logins through the identity provider --------------------------------------------------


@pytest.fixture
def cidp_cube(connectycube_emulator, live_server, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "AUTH_MODE": "cidp", "RETRIES": 0}
    connectycube_emulator.configure(cidp_url=live_server.url + VERIFY)
    return connectycube_emulator


@pytest.mark.django_db(transaction=True)
def test_first_cidp_login_creates_the_remote_user_and_links_it(cidp_cube):
    user = make_user()
    client = Client()
    client.force_login(user)
    response = client.post(LOGIN)
    assert response.status_code == 200, response.content
    [remote] = cidp_cube.users
    assert remote["source"] == "cidp"
    link = CubeUser.objects.get(user=user)
    assert remote["external_id"] == link.external_id != str(user.pk)
    assert remote["login"] == "alice"
    assert remote["has_password"] is False
    assert cidp_cube.request_count("POST /users") == 0  # ConnectyCube created it, not us
    link = CubeUser.objects.get(user=user)
    assert link.cube_id == remote["id"] == response.json()["user_id"]
    # A cached token costs nothing; the sync engine now updates the same user.
    cidp_cube.reset_counters()
    assert client.post(LOGIN).json()["token"] == response.json()["token"]
    assert cidp_cube.request_count() == 0
    user.first_name = "Alicia"
    user.save()
    assert sync.push_user(user.pk) == policy.UPDATED
    assert len(cidp_cube.users) == 1
    assert cidp_cube.users[0]["full_name"] == "Alicia"


@pytest.mark.django_db(transaction=True)
def test_cidp_login_finds_a_user_the_sync_engine_created(cidp_cube):
    user = make_user()
    assert sync.push_user(user.pk) == policy.CREATED
    cube_id = CubeUser.objects.get(user=user).cube_id
    client = Client()
    client.force_login(user)
    response = client.post(LOGIN)
    assert response.status_code == 200
    assert response.json()["user_id"] == cube_id
    assert len(cidp_cube.users) == 1


@pytest.mark.django_db(transaction=True)
def test_cidp_renewal_after_expiry_uses_a_new_signed_token(cidp_cube):
    user = make_user()
    client = Client()
    client.force_login(user)
    old = client.post(LOGIN).json()["token"]
    cidp_cube.advance_clock(2 * 3600 + 60)
    response = client.post("/api/connectycube/session/")  # the SDK's sessionExpired report
    assert response.status_code == 200
    assert response.json()["token"] != old
    assert len(cidp_cube.users) == 1


@pytest.mark.django_db(transaction=True)
def test_a_misconfigured_verification_url_is_a_502_not_a_500(cidp_cube, live_server):
    client = Client()
    client.force_login(make_user())
    cidp_cube.configure(cidp_url=live_server.url + "/no-such-verifier/")
    response = client.post(LOGIN)
    assert response.status_code == 502
    body = response.json()
    assert body["code"] == "cidp_refused"
    assert "Unauthorized on remote side. Status: 404" in body["detail"]
    assert CubeUser.objects.get().cube_id is None


def refused_login(cidp_cube, style):
    cidp_cube.configure(cidp_failure_style=style)
    user = make_user()
    client = Client()
    client.force_login(user)
    return client.post(LOGIN)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("style", "status"), [("200-errors", 200), ("422", 422)])
def test_a_refused_verification_is_a_502_with_the_servers_message(
    cidp_cube, settings, monkeypatch, caplog, style, status
):
    monkeypatch.setattr(cidp, "TOKEN_MAX_AGE", -1)
    with caplog.at_level("ERROR", logger="django_connectycube"):
        response = refused_login(cidp_cube, style)
    assert response.status_code == 502, response.content
    body = response.json()
    assert body["code"] == "cidp_refused"
    assert "Bad Authentication data" in body["detail"]
    assert "invalid or expired token" in body["detail"]  # what our own verifier said
    [record] = [r for r in caplog.records if "Bad Authentication data" in r.getMessage()]
    assert f"HTTP {status} from POST /session" in record.getMessage()
    assert cidp_cube.users == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("style", ["200-errors", "422"])
def test_a_mapping_without_uid_is_a_502_with_the_servers_message(cidp_cube, style):
    cidp_cube.configure(cidp_response_mapping={"uid": "#{no.such.field}"})
    response = refused_login(cidp_cube, style)
    assert response.status_code == 502
    assert response.json() == {
        "detail": "ConnectyCube refused the login through this site's identity provider: "
        "Custom Identity Provider uid is required",
        "code": "cidp_refused",
    }


@pytest.mark.django_db(transaction=True)
def test_cidp_login_works_against_the_documented_real_behaviour(cidp_cube):
    """The emulator at its defaults refuses a CIdP login without a password (422) and answers
    a refusal with 200: the login only works because the client sends a throwaway password."""
    assert cidp_cube.config["cidp_failure_style"] == "200-errors"
    user = make_user()
    client = Client()
    client.force_login(user)
    response = client.post(LOGIN)
    assert response.status_code == 200, response.content
    [remote] = cidp_cube.users
    assert remote["has_password"] is False
    assert response.json()["user_id"] == remote["id"]


@pytest.mark.django_db(transaction=True)
def test_the_remote_user_of_a_deleted_cidp_user_is_deleted(cidp_cube):
    user = make_user()
    client = Client()
    client.force_login(user)
    assert client.post(LOGIN).status_code == 200  # ConnectyCube created it, with no password
    link_id = CubeUser.objects.get(user=user).pk
    user.delete()
    assert sync.delete_remote_user(link_id) == policy.DELETED
    assert cidp_cube.users == []
    assert CubeUser.objects.get(pk=link_id).state == "deleted"


@pytest.mark.django_db
def test_tombstone_tokens_only_work_while_a_delete_is_owed():
    user = make_user()
    link = CubeUser.objects.get(user=user)

    def verify():
        return Client().get(VERIFY, {"token": cidp.make_tombstone_token(link.external_id)})

    token = cidp.make_tombstone_token(link.external_id)
    assert verify().status_code == 422  # the user still exists
    user.delete()
    response = verify()
    assert response.status_code == 200
    assert response.json()["uid"] == link.external_id
    CubeUser.objects.filter(pk=link.pk).update(state=CubeUser.State.DELETED)
    assert verify().status_code == 422
    with pytest.raises(signing.BadSignature):
        cidp.read_login_token(token)  # not a login token


def test_a_refusal_worded_with_200_is_permanent_like_its_422_twin():
    """The sync engine treats both shapes of a refused CIdP login alike: a refusal to record,
    not a broken answer to retry nor a failure the circuit breaker counts."""
    from django_connectycube.client import IdentityProviderRefused
    from django_connectycube.client.errors import APIError
    from django_connectycube.sync import policy

    said = ["Bad Authentication data. Unauthorized on remote side. Status: 422.With empty response"]
    for status in (200, 422):
        refused = IdentityProviderRefused("refused", status=status, errors=said)
        assert policy.classify(refused) is policy.Kind.PERMANENT
        assert policy.remote_failed(refused) is False
    unreadable = APIError("Invalid JSON in the answer", status=200)
    assert policy.classify(unreadable) is policy.Kind.TRANSIENT
    assert policy.remote_failed(unreadable) is True
