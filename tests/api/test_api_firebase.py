"""``POST login/`` with a Firebase phone token, verified by (the emulated) ConnectyCube."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from django_connectycube.emulator import FirebaseIdentity, mint_firebase_token
from django_connectycube.models import CubeSession, CubeUser
from django_connectycube.sync import push as sync
from django_connectycube.sync.connection import shared_client

User = get_user_model()
LOGIN = "/api/connectycube/login/"
PROJECT = "demo-project"

pytestmark = [pytest.mark.usefixtures("no_broker", "clean_cache"), pytest.mark.django_db]


@pytest.fixture
def cube(connectycube_emulator, settings):
    settings.CONNECTYCUBE = {
        **settings.CONNECTYCUBE,
        "RETRIES": 0,
        # The test project vouches that its phone field only holds numbers users have proven.
        "FIREBASE_PHONE_LOOKUP": "phone",
        "FIREBASE_PHONE_FIELD_VERIFIED": True,
        "FIREBASE_PROJECT_ID": PROJECT,
    }
    return connectycube_emulator


def token_for(cube, phone, project=PROJECT, **kwargs):
    return mint_firebase_token(cube.firebase_key, project, phone_number=phone, **kwargs)


def firebase_login(token, project=PROJECT, client=None):
    body = {"provider": "firebase_phone", "firebase_phone": {"access_token": token}}
    if project is not None:
        body["firebase_phone"]["project_id"] = project
    return (client or Client()).post(LOGIN, body, content_type="application/json")


def test_verified_phone_logs_in_the_local_user_with_that_phone(cube):
    alice = User.objects.create_user(username="alice", phone="+447700900001")
    User.objects.create_user(username="bob", phone="+447700900002")
    sync.push_user(alice.pk)
    response = firebase_login(token_for(cube, "+447700900001"))
    assert response.status_code == 200, response.content
    body = response.json()
    link = CubeUser.objects.get(user=alice)
    assert body["user_id"] == link.cube_id  # the mirrored identity, not a second one
    [session] = [s for s in cube.sessions if s["token"] == body["token"]]
    assert session["user_id"] == link.cube_id
    firebase_users = [u for u in cube.users if u.get("source") == "firebase_phone"]
    # The session ConnectyCube made for its own Firebase user was not left behind.
    assert all(s["user_id"] not in {u["id"] for u in firebase_users} for s in cube.sessions)


def test_unknown_phone_is_refused_without_creating_anyone(cube):
    response = firebase_login(token_for(cube, "+15550000000"))
    assert response.status_code == 400
    assert response.json() == {
        "detail": "No account is linked to this phone number.",
        "code": "phone_not_linked",
    }
    assert User.objects.count() == 0


def test_ambiguous_phone_is_refused_like_an_unknown_one(cube):
    User.objects.create_user(username="a1", phone="+15550000001")
    User.objects.create_user(username="a2", phone="+15550000001")
    unknown = firebase_login(token_for(cube, "+15550000009"))
    ambiguous = firebase_login(token_for(cube, "+15550000001"))
    assert (ambiguous.status_code, ambiguous.json()) == (unknown.status_code, unknown.json())


def test_unknown_phone_creates_a_local_user_when_allowed(cube, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "FIREBASE_CREATE_USERS": True}
    response = firebase_login(token_for(cube, "+15550000000"))
    assert response.status_code == 200, response.content
    user = User.objects.get(phone="+15550000000")
    assert not user.has_usable_password()
    assert response.json()["user_id"] == CubeUser.objects.get(user=user).cube_id


def test_invalid_or_foreign_tokens_are_401(cube, settings):
    User.objects.create_user(username="alice", phone="+447700900001")
    forged = mint_firebase_token("wrong-key", PROJECT, phone_number="+447700900001")
    expired = token_for(cube, "+447700900001", expires_in=-10)
    other_project = token_for(cube, "+447700900001", project="other")
    for token in (forged, expired, other_project):
        response = firebase_login(token)
        assert response.status_code == 401
        assert response.json()["code"] == "invalid_credentials"
    response = firebase_login(token_for(cube, "+447700900001", project="other"), "other")
    assert response.status_code == 401


def test_project_id_defaults_to_the_setting(cube, settings):
    User.objects.create_user(username="alice", phone="+447700900001")
    assert firebase_login(token_for(cube, "+447700900001"), project=None).status_code == 200


def test_without_the_sites_own_project_no_firebase_token_counts(cube, settings):
    # Anyone can make a Firebase project with test numbers and mint a valid token for any
    # number in it: only tokens of the project the site names prove anything.
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "FIREBASE_PROJECT_ID": None}
    User.objects.create_user(username="alice", phone="+447700900001")
    cube.reset_counters()
    attackers = token_for(cube, "+447700900001", project="attackers-own")
    response = firebase_login(attackers, project="attackers-own")
    assert response.status_code == 403
    assert response.json()["code"] == "firebase_phone_disabled"
    assert cube.request_count("POST /session") == 0


def test_failed_firebase_logins_count_towards_the_ip_lockout(cube, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "LOGIN_FAILURE_IP_LIMIT": 2}
    for _ in range(2):
        assert firebase_login("not-a-jwt").status_code == 401
    response = firebase_login("not-a-jwt")
    assert response.status_code == 429
    assert response["Retry-After"]


def test_phone_lookup_is_configurable(cube, settings):
    alice = User.objects.create_user(username="alice", website="https://alice.example")
    settings.CONNECTYCUBE = {
        **settings.CONNECTYCUBE,
        "FIREBASE_PHONE_LOOKUP": "tests.api.test_api_firebase.lookup_alice",
    }
    response = firebase_login(token_for(cube, "+10000000000"))
    assert response.status_code == 200
    assert response.json()["user_id"] == CubeUser.objects.get(user=alice).cube_id


def lookup_alice(phone):
    return User.objects.filter(username="alice").first()


def test_firebase_outage_is_503(cube):
    cube.set_fault("POST /session", error_rate=1, statuses=[503])
    response = firebase_login(token_for(cube, "+447700900001"))
    assert response.status_code == 503
    assert response.json()["code"] == "connectycube_unavailable"


def test_firebase_phone_login_is_off_until_a_verified_source_is_named(cube, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "FIREBASE_PHONE_LOOKUP": None}
    User.objects.create_user(username="alice", phone="+447700900001")
    cube.reset_counters()
    response = firebase_login(token_for(cube, "+447700900001"))
    assert response.status_code == 403
    assert response.json()["code"] == "firebase_phone_disabled"
    assert cube.request_count("POST /session") == 0  # refused before the token is spent


# -- the phone comes from the token ConnectyCube accepted, never from an editable field --------

VICTIM_PHONE = "+447700900111"
ATTACKER_PHONE = "+447700900666"


@pytest.fixture
def pair(cube):
    """A victim and an attacker, each a local user with a linked ConnectyCube user."""
    victim = User.objects.create_user(username="victim", phone=VICTIM_PHONE)
    attacker = User.objects.create_user(username="mallory", phone=ATTACKER_PHONE)
    sync.push_user(victim.pk)
    sync.push_user(attacker.pk)
    return victim, attacker


def test_a_remote_phone_edited_to_the_victims_number_does_not_log_in_as_the_victim(cube, pair):
    victim, attacker = pair
    victims_remote, attackers_remote = (CubeUser.objects.get(user=u).cube_id for u in pair)
    attackers_firebase_token = token_for(cube, ATTACKER_PHONE)
    # Every remote account the attacker holds a token for: the one login/ hands their local
    # account, and the one ConnectyCube keeps for their Firebase identity (the application's
    # credentials ship in every frontend, so they can ask ConnectyCube for it themselves).
    own_session = Client()
    own_session.force_login(attacker)
    own = own_session.post(LOGIN, content_type="application/json").json()
    direct = shared_client().create_firebase_phone_session(PROJECT, attackers_firebase_token)
    for token, user_id in ((own["token"], own["user_id"]), (direct.token, direct.user_id)):
        shared_client().as_user(token, user_id=user_id).update_user(phone=VICTIM_PHONE)

    response = firebase_login(attackers_firebase_token)

    assert response.status_code == 200, response.content
    assert response.json()["user_id"] == attackers_remote  # their own account, not the victim's
    [session] = [s for s in cube.sessions if s["token"] == response.json()["token"]]
    assert session["user_id"] == attackers_remote
    assert not CubeSession.objects.filter(user=victim).exists()  # nothing stored as the victim's
    victims = firebase_login(token_for(cube, VICTIM_PHONE))
    assert victims.status_code == 200, victims.content
    assert victims.json()["user_id"] == victims_remote
    [session] = [s for s in cube.sessions if s["token"] == victims.json()["token"]]
    assert session["user_id"] == victims_remote


def accept_any_token(provider, project_id, token, now):
    return FirebaseIdentity(uid=f"uid-{len(token)}", phone_number=VICTIM_PHONE)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("not-a-jwt", "it is not a JSON Web Token"),
        ("a.!!!.c", "its payload is not base64url JSON"),
        ("a.WzFd.c", "its payload is not a JSON object"),  # [1]
        ({"aud": "attackers-own"}, "its audience is not this site's Firebase project"),
        (
            {"iss": "https://securetoken.google.com/x"},
            "its issuer is not this site's Firebase project",
        ),
        ({"exp": None}, "it has no expiry"),
        ({"exp": 1}, "it has expired"),
        ({"sub": ""}, "it names no Firebase user"),
        ({"phone_number": None}, "it carries no phone number"),
    ],
)
def test_a_token_that_proves_no_phone_of_the_site_is_401_even_if_connectycube_took_it(
    cube, monkeypatch, token, reason
):
    # The number is read from the token itself: ConnectyCube accepting it is not enough.
    monkeypatch.setattr(cube, "firebase_verifier", accept_any_token)
    User.objects.create_user(username="victim", phone=VICTIM_PHONE)
    if isinstance(token, dict):
        token = token_for(cube, ATTACKER_PHONE, claims=token)
    response = firebase_login(token)
    assert response.status_code == 401
    assert response.json() == {
        "detail": f"Invalid Firebase token: {reason}.",
        "code": "invalid_credentials",
    }
    assert all(session["user_id"] is None for session in cube.sessions)  # none left behind


def test_connectycubes_firebase_user_is_handed_out_only_when_it_is_the_linked_one(cube, pair):
    victim, _attacker = pair
    victims_remote, attackers_remote = (CubeUser.objects.get(user=u).cube_id for u in pair)
    # Whatever way ConnectyCube comes to answer a Firebase identity with somebody else's
    # account, that account's session is ended, and the proven phone's owner gets their own.
    cube.store.users[attackers_remote].firebase_uid = "fb-shared"
    response = firebase_login(token_for(cube, VICTIM_PHONE, uid="fb-shared"))
    assert response.status_code == 200, response.content
    assert response.json()["user_id"] == victims_remote
    assert CubeSession.objects.get(user=victim).cube_user_id == victims_remote
    assert not [s for s in cube.sessions if s["user_id"] == attackers_remote]
    # When ConnectyCube's Firebase user is the linked one, its session is the one kept.
    cube.store.users[victims_remote].firebase_uid = "fb-victim"
    CubeSession.objects.all().delete()
    cube.reset_counters()
    response = firebase_login(token_for(cube, VICTIM_PHONE, uid="fb-victim"))
    assert response.status_code == 200, response.content
    assert response.json()["user_id"] == victims_remote
    assert cube.request_count("POST /session") == 1  # no second session was made
    assert cube.request_count("DELETE /session") == 0
