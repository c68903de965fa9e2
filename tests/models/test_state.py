"""Transitions of a link's state machine (:mod:`django_connectycube.models.state`), one
``UPDATE`` at a time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from django_connectycube.models import CubeUser
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
