"""The browser test's broker: the one the run was given, and only its own keys removed after.

The demo's Celery worker leaves kombu's bindings (``_kombu.binding*``), its queues and pidbox
replies in Redis. The test removes the keys of those kinds that appeared while it ran, in the
database it was pointed at, and nothing else: never a flush, never another database.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

__all__ = ["CELERY_KEY_PATTERNS", "broker_url", "celery_keys_created", "cleaned_up"]

#: Keys Celery and kombu's Redis transport create: bindings, the queues (with their priority
#: variants), unacked bookkeeping, pidbox replies, task results.
CELERY_KEY_PATTERNS = (
    "_kombu.binding*",  # _kombu.binding.<exchange>, newer kombu's _permanent.* and _deadlines
    "celery",
    "celery\x06\x16*",
    "unacked",
    "unacked_index",
    "unacked_mutex",
    "*.reply.celery.pidbox",
    "celery-task-meta-*",
)


def broker_url(environ: Mapping[str, str], fallback: str) -> str:
    """``TEST_BROKER_URL``, else ``CELERY_BROKER_URL``, else ``fallback`` (a Redis URL)."""
    for name in ("TEST_BROKER_URL", "CELERY_BROKER_URL"):
        url = environ.get(name, "")
        if url.startswith(("redis://", "rediss://")):
            return url
    return fallback


def celery_keys_created(before: Iterable[str], after: Iterable[str]) -> list[str]:
    """The Celery/kombu keys in ``after`` that were not in ``before``."""
    existing = set(before)
    return sorted(
        key
        for key in set(after) - existing
        if any(fnmatch.fnmatchcase(key, pattern) for pattern in CELERY_KEY_PATTERNS)
    )


def _keys(client: object) -> set[str]:
    return {key.decode("utf-8", "replace") for key in client.scan_iter(count=500)}  # type: ignore[attr-defined]


@contextmanager
def cleaned_up(url: str) -> Iterator[None]:
    """Remove, on exit, the Celery keys created in ``url``'s database while inside."""
    import redis

    client = redis.Redis.from_url(url)
    before = _keys(client)
    try:
        yield
    finally:
        created = celery_keys_created(before, _keys(client))
        if created:
            client.delete(*created)
        client.close()
