"""This site as ConnectyCube's Custom Identity Provider: the verify endpoint and CIdP logins.

The end-to-end tests serve the verify endpoint from a live server and point the emulator's
``cidp_url`` at it, so ConnectyCube's call to us goes over real HTTP as in production.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core import signing
from django.test import Client

from django_connectycube import cidp, sync
from django_connectycube.models import CubeUser

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
    token = cidp.make_login_token(user.pk)
    form = Client().post(VERIFY, {"token": token})
    as_json = Client().post(VERIFY, {"token": token}, content_type="application/json")
    assert form.status_code == as_json.status_code == 200
    assert form.json()["uid"] == as_json.json()["uid"] == user.connectycube.external_id


@pytest.mark.django_db
def test_verify_refuses_bad_tokens_with_422(settings):
    user = make_user()
    inactive = make_user("carol")
    inactive.is_active = False
    inactive.save()
    forged = signing.dumps({"u": str(user.pk)}, salt="another-salt")
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "CIDP_TOKEN_MAX_AGE": -1}
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
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "CIDP_TOKEN_MAX_AGE": 60}
    for pk in (inactive.pk, 999999, "not-a-pk"):
        response = Client().get(VERIFY, {"token": cidp.make_login_token(pk)})
        assert response.status_code == 422
    assert Client().put(VERIFY).status_code == 405


def test_tokens_expire_after_the_configured_age(settings, monkeypatch):
    token = cidp.make_login_token(7)
    assert cidp.read_login_token(token) == "7"
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "CIDP_TOKEN_MAX_AGE": 60}
    import time as time_module

    later = time_module.time() + 61
    monkeypatch.setattr("django.core.signing.time.time", lambda: later)
    with pytest.raises(signing.SignatureExpired):
        cidp.read_login_token(token)


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
    assert sync.push_user(user.pk) == sync.UPDATED
    assert len(cidp_cube.users) == 1
    assert cidp_cube.users[0]["full_name"] == "Alicia"


@pytest.mark.django_db(transaction=True)
def test_cidp_login_finds_a_user_the_sync_engine_created(cidp_cube):
    user = make_user()
    assert sync.push_user(user.pk) == sync.CREATED
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
    response = client.get("/api/connectycube/session/")
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
    assert response.json() == {
        "detail": "ConnectyCube refused the request.",
        "code": "connectycube_error",
    }


@pytest.mark.django_db(transaction=True)
def test_the_remote_user_of_a_deleted_cidp_user_is_deleted(cidp_cube):
    user = make_user()
    client = Client()
    client.force_login(user)
    assert client.post(LOGIN).status_code == 200  # ConnectyCube created it, with no password
    link_id = CubeUser.objects.get(user=user).pk
    user.delete()
    assert sync.delete_remote_user(link_id) == sync.DELETED
    assert cidp_cube.users == []
    assert CubeUser.objects.get(pk=link_id).state == "deleted"


@pytest.mark.django_db
def test_tombstone_tokens_only_work_while_a_delete_is_owed():
    user = make_user()
    link = CubeUser.objects.get(user=user)
    token = cidp.make_tombstone_token(link.external_id)
    assert Client().get(VERIFY, {"token": token}).status_code == 422  # the user still exists
    user.delete()
    response = Client().get(VERIFY, {"token": token})
    assert response.status_code == 200
    assert response.json()["uid"] == link.external_id
    CubeUser.objects.filter(pk=link.pk).update(state=CubeUser.State.DELETED)
    assert Client().get(VERIFY, {"token": token}).status_code == 422
    with pytest.raises(signing.BadSignature):
        cidp.read_login_token(token)  # not a login token
