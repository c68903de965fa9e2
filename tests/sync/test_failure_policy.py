"""The failure policy, end to end through the tasks' wrapper, the sweep and the sync engine.

Each test replays a finding of the self-healing issue with the production retry defaults and
Django's clock moved forward, so an outage of hours takes a second. Celery is a recorded message
list: ``deliver()`` runs what is queued the way a worker would (a retry the task holds as a
countdown comes back to the list), and the sweep is what beat would run.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Q
from django.utils import timezone

from django_connectycube import errors
from django_connectycube.client import SessionExpired
from django_connectycube.models import CubeUser
from django_connectycube.sessions import login as sessions
from django_connectycube.signals import user_sync_failed
from django_connectycube.sync import enqueue, policy, tasks
from django_connectycube.sync import push as sync
from django_connectycube.sync.connection import build_client
from tests.malformed import TRUNCATED, WRONG_SHAPE, MalformedSuccess
from tests.messages import tasks_in

pytestmark = pytest.mark.django_db(transaction=True)
User = get_user_model()

HOUR = 3600.0


class Clock:
    """Django's clock, moved forward on demand (every ``timezone.now()`` in the app follows)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset = timedelta()
        real = timezone.now
        monkeypatch.setattr(timezone, "now", lambda: real() + self.offset)

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


class _Retry(Exception):
    pass


class Broker:
    """The messages the app published, and a worker that runs them through ``tasks._run``."""

    def __init__(self) -> None:
        self.queue: list[tuple[str, Any]] = []
        self.countdowns: list[float] = []
        self.retries: dict[tuple[str, Any], int] = {}

    def task(self, message: tuple[str, Any]) -> Any:
        broker = self

        class Task:
            class request:
                is_eager = False
                retries = broker.retries.get(message, 0)

            def retry(self, countdown: float | None = None, exc: Any = None) -> _Retry:
                broker.retries[message] = self.request.retries + 1
                broker.countdowns.append(float(countdown or 0))
                broker.queue.append(message)
                return _Retry()

        return Task()

    def run(self, message: tuple[str, Any]) -> str | None:
        name, arg = message
        if name.endswith("push_user"):
            func, link_filter = sync.push_user, Q(user_id=arg)
        else:
            func, link_filter = sync.delete_remote_user, Q(pk=arg)
        try:
            return tasks._run(self.task(message), func, arg, link_filter)
        except _Retry:
            return None

    def deliver(self) -> list[str | None]:
        """Run what is queued now (retries queued meanwhile wait for the next call)."""
        batch, self.queue = self.queue, []
        return [self.run(message) for message in batch]


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Broker:
    recorded = Broker()

    def publish(task: Any, args: Any = None, kwargs: Any = None, **options: Any) -> None:
        recorded.queue.extend(tasks_in(task.name, args))  # a push_batch as the tasks a worker runs

    monkeypatch.setattr("celery.app.task.Task.apply_async", publish)
    return recorded


@pytest.fixture
def cube(connectycube_emulator: Any, settings: Any) -> Any:
    # The client's own retries would only multiply every figure below by the same factor.
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "RETRIES": 0, "TIMEOUT": (2.0, 2.0)}
    from django.core.cache import cache

    cache.clear()
    return connectycube_emulator


def make_users(n: int, prefix: str = "u") -> list[Any]:
    return [User.objects.create(username=f"{prefix}{i}", first_name="A") for i in range(n)]


def states() -> dict[str, int]:
    counts: dict[str, int] = {}
    for state in CubeUser.objects.values_list("state", flat=True):
        counts[state] = counts.get(state, 0) + 1
    return counts


def run_for(clock: Clock, broker: Broker, seconds: float, step: float = 60.0) -> None:
    """Let ``seconds`` pass minute by minute: the workers run what is queued, beat sweeps."""
    elapsed = 0.0
    while elapsed < seconds:
        clock.advance(step)
        elapsed += step
        broker.deliver()
        enqueue.sweep()
        broker.deliver()


