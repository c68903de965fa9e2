"""User look-ups (``GET users/``, ``GET users/<id>/``) and password reset, against the emulator."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.throttling import BaseThrottle

from django_connectycube.models import CubeUser
from django_connectycube.sync import push as sync

User = get_user_model()
USERS = "/api/connectycube/users/"

pytestmark = [pytest.mark.usefixtures("no_broker", "clean_cache"), pytest.mark.django_db]


@pytest.fixture
def cube(connectycube_emulator, settings):
    settings.CONNECTYCUBE = {
        **settings.CONNECTYCUBE,
        "RETRIES": 0,
        "MAX_RETRY_WAIT": 1.0,
    }
    return connectycube_emulator


@pytest.fixture
def me(cube):
    user = User.objects.create_user(
        username="alice", email="alice@example.com", password="pw", phone="+4410"
    )
    sync.push_user(user.pk)
    client = Client()
    client.force_login(user)
    client.cube_id = CubeUser.objects.get(user=user).cube_id
    return client


def seed(cube, n=3, **extra):
    return [
        cube.create_user(
            login=f"user{i}",
            email=f"user{i}@example.com",
            password="12345678",
            full_name=f"Person {i}",
            phone=f"+100{i}",
            tag_list="chat,blue" if i % 2 else "chat",
            custom_data=json.dumps({"avatar_uid": f"uid{i}", "colour": "red"}),
            **extra,
        )
        for i in range(n)
    ]


# ---- listing -------------------------------------------------------------------------------


def test_users_by_ids_answer_public_profiles(cube, me):
    people = seed(cube)
    ids = ",".join(str(p["id"]) for p in people)
    response = me.get(USERS, {"ids": ids})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3 and body["next"] is None and body["previous"] is None
    first = body["results"][0]
    assert set(first) == {"id", "login", "full_name", "avatar_url", "user_tags", "custom_data"}
    assert first["login"] == "user0"
    assert first["user_tags"] == ["chat"]
    # No link of ours uploaded their avatar: the avatar_uid they set themselves is not shown.
    assert first["custom_data"] == {"colour": "red"}
    assert first["avatar_url"] is None
    assert "?token=" not in response.content.decode()


def test_own_profile_shows_email_and_phone(cube, me):
    seed(cube, 1)
    mine = me.get(f"{USERS}{me.cube_id}/").json()
    assert mine["email"] == "alice@example.com"
    assert mine["phone"] == "+4410"
    other = me.get(USERS, {"login": "user0"}).json()["results"][0]
    assert "email" not in other and "phone" not in other


def test_contact_fields_can_be_exposed_by_setting(cube, me, settings):
    seed(cube, 1)
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "API_CONTACT_FIELDS": "public"}
    other = me.get(USERS, {"login": "user0"}).json()["results"][0]
    assert other["email"] == "user0@example.com" and other["phone"] == "+1000"


def test_ordering_and_paging(cube, me):
    people = seed(cube, 5)
    ids = ",".join(str(p["id"]) for p in people)
    body = me.get(USERS, {"ids": ids, "ordering": "-created_at", "per_page": 2}).json()
    assert body["count"] == 5
    assert [u["login"] for u in body["results"]] == ["user4", "user3"]
    assert "page=2" in body["next"]
    page2 = me.get(body["next"]).json()
    assert [u["login"] for u in page2["results"]] == ["user2", "user1"]
    assert "page=1" in page2["previous"]
    by_name = me.get(USERS, {"ids": ids, "ordering": "full_name"}).json()["results"]
    assert [u["full_name"] for u in by_name] == sorted(u["full_name"] for u in by_name)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"login": "user1"}, ["user1"]),
        ({"email": "user2@example.com"}, ["user2"]),
        ({"phone": "+1000"}, ["user0"]),
        ({"full_name": "Person 1"}, ["user1"]),
        ({"full_name": "person"}, []),  # v2 matches the whole name
        ({"tags": "blue"}, ["user1"]),
        ({"tags": "chat", "ordering": "login"}, ["user0", "user1", "user2"]),
        ({"login": "nobody"}, []),
        ({"email": "nobody@example.com"}, []),
        ({"external_id": "not-there"}, []),
    ],
)
def test_each_filter(cube, me, params, expected, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "API_CONTACT_FIELDS": "searchable"}
    seed(cube)
    response = me.get(USERS, params)
    assert response.status_code == 200, response.content
    assert [u["login"] for u in response.json()["results"]] == expected
    assert response.json()["count"] == len(expected)


def test_external_id_filter(cube, me):
    seed(cube, 1, external_id="ext-9")
    assert [u["login"] for u in me.get(USERS, {"external_id": "ext-9"}).json()["results"]] == [
        "user0"
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "ids"),
        ({"ids": "1,x"}, "ids"),
        ({"ids": ","}, "ids"),
        ({"ids": "0"}, "ids"),
        ({"ids": ",".join(str(i) for i in range(1, 102))}, "ids"),
        ({"login": "a", "email": "a@example.com"}, "login"),
        ({"login": "user1", "per_page": 101}, "per_page"),
        ({"login": "user1", "per_page": 0}, "per_page"),
        ({"login": "user1", "page": "x"}, "page"),
        ({"login": "user1", "ordering": "password"}, "ordering"),
        ({"email": "not-an-email"}, "email"),
        ({"tags": ", ,"}, "tags"),
    ],
)
def test_bad_queries_are_400_with_field_errors(cube, me, params, field):
    cube.reset_counters()
    response = me.get(USERS, params)
    assert response.status_code == 400
    assert field in response.json()
    assert cube.request_count() == 0


def test_detail_and_404(cube, me):
    [person] = seed(cube, 1)
    response = me.get(f"{USERS}{person['id']}/")
    assert response.status_code == 200
    assert response.json()["login"] == "user0"
    missing = me.get(f"{USERS}999999/")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not found.", "code": "not_found"}


def test_anonymous_requests_are_refused_by_default(cube):
    assert Client().get(USERS, {"login": "x"}).status_code in (401, 403)
    assert Client().get(f"{USERS}1/").status_code in (401, 403)


def test_permission_classes_come_from_settings(cube, settings):
    seed(cube, 1)
    settings.CONNECTYCUBE = {
        **settings.CONNECTYCUBE,
        "API_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    }
    response = Client().get(USERS, {"login": "user0"})
    assert response.status_code == 200
    assert "email" not in response.json()["results"][0]


class DenyAll(BaseThrottle):
    def allow_request(self, request, view):
        return False

    def wait(self):
        return 42


def test_drf_default_throttle_classes_apply_to_the_api(cube, me, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_CLASSES": ["tests.api.test_api_users.DenyAll"],
    }
    response = me.get(USERS, {"login": "user0"})
    assert response.status_code == 429
    assert response["Retry-After"] == "42"
    assert response.json()["code"] == "throttled"


@pytest.mark.parametrize(
    "target", [(USERS, {"login": "x"}), (f"{USERS}5/", {}), (USERS, {"ids": "1,2"})]
)
def test_connectycube_outage_on_look_ups_is_503(cube, me, target):
    cube.set_fault("GET /users/v2", error_rate=1, statuses=[502])
    response = me.get(*target)
    assert response.status_code == 503
    assert response.json()["code"] == "connectycube_unavailable"
    assert int(response["Retry-After"]) >= 1


def test_lookups_have_a_default_throttle_per_user(cube, me, settings):
    seed(cube, 1)
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "API_THROTTLE_RATES": {"lookup": "3/minute"}}
    answers = [me.get(USERS, {"login": "user0"}).status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    assert me.get(f"{USERS}{me.cube_id}/").status_code == 429  # one budget for every look-up
    other = User.objects.create_user(username="bob", password="pw")
    client = Client()
    client.force_login(other)
    assert client.get(USERS, {"login": "user0"}).status_code == 200  # each user has their own


@pytest.mark.parametrize(
    "params",
    [{"email": "user0@example.com"}, {"email": "nobody@example.com"}, {"phone": "+1000"}],
)
def test_contact_lookups_are_refused_while_contact_fields_are_hidden(cube, me, params):
    seed(cube, 1)
    cube.reset_counters()
    response = me.get(USERS, params)
    assert response.status_code == 403
    assert response.json()["code"] == "contact_lookup_disabled"
    assert cube.request_count() == 0  # known and unknown addresses look the same


@pytest.mark.parametrize(
    ("contact", "allowed", "shown"),
    [("private", False, False), ("searchable", True, False), ("public", True, True)],
)
def test_contact_lookups_and_profiles_follow_the_setting(
    cube, me, settings, contact, allowed, shown
):
    seed(cube, 1)
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "API_CONTACT_FIELDS": contact}
    response = me.get(USERS, {"email": "user0@example.com"})
    assert (response.status_code == 200) is allowed
    if allowed:
        [found] = response.json()["results"]
        assert found["login"] == "user0"
        assert ("email" in found) is shown
