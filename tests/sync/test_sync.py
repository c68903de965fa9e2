"""The sync engine against the emulator over real HTTP (no Celery: the functions directly)."""

from __future__ import annotations

import json
import threading

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.db import close_old_connections
from django.db.models import Q

from django_connectycube import errors
from django_connectycube.models import CubeSession, CubeUser, identity
from django_connectycube.sync import mapping, policy
from django_connectycube.sync import push as sync
from tests.worker import wait_until

pytestmark = [pytest.mark.usefixtures("no_broker"), pytest.mark.django_db(transaction=True)]
User = get_user_model()
PNG = b"\x89PNG\r\n\x1a\n" + b"pixels" * 50


@pytest.fixture
def cube(connectycube_emulator):
    return connectycube_emulator


def remote_by_external_id(cube, external_id):
    return [u for u in cube.users if u.get("external_id") == str(external_id)]


def external_id_of(user):
    return CubeUser.objects.get(user_id=user.pk).external_id


def remote_of(cube, user):
    """The remote users carrying the external id the user's link minted."""
    return remote_by_external_id(cube, external_id_of(user))


def make_user(username="alice", **fields):
    return User.objects.create(username=username, email=f"{username}@example.com", **fields)


def test_first_push_creates_the_remote_user(cube):
    user = make_user(first_name="Alice", last_name="Liddell", phone="+441234", tags="a,b")
    assert sync.push_user(user.pk) == policy.CREATED
    [remote] = remote_of(cube, user)
    assert remote["login"] == "alice"
    assert remote["email"] == "alice@example.com"
    assert remote["full_name"] == "Alice Liddell"
    assert remote["phone"] == "+441234"
    assert remote["user_tags"] == "a,b"
    link = CubeUser.objects.get(user=user)
    assert link.cube_id == remote["id"]
    assert (link.state, link.synced_version, link.attempts) == ("synced", 1, 0)
    assert link.password_version == mapping.current_password_version()


def test_the_derived_password_logs_in(cube):
    user = make_user()
    sync.push_user(user.pk)
    link = CubeUser.objects.get(user=user)
    from django_connectycube.sync.connection import shared_client

    session = shared_client().create_user_session(
        login=link.login, password=mapping.derive_password(link.external_id)
    )
    assert session.user_id == link.cube_id


def test_update_pushes_only_when_mapped_fields_changed(cube):
    user = make_user()
    sync.push_user(user.pk)
    cube.reset_counters()
    user.first_name = "Changed"
    user.save()
    assert sync.push_user(user.pk) == policy.UPDATED
    assert remote_of(cube, user)[0]["full_name"] == "Changed"
    assert cube.request_count("PUT /users/{id}") == 1
    # A save with nothing mapped changed: the row is owed, the push costs no remote call.
    user.save()
    cube.reset_counters()
    assert sync.push_user(user.pk) == policy.UNCHANGED
    assert cube.request_count() == 0
    assert CubeUser.objects.get(user=user).state == "synced"


def test_warm_update_costs_one_remote_call(cube):
    user = make_user()
    sync.push_user(user.pk)
    user.first_name = "One"
    user.save()
    sync.push_user(user.pk)  # logs in once and keeps the session
    cube.reset_counters()
    for i in range(5):
        user.first_name = f"Name {i}"
        user.save()
        sync.push_user(user.pk)
    assert cube.request_count() == 5
    assert CubeSession.objects.filter(user=user).count() == 1