# ---- outages ------------------------------------------------------------------------------


def test_an_outage_of_hours_ends_with_every_user_synced(cube, clock, broker):
    # Issue: a 150-second outage left 10 of 15 new users failed for good (8 attempts, ~4 min).
    cube.set_fault("*", error_rate=1.0, statuses=[503])
    users = make_users(15)
    broker.deliver()
    run_for(clock, broker, 5 * HOUR)
    assert states() == {"pending": 15}, "an outage shorter than the horizon must not fail rows"
    link = CubeUser.objects.get(user=users[0])
    assert link.last_error and link.next_attempt_at is not None and link.failing_since
    cube.clear_faults()
    run_for(clock, broker, 2 * HOUR)  # nobody acts: beat and the workers alone
    assert states() == {"synced": 15}
    assert sorted(u["external_id"] for u in cube.users) == sorted(
        CubeUser.objects.values_list("external_id", flat=True)
    )


def test_requests_during_an_outage_stay_bounded(cube, clock, broker, settings):
    cube.set_fault("*", error_rate=1.0, statuses=[503])
    make_users(40)
    broker.deliver()
    run_for(clock, broker, 4 * HOUR)
    during = cube.request_count()
    # The breaker opens after THRESHOLD failures; then one probe per cool-down (30 s doubling
    # to the 60 s cap).
    threshold = settings.CONNECTYCUBE.get("CIRCUIT_BREAKER_THRESHOLD", 5)
    probes = 2 + (4 * HOUR) / 60
    bound = 2 * (threshold + probes)  # each push or probe: a session request and one call
    assert during <= bound, f"{during} requests in a 4-hour outage (bound {bound:.0f})"
    cube.clear_faults()
    run_for(clock, broker, 2 * HOUR)
    assert states() == {"synced": 40}


def test_a_row_gives_up_only_once_the_horizon_has_passed(cube, clock, broker, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "CIRCUIT_BREAKER_THRESHOLD": 0}
    failed: list[Any] = []
    user_sync_failed.connect(lambda sender, link, error, **kw: failed.append(link), weak=False)
    cube.set_fault("*", error_rate=1.0, statuses=[503])
    user = make_users(1)[0]
    broker.deliver()
    run_for(clock, broker, 71 * HOUR, step=600)
    assert CubeUser.objects.get(user=user).state == "pending"
    run_for(clock, broker, 2 * HOUR, step=600)
    link = CubeUser.objects.get(user=user)
    assert link.state == "failed"
    assert "503" in link.last_error or "Service Unavailable" in link.last_error
    assert [f.pk for f in failed] == [link.pk]


# ---- where a retry waits ------------------------------------------------------------------


