"""Pushing many users from one process: a thread pool fed one chunk of users at a time.

``connectycube_sync`` runs it over every user (or the owed ones, or given ones); a backfill
shard task runs it over the owed users of one pk range, so a backfill spread over Celery
workers is the very engine a one-process backfill is, run once per shard. Users still without
a remote identity go through the batched create path (:mod:`.backfill`: a few statements per
chunk); the rest, and rows another worker holds, one by one (:func:`.sync.push_user`). Every
push runs under the failure policy, so a failure leaves its row owed with a due time.

Nothing here enqueues: splitting a backfill into shards is computed here, handing the shards
to Celery is :func:`.enqueue.enqueue_backfill`'s.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import Any

from django.db import connection, connections
from django.db.models import Q
from django.utils import timezone

from django_connectycube.client import ConnectyCubeClient
from django_connectycube.models import CubeUser
from django_connectycube.sync import backfill, policy
from django_connectycube.sync import push as sync

__all__ = ["LOOKUP_CHUNK", "owed_in_range", "push_many", "shard_ranges"]

#: Users per batch of the create path: one ``GET /users/v2`` look-up, a few statements.
LOOKUP_CHUNK = backfill.BATCH_SIZE
#: Rows read from the database at a time when listing pks.
READ_CHUNK = 500


def push_many(
    pks: Iterable[Any],
    *,
    client: ConnectyCubeClient,
    concurrency: int,
    on_progress: Callable[[int], None] | None = None,
) -> Counter[str]:
    """Push these users with ``concurrency`` threads; the outcomes counted (``created``,
    ``retrying``, ``failed`` …). ``on_progress(done)`` is called as pushes finish."""
    if connection.vendor == "sqlite" and connection.is_in_memory_db():  # type: ignore[attr-defined]
        concurrency = 1  # shared-cache SQLite locks whole tables: threads would collide
    counts: Counter[str] = Counter()
    done = 0

    def work(pk: Any, absent: frozenset[str]) -> str:
        _discard_broken_connection()
        push = lambda: sync.push_user(pk, client=client, absent=absent)  # noqa: E731
        return policy.attempt(Q(user_id=pk), push).outcome

    def create(batch: backfill.Batch, link: CubeUser) -> str:
        _discard_broken_connection()
        return batch.run(link)

    # Finished pushes arrive here as they finish (``concurrent.futures.wait`` would walk every
    # pending future for each one that finishes).
    finished: queue.SimpleQueue[Future[str]] = queue.SimpleQueue()
    in_flight = 0

    def collect(*, block: bool) -> None:
        """Count the pushes finished so far; with ``block``, wait for one first."""
        nonlocal done, in_flight
        taken = []
        with contextlib.suppress(queue.Empty):
            taken.append(finished.get(block=block))
            while True:
                taken.append(finished.get_nowait())
        for future in taken:
            counts[future.result()] += 1
        in_flight -= len(taken)
        done += len(taken)
        if taken and on_progress is not None:
            on_progress(done)

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="cube-sync") as pool:
        for chunk in _chunks(pks, LOOKUP_CHUNK):
            # Users still without a remote identity go through the batched create path (a few
            # statements per chunk); the rest, and rows another worker holds, one by one.
            batch = backfill.claim(chunk, client=client, concurrency=concurrency)
            jobs: list[tuple[Any, ...]] = [(create, batch, link) for link in batch.links]
            jobs += [(work, pk, frozenset()) for pk in batch.others]
            for job in jobs:
                # Bounded (memory stays flat), but with room for a whole chunk, so the pool
                # keeps pushing one chunk while this thread claims the next.
                if in_flight >= LOOKUP_CHUNK + concurrency * 4:
                    collect(block=True)
                pool.submit(*job).add_done_callback(finished.put)
                in_flight += 1
        while in_flight:
            collect(block=True)
        # Each pool thread kept its database connection for the whole run: close them all,
        # one task per thread (the barrier keeps a thread from taking two).
        barrier = threading.Barrier(concurrency)

        def close_own_connections() -> None:
            connections.close_all()
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=10)

        for future in [pool.submit(close_own_connections) for _ in range(concurrency)]:
            future.result()
    return counts


def owed_in_range(first: Any, last: Any) -> Iterator[Any]:
    """The users with a pk in ``[first, last]`` whose link is still owed and due: what a
    backfill shard pushes, and all it pushes again when it is redelivered."""
    now = timezone.now()
    links = (
        CubeUser.objects.filter(
            state=CubeUser.State.PENDING, user__isnull=False, user_id__gte=first, user_id__lte=last
        )
        .retry_due(now)
        .order_by("user_id")
    )
    return links.values_list("user_id", flat=True).iterator(chunk_size=READ_CHUNK)


def shard_ranges(pks: Iterable[Any], total: int, shards: int) -> list[tuple[Any, Any]]:
    """Cut ordered pks into at most ``shards`` contiguous ``(first, last)`` ranges of about
    ``total / shards`` users each (the last may be shorter)."""
    size = max(1, -(-total // max(1, shards)))
    ranges: list[tuple[Any, Any]] = []
    first, count = None, 0
    for pk in pks:  # streamed: a shard's pks are never held in memory
        if count == 0:
            first = pk
        count += 1
        if count == size:
            ranges.append((first, pk))
            count = 0
    if count:
        ranges.append((first, pk))
    return ranges


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _discard_broken_connection() -> None:
    """Keep this thread's database connection across pushes, unless an error broke it.

    (``close_old_connections`` would close it after every user under ``CONN_MAX_AGE = 0``, and
    opening a PostgreSQL connection costs more than a push.)
    """
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and conn.errors_occurred:
            if conn.is_usable():
                conn.errors_occurred = False
            else:
                conn.close()
