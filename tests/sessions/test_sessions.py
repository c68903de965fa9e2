"""``sessions.get_session_for_user`` and friends: the sync-before-login rules and their bounds."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from django_connectycube import errors
from django_connectycube.conf import ConfigurationError
from django_connectycube.models import CubeSession, CubeUser
from django_connectycube.sessions import login as sessions
from django_connectycube.sync import push as sync
from django_connectycube.sync import user_sessions

User = get_user_model()
pytestmark = [pytest.mark.usefixtures("no_broker"), pytest.mark.django_db]


@pytest.fixture
def cube(connectycube_emulator, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "RETRIES": 0, "MAX_RETRY_WAIT": 1.0}
    return connectycube_emulator


def make_user(username="alice", **fields):
    return User.objects.create_user(username=username, email=f"{username}@example.com", **fields)


def test_an_unlinked_user_is_linked_pushed_and_logged_in(cube):
    user = make_user()
    CubeUser.objects.filter(user=user).delete()  # e.g. created before the app was installed
    row = sessions.get_session_for_user(user)
    link = CubeUser.objects.get(user=user)
    assert link.state == "synced"
    assert row.cube_user_id == link.cube_id
    assert cube.request_count("POST /users") == 1


def test_a_pending_update_is_pushed_before_login(cube):
    user = make_user()
    sync.push_user(user.pk)
    user.first_name = "Changed"
    user.save()
    assert CubeUser.objects.get(user=user).state == "pending"
    sessions.get_session_for_user(user)
    assert CubeUser.objects.get(user=user).state == "synced"
    assert cube.users[0]["full_name"] == "Changed"
    # Pushing the update needed a user session; the login reused it.
    assert len([s for s in cube.sessions if s["user_id"]]) == 1


def test_a_failing_update_does_not_block_the_login_of_an_existing_user(cube):
    user = make_user()
    sync.push_user(user.pk)
    user.first_name = "Changed"
    user.save()
    cube.set_fault("PUT /users/{id}", error_rate=1, statuses=[500])
    row = sessions.get_session_for_user(user)
    assert row.token
    assert CubeUser.objects.get(user=user).state == "pending"


def test_a_failed_user_is_a_conflict_until_an_operator_resyncs(cube):
    """A dead letter needs an operator: not a 503 that tells the frontend to wait."""
    user = make_user()
    CubeUser.objects.filter(user=user).update(state=CubeUser.State.FAILED, last_error="boom")
    with pytest.raises(errors.SyncConflict, match="boom"):
        sessions.get_session_for_user(user)
    assert cube.request_count("POST /users") == 0


def test_a_squatted_login_still_gets_the_user_a_session_of_their_own(cube):
    squatter = cube.create_user(login="alice", password="12345678", external_id="someone-else")
    user = make_user()
    row = sessions.get_session_for_user(user)
    link = CubeUser.objects.get(user=user)
    assert row.cube_user_id == link.cube_id != squatter["id"]
    assert link.withheld == {"login": "alice"}


def test_an_unprovable_holder_of_the_external_id_is_a_recorded_conflict(cube):
    user = make_user()
    link = CubeUser.objects.get(user=user)
    # Someone put this link's external id on an account whose password is not ours.
    cube.create_user(login="pretender", password="12345678", external_id=link.external_id)
    with pytest.raises(errors.SyncConflict, match="does not accept the password"):
        sessions.get_session_for_user(user)
    link.refresh_from_db()
    assert (link.state, link.cube_id, link.attempts) == ("failed", None, 1)
    assert "pretender" not in link.last_error
    assert str(cube.users[0]["id"]) in link.last_error  # names the remote id
    assert "re-sync" in link.last_error  # and what to do


def test_a_worker_finishing_the_push_lets_the_login_proceed(cube, monkeypatch):
    user = make_user()
    link = CubeUser.objects.get(user=user)
    CubeUser.objects.filter(pk=link.pk).update(lease_until=timezone.now() + timedelta(minutes=1))
    real_sleep = time.sleep

    def worker_finishes(seconds):
        CubeUser.objects.filter(pk=link.pk).update(lease_until=None)
        sync.push_user(user.pk)
        real_sleep(0)

    monkeypatch.setattr("django_connectycube.sessions.login.time.sleep", worker_finishes)
    row = sessions.get_session_for_user(user)
    assert row.cube_user_id == CubeUser.objects.get(user=user).cube_id
    assert cube.request_count("POST /users") == 1


def test_the_push_before_login_is_bounded_in_time(cube, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SYNC_ON_LOGIN_TIMEOUT": 0.5}
    cube.set_fault("POST /users", latency=3)
    user = make_user()
    # Unbounded, the push would finish after the 3 s and the login would get its session.
    with pytest.raises(errors.SessionUnavailable):
        sessions.get_session_for_user(user)


def test_a_remote_user_deleted_on_connectycube_is_recreated_once_by_login(cube):
    user = make_user()
    sync.push_user(user.pk)
    link = CubeUser.objects.get(user=user)
    token = cube.create_session(link.cube_id)
    import requests
    from django.conf import settings

    requests.delete(
        f"{settings.CONNECTYCUBE['API_URL']}/users/{link.cube_id}",
        headers={"CB-Token": token},
        timeout=5,
    ).raise_for_status()
    CubeSession.objects.filter(user=user).delete()
    row = sessions.get_session_for_user(user)
    old_cube_id = link.cube_id
    link.refresh_from_db()
    mine = [u for u in cube.users if u.get("external_id") == link.external_id]
    assert len(mine) == 1
    assert mine[0]["id"] != old_cube_id
    assert row.cube_user_id == mine[0]["id"]
    assert len(cube.users) == 1  # and no stray user from the first login attempt


def test_refresh_replaces_a_token_of_someone_else(cube):
    alice, bob = make_user("alice"), make_user("bob")
    a_row = sessions.get_session_for_user(alice)
    b_row = sessions.get_session_for_user(bob)
    CubeSession.objects.filter(pk=a_row.pk).update(token=b_row.token)  # corrupted row
    fixed = sessions.refresh_session(alice)
    assert fixed.token != b_row.token
    assert fixed.cube_user_id == CubeUser.objects.get(user=alice).cube_id


def test_store_session_replaces_the_stored_token(cube):
    user = make_user()
    sync.push_user(user.pk)
    cube_id = CubeUser.objects.get(user=user).cube_id
    from django_connectycube.client import Session

    stored = user_sessions.store_session(user, Session(token="abc", user_id=cube_id))
    assert CubeSession.objects.get(user=user).token == "abc"
    assert stored.expires_at > timezone.now()
    assert sessions.get_session_for_user(user).token == "abc"


def test_deleting_users_and_bad_settings_are_refused(cube, settings):
    user = make_user()
    CubeUser.objects.filter(user=user).update(state=CubeUser.State.DELETING)
    with pytest.raises(errors.SessionUnavailable):
        sessions.get_session_for_user(user)
    with pytest.raises(ValueError, match="saved"):
        sessions.get_session_for_user(User(username="unsaved"))
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "AUTH_MODE": "magic"}
    CubeUser.objects.filter(user=user).update(state=CubeUser.State.SYNCED)
    with pytest.raises(ConfigurationError, match="AUTH_MODE"):
        sessions.get_session_for_user(user)