def test_a_short_retry_is_a_countdown_and_is_not_swept_twice(cube, broker, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SWEEP_AFTER": 0}
    cube.set_fault("*", sequence=[503])
    user = make_users(1)[0]
    broker.deliver()
    assert len(broker.countdowns) == 1 and broker.countdowns[0] <= 60
    link = CubeUser.objects.get(user=user)
    assert (link.attempts, link.enqueued_at) == (1, link.next_attempt_at)
    assert enqueue.sweep() == 0  # the retry is in flight until it is due
    assert broker.deliver() == ["created"]


def test_a_retry_hours_away_waits_in_the_database_not_in_the_broker(
    cube, clock, broker, monkeypatch
):
    monkeypatch.setattr("django_connectycube.sync.policy.backoff", lambda attempt: HOUR)
    cube.set_fault("*", sequence=[503])
    user = make_users(1)[0]
    assert broker.deliver() == ["retrying"]
    assert broker.countdowns == []  # no ETA message held by Redis/RabbitMQ for hours
    link = CubeUser.objects.get(user=user)
    assert link.enqueued_at is None
    assert link.next_attempt_at - timezone.now() > timedelta(hours=0.9)
    assert enqueue.sweep() == 0
    clock.advance(HOUR + 1)
    assert enqueue.sweep() == 1
    assert broker.deliver() == ["created"]


# ---- what a failure is --------------------------------------------------------------------


@pytest.mark.parametrize("body", [TRUNCATED, WRONG_SHAPE], ids=["truncated", "wrong-shape"])
def test_a_malformed_answer_to_a_create_that_happened_is_retried(cube, clock, broker, body):
    # Issue: 15 malformed 200 answers (the users were created) made 15 rows failed for good.
    with MalformedSuccess(cube, "POST /users", count=1, body=body) as fault:
        user = make_users(1)[0]
        broker.deliver()
    assert fault.applied == 1 and len(cube.users) == 1  # created, but unreadable
    link = CubeUser.objects.get(user=user)
    assert (link.state, link.attempts) == ("pending", 1)
    run_for(clock, broker, 120)
    link.refresh_from_db()
    assert link.state == "synced"
    assert [u["id"] for u in cube.users] == [link.cube_id]  # adopted, not created twice


def _raising_fields(user: Any, external_id: str | None = None) -> dict[str, Any]:
    raise RuntimeError("mapping bug for token=s3cr3t-token-value")


def test_an_unknown_exception_is_an_attempt_with_its_error(cube, clock, broker, settings):
    # Issue: an exception the task did not recognise escaped it: the row stayed pending with 0
    # attempts and no error, and the sweep re-sent it forever.
    user = make_users(1)[0]
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "USER_FIELDS": _raising_fields}
    broker.deliver()
    link = CubeUser.objects.get(user=user)
    assert (link.state, link.attempts) == ("pending", 1)
    assert link.last_error.startswith("RuntimeError: mapping bug")
    assert "s3cr3t-token-value" not in link.last_error
    assert link.next_attempt_at is not None
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "USER_FIELDS": None}
    del settings.CONNECTYCUBE["USER_FIELDS"]
    run_for(clock, broker, 120)
    link.refresh_from_db()
    assert (link.state, link.attempts, link.last_error) == ("synced", 0, "")


def test_an_unknown_exception_does_not_abort_the_sync_command(cube, settings, no_broker):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SYNC_ENABLED": False}
    users = make_users(3, "user")
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SYNC_ENABLED": True}
    bad = users[1].pk

    def fields(user: Any, external_id: str | None = None) -> dict[str, Any]:
        if user.pk == bad:
            raise FileNotFoundError("avatar.png")
        return {"login": user.username, "full_name": user.first_name}

    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "USER_FIELDS": fields}
    with pytest.raises(CommandError, match="1 could not be pushed now"):
        call_command("connectycube_sync", "--all", "--concurrency", "1")
    assert sorted(u["login"] for u in cube.users) == ["user0", "user2"]
    link = CubeUser.objects.get(user_id=bad)
    assert (link.state, link.attempts) == ("pending", 1)
    assert link.last_error == "FileNotFoundError: avatar.png"


def test_busy_is_counted_and_backed_off(cube, broker):
    # Issue: a Busy retry looped forever without counting, at a fixed 1-5 s.
    user = make_users(1)[0]
    broker.queue.clear()
    far = timezone.now() + timedelta(hours=1)
    CubeUser.objects.filter(user=user).update(lease_until=far)  # another worker holds it
    waits = []
    for _ in range(8):
        broker.run(("django_connectycube.push_user", user.pk))
        link = CubeUser.objects.get(user=user)
        waits.append((link.next_attempt_at - timezone.now()).total_seconds())
    assert link.attempts == 8
    assert "another worker" in link.last_error
    assert max(waits[5:]) > 5.0  # it backs off (the lease holder may be slow)


def test_concurrent_failures_are_all_counted(cube, monkeypatch):
    # Issue: record_failure read the row, then wrote attempts + 1: a concurrent failure between
    # the two was lost.
    from django_connectycube.client import ServerError
    from django_connectycube.models import CubeUserQuerySet

    user = make_users(1)[0]
    real_update = CubeUserQuerySet.update
    nested: list[bool] = []

    def update(self: Any, **values: Any) -> int:
        if "attempts" in values and not nested:
            nested.append(True)  # another worker's failure lands in between
            policy.record(Q(user_id=user.pk), ServerError("second"))
        return real_update(self, **values)

    monkeypatch.setattr(CubeUserQuerySet, "update", update)
    policy.record(Q(user_id=user.pk), ServerError("first"))
    assert CubeUser.objects.get(user=user).attempts == 2


