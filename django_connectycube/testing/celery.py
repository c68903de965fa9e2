"""The pytest plugin's Celery isolation: no test sends a task to a real broker unless it asks.

Every test runs with :meth:`celery.Celery.send_task` (through which ``delay()`` and
``apply_async()`` publish) replaced by a recorder, for every Celery app of the process: the sync
tasks a save queues, the password-reset task, and your own tasks are recorded, not published.
So a test suite never fills a developer's Redis, never waits on an unreachable broker, and a
worker someone left running never executes a test's tasks against the wrong database.

``connectycube_celery`` is the recorder: ``.sent`` (what was sent, in order), ``.names()``,
``.run()`` (execute the recorded tasks in this process, like ``task_always_eager``, including
what they send in turn) and ``.clear()``. Tasks Celery runs eagerly (``task_always_eager``)
never reach ``send_task`` and run as before.

A test that needs a real broker and worker opts in with ``@pytest.mark.connectycube_real_broker``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

__all__ = ["REAL_BROKER_MARKER", "CeleryRecorder", "SentTask", "connectycube_celery"]

REAL_BROKER_MARKER = "connectycube_real_broker"

#: The publishing options worth asserting on (the rest are Celery's plumbing).
_KEPT_OPTIONS = ("queue", "countdown", "eta", "expires", "priority", "routing_key")


@dataclass(frozen=True)
class SentTask:
    """One task a test sent: its registered name, arguments and publishing options."""

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    app: Any = field(default=None, repr=False, compare=False)


class CeleryRecorder:
    """Collects what a test sends instead of publishing it, and can run it in-process."""

    def __init__(self) -> None:
        self._sent: list[SentTask] = []
        self._ran = 0

    def record(self, app: Any, name: str, args: Any, kwargs: Any, options: dict[str, Any]) -> Any:
        """Stand-in for ``Celery.send_task``: remember the task, hand back an unsent result."""
        from celery.utils import uuid

        kept = {k: options[k] for k in _KEPT_OPTIONS if options.get(k) is not None}
        self._sent.append(SentTask(name, tuple(args or ()), dict(kwargs or {}), kept, app))
        return app.AsyncResult(options.get("task_id") or uuid())

    @property
    def sent(self) -> list[SentTask]:
        """Everything sent so far (after the app's background publisher has caught up)."""
        _flush_background_publisher()
        return list(self._sent)

    def names(self) -> list[str]:
        """The registered names of the sent tasks, in order."""
        return [task.name for task in self.sent]

    def clear(self) -> None:
        """Forget what was sent so far."""
        _flush_background_publisher()
        self._sent.clear()
        self._ran = 0

    def run(self, *, limit: int = 1000) -> int:
        """Run every sent task not run yet, in order, in this process; returns how many ran.

        Tasks sent while running are run too. Exceptions propagate (``throw=True``), so a
        failing task fails the test.
        """
        ran = 0
        while True:
            pending = self.sent[self._ran :]
            if not pending:
                return ran
            for task in pending:
                if ran >= limit:
                    raise RuntimeError(f"more than {limit} tasks ran: do they send each other?")
                self._ran += 1
                ran += 1
                task.app.tasks[task.name].apply(task.args, task.kwargs, throw=True)


def _flush_background_publisher() -> None:
    """Let the app's publisher thread hand over what it queued (only loaded modules matter)."""
    enqueue = sys.modules.get("django_connectycube.sync.enqueue")
    if enqueue is not None:
        enqueue.flush(10.0)


@pytest.fixture(autouse=True)
def connectycube_celery(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CeleryRecorder | None]:
    """Record every task this test sends instead of publishing it (``None`` with a real
    broker: ``@pytest.mark.connectycube_real_broker``)."""
    if request.node.get_closest_marker(REAL_BROKER_MARKER) is not None:
        yield None
        return
    from celery import Celery

    recorder = CeleryRecorder()

    def send_task(app: Any, name: str, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        return recorder.record(app, name, args, kwargs, options)

    monkeypatch.setattr(Celery, "send_task", send_task)
    try:
        yield recorder
    finally:
        # Whatever the test queued for the background publisher lands here, not on a broker.
        _flush_background_publisher()
