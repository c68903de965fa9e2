"""The app works on a new ConnectyCube application: the engine, the session code, the REST API and
the commands read users only through ``GET /users/v2``, never a v1 look-up (those answer 403 on a
new application). Asserted on the emulator's per-route request counts, so it holds whether or not
the emulator serves v1.
"""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.test import Client

from django_connectycube.models import CubeSession, CubeUser
from django_connectycube.sessions import login as sessions
from django_connectycube.sync import policy
from django_connectycube.sync import push as sync

pytestmark = [
    pytest.mark.usefixtures("no_broker", "clean_cache"),
    pytest.mark.django_db(transaction=True),  # the sync command pushes from a thread pool
]
User = get_user_model()
API = "/api/connectycube/"
#: The user reads that work on every application (the reset is not a read of users).
ALLOWED_USER_GETS = {"GET /users/v2", "GET /users/password/reset"}


@pytest.fixture
def cube(connectycube_emulator, settings):
    settings.CONNECTYCUBE = {
        **settings.CONNECTYCUBE,
        "RETRIES": 0,
        "MAX_RETRY_WAIT": 1.0,
        "AVATAR_FIELD": "avatar",
        "API_CONTACT_FIELDS": "searchable",  # so the e-mail and phone look-ups are exercised too
    }
    return connectycube_emulator


def user_reads(cube) -> dict[str, int]:
    return {
        route: n
        for route, n in cube.request_counts().items()
        if route.split(" ", 1)[0] in ("GET", "HEAD") and route.split(" ", 1)[1].startswith("/users")
    }


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_engine_sessions_api_and_commands_read_users_only_through_v2(cube):
    alice = User.objects.create_user(
        username="alice", email="alice@example.com", phone="+4410", tags="chat,blue"
    )
    bob = User.objects.create_user(username="bob", email="bob@example.com", tags="chat")
    # engine: create, update, avatar
    assert sync.push_user(alice.pk) == policy.CREATED
    alice.first_name = "Alice"
    alice.save()
    alice.avatar.save("a.png", ContentFile(b"\x89PNG pixels"), save=True)
    assert sync.push_user(alice.pk) == policy.UPDATED
    # the login API pushes bob first, then logs him in; the session view confirms the token
    me = logged_in(bob)
    assert me.post(f"{API}login/").status_code == 200
    CubeSession.objects.filter(user=bob).update(token="a-token-the-remote-never-knew")
    assert me.get(f"{API}session/").status_code == 200
    # a stored token that died: an update renews it (call_as_user)
    CubeSession.objects.filter(user=alice).update(token="another-dead-token")
    alice.last_name = "Liddell"
    alice.save()
    assert sync.push_user(alice.pk) == policy.UPDATED
    # deleted on ConnectyCube behind our back: found missing, created again
    gone = CubeUser.objects.get(user=bob).cube_id
    cube.store.delete_user(cube.store.users[gone])
    assert sessions.refresh_session(bob).cube_user_id != gone
    # the REST look-ups, every filter, and the detail view
    alice_id = CubeUser.objects.get(user=alice).cube_id
    for query in (
        {"ids": str(alice_id)},
        {"login": "alice"},
        {"email": "alice@example.com"},
        {"phone": "+4410"},
        {"external_id": CubeUser.objects.get(user=alice).external_id},
        {"full_name": "Alice Liddell"},
        {"tags": "blue"},
    ):
        response = me.get(f"{API}users/", query)
        assert response.status_code == 200, (query, response.content)
        assert response.json()["count"] == 1, query
    assert me.get(f"{API}users/{alice_id}/").status_code == 200
    assert me.get(f"{API}users/999999/").status_code == 404
    assert me.post(f"{API}password-reset/", {"email": "x@example.com"}).status_code == 202
    # the commands: a backfill of new users, then --verify
    User.objects.bulk_create(
        [User(username=f"bulk{i}", email=f"b{i}@example.com") for i in range(3)]
    )
    call_command("connectycube_sync", "--all", stdout=io.StringIO())
    call_command("connectycube_sync", "--verify", stdout=io.StringIO())
    # deletes, then logout
    link = CubeUser.objects.get(user=alice)
    alice.delete()
    assert sync.delete_remote_user(link.pk) == policy.DELETED
    assert me.post(f"{API}logout/").status_code == 204

    reads = user_reads(cube)
    assert reads.get("GET /users/v2", 0) > 0
    assert set(reads) <= ALLOWED_USER_GETS, reads
