"""save_overhead: what the app adds to ``User.save()``, against the floor a durable outbox costs.

Three ways of saving one existing user, in interleaved blocks in one process (same machine load):

* bare: ``user.save()`` with the app's receivers disconnected ("app not installed");
* floor: the bare save plus one hand-written ``UPDATE`` of a small indexed row, both in one
  ``atomic()`` block: no durable outbox can cost less than this extra single-row write;
* app: ``user.save()`` with the app's receivers and default settings (it marks the ``CubeUser``
  row owed and, after commit, publishes ``push_user``).

Each runs on SQLite and PostgreSQL, with the in-memory broker and with Redis (a throwaway queue
nobody consumes, purged afterwards). Goal: app at most 1.1 times the floor's median, and its
p99 at most 1.5 times the floor's p99.

    python -m benchmarks.save_overhead [--quick] [--db sqlite|postgres] [--broker memory|redis]
                                       [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
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
MODES = ("bare", "floor", "app")


def _receivers(connect: bool) -> None:
    from django.conf import settings
    from django.db.models.signals import post_save

    from django_connectycube.receivers import connect_receivers, user_saved

    if connect:
        connect_receivers()
    else:
        post_save.disconnect(
            user_saved,
            sender=settings.AUTH_USER_MODEL,
            dispatch_uid="django_connectycube.user_saved",
        )


def _timed(op: Callable[[int], Any], n: int, start: int) -> list[float]:
    out = []
    clock = time.perf_counter
    for i in range(start, start + n):
        t0 = clock()
        op(i)
        out.append(clock() - t0)
    return out


def _floor_table() -> None:
    """A small table with an indexed (primary key) row per warm user: the floor's extra write."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_floor (id integer PRIMARY KEY, n integer NOT NULL)")
        cursor.executemany(
            "INSERT INTO bench_floor (id, n) VALUES (%s, 0)", [(i,) for i in range(64)]
        )


def measure(db: str, broker: str, rounds: int, block: int, profile: bool) -> list[Row]:
    """Child process: interleaved blocks of bare, floor and app update saves."""
    setup_django()
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from django_connectycube import enqueue
    from django_connectycube.models import CubeUser

    User = get_user_model()
    users = [User.objects.create(username=f"warm{i}", email=f"w{i}@example.com") for i in range(64)]
    _floor_table()

    def update(i: int) -> None:
        user = users[i % len(users)]
        user.first_name = f"F{i}"
        user.save()

    def floor(i: int) -> None:
        with transaction.atomic():
            update(i)
            with connection.cursor() as cursor:
                cursor.execute("UPDATE bench_floor SET n = n + 1 WHERE id = %s", [i % len(users)])

    @contextmanager
    def mode(name: str) -> Iterator[Callable[[int], Any]]:
        _receivers(name == "app")
        yield floor if name == "floor" else update

    samples: dict[str, list[float]] = {m: [] for m in MODES}
    counter = 0
    for name in MODES:  # warm every path (connections, broker, caches)
        with mode(name) as op:
            _timed(op, 30, counter)
            counter += 30
    for r in range(rounds):
        order = MODES[r % 3 :] + MODES[: r % 3]
        for name in order:
            with mode(name) as op:
                samples[name] += _timed(op, block, counter)
                counter += block
    _receivers(True)
    enqueue.flush()

    label = f"{'SQLite' if db == 'sqlite' else 'PostgreSQL'} + {broker} broker"
    stats = {
        (m, s): fn(samples[m]) * 1e6
        for m in MODES
        for s, fn in (("median", median), ("p99", lambda v: percentile(v, 99)))
    }
    rows = []
    for stat, goal in (("median", MEDIAN_GOAL), ("p99", P99_GOAL)):
        app, fl, bare = stats["app", stat], stats["floor", stat], stats["bare", stat]
        rows.append(
            Row(
                NAME,
                f"{label}: app save {stat} vs floor",
                app,
                "µs",
                fl,
                "save + 1 UPDATE in atomic()",
                app / fl,
                f"≤ {goal}",
                app / fl <= goal,
                f"bare save {bare:.0f} µs; floor/bare {fl / bare:.2f}; app/bare {app / bare:.2f}; "
                f"n={rounds * block} per mode",
            )
        )
    if profile:
        prof = cProfile.Profile()
        prof.enable()
        for i in range(2000):
            update(i)
        prof.disable()
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(40)
        sys.stderr.write(text.getvalue())
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
    rounds, block = (6, 100) if quick else (15, 300)
    args = ["--child", "--rounds", str(rounds), "--block", str(block), *extra]
    return [row for db in dbs for broker in brokers for row in _one(db, broker, args)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (~30 s in all)")
    parser.add_argument("--db", choices=["sqlite", "postgres"], action="append")
    parser.add_argument("--broker", choices=["memory", "redis"], action="append")
    parser.add_argument("--profile", action="store_true", help="cProfile 2,000 app saves")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--block", type=int, default=300)
    args = parser.parse_args(argv)
    if args.child:
        rows = measure(args.db[0], args.broker[0], args.rounds, args.block, args.profile)
        print(rows_to_json(rows))
        return
    dbs = tuple(args.db or ("sqlite", "postgres"))
    brokers = tuple(args.broker or ("memory", "redis"))
    print_rows(run(args.quick, dbs, brokers, ("--profile",) if args.profile else ()))


if __name__ == "__main__":
    main()
