"""Regressions found by the chaos run (``python -m benchmarks.chaos``), pinned at the sync level.

Each test replays, deterministically, an interleaving the chaos run hit with real workers.
"""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models.query import QuerySet

from django_connectycube import errors
from django_connectycube.models import CubeSession, CubeUser
from django_connectycube.sync import policy, user_sessions
from django_connectycube.sync import push as sync
from tests.conftest import unavailable

pytestmark = pytest.mark.django_db(transaction=True)
User = get_user_model()


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    """Signals still record links; nothing is handed to a broker in these tests."""
    monkeypatch.setattr("celery.app.task.Task.apply_async", lambda *a, **k: None)


@pytest.fixture
def cube(connectycube_emulator):
    return connectycube_emulator


def remote_logins(cube):
    return sorted((u["login"], u["external_id"]) for u in cube.users)


def test_recreated_username_waits_for_the_pending_delete_instead_of_failing(cube):
    # Chaos run, seed 7: a user is deleted and a new one takes its username before the remote
    # delete has run. The new user's create finds the login taken by the old remote user; that
    # used to be a permanent SyncConflict (a dead letter: the user was never mirrored).
    old = User.objects.create(username="bob", email="bob@example.com")
    sync.push_user(old.pk)
    tombstone = CubeUser.objects.get(user=old)
    old.delete()  # tombstone owes the remote delete; its task has not run yet
    tombstone.refresh_from_db()
    assert tombstone.state == "deleting"

    new = User.objects.create(username="bob", email="bob@example.com")
    with pytest.raises(errors.Busy, match="pending change frees it"):
        sync.push_user(new.pk)
    link = CubeUser.objects.get(user=new)
    assert (link.state, link.attempts, link.cube_id) == ("pending", 0, None)

    assert sync.delete_remote_user(tombstone.pk) == policy.DELETED
    assert sync.push_user(new.pk) == policy.CREATED
    assert remote_logins(cube) == [("bob", link.external_id)]


def test_a_login_held_by_a_settled_account_is_not_waited_for(cube):
    # The wait above is only for holders with owed work; an account that is not ours keeps its
    # login, and the user gets an account of their own under a fallback login.
    cube.create_user(login="carol", password="x" * 12, external_id="someone-else")
    user = User.objects.create(username="carol")
    assert sync.push_user(user.pk) == policy.CREATED
    link = CubeUser.objects.get(user=user)
    assert link.withheld == {"login": "carol"}
    assert link.login.startswith("carol-")


def test_user_deleted_while_its_session_is_made_is_transient_not_a_crash(cube):
    # Chaos run, seed 7: a push was logging in as a user that was deleted locally meanwhile; the
    # session row's insert failed on the foreign key and the follow-up ``get`` raised
    # DoesNotExist out of the task (an unexpected error instead of the retry policy).
    user = User.objects.create(username="dave")
    sync.push_user(user.pk)
    CubeSession.objects.filter(user=user).delete()
    link = CubeUser.objects.get(user=user)  # what the push holds in memory
    User.objects.filter(pk=user.pk).delete()
    with pytest.raises(errors.SessionUnavailable, match="deleted"):
        user_sessions.get_user_session(link)


@pytest.mark.integration
def test_deleting_a_user_survives_a_session_a_worker_stored_meanwhile(monkeypatch):
    # Chaos run, seed 1 (1,000 users): ``user.delete()`` in the application raised
    # IntegrityError. Django had already deleted the user's CubeSession rows (a fast delete)
    # when a worker, logging in as that user for a push, committed a new one; the deferred
    # foreign key then failed the application's whole delete transaction.
    if connection.vendor != "postgresql":
        unavailable("needs PostgreSQL (a second connection commits during the delete)")
    user = User.objects.create(username="erin")
    pk, external_id = user.pk, user.connectycube.external_id
    real_raw_delete = QuerySet._raw_delete

    def store_session_from_a_worker() -> None:
        CubeSession.objects.create(user_id=user.pk)
        connection.close()

    def raw_delete(queryset: QuerySet, using: str) -> int:
        deleted = real_raw_delete(queryset, using)
        if queryset.model is CubeSession:  # right after Django's cascade, before the user row
            worker = threading.Thread(target=store_session_from_a_worker)
            worker.start()
            worker.join(10)
        return deleted

    monkeypatch.setattr(QuerySet, "_raw_delete", raw_delete)
    user.delete()
    assert not CubeSession.objects.exists()
    assert not User.objects.filter(pk=pk).exists()
    assert CubeUser.objects.get(external_id=external_id).state == "deleting"
