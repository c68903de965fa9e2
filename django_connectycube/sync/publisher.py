"""A per-process background thread that hands Celery messages to the broker off the save path.

Publishing one message costs more than the save that caused it (Celery's ``apply_async``: the
task's options from the project's settings, serialisation, a producer from the pool, a round
trip), so the on-commit callback only puts ``(task_name, arg, using)`` on a queue and returns.
One daemon thread per process drains the queue and publishes.

Why this loses nothing: the row was marked owed inside the saving transaction, before anything
was queued here. A message still queued when the process dies (SIGKILL, ``os._exit`` in a forked
worker) is exactly the "broker was down at commit" case the sweep already covers after
``SWEEP_AFTER``; a publish that fails here clears ``enqueued_at`` so the sweep takes the row at
once (see :func:`django_connectycube.sync.enqueue._send`).

* Batching: a busy process publishes at most once per ``interval`` (0.2 s), everything queued
  meanwhile in one call per task and database; after a quiet moment the first message goes out
  at once. A publish holds the interpreter lock for as long as Celery's ``apply_async`` runs, and
  a saving thread that needs the lock then waits: once per save, a loop of saves would pay every
  publish in full and its slowest saves would wait behind one; once per interval, the share of
  saves that wait stays well below one in a hundred.
* Coalescing: repeats within a batch are dropped, so a burst of saves of one user becomes one
  publish (the push task reads the latest state anyway).
* Fork safety: Celery prefork children and gunicorn workers fork after import; a thread does not
  survive ``fork()`` and a copied queue holds the parent's messages, which the parent publishes
  itself. The recorded pid is compared on every submit and a changed one starts a fresh queue and
  thread in the child.
* Exit: an ``atexit`` hook waits (bounded) for the queue to drain, so a management command or a
  script that saves users and returns still publishes what it owes; :meth:`Publisher.flush` cuts
  the wait short.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("django_connectycube")

__all__ = ["Publisher"]

#: One message to publish: (task name in :mod:`django_connectycube.sync.tasks`, argument, db alias).
Message = tuple[str, Any, "str | None"]
#: Publishes one task per argument (task name, arguments, db alias); returns False when the
#: broker refused any of them (already handled and logged).
SendFunc = Callable[[str, "list[Any]", "str | None"], bool]

EXIT_FLUSH_TIMEOUT = 5.0
#: Seconds between two publishes of a busy process: short next to a push's own round trip to
#: ConnectyCube, long next to one publish (a fraction of a millisecond).
INTERVAL = 0.2


class Publisher:
    """A lazily started, fork-aware publishing thread with a queue in front of it."""

    def __init__(
        self,
        send: SendFunc,
        *,
        after_failure: Callable[[], None] | None = None,
        name: str = "connectycube-publisher",
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        pause: Callable[[threading.Event, float], object] = threading.Event.wait,
    ) -> None:
        # clock and pause (wait on the wake-up event, bounded) are what a test replaces to
        # drive the interval without sleeping.
        self._send = send
        self._clock = clock
        self._pause = pause
        self._after_failure = after_failure
        self._name = name
        self._interval = interval
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._queue: queue.SimpleQueue[Message | threading.Event] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._atexit_registered = False
        if hasattr(os, "register_at_fork"):
            # A fork while another thread held the lock would leave it held forever in the child.
            os.register_at_fork(after_in_child=self._forget_parent)

    def submit(self, task_name: str, arg: Any, using: str | None) -> None:
        """Queue one publish; the only work done on the committing thread."""
        if self._pid != os.getpid():
            self._start()
        self._queue.put((task_name, arg, using))

    def flush(self, timeout: float = EXIT_FLUSH_TIMEOUT) -> bool:
        """Wait until everything queued so far in this process was published (or failed).

        Returns False if that did not happen within ``timeout`` seconds.
        """
        thread = self._thread
        if self._pid != os.getpid() or thread is None:
            return True  # nothing was queued in this process
        if thread is threading.current_thread():
            return True  # called from a send: waiting on ourselves would deadlock
        if not thread.is_alive():  # pragma: no cover - only after interpreter teardown began
            self._publish(self._drain(self._queue, []))
            return True
        done = threading.Event()
        self._queue.put(done)
        self._wake.set()  # publish what is queued now, whatever the interval
        return done.wait(timeout)

    # -- internals -------------------------------------------------------------------------

    def _forget_parent(self) -> None:
        self._lock = threading.Lock()
        self._pid = None
        self._thread = None

    def _start(self) -> None:
        with self._lock:
            pid = os.getpid()
            if self._pid == pid:
                return  # another thread started it meanwhile
            # A new process (first use, or a fork child): the parent's queue and thread are not
            # ours; the parent publishes its own messages.
            self._queue = queue.SimpleQueue()
            self._wake = threading.Event()
            thread = threading.Thread(
                target=self._run, args=(self._queue, self._wake), name=self._name, daemon=True
            )
            thread.start()
            self._thread = thread
            self._pid = pid
            if not self._atexit_registered:
                atexit.register(self._flush_at_exit)
                self._atexit_registered = True

    def _flush_at_exit(self) -> None:
        if not self.flush(EXIT_FLUSH_TIMEOUT):
            logger.warning(
                "Exiting with ConnectyCube messages still unpublished; the sweep will push them."
            )

    @staticmethod
    def _drain(
        q: queue.SimpleQueue[Message | threading.Event], batch: list[Message | threading.Event]
    ) -> list[Message | threading.Event]:
        """Add everything already waiting in ``q`` to ``batch`` without blocking."""
        while True:
            try:
                batch.append(q.get_nowait())
            except queue.Empty:
                return batch

    def _run(self, q: queue.SimpleQueue[Message | threading.Event], wake: threading.Event) -> None:
        last = -self._interval
        while True:
            first = q.get()
            wait = last + self._interval - self._clock()
            if wait > 0 and not isinstance(first, threading.Event):
                self._pause(wake, wait)  # let the batch grow, unless a flush is waiting
            batch = self._drain(q, [first])
            # Cleared after the drain: a flush that set it meanwhile has its marker drained
            # already or next in the queue, which is never waited on.
            wake.clear()
            last = self._clock()
            try:
                self._publish(batch)
            except Exception:  # never let the thread die: later saves still need it
                logger.exception("ConnectyCube background publisher failed on a batch")

    def _publish(self, batch: list[Message | threading.Event]) -> None:
        waiters: list[threading.Event] = []
        # dict keeps first-seen order and drops repeats: ten quick saves of a user, one push.
        messages: dict[Message, None] = {}
        for item in batch:
            if isinstance(item, threading.Event):
                waiters.append(item)
            else:
                messages[item] = None
        groups: dict[tuple[str, str | None], list[Any]] = {}
        for task_name, arg, using in messages:
            groups.setdefault((task_name, using), []).append(arg)
        failed = False
        try:
            for (task_name, using), args in groups.items():
                try:
                    ok = self._send(task_name, args, using)
                except Exception:
                    logger.exception("Could not publish %s%s", task_name, args)
                    ok = False
                failed = failed or not ok
            if failed and self._after_failure is not None:
                self._after_failure()
        finally:
            for waiter in waiters:
                waiter.set()
