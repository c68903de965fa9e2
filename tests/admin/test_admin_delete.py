"""Remote deletes with ``ADMIN_API_KEY``: ``DELETE /admin/user/{id}``, no session of the user.

The emulator models the Administration API when it has the ``admin_api_key`` switch; where it
does not yet, a stand-in serves that one route on the emulator's state (with the documented
answer), and every other request still reaches the emulator.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import responses
from django.contrib.auth import get_user_model

from django_connectycube.models import CubeUser
from django_connectycube.sync import policy, tasks
from django_connectycube.sync import push as sync

pytestmark = [pytest.mark.usefixtures("no_broker", "clean_cache"), pytest.mark.django_db]
User = get_user_model()
KEY = "admin-key-for-tests"


@pytest.fixture
def cube(connectycube_emulator, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "RETRIES": 0, "MAX_RETRY_WAIT": 1.0}
    return connectycube_emulator


def _stand_in(cube: Any, deletes: list[int]) -> Any:
    def delete(request: Any) -> tuple[int, dict[str, str], str]:
        if request.headers.get("CB-Administration-API-Key") != KEY:
            return 401, {}, '{"errors": ["Invalid API key"]}'
        user_id = int(request.url.rstrip("/").rsplit("/", 1)[1])
        deletes.append(user_id)
        with cube.store.lock:
            user = cube.store.users.get(user_id)
            if user is None:
                return 404, {}, '{"errors": ["User not found"]}'
            cube.store.delete_user(user)
        return 200, {}, '{"success": true}'

    return delete


@pytest.fixture
def admin_api(cube, settings) -> Iterator[Callable[[], int]]:
    """``ADMIN_API_KEY`` set; yields a function counting the ``DELETE /admin/user/{id}`` calls."""
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "ADMIN_API_KEY": KEY}
    if "admin_api_key" in cube.config:
        cube.configure(admin_api_key=KEY)
        yield lambda: sum(
            n for route, n in cube.request_counts().items() if route.startswith("DELETE /admin")
        )
        return
    deletes: list[int] = []
    api_url = settings.CONNECTYCUBE["API_URL"]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru(api_url)
        mock.add_callback(
            responses.DELETE,
            re.compile(re.escape(api_url) + r"/admin/user/\d+"),
            callback=_stand_in(cube, deletes),
        )
        yield lambda: len(deletes)


def synced_user(username: str = "alice") -> tuple[User, CubeUser]:
    user = User.objects.create_user(username=username, email=f"{username}@example.com")
    assert sync.push_user(user.pk) == policy.CREATED
    return user, CubeUser.objects.get(user=user)


def test_the_admin_key_deletes_without_logging_the_user_in(cube, admin_api):
    user, link = synced_user()
    cube.reset_counters()
    user.delete()
    assert sync.delete_remote_user(link.pk) == policy.DELETED
    assert cube.users == []
    assert admin_api() == 1
    assert cube.request_count("POST /session") <= 1  # the application session, never the user's
    assert cube.request_count("DELETE /users/{id}") == 0
    assert CubeUser.objects.get(pk=link.pk).state == CubeUser.State.DELETED


def test_a_user_whose_password_no_longer_works_is_deleted_with_the_key(cube, settings):
    """Without the key such a tombstone fails; with it the remote user goes."""
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "PASSWORD_SECRETS": {1: "first secret"}}
    user, link = synced_user()
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "PASSWORD_SECRETS": {1: "lost, replaced"}}
    user.delete()
    assert tasks.delete_remote_user.apply(args=(link.pk,)).get() == "failed"
    assert "derived password" in CubeUser.objects.get(pk=link.pk).last_error
    assert len(cube.users) == 1


def test_with_the_key_the_same_tombstone_is_deleted(cube, settings, admin_api):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "PASSWORD_SECRETS": {1: "first secret"}}
    user, link = synced_user()
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "PASSWORD_SECRETS": {1: "lost, replaced"}}
    user.delete()
    assert tasks.delete_remote_user.apply(args=(link.pk,)).get() == policy.DELETED
    assert cube.users == []
    assert admin_api() == 1
    assert CubeUser.objects.get(pk=link.pk).state == CubeUser.State.DELETED


def test_a_user_already_gone_counts_as_done_with_the_key(cube, admin_api):
    user, link = synced_user()
    user.delete()
    cube.store.delete_user(cube.store.users[link.cube_id])
    assert sync.delete_remote_user(link.pk) == policy.GONE
    assert CubeUser.objects.get(pk=link.pk).state == CubeUser.State.DELETED
