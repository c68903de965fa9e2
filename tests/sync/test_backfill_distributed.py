"""``connectycube_sync --all --distribute``: a backfill sharded over Celery tasks, in-process.

The tasks are recorded by the plugin's Celery recorder and run here; the same flow with real
worker processes (and one killed mid-shard) is in ``test_backfill_distributed_workers``.
"""

from __future__ import annotations

from collections import Counter
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from django_connectycube.management.commands import connectycube_sync as sync_command
from django_connectycube.models import CubeUser
from django_connectycube.sync import mapping, tasks
from django_connectycube.sync.backfill_pool import shard_ranges

pytestmark = pytest.mark.django_db(transaction=True)
User = get_user_model()
SHARD = "django_connectycube.backfill_shard"


def run(*args: str) -> str:
    out = StringIO()
    call_command("connectycube_sync", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def quiet_users(settings, n: int) -> list:
    """Users saved while sync was off: a site before it installed the app."""
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SYNC_ENABLED": False}
    users = [User.objects.create(username=f"d{i}", email=f"d{i}@x.org") for i in range(n)]
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SYNC_ENABLED": True}
    return users


def remote_external_ids(emulator) -> Counter:
    return Counter(user["external_id"] for user in emulator.users)


@pytest.mark.parametrize(
    ("total", "shards", "expected"),
    [
        (10, 3, [(0, 3), (4, 7), (8, 9)]),
        (10, 1, [(0, 9)]),
        (3, 5, [(0, 0), (1, 1), (2, 2)]),
        (0, 4, []),
    ],
)
def test_shard_ranges_cut_ordered_pks_into_equal_contiguous_ranges(total, shards, expected):
    assert shard_ranges(iter(range(total)), total, shards) == expected


def test_distribute_enqueues_one_task_per_shard_and_the_shards_sync_everyone(
    connectycube_emulator, connectycube_celery, settings
):
    users = quiet_users(settings, 25)
    out = run("--all", "--distribute", "--shards", "3", "--concurrency", "2")
    assert "Enqueued 3 shard(s) for 25 user(s), concurrency 2 each" in out
    shards = [t for t in connectycube_celery.sent if t.name == SHARD]
    pks = [pk if isinstance(pk, int) else str(pk) for pk in sorted(u.pk for u in users)]
    assert [t.args for t in shards] == [
        (pks[0], pks[8], 2),
        (pks[9], pks[17], 2),
        (pks[18], pks[24], 2),
    ]
    assert connectycube_emulator.users == []  # the command pushed nothing itself
    assert CubeUser.objects.filter(state="pending").count() == 25  # the owed record
    connectycube_celery.run()
    assert CubeUser.objects.filter(state="synced").count() == 25
    assert sorted(remote_external_ids(connectycube_emulator).values()) == [1] * 25


def test_a_redelivered_shard_pushes_only_what_is_still_owed(
    connectycube_emulator, connectycube_celery, settings
):
    users = quiet_users(settings, 12)
    for user in users:  # logins long enough for the emulator's seeding below
        User.objects.filter(pk=user.pk).update(username=f"user{user.pk}")
    run("--all", "--distribute", "--shards", "1")
    [shard] = connectycube_celery.sent
    # A worker died mid-shard: it had created the first four remotely and recorded nothing,
    # and its lease on them has run out.
    links = list(CubeUser.objects.order_by("user_id").select_related("user")[:4])
    for link in links:
        connectycube_emulator.create_user(
            login=link.user.username,
            password=mapping.derive_password(link.external_id),
            external_id=link.external_id,
        )
    CubeUser.objects.filter(pk__in=[link.pk for link in links]).update(
        lease_until=timezone.now() - timezone.timedelta(seconds=1)
    )
    first = tasks.backfill_shard.apply(args=shard.args).get()
    assert first == {"adopted": 4, "created": 8}
    assert CubeUser.objects.filter(state="synced").count() == 12
    assert sorted(remote_external_ids(connectycube_emulator).values()) == [1] * len(users)
    connectycube_emulator.reset_counters()
    assert tasks.backfill_shard.apply(args=shard.args).get() == {}  # delivered once more
    assert connectycube_emulator.request_count() == 0


def test_wait_follows_the_workers_until_everyone_is_pushed(
    connectycube_emulator, connectycube_celery, settings, monkeypatch
):
    quiet_users(settings, 9)
    polls = []

    def a_worker_meanwhile(seconds):
        polls.append(seconds)
        connectycube_celery.run()  # what the workers do between two looks

    monkeypatch.setattr(sync_command, "_sleep", a_worker_meanwhile)
    out = run("--all", "--distribute", "--shards", "3", "--wait")
    assert len(polls) == 1
    assert "The workers pushed the backfill in" in out and "0 failed, 0 waiting" in out
    assert CubeUser.objects.filter(state="synced").count() == 9


def test_wait_reports_the_users_the_workers_could_not_push(
    connectycube_emulator, connectycube_celery, settings, monkeypatch
):
    quiet_users(settings, 3)
    connectycube_emulator.set_fault("POST /users", sequence=[422])
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "RETRIES": 0}
    monkeypatch.setattr(sync_command, "_sleep", lambda seconds: connectycube_celery.run())
    with pytest.raises(CommandError, match=r"1 user\(s\) failed, 0 could not be pushed now"):
        run("--all", "--distribute", "--wait")
    assert CubeUser.objects.filter(state="synced").count() == 2


def test_wait_gives_up_when_no_worker_pushes_anything(connectycube_celery, settings, monkeypatch):
    quiet_users(settings, 2)
    monkeypatch.setattr(sync_command, "STALL_SECONDS", 0.05)
    monkeypatch.setattr(sync_command, "WAIT_POLL_SECONDS", 0.01)
    with pytest.raises(CommandError, match="Is a Celery worker consuming the sync queue"):
        run("--all", "--distribute", "--wait")
    assert CubeUser.objects.filter(state="pending").count() == 2  # still owed


def test_distribute_dry_run_says_what_it_would_enqueue(connectycube_celery, settings):
    quiet_users(settings, 5)
    out = run("--all", "--distribute", "--dry-run", "--shards", "2")
    assert "Would enqueue 2 shard(s) for 5 user(s)" in out
    assert connectycube_celery.sent == []


def test_default_shards_hold_a_thousand_users_each(connectycube_celery, settings):
    quiet_users(settings, 3)
    assert "Enqueued 1 shard(s) for 3 user(s)" in run("--all", "--distribute")


def test_a_broker_down_is_a_clear_error_and_everyone_stays_owed(settings, monkeypatch):
    quiet_users(settings, 4)

    def down(*args, **kwargs):
        raise OSError("Connection refused")

    monkeypatch.setattr(tasks.backfill_shard, "apply_async", down)
    with pytest.raises(CommandError, match="Every user stays owed"):
        run("--all", "--distribute")
    assert CubeUser.objects.filter(state="pending").count() == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--distribute"], "--distribute works with --all"),
        (["--dirty", "--distribute"], "--distribute works with --all"),
        (["--all", "--shards", "2"], "--shards goes with --distribute"),
        (["--all", "--distribute", "--shards", "0"], "--shards must be at least 1"),
        (["--all", "--distribute", "--verify"], "cannot be combined with --verify"),
        (["--all", "--wait"], "--wait goes with --distribute"),
    ],
)
def test_distribute_arguments_are_checked(args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)
