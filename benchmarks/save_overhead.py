"""save_overhead: what the app adds to ``User.save()``, on SQLite and on PostgreSQL + Redis.

The same process alternates blocks of saves with the app's receivers connected and
disconnected (the "app not installed" baseline), so both see the same machine load; medians and
p99s of single saves are compared. With the app, a save also bumps its ``CubeUser`` row and, after
commit, publishes ``push_user`` to the broker: the in-memory broker on SQLite; on PostgreSQL, a
throwaway Redis queue nobody consumes, purged afterwards, in a throwaway database.

    python -m benchmarks.save_overhead [--quick] [--db sqlite|postgres] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import nullcontext
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

GOAL = 1.3
NAME = "save_overhead"
MODULE = "benchmarks.save_overhead"


def _receivers(connect: bool) -> None:
    from django.conf import settings
    from django.db.models.signals import post_save

    from django_connectycube.signals import connect_receivers, user_saved

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


def measure(db: str, rounds: int, block: int, profile: bool) -> list[Row]:
    """Child process: interleaved blocks, app on / app off, for update saves and creates."""
    setup_django()
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from django_connectycube import outbox
    from django_connectycube.models import CubeUser

    User = get_user_model()
    users = [User.objects.create(username=f"warm{i}", email=f"w{i}@example.com") for i in range(64)]

    def update(i: int) -> None:
        user = users[i % len(users)]
        user.first_name = f"F{i}"
        user.save()

    def update_atomic(i: int) -> None:
        with transaction.atomic():
            update(i)

    tag = uuid.uuid4().hex[:6]

    def create(i: int) -> None:
        User.objects.create(username=f"u{tag}-{i}", email=f"u{i}@example.com")

    ops: dict[str, Callable[[int], Any]] = {"update save": update, "create": create}
    if db == "postgres":
        ops["update save in atomic()"] = update_atomic
    samples: dict[tuple[str, bool], list[float]] = {(k, m): [] for k in ops for m in (True, False)}
    counter = 0
    for op in ops.values():  # warm both paths (connections, broker, caches)
        for mode in (True, False):
            _receivers(mode)
            _timed(op, 20, counter)
            counter += 20
    for r in range(rounds):
        for name, op in ops.items():
            for mode in (True, False) if r % 2 == 0 else (False, True):
                _receivers(mode)
                samples[name, mode] += _timed(op, block, counter)
                counter += block
    _receivers(True)

    # The two halves of the app's cost, each alone.
    link_user = users[0]
    parts = {
        "mark_dirty": lambda i: outbox.mark_dirty(link_user),
        "enqueue_push (a publish, now done by the background thread)": lambda i: (
            outbox.enqueue_push(link_user.pk)
        ),
    }
    part_times = {k: median(_timed(f, rounds * block, 0)) for k, f in parts.items()}

    label = "SQLite, memory broker" if db == "sqlite" else "PostgreSQL + Redis"
    rows = []
    for name in ops:
        app, bare = samples[name, True], samples[name, False]
        for stat, fn in (("median", median), ("p99", lambda v: percentile(v, 99))):
            a, b = fn(app) * 1e6, fn(bare) * 1e6
            is_goal = name == "update save" or (name == "create" and db == "sqlite")
            rows.append(
                Row(
                    NAME,
                    f"{label}: {name} {stat}",
                    a,
                    "µs",
                    b,
                    "app off",
                    a / b,
                    f"≤ {GOAL}" if is_goal else "",
                    (a / b <= GOAL) if is_goal else None,
                )
            )
    parts_note = ", ".join(f"{k} {v * 1e6:.0f} µs" for k, v in part_times.items())
    rows[0].note = f"n={rounds * block} per cell; the app's parts alone: {parts_note}"

    if profile:
        _receivers(True)
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


def run(quick: bool = False, dbs: tuple[str, ...] = ("sqlite", "postgres")) -> list[Row]:
    rounds, block = (6, 100) if quick else (20, 250)
    args = ["--child", "--rounds", str(rounds), "--block", str(block)]
    rows: list[Row] = []
    for db in dbs:
        if db == "sqlite":
            rows += run_child(MODULE, [*args, "--db", "sqlite"], child_env(), timeout=900)
            continue
        queue = f"cube-bench-{uuid.uuid4().hex[:10]}"
        with throwaway_postgres() as url:
            try:
                env = child_env(database_url=url, broker_url=REDIS_URL, task_queue=queue)
                rows += run_child(MODULE, [*args, "--db", "postgres"], env, timeout=900)
            finally:
                purge_redis_queue(queue)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--db", choices=["sqlite", "postgres"], action="append")
    parser.add_argument("--profile", action="store_true", help="cProfile 2,000 app saves")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--block", type=int, default=250)
    args = parser.parse_args(argv)
    if args.child:
        print(rows_to_json(measure(args.db[0], args.rounds, args.block, args.profile)))
        return
    if args.profile:
        dbs = tuple(args.db or ["sqlite"])
        for db in dbs:
            ctx = throwaway_postgres() if db == "postgres" else nullcontext(None)
            queue = f"cube-bench-{uuid.uuid4().hex[:10]}"
            with ctx as url:
                env = (
                    child_env(database_url=url, broker_url=REDIS_URL, task_queue=queue)
                    if url
                    else child_env()
                )
                try:
                    print_rows(
                        run_child(
                            MODULE,
                            ["--child", "--rounds", "4", "--block", "100", "--db", db, "--profile"],
                            env,
                            timeout=900,
                        )
                    )
                finally:
                    purge_redis_queue(queue)
        return
    print_rows(run(args.quick, tuple(args.db or ("sqlite", "postgres"))))


if __name__ == "__main__":
    main()
