"""The background publisher (``ENQUEUE = "background"``, the default): saves only queue the
publish; a per-process thread sends it in batches (one ``push_batch`` message for many saves),
coalescing repeats, surviving forks and flushing at exit.
"""

from __future__ import annotations

import os
import select
import threading
import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from django_connectycube.models import CubeUser
from django_connectycube.sync import enqueue, publisher, tasks
from django_connectycube.sync.publisher import Publisher

User = get_user_model()


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """What reached ``apply_async``: (task, arg, name of the thread that published it); the
    arguments of a ``push_batch`` as ``"push_user:1,2"``."""
    calls: list[tuple[str, str, str]] = []

    def fake_apply_async(self: Any, args: Any = (), kwargs: Any = None, **options: Any) -> None:
        arg = f"{args[0]}:{','.join(map(str, args[1]))}" if len(args) == 2 else str(args[0])
        calls.append((self.name.rsplit(".", 1)[-1], arg, threading.current_thread().name))

    monkeypatch.setattr("celery.app.task.Task.apply_async", fake_apply_async)
    return calls


def pushed(sent: list[tuple[str, str, str]]) -> list[str]:
    """The users pushed, whether one message each or in ``push_batch`` messages."""
    pks: list[str] = []
    for task, arg, _ in sent:
        if task == "push_user":
            pks.append(arg)
        elif task == "push_batch" and arg.startswith("push_user:"):
            pks += arg.split(":", 1)[1].split(",")
    return pks


class Recorder:
    """A ``send`` for a standalone :class:`Publisher`, optionally held until released."""

    def __init__(self, hold: bool = False) -> None:
        self.calls: list[tuple[str, Any, str | None, str]] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        if not hold:
            self.release.set()

    def __call__(self, task_name: str, args: list[Any], using: str | None) -> bool:
        self.entered.set()
        assert self.release.wait(5)
        self.calls.append((task_name, args, using, threading.current_thread().name))
        return True


@pytest.mark.django_db(transaction=True)
def test_save_queues_and_the_thread_publishes(background_enqueue, sent):
    user = User.objects.create(username="bg")  # autocommit: the on-commit callback runs now
    assert enqueue.flush()
    assert [(task, arg) for task, arg, _ in sent] == [("push_user", str(user.pk))]
    assert sent[0][2] == "connectycube-publisher"  # not the saving thread

    link_id = CubeUser.objects.get(user=user).pk
    user.delete()
    assert enqueue.flush()
    assert [(task, arg) for task, arg, _ in sent[1:]] == [("delete_remote_user", str(link_id))]


@pytest.mark.django_db(transaction=True)
def test_quick_saves_while_the_thread_is_busy_become_one_push(
    background_enqueue, sent, monkeypatch
):
    record = tasks.push_user.apply_async  # the `sent` fake, bound
    gate = threading.Event()

    def held(*args: Any, **kwargs: Any) -> None:
        gate.wait(5)  # the broker is slow: saves pile up in the queue meanwhile
        record(*args, **kwargs)

    monkeypatch.setattr(tasks.push_user, "apply_async", held)
    first = User.objects.create(username="first")
    user = User.objects.create(username="busy")
    for i in range(10):
        user.first_name = f"B{i}"
        user.save()
    gate.set()
    assert enqueue.flush()
    pushes = pushed(sent)
    assert pushes.count(str(first.pk)) == 1
    assert pushes.count(str(user.pk)) <= 2  # its create may have gone out alone; the rest, once
    assert CubeUser.objects.get(user=user).dirty_version == 11  # every save was still recorded


@pytest.mark.django_db(transaction=True)
def test_a_loop_of_saves_costs_the_saving_process_one_publish(background_enqueue, sent):
    users = [User.objects.create(username=f"loop{i}") for i in range(20)]
    assert enqueue.flush()
    assert sorted(pushed(sent), key=int) == [str(u.pk) for u in users]
    assert len(sent) < 5  # one message per batch, not one per save
    assert "push_batch" in [task for task, _, _ in sent]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("count", [1, 3])
