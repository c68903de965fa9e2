"""The periodic sweep stays cheap on a big user table, and still finds every user without a link.

A sweep runs every minute: it must cost a bounded number of statements whatever the number of
rows it hands over, read the user table a window at a time (never all of it), and never hand the
same row to two workers when two sweeps race. Runs with the UUID-pk user model too
(``scripts/test.sh``), where primary keys do not grow.
"""

from __future__ import annotations

import contextlib
import math
import threading
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, connections
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from django_connectycube.models import CubeUser, LinkScan
from django_connectycube.sync import enqueue, unlinked
from tests.messages import tasks_in

pytestmark = pytest.mark.django_db
User = get_user_model()
USERS = User._meta.db_table


class Sent(list):
    """The tasks handed to Celery (a ``push_batch`` counts as the tasks it stands for), and how
    many messages carried them."""

    messages = 0


@pytest.fixture
def sent(monkeypatch):
    """What would be handed to Celery, from any thread."""
    calls = Sent()
    lock = threading.Lock()

    def fake_apply_async(self, args=(), kwargs=None, **options):
        with lock:
            calls.messages += 1
            calls.extend((name, str(arg)) for name, arg in tasks_in(self.name, args))

    monkeypatch.setattr("celery.app.task.Task.apply_async", fake_apply_async)
    return calls


@pytest.fixture
def window(monkeypatch):
    """Windows of 5 users, so a few dozen users make several of them."""
    monkeypatch.setattr(unlinked, "WINDOW", 5)
    return 5


def owe(n, prefix="owed"):
    """Users whose link is owed and was never handed over (the broker was down)."""
    users = [User.objects.create(username=f"{prefix}{i}") for i in range(n)]
    CubeUser.objects.filter(user__in=users).update(enqueued_at=None)
    return users


def quiet_users(settings, n, prefix="quiet"):
    """Users saved while ``SYNC_ENABLED`` was off: no link."""
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SYNC_ENABLED": False}
    users = [User.objects.create(username=f"{prefix}{i}") for i in range(n)]
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "SYNC_ENABLED": True}
    return users


def linked(users):
    return set(CubeUser.objects.filter(user__in=users).values_list("user_id", flat=True))


def pk_of(user):
    return user.pk


def bounded(sql):
    """A statement reading a range of the user table by primary key, not all of it."""
    return any(op in sql for op in ("LIMIT", " > ", " <= "))


def sweeps_for_a_pass(window):
    return math.ceil(User.objects.count() / window) + 2


# ---- cost -------------------------------------------------------------------------------------


def test_a_sweep_costs_the_same_few_statements_for_60_rows_as_for_one(
    sent, django_assert_max_num_queries
):
    # It used to claim each row with its own UPDATE: 61 statements for 60 rows.
    enqueue.sweep()
    owe(1, "one")
    with CaptureQueriesContext(connection) as one:
        assert enqueue.sweep() == 1
    owe(60)
    sent.clear()
    with django_assert_max_num_queries(len(one)):
        assert enqueue.sweep() == 60
    assert len({user for _, user in sent}) == 60


def test_a_sweep_hands_its_rows_over_in_a_message_per_batch_not_one_per_row(monkeypatch, sent):
    # Each message costs the beat process a broker round trip: it used to send 60 for 60 rows.
    owe(60)
    sent.clear()
    sent.messages = 0
    assert enqueue.sweep() == 60
    assert sent.messages == 1
    assert sorted(user for _, user in sent) == sorted(
        str(pk) for pk in CubeUser.objects.values_list("user_id", flat=True)
    )
    monkeypatch.setattr(enqueue, "BATCH_MAX", 25)
    CubeUser.objects.update(enqueued_at=None)
    sent.clear()
    sent.messages = 0
    assert enqueue.sweep() == 60
    assert (sent.messages, len(sent)) == (3, 60)


def test_when_the_broker_refuses_a_later_batch_the_rest_stays_due(monkeypatch, sent):
    owe(60)
    monkeypatch.setattr(enqueue, "BATCH_MAX", 25)
    CubeUser.objects.update(enqueued_at=None)
    accepted = []

    def refuses_the_second(self, args=(), kwargs=None, **options):
        if accepted:
            raise ConnectionRefusedError("broker down")
        accepted.append(args)

    monkeypatch.setattr("celery.app.task.Task.apply_async", refuses_the_second)
    assert enqueue.sweep() == 25
    in_flight = CubeUser.objects.filter(enqueued_at__isnull=False).values_list("user_id", flat=True)
    # Only the batch the broker took is in flight (a task carries a UUID pk as text).
    assert set(map(str, in_flight)) == set(map(str, accepted[0][1]))
    monkeypatch.setattr("celery.app.task.Task.apply_async", lambda *a, **k: None)
    assert enqueue.sweep() == 35


