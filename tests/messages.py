"""Published Celery messages as the tasks they stand for, for tests that record publishes."""

from __future__ import annotations

from typing import Any


def tasks_in(task_name: str, args: Any) -> list[tuple[str, Any]]:
    """``(short task name, argument)`` for each task a message carries: a ``push_batch`` message
    (a batch a worker runs) carries one per argument, any other message its first argument."""
    short = task_name.rsplit(".", 1)[-1]
    if short == "push_batch":
        batched_task, batch = args
        return [(batched_task, arg) for arg in batch]
    return [(short, args[0])]
