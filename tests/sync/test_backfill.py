"""The batched create path of ``connectycube_sync`` (``django_connectycube.sync.backfill``)."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_connectycube.models import CubeUser, identity
from django_connectycube.sync import backfill, mapping, unlinked
from django_connectycube.sync.connection import reset_clients, shared_client

pytestmark = [pytest.mark.usefixtures("no_broker"), pytest.mark.django_db(transaction=True)]
User = get_user_model()
PNG = b"\x89PNG\r\n\x1a\n" + b"pixels" * 50


@pytest.fixture
def cube(connectycube_emulator):
    cache.clear()  # an application token cached by an earlier test died with its emulator state
    reset_clients()
    yield connectycube_emulator
    reset_clients()


def run(*args):
    out = StringIO()
    call_command("connectycube_sync", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def quiet_users(settings, n, prefix="b", **fields):
    """Users saved before the app was installed: no links yet, as in a real backfill."""
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SYNC_ENABLED": False}
    users = [
        User.objects.create(username=f"{prefix}{i}", email=f"{prefix}{i}@x.org", **fields)
        for i in range(n)
    ]
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SYNC_ENABLED": True}
    return users


def linked_users(settings, n, prefix="b"):
    users = quiet_users(settings, n, prefix)
    unlinked.link_all()
    return users


def remote_external_ids(cube):
    return sorted(str(u.get("external_id")) for u in cube.users)


def run_serially(pks):
    """One batch in this thread (the command runs the same calls from its pool)."""
    batch = backfill.claim(pks, client=shared_client(), concurrency=1)
    outcomes = [batch.run(link) for link in batch.links]
    return batch, outcomes


def test_batched_backfill_creates_each_user_once(cube, settings):
    users = quiet_users(settings, 23)
    out = run("--all", "--concurrency", "3")
    assert "Pushed 23 user(s)" in out
    assert "23 created" in out
    assert cube.request_count("POST /users") == 23
    links = CubeUser.objects.all()
    assert remote_external_ids(cube) == sorted(link.external_id for link in links)
    assert all(identity.is_minted(link.external_id) for link in links)
    assert {link.user_id for link in links} == {u.pk for u in users}
    assert {link.state for link in links} == {"synced"}
    assert all(link.cube_id and link.login and link.pushed_digest for link in links)
    assert all(link.lease_until is None for link in links)
    assert all(link.synced_version == link.dirty_version for link in links)
    assert {link.password_version for link in links} == {mapping.current_password_version()}
    # A re-run creates nothing: every row has a remote identity, so none enters the batch.
    cube.reset_counters()
    assert "0 created" not in run("--all")
    assert cube.request_count("POST /users") == 0
    assert len(cube.users) == 23
    assert set(CubeUser.objects.values_list("state", flat=True)) == {"synced"}


def test_users_already_remote_are_adopted_not_duplicated(cube, settings):
    users = linked_users(settings, 5, "adopt")
    existing = users[2]
    external_id = CubeUser.objects.get(user=existing).external_id
    shared_client().create_user(  # an earlier run created it, then died before recording it
        login=existing.username,
        email=existing.email,
        password=mapping.derive_password(external_id),
        external_id=external_id,
    )
    out = run("--all")
    assert "4 created" in out
    assert "1 adopted" in out
    assert len(cube.users) == 5
    link = CubeUser.objects.get(user=existing)
    assert link.state == "synced"
    assert link.cube_id == next(u["id"] for u in cube.users if u["login"] == existing.username)


def test_a_save_during_the_batch_keeps_the_row_owed(cube, settings):
    users = linked_users(settings, 3, "save")
    saved = users[1]
    batch = backfill.claim([u.pk for u in users], client=shared_client())
    assert len(batch.links) == 3
    before = CubeUser.objects.get(user=saved).dirty_version
    # A save lands after the batch read the row and before it records the push.
    CubeUser.objects.filter(user=saved).update(dirty_version=F("dirty_version") + 1)
    assert [batch.run(link) for link in batch.links] == ["created"] * 3
    link = CubeUser.objects.get(user=saved)
    assert (link.state, link.synced_version, link.lease_until) == ("pending", before, None)
    assert link.cube_id
    assert CubeUser.objects.filter(state="synced").count() == 2
    # The owed row is pushed again by the per-user path: no second remote user.
    cube.reset_counters()
    run("--dirty")
    assert cube.request_count("POST /users") == 0
    assert CubeUser.objects.get(user=saved).state == "synced"
    assert len(cube.users) == 3


def test_a_delete_during_the_batch_wins(cube, settings):
    users = linked_users(settings, 2, "del")
    batch = backfill.claim([u.pk for u in users], client=shared_client())
    CubeUser.objects.filter(user=users[0]).update(state="deleting")
    for link in batch.links:
        batch.run(link)
    assert CubeUser.objects.get(user=users[0]).state == "deleting"
    assert CubeUser.objects.get(user=users[1]).state == "synced"


def test_a_rejected_user_fails_alone_with_its_message(cube, settings):
    quiet_users(settings, 4, "ok")
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SYNC_ENABLED": False}
    bad = User.objects.create(username="badtags", tags="a,b,c,d,e,f")
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SYNC_ENABLED": True}
    with pytest.raises(CommandError, match="1 user"):
        run("--all")
    link = CubeUser.objects.get(user=bad)
    assert link.state == "failed"
    assert link.cube_id is None
    assert link.lease_until is None
    assert "rejected the user's data" in link.last_error
    assert CubeUser.objects.filter(state="synced").count() == 4
    assert len(cube.users) == 4


def test_a_row_leased_by_another_worker_is_left_to_it(cube, settings):
    users = linked_users(settings, 4, "lease")
    held = users[0]
    until = timezone.now() + timedelta(seconds=60)
    CubeUser.objects.filter(user=held).update(lease_until=until)
    batch, outcomes = run_serially([u.pk for u in users])
    assert held.pk in batch.others
    assert held.pk not in {link.user_id for link in batch.links}
    assert outcomes == ["created"] * 3
    link = CubeUser.objects.get(user=held)
    assert (link.cube_id, link.state, link.lease_until) == (None, "pending", until)
    # The command leaves it to the lease holder (busy), and pushes it once the lease is gone.
    out = run("--dirty")
    assert "1 busy" in out
    assert cube.request_count("POST /users") == 3
    CubeUser.objects.filter(user=held).update(lease_until=None)
    assert "1 created" in run("--dirty")
    assert cube.request_count("POST /users") == 4
    assert len(cube.users) == 4


def test_avatar_users_get_their_avatar(cube, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    users = quiet_users(settings, 3, "pic")
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SYNC_ENABLED": False}
    users[1].avatar.save("me.png", ContentFile(PNG), save=True)
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SYNC_ENABLED": True}
    assert "3 created" in run("--all")
    link = CubeUser.objects.get(user=users[1])
    assert link.state == "synced"
    assert link.avatar_uid and link.avatar_digest
    assert cube.get_blob_data(link.avatar_uid) == PNG
    [remote] = [u for u in cube.users if u["id"] == link.cube_id]
    assert remote["avatar"] == link.avatar_uid
    assert set(CubeUser.objects.exclude(user=users[1]).values_list("avatar_uid", flat=True)) == {""}


@pytest.mark.parametrize("n", [5, 60])
def test_database_queries_per_batch_do_not_grow_with_users(cube, settings, n):
    users = linked_users(settings, n, f"q{n}-")
    shared_client()  # the application session is not the batch's cost
    with CaptureQueriesContext(connection) as queries:
        _, outcomes = run_serially([u.pk for u in users])
    assert outcomes == ["created"] * n
    # lease UPDATE, links+users SELECT, record UPDATE: O(1) per chunk, not O(users).
    assert len(queries) <= 4, [q["sql"][:120] for q in queries]
    assert cube.request_count("POST /users") == n
    assert cube.request_count("GET /users/v2") == 1
    assert CubeUser.objects.filter(state="synced").count() == n
