"""Deprecated: the record of owed work is :mod:`.owed`, the hand-off to Celery :mod:`.enqueue`.

Kept so integrators' ``outbox.mark_dirty(user)`` / ``outbox.enqueue_push(pk)`` keep working for
one release; each name warns once where it is used.
"""

from __future__ import annotations

import warnings
from typing import Any

from . import enqueue, owed

_MOVED = {
    "mark_dirty": owed,
    "mark_deleted": owed,
    "link_missing_users": owed,
    "enqueue_push": enqueue,
    "enqueue_delete": enqueue,
    "push_after_commit": enqueue,
    "delete_after_commit": enqueue,
    "flush": enqueue,
    "sweep": enqueue,
}


def __getattr__(name: str) -> Any:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"django_connectycube.outbox.{name} is deprecated; use {module.__name__}.{name}",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(module, name)