def test_warm_update_costs_five_statements(cube):
    """Take the lease, read the link, the user and the stored session, record the push (which
    ends the lease): nothing read twice, no separate release."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    user = make_user()
    sync.push_user(user.pk)
    user.first_name = "One"
    user.save()
    sync.push_user(user.pk)  # logs in once and keeps the session
    user.first_name = "Two"
    user.save()
    with CaptureQueriesContext(connection) as captured:
        assert sync.push_user(user.pk) == sync.UPDATED
    statements = [q["sql"] for q in captured]
    assert len(statements) <= 5, "\n".join(statements)
    link = CubeUser.objects.get(user=user)
    assert (link.state, link.synced_version, link.lease_until) == (
        "synced",
        link.dirty_version,
        None,
    )
    assert remote_of(cube, user)[0]["full_name"] == "Two"


def test_ten_saves_one_push_of_the_latest_state(cube):
    user = make_user()
    for i in range(10):
        user.first_name = f"v{i}"
        user.save()
    assert sync.push_user(user.pk) == policy.CREATED
    assert remote_of(cube, user)[0]["full_name"] == "v9"
    link = CubeUser.objects.get(user=user)
    assert link.synced_version == link.dirty_version == 11
    assert sync.push_user(user.pk) == policy.SKIPPED  # the second queued task finds nothing owed


def test_a_save_during_the_push_keeps_the_row_owed(cube, monkeypatch):
    user = make_user()
    real = mapping.get_user_fields

    def save_meanwhile(u, external_id=None):
        fields = real(u, external_id)
        User.objects.filter(pk=u.pk).update(first_name="later")
        from django_connectycube.sync.owed import mark_dirty

        mark_dirty(User.objects.get(pk=u.pk))
        return fields

    monkeypatch.setattr(mapping, "get_user_fields", save_meanwhile)
    sync.push_user(user.pk)
    link = CubeUser.objects.get(user=user)
    assert link.state == "pending"
    assert link.synced_version == 1 < link.dirty_version


def test_retry_after_lost_create_adopts_instead_of_duplicating(cube):
    user = make_user()
    # An earlier attempt created the user but died before recording it.
    external_id = external_id_of(user)
    cube.create_user(
        login="alice", password=mapping.derive_password(external_id), external_id=external_id
    )
    assert sync.push_user(user.pk) == policy.ADOPTED
    assert len(remote_of(cube, user)) == 1
    assert CubeUser.objects.get(user=user).state == "synced"


def test_timed_out_create_is_not_resent_and_the_retry_adopts(cube):
    from django_connectycube.client import TransportError
    from django_connectycube.sync.connection import shared_client

    user = make_user()
    client = shared_client()
    client.transport.timeout = (2.0, 0.5)
    cube.set_fault("POST /users", latency=1.5, count=1)  # processed, but answered too late
    with pytest.raises(TransportError):
        sync.push_user(user.pk, client=client)
    assert cube.request_count("POST /users") == 1
    wait_until(lambda: remote_of(cube, user), timeout=5)
    assert sync.push_user(user.pk, client=client) == policy.ADOPTED
    assert len(remote_of(cube, user)) == 1


@pytest.mark.integration
def test_concurrent_pushes_create_one_remote_user(cube, postgres_db):
    user = make_user()
    results = []

    def push():
        close_old_connections()
        try:
            results.append(sync.push_user(user.pk))
        except errors.Busy:
            results.append("busy")
        finally:
            close_old_connections()

    threads = [threading.Thread(target=push) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(remote_of(cube, user)) == 1
    assert results.count(policy.CREATED) == 1


def test_login_taken_by_someone_else_gets_a_fallback_login_not_a_conflict(cube):
    squatter = cube.create_user(login="bob", password="12345678", external_id="someone-else")
    user = make_user("bob")
    assert sync.push_user(user.pk) == policy.CREATED
    [remote] = remote_of(cube, user)
    link = CubeUser.objects.get(user=user)
    assert remote["login"].startswith("bob-") and len(remote["login"]) == len("bob-") + 8
    assert remote["email"] == "bob@example.com"  # only what is taken is withheld
    assert (link.login, link.withheld, link.state) == (remote["login"], {"login": "bob"}, "synced")
    assert cube.store.users[squatter["id"]].login == "bob"  # the squatter's account untouched
    # Later pushes keep the fallback login: no failed rename attempt on every change.
    user.first_name = "Robert"
    user.save()
    cube.reset_counters()
    assert sync.push_user(user.pk) == policy.UPDATED
    assert remote_of(cube, user)[0]["login"] == link.login
    assert cube.request_count("PUT /users/{id}") == 1


def test_remote_validation_error_is_raised_with_field_errors(cube):
    from django_connectycube.client import ValidationError

    user = make_user("tagger", tags="a,b,c,d,e,f")  # six tags: ConnectyCube allows five
    with pytest.raises(ValidationError) as info:
        sync.push_user(user.pk)
    result = policy.record(Q(user_id=user.pk), info.value)
    link = CubeUser.objects.get(user=user)
    assert (link.state, result.attempts, result.gave_up) == ("failed", 1, True)
    assert "ConnectyCube rejected" in link.last_error
    assert "tag" in link.last_error


def test_remote_user_deleted_behind_our_back_is_recreated(cube):
    user = make_user()
    sync.push_user(user.pk)
    old_id = CubeUser.objects.get(user=user).cube_id
    cube.store.delete_user(cube.store.users[old_id])  # someone deleted it on ConnectyCube
    old_external_id = external_id_of(user)
    user.first_name = "Back"
    user.save()
    assert sync.push_user(user.pk) == policy.CREATED
    [remote] = remote_of(cube, user)
    assert remote["id"] != old_id
    # The old external id was readable by anyone: the new account has a new one.
    assert remote["external_id"] != old_external_id
    assert identity.is_minted(remote["external_id"])


def test_delete_removes_the_remote_user(cube):
    user = make_user()
    sync.push_user(user.pk)
    link_id = CubeUser.objects.get(user=user).pk
    user.delete()
    assert sync.delete_remote_user(link_id) == policy.DELETED
    assert remote_by_external_id(cube, CubeUser.objects.get(pk=link_id).external_id) == []
    assert CubeUser.objects.get(pk=link_id).state == "deleted"


def test_delete_of_never_created_user_is_done_without_creating_it(cube):
    user = make_user()
    link_id = CubeUser.objects.get(user=user).pk
    external_id = external_id_of(user)
    user.delete()
    assert sync.delete_remote_user(link_id) == policy.GONE
    assert cube.users == []  # the login with a password did not auto-create the user
    assert CubeUser.objects.get(pk=link_id).state == "deleted"
    assert CubeUser.objects.get(pk=link_id).external_id == external_id


def test_delete_twice_counts_as_done(cube):
    user = make_user()
    sync.push_user(user.pk)
    link_id = CubeUser.objects.get(user=user).pk
    user.delete()
    sync.delete_remote_user(link_id)
    CubeUser.objects.filter(pk=link_id).update(state="deleting")  # redelivered task
    assert sync.delete_remote_user(link_id) == policy.GONE


def test_avatar_upload_and_link(cube):
    user = make_user()
    user.avatar.save("me.png", ContentFile(PNG), save=True)
    sync.push_user(user.pk)
    link = CubeUser.objects.get(user=user)
    assert link.avatar_uid
    [remote] = remote_of(cube, user)
    assert remote["avatar"] == link.avatar_uid
    assert json.loads(remote["custom_data"])["avatar_uid"] == link.avatar_uid
    assert cube.get_blob_data(link.avatar_uid) == PNG
    # Same content again: no new upload.
    cube.reset_counters()
    user.first_name = "Pic"
    user.save()
    sync.push_user(user.pk)
    assert cube.request_count("POST /blobs") == 0
    # New content: a new upload.
    user.avatar.save("me2.png", ContentFile(PNG + b"!"), save=True)
    sync.push_user(user.pk)
    assert CubeUser.objects.get(user=user).avatar_uid != link.avatar_uid
    assert cube.request_count("POST /blobs") == 1


def test_lease_makes_a_second_worker_wait(cube):
    user = make_user()
    link = CubeUser.objects.get(user=user)
    with sync.leased(link.pk):
        with pytest.raises(errors.Busy):
            sync.push_user(user.pk)
    assert sync.push_user(user.pk) == policy.CREATED


def test_login_after_remote_user_vanished_recreates_it(cube):
    from django_connectycube.sessions import login as sessions

    user = make_user("phoenix")
    sync.push_user(user.pk)
    old_id = CubeUser.objects.get(user=user).cube_id
    cube.store.delete_user(cube.store.users[old_id])  # deleted on ConnectyCube, not here
    session = sessions.get_session_for_user(user)
    [remote] = remote_of(cube, user)
    assert remote["id"] != old_id
    assert session.cube_user_id == remote["id"]
    assert CubeUser.objects.get(user=user).cube_id == remote["id"]
    assert [u["login"] for u in cube.users] == ["phoenix"]  # no stray auto-created user


def test_rotated_password_secret_still_logs_in_and_moves_the_user(cube, settings):
    from django_connectycube.sessions import login as sessions

    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "PASSWORD_SECRETS": {1: "first secret"}}
    user = make_user("rotator")
    sync.push_user(user.pk)
    assert CubeUser.objects.get(user=user).password_version == 1
    settings.CONNECTYCUBE = {
        **settings.CONNECTYCUBE,
        "PASSWORD_SECRETS": {1: "first secret", 2: "second secret"},
    }
    sessions.get_session_for_user(user)
    link = CubeUser.objects.get(user=user)
    assert link.password_version == 2
    from django_connectycube.sync.connection import shared_client

    session = shared_client().create_user_session(
        login="rotator", password=mapping.derive_password(link.external_id, 2)
    )
    assert session.user_id == link.cube_id


def test_rotated_secret_key_with_fallback_still_logs_in(cube, settings):
    from django_connectycube.sessions import login as sessions

    user = make_user("keyrot")
    sync.push_user(user.pk)
    old_key = settings.SECRET_KEY
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a-brand-new-secret-key", [old_key]
    row = sessions.get_session_for_user(user)
    assert row.cube_user_id == CubeUser.objects.get(user=user).cube_id
    settings.SECRET_KEY_FALLBACKS = []  # the old key is gone: the password was moved already
    from django_connectycube.models import CubeSession

    CubeSession.objects.filter(user=user).delete()
    assert sessions.get_session_for_user(user).cube_user_id == row.cube_user_id
