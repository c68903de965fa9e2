"""save_overhead: what the app adds to ``User.save()``, against the floor a durable outbox costs.

Ways of saving one existing user, each in its own ``atomic()`` block (the shape of a view's save;
the on-commit callbacks run inside the timing), in interleaved blocks in one process:

* bare: ``user.save()`` with the app's receivers disconnected ("app not installed");
* floor: the bare save plus one hand-written ``UPDATE`` of a small indexed row in the same
  transaction: no durable outbox can cost less than this extra single-row write;
* app: ``user.save()`` with the app's receivers and default settings (it marks the ``CubeUser``
  row owed and, after commit, hands ``push_user`` to the publisher thread);
* immediate: the app with ``ENQUEUE = "immediate"`` (``apply_async`` inside the on-commit
  callback), for comparison with the default.

Two patterns against what a Django developer would write instead, "plain": a ``post_save``
receiver calling ``transaction.on_commit(lambda: push_user.delay(pk))``. Both are measured as
CPU time of the whole process (the publisher thread included), plus the CPU a worker spends on
each message besides the push itself (the task run with the push stubbed: a batch message's
dispatch, or re-publishing), per save:

* request pace: one save of one user, then a pause of ``REQUEST_PACE`` (a request at a time);
* distinct users: saves of different users back to back (a bulk edit, a command's loop).

Blocks rotate their order every round; each block is warmed up once before any is recorded; the
GC is collected before a block and held off inside it; the publisher thread is drained at the
end of every app block and the wait is charged to that block. Each runs on SQLite (in memory:
the save's own Python cost, no disk) and PostgreSQL, with the in-memory broker and with Redis (a
throwaway queue nobody consumes, purged afterwards). Goal: the app at most 1.1 times the floor's
median, and its p99 at most 1.5 times the floor's p99.

    python -m benchmarks.save_overhead [--quick] [--db sqlite|postgres] [--broker memory|redis]
                                       [--profile] [--parts] [--no-patterns]

``BENCH_PG_NAME`` names the PostgreSQL database the run creates and drops, ``BENCH_REDIS_URL``
the Redis database of the throwaway queue.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from benchmarks._common import (
    REDIS_URL,
    Row,
    child_env,
    median,
    percentile,
    print_rows,
    purge_redis_queue,
    rows_to_json,
    run_child,
    setup_django,
    throwaway_postgres,
)

MEDIAN_GOAL = 1.1
P99_GOAL = 1.5
NAME = "save_overhead"
MODULE = "benchmarks.save_overhead"
MODES = ("bare", "floor", "app", "immediate", "orm")
#: The comparisons beside the default: why the publisher thread and the compiled statement stay.
VARIANTS = {
    "immediate": 'app save, ENQUEUE="immediate"',
    "orm": "app save, link UPDATE compiled per save",
}
#: ``--parts``: the app with one part swapped out, to see what that part costs.
PARTS = {
    "floor-write": "app save with the floor's UPDATE instead of the link's",
    "no-eager-lookup": "app save without Celery's task_always_eager lookup",
}
WARM_USERS = 64
#: What separates the app from the floor in a profile: the save itself, each statement, the
#: app's receiver and callback, Django's signal and on-commit machinery, Celery.
PROFILED = r"models/base.py|backends/utils|django_connectycube/|dispatch/|db/transaction|celery/"


#: Seconds between two saves of the request-pace pattern.
REQUEST_PACE = 0.25
#: Different users saved back to back in one block of the distinct-users pattern.
DISTINCT_USERS = 200
PLAIN_UID = "benchmarks.plain_push"


def _plain_receiver(connect: bool) -> None:
    """What a Django developer would write instead of the app: ``post_save`` then, after
    commit, ``push_user.delay(pk)``."""
    from django.conf import settings
    from django.db import transaction
    from django.db.models.signals import post_save

    from django_connectycube.sync import tasks

    def plain(sender: Any, instance: Any, **kwargs: Any) -> None:
        transaction.on_commit(lambda pk=instance.pk: tasks.push_user.delay(pk))

    if connect:
        post_save.connect(
            plain, sender=settings.AUTH_USER_MODEL, dispatch_uid=PLAIN_UID, weak=False
        )
    else:
        post_save.disconnect(sender=settings.AUTH_USER_MODEL, dispatch_uid=PLAIN_UID)


@contextmanager
def _published() -> Iterator[list[tuple[Any, tuple[Any, ...]]]]:
    """Record every message published meanwhile (task and arguments), and still publish it."""
    from celery.app.task import Task

    original = Task.apply_async
    seen: list[tuple[Any, tuple[Any, ...]]] = []

    def recording(self: Any, args: Any = None, *rest: Any, **options: Any) -> Any:
        seen.append((self, tuple(args or ())))
        return original(self, args, *rest, **options)

    with _swap(Task, "apply_async", recording):
        yield seen


def _worker_cpu(messages: list[tuple[Any, tuple[Any, ...]]]) -> float:
    """CPU seconds a worker spends on these messages besides the pushes themselves: each task
    run with the push (and a batch's pool) stubbed, anything it publishes published."""
    from django_connectycube.sync import backfill_pool
    from django_connectycube.sync import push as sync

    stubs = (
        _swap(sync, "push_user", lambda *a, **k: sync.UNCHANGED),
        _swap(sync, "delete_remote_user", lambda *a, **k: sync.GONE),
        _swap(backfill_pool, "push_many", lambda pks, **k: Counter({"unchanged": len(pks)})),
    )
    with stubs[0], stubs[1], stubs[2]:
        t0 = time.process_time()
        for task, args in messages:
            task.apply(args)
        return time.process_time() - t0


def _pattern_cpu(
    mode: str, save: Callable[[int], Any], first: int, count: int, pace: float
) -> float:
    """CPU seconds per save of ``count`` saves in ``mode`` (``app`` or ``plain``), the
    process's (every thread) and its messages' share of a worker's."""
    from django_connectycube.sync import enqueue

    _receivers(mode == "app")
    _plain_receiver(mode == "plain")
    try:
        with _published() as messages:
            gc.collect()
            t0 = time.process_time()
            for i in range(first, first + count):
                save(i)
                if pace:
                    time.sleep(pace)
            enqueue.flush()
            spent = time.process_time() - t0
        return (spent + _worker_cpu(messages)) / count
    finally:
        _plain_receiver(False)
        _receivers(True)


def patterns(
    label: str, one_user: Callable[[int], Any], distinct: Callable[[int], Any], rounds: int
) -> list[Row]:
    """The request-pace and distinct-users patterns, app against plain, interleaved."""
    pace_saves = 8 if rounds < 12 else 20
    plans = {
        "request pace": (one_user, pace_saves, REQUEST_PACE),
        "distinct users": (distinct, DISTINCT_USERS, 0.0),
    }
    rows = []
    counter = 0
    for pattern, (save, count, pace) in plans.items():
        cpu: dict[str, list[float]] = {"app": [], "plain": []}
        for mode in cpu:  # warm-up
            _pattern_cpu(mode, save, counter, min(count, 20), pace and 0.01)
            counter += count
        for r in range(max(rounds // 2, 2)):
            for mode in ("app", "plain") if r % 2 == 0 else ("plain", "app"):
                cpu[mode].append(_pattern_cpu(mode, save, counter, count, pace))
                counter += count
        app, plain = median(cpu["app"]) * 1e6, median(cpu["plain"]) * 1e6
        n = len(cpu["app"]) * count
        rows.append(
            Row(
                NAME,
                f"{label}: {pattern}, CPU per save vs plain Celery",
                app,
                "µs",
                plain,
                "post_save → on_commit(push_user.delay)",
                app / plain,
                "≤ 1.0",
                app / plain <= 1.0,
                f"process + worker dispatch CPU, median of blocks; n={n} saves per mode",
            )
        )
    return rows


def _receivers(connect: bool) -> None:
    from django.conf import settings
    from django.db.models.signals import post_save

    from django_connectycube.sync.receivers import connect_receivers, user_saved

    if connect:
        connect_receivers()
    else:
        post_save.disconnect(
            user_saved,
            sender=settings.AUTH_USER_MODEL,
            dispatch_uid="django_connectycube.user_saved",
        )


def _floor_table(count: int) -> None:
    """A small table with an indexed (primary key) row per warm user: the floor's extra write."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_floor (id integer PRIMARY KEY, n integer NOT NULL)")
        cursor.executemany(
            "INSERT INTO bench_floor (id, n) VALUES (%s, 0)", [(i,) for i in range(count)]
        )


def _floor_write(key: int) -> int:
    """The floor's extra write: one hand-written ``UPDATE`` of a small indexed row."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("UPDATE bench_floor SET n = n + 1 WHERE id = %s", [key % WARM_USERS])
        return int(cursor.rowcount)


@contextmanager
def _swap(owner: Any, name: str, value: Any) -> Iterator[None]:
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


def _mode(mode: str) -> AbstractContextManager[Any]:
    """What a comparison mode changes in the app for the duration of its block."""
    from django.conf import settings
    from django.test.utils import override_settings

    from django_connectycube.models.state import CubeUserQuerySet
    from django_connectycube.sync import enqueue

    def by_the_orm(self: Any, user_pk: Any, now: Any, *, using: str) -> int:
        return int(self.using(using).filter(user_id=user_pk).mark_owed(now))

    def floor_write(self: Any, user_pk: Any, now: Any, *, using: str) -> int:
        return _floor_write(user_pk)

    if mode == "immediate":
        return override_settings(CONNECTYCUBE={**settings.CONNECTYCUBE, "ENQUEUE": "immediate"})
    if mode == "orm":
        return _swap(CubeUserQuerySet, "mark_user_owed", by_the_orm)
    if mode == "floor-write":
        return _swap(CubeUserQuerySet, "mark_user_owed", floor_write)
    if mode == "no-eager-lookup":
        return _swap(enqueue, "_publish_in_background", lambda: True)
    return nullcontext()


class Block:
    """One interleaved block: ``count`` saves of one mode, each timed, with the GC held off."""

    def __init__(self, mode: str, save: Callable[[int], Any], first: int, count: int) -> None:
        self.mode, self.save, self.first, self.count = mode, save, first, count

    def run(self) -> list[float]:
        from django_connectycube.sync import enqueue

        _receivers(self.mode not in ("bare", "floor"))
        clock = time.perf_counter
        out = []
        with _mode(self.mode):
            # Collect before the block, never inside it: a collection would land in whichever
            # mode happened to allocate past the threshold, not in the one that made the garbage.
            gc.collect()
            gc.disable()
            try:
                for i in range(self.first, self.first + self.count):
                    t0 = clock()
                    self.save(i)
                    out.append(clock() - t0)
                # What the publisher thread still holds is this block's work: charge the wait
                # for it to the block's last save, so no later block pays for it.
                t0 = clock()
                enqueue.flush()
                out[-1] += clock() - t0
            finally:
                gc.enable()
        return out


def _profile(save: Callable[[int], Any], floor: Callable[[int], Any]) -> None:
    """cProfile 2,000 app saves and 2,000 floor saves; print where the app's share goes."""
    from django_connectycube.sync import enqueue

    text = io.StringIO()
    for name, op, connect in (("app", save, True), ("floor", floor, False)):
        _receivers(connect)
        prof = cProfile.Profile()
        prof.enable()
        for i in range(2000):
            op(i)
        enqueue.flush()
        prof.disable()
        text.write(f"--- 2,000 {name} saves, cumulative\n")
        stats = pstats.Stats(prof, stream=text).sort_stats("cumulative")
        stats.print_stats(PROFILED, 24)
    _receivers(True)
    sys.stderr.write(text.getvalue())


def measure(
    db: str,
    broker: str,
    rounds: int,
    block: int,
    profile: bool,
    parts: bool = False,
    with_patterns: bool = True,
) -> list[Row]:
    """Child process: interleaved blocks of bare, floor and app saves, each in ``atomic()``."""
    setup_django()
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from django_connectycube.models import CubeUser

    User = get_user_model()
    users = [
        User.objects.create(username=f"warm{i}", email=f"w{i}@example.com")
        for i in range(WARM_USERS)
    ]
    _floor_table(len(users))

    def change(i: int) -> Any:
        user = users[i % len(users)]
        user.first_name = f"F{i}"
        return user

    def bare(i: int) -> None:
        user = change(i)
        with transaction.atomic():
            user.save()

    def floor(i: int) -> None:
        user = change(i)
        with transaction.atomic():
            user.save()
            _floor_write(i)

    modes = (*MODES, *PARTS) if parts else MODES
    saves = {mode: floor if mode == "floor" else bare for mode in modes}
    samples: dict[str, list[float]] = {m: [] for m in modes}
    counter = 0
    for name in modes:  # warm every path (connections, broker, caches, the publisher thread)
        Block(name, saves[name], counter, 200).run()
        counter += 200
    for r in range(rounds):
        for name in modes[r % len(modes) :] + modes[: r % len(modes)]:
            samples[name] += Block(name, saves[name], counter, block).run()
            counter += block
    _receivers(True)

    label = f"{'SQLite' if db == 'sqlite' else 'PostgreSQL'} + {broker} broker"
    stat = {m: (median(samples[m]) * 1e6, percentile(samples[m], 99) * 1e6) for m in modes}
    n = rounds * block
    floor_med, floor_p99 = stat["floor"]
    rows = []
    for index, (name, goal) in enumerate((("median", MEDIAN_GOAL), ("p99", P99_GOAL))):
        value, base, bare_stat = stat["app"][index], stat["floor"][index], stat["bare"][index]
        rows.append(
            Row(
                NAME,
                f"{label}: app save {name} vs floor",
                value,
                "µs",
                base,
                "save + 1 UPDATE in atomic()",
                value / base,
                f"≤ {goal}",
                value / base <= goal,
                f"bare save {bare_stat:.0f} µs; floor/bare {base / bare_stat:.2f}; n={n} per mode",
            )
        )
    for mode, what in {**VARIANTS, **(PARTS if parts else {})}.items():
        value, p99 = stat[mode]
        rows.append(
            Row(
                NAME,
                f"{label}: {what}, median vs floor",
                value,
                "µs",
                floor_med,
                "save + 1 UPDATE in atomic()",
                value / floor_med,
                "(comparison)",
                note=f"p99 {p99:.0f} µs, {p99 / floor_p99:.2f} times the floor's",
            )
        )
    if with_patterns:
        crowd = [
            User.objects.create(username=f"crowd{i}", email=f"c{i}@example.com")
            for i in range(DISTINCT_USERS)
        ]

        def distinct(i: int) -> None:
            user = crowd[i % len(crowd)]
            user.first_name = f"D{i}"
            with transaction.atomic():
                user.save()

        rows += patterns(label, bare, distinct, rounds)
    if profile:
        _profile(bare, floor)
    CubeUser.objects.all().delete()
    return rows


def _one(db: str, broker: str, args: list[str]) -> list[Row]:
    queue = f"cube-bench-{uuid.uuid4().hex[:10]}"
    broker_url = REDIS_URL if broker == "redis" else None
    ctx = throwaway_postgres() if db == "postgres" else nullcontext(None)
    with ctx as url:
        env = child_env(database_url=url, broker_url=broker_url, task_queue=queue)
        try:
            return run_child(MODULE, [*args, "--db", db, "--broker", broker], env, timeout=900)
        finally:
            if broker == "redis":
                purge_redis_queue(queue)


def run(
    quick: bool = False,
    dbs: tuple[str, ...] = ("sqlite", "postgres"),
    brokers: tuple[str, ...] = ("memory", "redis"),
    extra: tuple[str, ...] = (),
) -> list[Row]:
    rounds, block = (4, 150) if quick else (12, 400)
    args = ["--child", "--rounds", str(rounds), "--block", str(block), *extra]
    return [row for db in dbs for broker in brokers for row in _one(db, broker, args)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (~30 s in all)")
    parser.add_argument("--db", choices=["sqlite", "postgres"], action="append")
    parser.add_argument("--broker", choices=["memory", "redis"], action="append")
    parser.add_argument("--profile", action="store_true", help="cProfile 2,000 app saves")
    parser.add_argument("--parts", action="store_true", help="also the app with parts swapped out")
    parser.add_argument(
        "--no-patterns",
        action="store_true",
        help="skip the request-pace and distinct-users patterns against plain Celery",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--block", type=int, default=400)
    args = parser.parse_args(argv)
    if args.child:
        rows = measure(
            args.db[0],
            args.broker[0],
            args.rounds,
            args.block,
            args.profile,
            args.parts,
            not args.no_patterns,
        )
        print(rows_to_json(rows))
        return
    dbs = tuple(args.db or ("sqlite", "postgres"))
    brokers = tuple(args.broker or ("memory", "redis"))
    flags = ("--profile", "--parts", "--no-patterns")
    extra = tuple(flag for flag in flags if getattr(args, flag[2:].replace("-", "_")))
    print_rows(run(args.quick, dbs, brokers, extra))


if __name__ == "__main__":
    main()
