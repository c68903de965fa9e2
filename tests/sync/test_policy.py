"""The failure policy's arithmetic, one failure at a time: how long a row waits before its next
attempt, and who holds that wait (:mod:`django_connectycube.sync.policy`)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import timezone

from django_connectycube.client import ConnectyCubeError, RateLimited, ServerError, TransportError
from django_connectycube.errors import Busy
from django_connectycube.models import CubeUser
from django_connectycube.signals import user_sync_failed
from django_connectycube.sync import breaker, policy

pytestmark = pytest.mark.django_db
User = get_user_model()

NOW = timezone.now()


@pytest.fixture
def longest(monkeypatch, settings, no_broker):
    """Every jittered wait at its upper bound, the clock stopped, the breaker out of the way."""
    monkeypatch.setattr(policy.random, "uniform", lambda low, high: high)
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    monkeypatch.setattr(policy, "BACKOFF_BASE", 2.0)
    monkeypatch.setattr(policy, "COUNTDOWN_MAX", 60.0)
    settings.CONNECTYCUBE = {
        **settings.CONNECTYCUBE,
        "RETRY_HORIZON": 3 * 24 * 3600,  # a backoff cap of an hour (a 72nd of it)
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
    monkeypatch.setattr(policy, "BACKOFF_BASE", 2.0)
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


def test_a_retry_after_shorter_than_the_backoff_does_not_shorten_it(longest, monkeypatch):
    monkeypatch.setattr(policy, "BACKOFF_BASE", 100.0)
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
    error = ServerError("down", status=503)
    result = policy.record(link_filter, error, hold=True)
    link = CubeUser.objects.get(link_filter)
    assert result == policy.Result(policy.RETRYING, policy.Kind.TRANSIENT, error, 1, countdown=2.0)
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


def test_the_longest_wait_is_the_backoff_cap_but_never_under_a_second(longest, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "RETRY_HORIZON": 36}  # a 72nd: 0.5 s
    link_filter = owed_link()
    policy.record(link_filter, RateLimited("slow down", status=429, retry_after=30))
    assert waited(link_filter) == 1.0


def test_a_retry_is_left_to_the_sweep_unless_the_caller_holds_it(longest):
    link_filter = owed_link()
    result = policy.record(link_filter, ServerError("down", status=503))
    assert result.countdown is None
    assert CubeUser.objects.get(link_filter).enqueued_at is None


# ---- what each answer means ------------------------------------------------------------------

STATED = {"base": ["refused"]}  # a body that states errors


@pytest.mark.parametrize(
    ("status", "errors", "kind"),
    [
        (400, STATED, policy.Kind.PERMANENT),  # the first refusal status
        (499, STATED, policy.Kind.PERMANENT),  # the last one
        (404, None, policy.Kind.PERMANENT),  # a refusal with no body is still a refusal
        (408, STATED, policy.Kind.TRANSIENT),  # the 4xx that mean "later"
        (425, STATED, policy.Kind.TRANSIENT),
        (429, STATED, policy.Kind.TRANSIENT),
        (500, STATED, policy.Kind.TRANSIENT),  # a 5xx is never a refusal
        (300, STATED, policy.Kind.TRANSIENT),  # nor is a 3xx
        (200, None, policy.Kind.TRANSIENT),  # a success with no body: malformed
        (299, None, policy.Kind.TRANSIENT),
        (200, STATED, policy.Kind.PERMANENT),  # a success whose body states errors: a refusal
        (299, STATED, policy.Kind.PERMANENT),
        (None, None, policy.Kind.TRANSIENT),  # no answer at all
    ],
)
def test_an_answer_is_permanent_only_when_it_is_a_refusal(status, errors, kind):
    assert policy.classify(ConnectyCubeError("answer", status=status, errors=errors)) is kind


@pytest.mark.parametrize(
    ("error", "failing"),
    [
        (ServerError("down", status=503), True),
        (RateLimited("slow down", status=429), True),
        (TransportError("no answer"), True),
        (ConnectyCubeError("malformed", status=200), True),
        (ConnectyCubeError("malformed", status=299), True),
        (ConnectyCubeError("moved", status=300), False),
        (ConnectyCubeError("refused", status=400, errors=STATED), False),
        (ConnectyCubeError("refused", status=200, errors=STATED), False),
        (Busy("held"), False),
    ],
)
def test_only_unavailability_and_malformed_successes_count_against_the_breaker(error, failing):
    assert policy.remote_failed(error) is failing


# ---- what a failure does to its row ----------------------------------------------------------


def test_a_failure_of_a_user_never_linked_is_skipped(longest):
    error = ServerError("down", status=503)
    result = policy.record(Q(user_id=987_654), error)
    assert (result.outcome, result.kind, result.error) == (
        policy.SKIPPED,
        policy.Kind.TRANSIENT,
        error,
    )


def test_a_failure_on_a_row_no_longer_owed_changes_nothing_and_is_said(longest, caplog):
    link_filter = owed_link("done")
    CubeUser.objects.filter(link_filter).update(state=CubeUser.State.SYNCED)
    result = policy.record(link_filter, ServerError("down", status=503), hold=True)
    link = CubeUser.objects.get(link_filter)
    assert (result.outcome, result.kind, result.countdown) == (
        policy.FAILED,
        policy.Kind.TRANSIENT,
        None,
    )
    assert isinstance(result.error, ServerError)
    assert (link.state, link.attempts, link.last_error) == (CubeUser.State.SYNCED, 0, "")
    assert (
        f"ConnectyCube sync of {link.external_id} failed (transient) on a row no longer owed "
        "(synced): ServerError: down"
    ) in caplog.messages


def test_a_held_retry_of_exactly_the_countdown_max_is_still_held(longest):
    link_filter = owed_link()
    result = policy.record(
        link_filter, RateLimited("slow down", status=429, retry_after=60), hold=True
    )
    assert result.countdown == 60.0


def test_while_the_circuit_is_open_a_row_is_due_at_once_uncounted_and_never_held(longest):
    link_filter = owed_link()
    result = policy.record(link_filter, breaker.CircuitOpen(30), hold=True)
    link = CubeUser.objects.get(link_filter)
    assert (result.outcome, result.countdown) == (policy.RETRYING, None)
    assert (link.attempts, link.next_attempt_at, link.enqueued_at) == (0, NOW, None)


def test_a_remote_failure_while_the_circuit_is_open_is_paced_by_the_breaker(longest, monkeypatch):
    monkeypatch.setattr(policy.breaker, "is_open", lambda: 30.0)
    link_filter = owed_link()
    result = policy.record(link_filter, ServerError("down", status=503), hold=True)
    link = CubeUser.objects.get(link_filter)
    assert result.countdown is None
    assert (link.attempts, link.next_attempt_at) == (1, NOW)


def test_a_refusal_while_the_circuit_is_open_still_fails_the_row(longest, monkeypatch):
    monkeypatch.setattr(policy.breaker, "is_open", lambda: 30.0)
    link_filter = owed_link()
    refused = ConnectyCubeError("refused", status=422, errors=STATED)
    assert policy.record(link_filter, refused).outcome == policy.FAILED


def test_a_busy_failure_on_a_row_no_longer_owed_stays_busy(longest):
    link_filter = owed_link("done")
    CubeUser.objects.filter(link_filter).update(state=CubeUser.State.SYNCED)
    assert policy.record(link_filter, Busy("held")).outcome == policy.BUSY


def test_a_failure_on_a_row_deleted_meanwhile_is_said_as_gone(longest, monkeypatch, caplog):
    link_filter = owed_link("leaving")

    def deleted_meanwhile(rows, *args, **kwargs):
        rows.delete()
        return 0

    monkeypatch.setattr(type(CubeUser.objects.all()), "record_failure", deleted_meanwhile)
    result = policy.record(link_filter, ServerError("down", status=503))
    assert result.outcome == policy.FAILED
    assert (
        f"ConnectyCube sync of {link_filter} failed (transient) on a row no longer owed "
        "(gone): ServerError: down"
    ) in caplog.messages


def test_giving_up_is_logged_and_signalled_with_the_link_and_its_error(longest, caplog):
    received = []

    def receiver(sender, **kwargs):
        received.append((sender, kwargs["link"].pk, kwargs["error"]))

    user_sync_failed.connect(receiver)
    try:
        link_filter = owed_link("refused")
        refused = ConnectyCubeError("refused", status=422, errors=STATED)
        result = policy.record(link_filter, refused)
    finally:
        user_sync_failed.disconnect(receiver)
    link = CubeUser.objects.get(link_filter)
    assert result == policy.Result(policy.FAILED, policy.Kind.PERMANENT, refused, 1, gave_up=True)
    assert link.state == CubeUser.State.FAILED
    assert received == [(CubeUser, link.pk, refused)]
    assert f"Giving up on ConnectyCube sync of {link.external_id}: ConnectyCubeError: refused" in (
        caplog.messages
    )


# ---- attempt: the push under the policy and the breaker --------------------------------------


class FakeBreaker:
    """What :func:`policy.attempt` tells the breaker; ``probe`` is what ``probe_or_wait`` says."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, probe: bool) -> None:
        self.told: list[tuple[str, object]] = []
        self.probe = probe
        monkeypatch.setattr(policy.breaker, "probe_or_wait", lambda: self.probe)
        monkeypatch.setattr(
            policy.breaker, "record_failure", lambda probe: self.told.append(("failure", probe))
        )
        monkeypatch.setattr(
            policy.breaker, "record_success", lambda: self.told.append(("success", None))
        )
        monkeypatch.setattr(
            policy.breaker, "release_probe", lambda: self.told.append(("release", None))
        )


