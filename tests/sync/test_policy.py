"""The failure policy's arithmetic, one failure at a time: how long a row waits before its next
attempt, and who holds that wait (:mod:`django_connectycube.sync.policy`)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import timezone

from django_connectycube.client import RateLimited, ServerError
from django_connectycube.errors import Busy
from django_connectycube.models import CubeUser
from django_connectycube.sync import policy

pytestmark = pytest.mark.django_db
User = get_user_model()

NOW = timezone.now()


@pytest.fixture
def longest(monkeypatch, settings, no_broker):
    """Every jittered wait at its upper bound, the clock stopped, the breaker out of the way."""
    monkeypatch.setattr(policy.random, "uniform", lambda low, high: high)
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    settings.CONNECTYCUBE = {
        **settings.CONNECTYCUBE,
        "TASK_BACKOFF_BASE": 2.0,
        "TASK_BACKOFF_MAX": 3600.0,
        "RETRY_COUNTDOWN_MAX": 60.0,
        "CIRCUIT_BREAKER_THRESHOLD": 0,
    }


def owed_link(username: str = "u") -> Q:
    user = User.objects.create(username=username)
    return Q(user_id=user.pk)


def waited(link_filter: Q) -> float:
    """Seconds from now until the row is due again."""
    link = CubeUser.objects.get(link_filter)
    return (link.next_attempt_at - NOW).total_seconds()


# ---- backoff ---------------------------------------------------------------------------------


def test_backoff_starts_at_the_base_and_doubles_with_each_attempt(longest):
    assert [policy.backoff(n) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]


def test_backoff_never_exceeds_its_cap(longest):
    assert policy.backoff(12) == 3600.0
    assert policy.backoff(10_000) == 3600.0


def test_backoff_is_full_jitter_from_zero_to_the_ceiling(monkeypatch, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "TASK_BACKOFF_BASE": 2.0}
    bounds = []
    monkeypatch.setattr(policy.random, "uniform", lambda low, high: bounds.append((low, high)))
    policy.backoff(3)
    assert bounds == [(0, 8.0)]


def test_the_nth_failure_of_a_run_waits_the_nth_backoff(longest):
    link_filter = owed_link()
    for expected in (2.0, 4.0, 8.0):
        policy.record(link_filter, ServerError("down", status=503))
        assert waited(link_filter) == expected


# ---- Retry-After -----------------------------------------------------------------------------


def test_a_retry_after_longer_than_the_backoff_is_honoured(longest):
    link_filter = owed_link()
    result = policy.record(link_filter, RateLimited("slow down", status=429, retry_after=30))
    assert result.outcome == policy.RETRYING
    assert waited(link_filter) == 30.0


def test_a_retry_after_shorter_than_the_backoff_does_not_shorten_it(longest, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "TASK_BACKOFF_BASE": 100.0}
    link_filter = owed_link()
    policy.record(link_filter, RateLimited("slow down", status=429, retry_after=5))
    assert waited(link_filter) == 100.0


def test_a_retry_after_beyond_the_backoff_cap_is_capped(longest):
    link_filter = owed_link()
    policy.record(link_filter, RateLimited("slow down", status=429, retry_after=86_400))
    assert waited(link_filter) == 3600.0


def test_a_busy_row_waits_a_second_more_than_the_backoff(longest):
    link_filter = owed_link()
    result = policy.record(link_filter, Busy("another worker holds the user"))
    assert result.outcome == policy.BUSY
    assert waited(link_filter) == 3.0


# ---- hold ------------------------------------------------------------------------------------


def test_a_held_short_retry_is_a_task_countdown(longest):
    link_filter = owed_link()
    result = policy.record(link_filter, ServerError("down", status=503), hold=True)
    link = CubeUser.objects.get(link_filter)
    assert result.countdown == 2.0
    assert link.enqueued_at == link.next_attempt_at == NOW + timedelta(seconds=2)


def test_a_retry_not_held_is_left_to_the_sweep(longest):
    link_filter = owed_link()
    result = policy.record(link_filter, ServerError("down", status=503), hold=False)
    link = CubeUser.objects.get(link_filter)
    assert result.countdown is None
    assert link.enqueued_at is None and link.next_attempt_at == NOW + timedelta(seconds=2)


def test_a_held_retry_longer_than_the_countdown_max_is_left_to_the_sweep(longest):
    link_filter = owed_link()
    result = policy.record(
        link_filter, RateLimited("slow down", status=429, retry_after=61), hold=True
    )
    assert result.countdown is None
    assert CubeUser.objects.get(link_filter).enqueued_at is None