def test_broker_failure_in_the_thread_leaves_the_rows_to_the_sweep(
    background_enqueue, monkeypatch, caplog, count
):
    def broken(*args: Any, **kwargs: Any) -> None:
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr("celery.app.task.Task.apply_async", broken)
    users = [User.objects.create(username=f"offline{i}") for i in range(count)]
    assert enqueue.flush()
    for link in CubeUser.objects.filter(user__in=users):
        assert link.state == "pending" and link.is_dirty
        assert link.enqueued_at is None  # visible to the sweep at once
    assert CubeUser.objects.filter(user__in=users).count() == count
    assert "sweep will push it" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_batch_message_is_pushed_on_its_worker_without_a_second_hop(connectycube_emulator, sent):
    users = [User.objects.create(username=f"batch{i}") for i in range(3)]
    sent.clear()
    assert tasks.push_batch.apply(args=("push_user", [u.pk for u in users])).get() == {"created": 3}
    assert sent == []  # nothing published again: the worker pushed them itself
    assert set(CubeUser.objects.values_list("state", flat=True)) == {"synced"}
    assert sorted(u["login"] for u in connectycube_emulator.users) == [u.username for u in users]

    links = [CubeUser.objects.get(user=u).pk for u in users[:2]]
    User.objects.filter(pk__in=[u.pk for u in users[:2]]).delete()
    sent.clear()
    assert tasks.push_batch.apply(args=("delete_remote_user", links)).get() == {"deleted": 2}
    assert sent == []
    assert [u["login"] for u in connectycube_emulator.users] == [users[2].username]
    with pytest.raises(ValueError, match="cannot run"):
        tasks.push_batch.apply(args=("send_password_reset", ["a@example.com"])).get()


@pytest.mark.django_db(transaction=True)
def test_eager_celery_publishes_inside_the_callback(background_enqueue, sent):
    conf = tasks.push_user.app.conf
    # The name the project's settings use (namespace "CELERY"): Celery 5.4 ignores the bare
    # attribute while the namespaced key is set.
    was = conf.CELERY_TASK_ALWAYS_EAGER
    conf.CELERY_TASK_ALWAYS_EAGER = True
    try:
        user = User.objects.create(username="eager")
    finally:
        conf.CELERY_TASK_ALWAYS_EAGER = was
    assert [(task, arg) for task, arg, _ in sent] == [("push_user", str(user.pk))]
    assert sent[0][2] == threading.current_thread().name


@pytest.mark.django_db(transaction=True)
def test_immediate_setting_publishes_inside_the_callback(settings, sent):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "ENQUEUE": "immediate"}
    user = User.objects.create(username="now")
    assert [(task, arg) for task, arg, _ in sent] == [("push_user", str(user.pk))]
    assert sent[0][2] == threading.current_thread().name


def test_duplicates_in_one_batch_coalesce_in_first_seen_order():
    send = Recorder(hold=True)
    pub = Publisher(send, interval=0)
    pub.submit("push_user", 0, None)
    assert send.entered.wait(5)  # the thread is busy with the first message
    for pk in (1, 2, 1, 1, 2, 3):
        pub.submit("push_user", pk, None)
    pub.submit("delete_remote_user", 1, None)  # another task for the same number: kept
    pub.submit("push_user", 4, "other")  # another database: its own send
    send.release.set()
    assert pub.flush()
    assert [(t, a, db) for t, a, db, _ in send.calls] == [
        ("push_user", [0], None),
        ("push_user", [1, 2, 3], None),
        ("delete_remote_user", [1], None),
        ("push_user", [4], "other"),
    ]


class Interval:
    """The publisher's pause, held by the test: the interval ends when the test says so."""

    def __init__(self) -> None:
        self.asked: list[float] = []
        self.waiting = threading.Event()
        self.ends = threading.Event()

    def __call__(self, wake: threading.Event, seconds: float) -> bool:
        self.asked.append(seconds)
        self.waiting.set()
        assert self.ends.wait(30)
        return False  # the interval ran out; nobody woke the thread


def calls_become(send: Recorder, count: int) -> list[Any]:
    """The published batches once there are ``count`` of them (bounded, never timed)."""
    deadline = time.monotonic() + 30
    while len(send.calls) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return [a for _, a, _, _ in send.calls]