def test_when_the_broker_refuses_the_sweep_stops_and_leaves_the_rest_due(monkeypatch, sent):
    owe(5)
    refused = []

    def broken(self, *args, **kwargs):
        refused.append(args)
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr("celery.app.task.Task.apply_async", broken)
    assert enqueue.sweep() == 0
    assert len(refused) == 1  # not one timeout per owed row
    assert not CubeUser.objects.filter(enqueued_at__isnull=False).exists()  # all due at once
    monkeypatch.setattr("celery.app.task.Task.apply_async", lambda *a, **k: None)
    assert enqueue.sweep() == 5


# ---- users without a link ---------------------------------------------------------------------


def test_the_sweep_links_users_saved_while_sync_was_off_and_hands_them_over(settings, sent, window):
    User.objects.create(username="before")
    enqueue.sweep()
    quiet = quiet_users(settings, 3)
    sent.clear()
    sweeps = 1 if unlinked.pks_grow() else sweeps_for_a_pass(window)
    for _ in range(sweeps):
        enqueue.sweep()
    assert linked(quiet) == {u.pk for u in quiet}
    assert sorted(sent) == sorted(("push_user", str(u.pk)) for u in quiet)


def test_a_sweep_reads_a_window_of_the_user_table_not_all_of_it(settings, sent, window):
    users = quiet_users(settings, 23)
    with CaptureQueriesContext(connection) as queries:
        enqueue.sweep()
    # At most two windows: each found by an index range (LIMIT … OFFSET), never an outer join
    # of the whole table.
    on_users = [q["sql"] for q in queries if USERS in q["sql"]]
    assert on_users and all(bounded(sql) for sql in on_users), on_users
    assert 0 < len(linked(users)) <= 2 * window
    for _ in range(sweeps_for_a_pass(window)):
        enqueue.sweep()
    assert len(linked(users)) == 23


def test_a_user_below_the_mark_is_found_by_the_rolling_window_without_a_rescan(
    settings, sent, window
):
    users = sorted((User.objects.create(username=f"u{i}") for i in range(23)), key=pk_of)
    for _ in range(sweeps_for_a_pass(window)):
        enqueue.sweep()  # the mark and the rolling window have seen every user
    rolling = LinkScan.objects.get().rolling
    # A user whose link never got written (autocommit, the process died between its two
    # writes), committed below the high-water mark, outside the next rolling window.
    straggler = users[-1] if rolling == "" else users[0]
    CubeUser.objects.filter(user=straggler).delete()
    enqueue.sweep()
    assert not linked([straggler]), "found at once: the sweep rescanned the table"
    for _ in range(sweeps_for_a_pass(window)):
        enqueue.sweep()
    assert linked([straggler]), "not found within one pass of the rolling window"
    assert ("push_user", str(straggler.pk)) in sent


def test_dirty_links_users_saved_while_sync_was_off_reading_only_new_ones(settings, window):
    User.objects.create(username="first")
    unlinked.catch_up()
    quiet = quiet_users(settings, 12)
    assert unlinked.catch_up() == 12
    assert linked(quiet) == {u.pk for u in quiet}
    CubeUser.objects.update(state="synced", synced_version=F("dirty_version"))  # nothing owed
    with CaptureQueriesContext(connection) as queries:
        call_command("connectycube_sync", "--dirty", stdout=StringIO())
    on_users = [q["sql"] for q in queries if USERS in q["sql"]]
    assert on_users and all(bounded(sql) for sql in on_users), on_users
    if unlinked.pks_grow():  # above the mark alone: nothing there
        assert len(on_users) <= 2, on_users


# ---- two sweeps at once -----------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_two_sweeps_racing_never_hand_the_same_row_over_twice(postgres_db, sent):
    owe(40, "race")
    assert enqueue.flush(timeout=60)  # the saves' own enqueues, published in the background
    sent.clear()
    barrier = threading.Barrier(2)
    errors = []

    def after_the_selection(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.startswith("SELECT") and "enqueued_at" in sql and "ORDER BY" in sql:
            # Both sweeps have chosen their rows before either claims them.
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=3)  # broken: the other waits on our lock, as it should
        return result

    def sweep():
        try:
            with connection.execute_wrapper(after_the_selection):
                enqueue.sweep()
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    handed = [user for _, user in sent]
    assert len(handed) == len(set(handed)) == 40


@pytest.mark.usefixtures("no_broker")
@pytest.mark.django_db(transaction=True)
def test_dirty_pushes_users_saved_while_sync_was_off(connectycube_emulator, settings):
    User.objects.create(username="early")
    call_command("connectycube_sync", "--dirty", stdout=StringIO())
    quiet_users(settings, 3)
    out = StringIO()
    call_command("connectycube_sync", "--dirty", stdout=out)
    assert "3 created" in out.getvalue()
    assert len(connectycube_emulator.users) == 4