def test_an_expired_session_during_the_login_push_is_not_a_dead_letter(cube, monkeypatch):
    # Issue: two definitions of "transient"; the login path's lacked an expired session, so it
    # marked the row failed where a task would have retried it.
    user = make_users(1, "login")[0]

    def expired(*args: Any, **kwargs: Any) -> str:
        raise SessionExpired("Required session does not exist", status=401)

    monkeypatch.setattr(sync, "push_user", expired)
    with pytest.raises(errors.SessionUnavailable):
        sessions.get_session_for_user(user)
    assert CubeUser.objects.get(user=user).state == "pending"


# ---- the lease --------------------------------------------------------------------------


def test_the_lease_outlives_a_slow_push(cube, settings, no_broker):
    # Issue: the 120 s lease could run out during one slow push (4 x 30 s timeouts plus
    # backoff), and a second worker would push the same user at the same time.
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "LEASE_SECONDS": 1}
    user = make_users(1, "slow")[0]
    link_id = CubeUser.objects.get(user=user).pk
    client = build_client()
    stolen: list[int] = []
    send = client.transport._send

    def slow_send(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.6)
        now = timezone.now()
        # What a second worker's lease claim does, after every slow request.
        stolen.append(
            CubeUser.objects.filter(pk=link_id)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .update(lease_until=now + timedelta(seconds=30))
        )
        return send(*args, **kwargs)

    client.transport._send = slow_send
    try:
        assert sync.push_user(user.pk, client=client) == "created"
    finally:
        client.close()
    assert len(stolen) >= 3 and not any(stolen)


@pytest.mark.integration
def test_the_sweep_takes_rows_never_enqueued_first_on_postgresql(
    postgres_db, broker, settings, clean_cache
):
    # Issue: ``order_by("enqueued_at")`` puts NULLs (rows to retry at once: their enqueue
    # failed) last on PostgreSQL, behind every row merely presumed lost. (A fresh cache: a
    # breaker left open by an earlier test's timeouts, on a loaded machine, stops any sweep.)
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SWEEP_AFTER": 60}
    lost, unsent = make_users(2, "order")
    CubeUser.objects.filter(user=lost).update(enqueued_at=timezone.now() - timedelta(hours=1))
    CubeUser.objects.filter(user=unsent).update(enqueued_at=None)
    broker.queue.clear()
    assert enqueue.sweep(limit=1) == 1
    assert broker.queue == [("push_user", unsent.pk)]


# ---- SYNC_ENABLED and failed rows -------------------------------------------------------------


def test_a_task_delivered_while_sync_is_disabled_leaves_its_row_owed(cube, broker, settings):
    user = make_users(1, "off")[0]
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SYNC_ENABLED": False}
    assert broker.deliver() == ["disabled"]
    link = CubeUser.objects.get(user=user)
    assert (link.state, link.attempts, link.last_error) == ("pending", 0, "")
    assert cube.users == []
    with pytest.raises(CommandError, match="SYNC_ENABLED"):
        call_command("connectycube_sync", "--dirty")
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SYNC_ENABLED": True}
    call_command("connectycube_sync", "--dirty")
    assert CubeUser.objects.get(user=user).state == "synced"


def test_the_sync_command_retries_failed_rows(cube, broker, settings):
    user = User.objects.create(username="tagger", tags="a,b,c,d,e,f")
    broker.deliver()
    assert CubeUser.objects.get(user=user).state == "failed"
    User.objects.filter(pk=user.pk).update(tags="a,b")  # fixed without a save signal
    call_command("connectycube_sync", "--failed", "--concurrency", "1")
    link = CubeUser.objects.get(user=user)
    assert (link.state, link.last_error) == ("synced", "")