def test_a_busy_process_publishes_once_per_interval():
    now = [100.0]
    interval = Interval()
    send = Recorder()
    pub = Publisher(send, interval=0.5, clock=lambda: now[0], pause=interval)
    pub.submit("push_user", 0, None)  # after a quiet moment: out at once
    assert calls_become(send, 1) == [[0]]
    assert not interval.asked
    now[0] += 0.1
    for pk in range(1, 6):
        pub.submit("push_user", pk, None)
    assert interval.waiting.wait(30)  # the rest waits for what is left of the interval
    assert interval.asked == [pytest.approx(0.4)]
    assert [a for _, a, _, _ in send.calls] == [[0]]
    now[0] += 0.4
    interval.ends.set()  # no flush: the interval alone ends the batch
    assert calls_become(send, 2) == [[0], [1, 2, 3, 4, 5]]


def test_flush_does_not_wait_for_the_interval():
    send = Recorder()
    pub = Publisher(send, interval=3600)  # an interval no test outlives: only a flush ends it
    pub.submit("push_user", 1, None)
    assert pub.flush(timeout=60)
    pub.submit("push_user", 2, None)  # within the interval: waits for it, or for a flush
    assert pub.flush(timeout=60)
    assert [a for _, a, _, _ in send.calls] == [[1], [2]]


def test_a_failing_send_does_not_kill_the_thread_and_triggers_cleanup():
    cleanups: list[str] = []
    calls: list[Any] = []

    def send(task_name: str, args: list[Any], using: str | None) -> bool:
        (arg,) = args
        calls.append(arg)
        if arg == "boom":
            raise RuntimeError("unexpected")
        return arg != "refused"

    pub = Publisher(send, after_failure=lambda: cleanups.append("closed"))
    pub.submit("push_user", "boom", None)
    assert pub.flush()
    pub.submit("push_user", "refused", None)
    assert pub.flush()
    pub.submit("push_user", "fine", None)
    assert pub.flush()
    assert calls == ["boom", "refused", "fine"]
    assert cleanups == ["closed", "closed"]  # once per batch with a failure, not after success


def test_flush_without_anything_queued_returns_at_once():
    assert Publisher(Recorder()).flush(timeout=0.01)


def test_flush_times_out_while_the_broker_hangs():
    send = Recorder(hold=True)
    pub = Publisher(send)
    pub.submit("push_user", 1, None)
    assert pub.flush(timeout=0.05) is False
    send.release.set()
    assert pub.flush()


def test_a_changed_pid_starts_a_fresh_queue_and_thread():
    send = Recorder()
    pub = Publisher(send)
    pub.submit("push_user", 1, None)
    assert pub.flush()
    parent_queue, parent_thread = pub._queue, pub._thread
    pub._pid = -1  # what a forked child sees: the recorded pid is the parent's
    pub.submit("push_user", 2, None)
    assert pub.flush()
    assert pub._queue is not parent_queue
    assert pub._thread is not parent_thread and pub._thread.is_alive()
    assert [a for _, a, _, _ in send.calls] == [[1], [2]]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_publishes_from_its_own_thread():
    read_end, write_end = os.pipe()

    def send(task_name: str, args: list[Any], using: str | None) -> bool:
        os.write(write_end, f"{os.getpid()}:{args[0]}\n".encode())
        return True

    pub = Publisher(send)
    pub.submit("push_user", "parent", None)  # the parent's thread is running before the fork
    assert pub.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            pub.submit("push_user", "child", None)
            code = 0 if pub.flush(5) else 2
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert select.select([read_end], [], [], 5)[0]
        lines = os.read(read_end, 4096).decode().split()
    finally:
        os.close(read_end)
    assert lines == [f"{os.getpid()}:parent", f"{pid}:child"]


def test_exit_hook_is_registered_once_and_flushes(monkeypatch):
    hooks: list[Any] = []
    monkeypatch.setattr(publisher.atexit, "register", hooks.append)
    send = Recorder(hold=True)
    pub = Publisher(send)
    pub.submit("push_user", 1, None)
    pub.submit("push_user", 2, None)
    assert hooks == [pub._flush_at_exit]
    send.release.set()
    hooks[0]()  # what the interpreter runs at exit
    assert [a for _, args, _, _ in send.calls for a in args] == [1, 2]
