"""Transitions of a link's state machine (:mod:`django_connectycube.models.state`), one
``UPDATE`` at a time."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import models
from django.utils import timezone

from django_connectycube.models import CubeUser, state
from django_connectycube.models.state import State

pytestmark = pytest.mark.django_db
User = get_user_model()

DAY = timedelta(days=1)


@pytest.fixture
def link(no_broker):
    return CubeUser.objects.filter(user=User.objects.create(username="u"))


def fail(rows, *, now=None, max_attempts=None, count=True, permanent=False):
    now = now or timezone.now()
    return rows.record_failure(
        "boom",
        now=now,
        permanent=permanent,
        retry_at=now + timedelta(seconds=5),
        enqueued_at=None,
        horizon=DAY,
        max_attempts=max_attempts,
        count=count,
    )


def test_task_max_attempts_gives_up_on_the_nth_failed_attempt_not_later(link):
    fail(link, max_attempts=3)
    fail(link, max_attempts=3)
    assert (link.get().state, link.get().attempts) == (State.PENDING, 2)
    fail(link, max_attempts=3)
    row = link.get()
    assert (row.state, row.attempts) == (State.FAILED, 3)
    assert row.next_attempt_at is None


def test_a_deferred_attempt_never_counts_towards_task_max_attempts(link):
    for _ in range(5):
        fail(link, max_attempts=1, count=False)
    row = link.get()
    assert (row.state, row.attempts) == (State.PENDING, 0)


def row(rows):
    return rows.get()


def set_row(rows, **values):
    rows.update(**values)
    return rows.get()


def test_a_failure_starts_a_run_and_later_ones_keep_its_start(link):
    start = timezone.now()
    fail(link, now=start)
    fail(link, now=start + timedelta(seconds=30))
    got = row(link)
    assert (got.failing_since, got.attempts, got.last_error) == (start, 2, "boom")
    assert got.next_attempt_at == start + timedelta(seconds=35)
    assert got.updated_at == start + timedelta(seconds=30)


def test_a_failure_exactly_one_horizon_after_the_runs_start_gives_up(link):
    start = timezone.now()
    fail(link, now=start)
    fail(link, now=start + DAY - timedelta(seconds=1))
    assert row(link).state == State.PENDING
    fail(link, now=start + DAY)
    got = row(link)
    assert (got.state, got.next_attempt_at, got.enqueued_at) == (State.FAILED, None, None)


def test_a_permanent_failure_gives_up_at_once(link):
    fail(link, permanent=True)
    assert row(link).state == State.FAILED


def test_a_held_retry_is_recorded_as_in_flight(link):
    now = timezone.now()
    link.record_failure(
        "boom",
        now=now,
        permanent=False,
        retry_at=now + timedelta(seconds=5),
        enqueued_at=now + timedelta(seconds=5),
        horizon=DAY,
    )
    assert row(link).enqueued_at == now + timedelta(seconds=5)


def test_a_row_not_owed_records_no_failure(link):
    set_row(link, state=State.SYNCED)
    assert fail(link) == 0
    assert (row(link).state, row(link).attempts) == (State.SYNCED, 0)


def test_only_pending_and_deleting_rows_are_owed(link):
    for value, owed in [
        (State.PENDING, True),
        (State.DELETING, True),
        (State.SYNCED, False),
        (State.FAILED, False),
        (State.DELETED, False),
    ]:
        set_row(link, state=value)
        assert link.owed().exists() is owed, value


def test_a_row_is_retry_due_with_no_due_time_or_once_its_time_has_come(link):
    now = timezone.now()
    set_row(link, next_attempt_at=None)
    assert link.retry_due(now).exists()
    set_row(link, next_attempt_at=now)
    assert link.retry_due(now).exists()
    set_row(link, next_attempt_at=now + timedelta(microseconds=1))
    assert not link.retry_due(now).exists()


def test_the_sweep_takes_rows_never_enqueued_first_then_stale_ones_by_pk(no_broker):
    now = timezone.now()
    stale = now - timedelta(minutes=5)
    users = [User.objects.create(username=f"s{i}") for i in range(4)]
    rows = CubeUser.objects.filter(user__in=users)
    links = list(rows.order_by("pk"))
    CubeUser.objects.filter(pk=links[0].pk).update(enqueued_at=stale - timedelta(seconds=1))
    CubeUser.objects.filter(pk=links[1].pk).update(enqueued_at=None)
    CubeUser.objects.filter(pk=links[2].pk).update(enqueued_at=stale)  # in flight still
    CubeUser.objects.filter(pk=links[3].pk).update(enqueued_at=None)
    assert list(rows.due(now, stale).values_list("pk", flat=True)) == [
        links[1].pk,
        links[3].pk,
        links[0].pk,
    ]


def test_a_row_handed_over_again_after_being_lost_says_so(link):
    now = timezone.now()
    set_row(link, enqueued_at=now - timedelta(hours=2), last_error="earlier")
    link.mark_enqueued(now, lost_before=now - timedelta(hours=1), note="lost")
    assert (row(link).enqueued_at, row(link).last_error) == (now, "lost")
    later = now + timedelta(minutes=1)
    link.mark_enqueued(later, lost_before=now, note="lost again")
    assert (row(link).enqueued_at, row(link).last_error) == (later, "lost")


def test_a_new_local_version_is_owed_afresh(link):
    now = timezone.now()
    before = set_row(
        link, state=State.FAILED, attempts=4, failing_since=now, next_attempt_at=now
    ).dirty_version
    link.mark_owed(now)
    got = row(link)
    assert (got.state, got.dirty_version, got.enqueued_at, got.updated_at) == (
        State.PENDING,
        before + 1,
        now,
        now,
    )
    assert (got.attempts, got.failing_since, got.next_attempt_at) == (0, None, None)


def test_the_save_path_marks_only_its_users_row_owed(no_broker, monkeypatch):
    monkeypatch.setattr(state, "_MARK_OWED", {})  # compiled afresh, then reused
    now = timezone.now()
    first, second = User.objects.create(username="a"), User.objects.create(username="b")
    rows = CubeUser.objects.filter(user__in=[first, second])
    rows.update(state=State.SYNCED, attempts=2)
    assert CubeUser.objects.mark_user_owed(first.pk, now, using="default") == 1
    got = CubeUser.objects.get(user=first)
    assert (got.state, got.attempts, got.enqueued_at) == (State.PENDING, 0, now)
    assert CubeUser.objects.get(user=second).state == State.SYNCED
    later = now + timedelta(seconds=1)
    CubeUser.objects.filter(user=second).update(state=State.SYNCED)
    assert CubeUser.objects.mark_user_owed(second.pk, later, using="default") == 1
    assert CubeUser.objects.get(user=second).updated_at == later
    assert CubeUser.objects.get(user=first).updated_at == now


@pytest.mark.parametrize(
    ("field", "kind"),
    [
        (models.UUIDField(), uuid.UUID),
        (models.AutoField(primary_key=True), int),
        (models.BigAutoField(primary_key=True), int),
        (models.PositiveIntegerField(), int),
        (models.CharField(max_length=40), str),
    ],
)
def test_the_save_path_compiles_for_integer_uuid_and_text_user_keys(field, kind):
    assert isinstance(state._sentinel_pk(field), kind)


def test_a_deleted_user_leaves_a_tombstone_owing_the_remote_delete(link):
    now = timezone.now()
    before = set_row(link, state=State.SYNCED, attempts=3).dirty_version
    assert link.mark_deleting(now) == 1
    got = row(link)
    assert (got.state, got.dirty_version, got.enqueued_at, got.attempts) == (
        State.DELETING,
        before + 1,
        now,
        0,
    )
    assert got.updated_at == now
    set_row(link, state=State.DELETED)
    assert link.mark_deleting(now) == 0


def test_a_resync_owes_every_row_again_but_a_finished_tombstone(no_broker):
    now = timezone.now()
    kept, gone = User.objects.create(username="kept"), User.objects.create(username="gone")
    CubeUser.objects.filter(user=kept).update(state=State.FAILED, pushed_digest="d", attempts=9)
    tombstone = CubeUser.objects.get(user=gone)
    gone.delete()
    CubeUser.objects.filter(pk=tombstone.pk).update(state=State.FAILED, user=None)
    before = CubeUser.objects.get(user=kept).dirty_version
    assert CubeUser.objects.all().resync(now) == 2
    got = CubeUser.objects.get(user=kept)
    assert (got.state, got.pushed_digest, got.attempts, got.enqueued_at) == (
        State.PENDING,
        "",
        0,
        now,
    )
    assert got.dirty_version == before  # not a new local version
    assert CubeUser.objects.get(pk=tombstone.pk).state == State.DELETING
    CubeUser.objects.all().resync(now, bump=True)
    assert CubeUser.objects.get(user=kept).dirty_version == before + 1
    CubeUser.objects.filter(pk=tombstone.pk).update(state=State.DELETED)
    assert CubeUser.objects.all().resync(now) == 1


def test_a_link_whose_remote_user_is_gone_owes_a_create_at_once(link):
    now = timezone.now()
    before = set_row(
        link,
        cube_id=5,
        pushed_digest="d",
        avatar_uid="u",
        avatar_digest="a",
        state=State.SYNCED,
        attempts=3,
    ).dirty_version
    link.forget_remote("forgotten", now, login="renamed")
    got = row(link)
    assert (got.cube_id, got.pushed_digest, got.avatar_uid, got.avatar_digest) == (None, "", "", "")
    assert (got.state, got.dirty_version, got.last_error, got.enqueued_at) == (
        State.PENDING,
        before + 1,
        "forgotten",
        None,
    )
    assert (got.updated_at, got.attempts, got.login) == (now, 0, "renamed")


def test_a_pushed_version_is_synced_unless_a_save_or_delete_came_since(link):
    now = timezone.now()
    version = set_row(link, last_error="old", attempts=2).dirty_version
    link.record_pushed(version, now)
    got = row(link)
    assert (got.state, got.synced_version, got.last_error, got.last_synced_at) == (
        State.SYNCED,
        version,
        "",
        now,
    )
    assert (got.attempts, got.updated_at) == (0, now)
    link.record_pushed(version, now, login="pushed")
    assert row(link).login == "pushed"
    set_row(link, dirty_version=version + 1, state=State.PENDING)
    link.record_pushed(version, now)
    assert row(link).state == State.PENDING
    set_row(link, state=State.DELETING)
    link.record_pushed(version + 1, now)
    assert row(link).state == State.DELETING


def test_only_a_tombstone_is_marked_deleted(link):
    now = timezone.now()
    set_row(link, state=State.SYNCED)
    assert link.record_deleted(now) == 0
    version = set_row(link, state=State.DELETING, last_error="x", attempts=1).dirty_version
    assert link.record_deleted(now) == 1
    got = row(link)
    assert (got.state, got.synced_version, got.last_error, got.last_synced_at, got.attempts) == (
        State.DELETED,
        version,
        "",
        now,
        0,
    )
    assert got.updated_at == now


def test_task_max_attempts_does_not_outlast_the_horizon(link):
    start = timezone.now()
    fail(link, now=start, max_attempts=10)
    fail(link, now=start + DAY, max_attempts=10)
    assert row(link).state == State.FAILED