def push_that(calls: int, raises: BaseException | None = None):
    """A push making ``calls`` requests to ConnectyCube, then raising ``raises`` if given."""

    def push() -> str:
        policy.breaker._calls.made = policy.breaker.calls_made() + calls
        if raises is not None:
            raise raises
        return "created"

    return push


def test_a_push_while_sync_is_disabled_is_not_run(longest, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SYNC_ENABLED": False}
    ran = []
    result = policy.attempt(owed_link(), lambda: ran.append(1) or "created")
    assert (result, ran) == (policy.Result(policy.DISABLED, policy.Kind.DONE), [])


def test_a_push_that_answered_is_done_and_closes_the_circuit(longest, monkeypatch):
    told = FakeBreaker(monkeypatch, probe=True).told
    assert policy.attempt(owed_link(), push_that(1)) == policy.Result("created", policy.Kind.DONE)
    assert told == [("success", None)]


def test_a_probe_that_sent_nothing_is_handed_back(longest, monkeypatch):
    told = FakeBreaker(monkeypatch, probe=True).told
    assert policy.attempt(owed_link(), push_that(0)).outcome == "created"
    assert told == [("release", None)]


def test_a_failed_probe_is_told_to_the_breaker_as_a_probe(longest, monkeypatch):
    told = FakeBreaker(monkeypatch, probe=True).told
    error = ServerError("down", status=503)
    result = policy.attempt(owed_link(), push_that(1, error), hold=True)
    assert result == policy.Result(policy.RETRYING, policy.Kind.TRANSIENT, error, 1, countdown=2.0)
    assert told == [("failure", True)]


def test_a_refusal_closes_the_circuit_since_connectycube_answered(longest, monkeypatch):
    told = FakeBreaker(monkeypatch, probe=False).told
    refused = ConnectyCubeError("refused", status=422, errors=STATED)
    assert policy.attempt(owed_link(), push_that(1, refused)).outcome == policy.FAILED
    assert told == [("success", None)]


def test_a_push_failing_before_any_request_tells_the_breaker_nothing(longest, monkeypatch):
    told = FakeBreaker(monkeypatch, probe=False).told
    result = policy.attempt(owed_link(), push_that(0, ValueError("a mapping bug")))
    assert (result.outcome, told) == (policy.RETRYING, [])


def test_a_probe_failing_before_any_request_is_handed_back(longest, monkeypatch):
    told = FakeBreaker(monkeypatch, probe=True).told
    policy.attempt(owed_link(), push_that(0, ValueError("a mapping bug")))
    assert told == [("release", None)]


def test_an_attempt_is_left_to_the_sweep_unless_the_caller_holds_it(longest, monkeypatch):
    FakeBreaker(monkeypatch, probe=False)
    result = policy.attempt(owed_link(), push_that(1, ServerError("down", status=503)))
    assert (result.outcome, result.countdown) == (policy.RETRYING, None)


def test_a_push_while_the_circuit_is_open_is_not_run_and_is_recorded(longest, monkeypatch):
    def circuit_open() -> bool:
        raise breaker.CircuitOpen(30)

    monkeypatch.setattr(policy.breaker, "probe_or_wait", circuit_open)
    link_filter = owed_link()
    ran = []
    result = policy.attempt(link_filter, lambda: ran.append(1) or "created", hold=True)
    assert (result.outcome, result.kind, ran) == (policy.RETRYING, policy.Kind.TRANSIENT, [])
    assert isinstance(result.error, breaker.CircuitOpen)
    assert "circuit open" in CubeUser.objects.get(link_filter).last_error


def failure_logged(link_filter: Q, error: BaseException, caplog) -> logging.LogRecord:
    """Record ``error`` the way a push does, from inside its ``except`` block."""
    caplog.clear()
    try:
        raise error
    except Exception as exc:
        policy.record(link_filter, exc)
    (logged,) = [r for r in caplog.records if r.name == "django_connectycube"]
    return logged


def test_a_retry_is_logged_with_its_attempt_kind_wait_and_error(longest, caplog):
    link_filter = owed_link()
    logged = failure_logged(link_filter, ServerError("down", status=503), caplog)
    external_id = CubeUser.objects.get(link_filter).external_id
    assert logged.getMessage() == (
        f"ConnectyCube sync of {external_id} failed (attempt 1, transient); due again in 2.0 s: "
        "ServerError: down"
    )
    assert not logged.exc_info  # a known error needs no traceback


def test_an_unknown_error_is_logged_with_its_traceback(longest, caplog):
    logged = failure_logged(owed_link(), ValueError("a mapping bug"), caplog)
    assert logged.exc_info is not None and logged.exc_info[0] is ValueError