def test_an_unknown_exception_during_the_login_push_is_recorded(cube, settings):
    user = make_users(1, "loginbug")[0]
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "USER_FIELDS": _raising_fields}
    with pytest.raises(RuntimeError):
        sessions.get_session_for_user(user)
    link = CubeUser.objects.get(user=user)
    assert (link.state, link.attempts) == ("pending", 1)
    assert link.last_error.startswith("RuntimeError: mapping bug")


# ---- a failure always leaves a reason -------------------------------------------------------


def test_a_push_lost_with_its_worker_is_re_sent_with_a_reason(cube, clock, broker, settings):
    # Issue: a worker killed mid-push (or a lost message) left the row pending with an empty
    # last_error until the sweep re-sent it, and afterwards too.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    users = make_users(3)
    broker.queue.clear()  # the messages died with their worker
    clock.advance(settings.CONNECTYCUBE.get("SWEEP_AFTER", 300) + 1)
    with CaptureQueriesContext(connection) as queries:
        assert enqueue.sweep() == 3
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("UPDATE") and "cubeuser" in q["sql"]
    ]
    assert len(writes) == 1, "the reason is written by the sweep's claim, not row by row"
    for link in CubeUser.objects.filter(user__in=users):
        assert link.state == "pending"
        assert link.last_error.startswith("re-sent: no answer from a worker for 300 s"), (
            link.last_error
        )
    broker.deliver()
    assert states() == {"synced": 3}
    assert set(CubeUser.objects.values_list("last_error", flat=True)) == {""}


def test_a_row_the_sweep_hands_over_on_time_gets_no_note(cube, clock, broker, monkeypatch):
    monkeypatch.setattr("django_connectycube.sync.policy.backoff", lambda attempt: HOUR)
    cube.set_fault("*", sequence=[503])
    user = make_users(1)[0]
    broker.deliver()
    error = CubeUser.objects.get(user=user).last_error
    clock.advance(HOUR + 1)
    assert enqueue.sweep() == 1
    assert CubeUser.objects.get(user=user).last_error == error  # its own error, not a loss


def test_a_database_that_cannot_be_written_retries_the_task_then_leaves_it_to_the_sweep(
    cube, broker, monkeypatch
):
    from django.db import OperationalError

    user = make_users(1)[0]
    closed: list[bool] = []
    monkeypatch.setattr("django_connectycube.sync.lease.reconnect", lambda: closed.append(True))

    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(policy, "attempt", down)
    for _ in range(tasks.DATABASE_RETRIES):
        assert broker.deliver() == [None]  # retried by the broker, on a fresh connection
    assert len(closed) == tasks.DATABASE_RETRIES
    assert len(broker.countdowns) == tasks.DATABASE_RETRIES
    with pytest.raises(OperationalError):
        broker.deliver()  # given up: the sweep re-sends it and says why
    assert broker.queue == []
    assert CubeUser.objects.get(user=user).state == "pending"


@pytest.mark.integration
def test_a_database_connection_killed_mid_push_is_recorded_and_retried(
    postgres_db, cube, broker, settings
):
    # Issue: the push died on OperationalError, nothing could be written to the row, and it
    # waited for the sweep with an empty last_error.
    from django.db import connection

    killed: list[bool] = []

    def fields(user: Any, external_id: str | None = None) -> dict[str, Any]:
        if not killed:
            killed.append(True)
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return {"login": user.username, "full_name": user.first_name}

    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "ENQUEUE": "immediate"}
    user = make_users(1, "killed")[0]
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "USER_FIELDS": fields}
    assert broker.deliver() == [None]  # failed, recorded, retried as a countdown
    link = CubeUser.objects.get(user=user)
    assert (link.state, link.attempts) == ("pending", 1)
    assert link.last_error.startswith(("OperationalError", "InterfaceError")), link.last_error
    assert link.lease_until is None, "the lease is released on the fresh connection"
    assert broker.deliver() == ["created"]
