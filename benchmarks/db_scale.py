"""db_scale: the database side of the app at 10 k, 100 k and 1 M users, 100 of them owed.

Users and their ``CubeUser`` links are built with generated SQL (``INSERT … SELECT
generate_series``) in a throwaway PostgreSQL database; every user is linked and synced except 100
spread over the table, which are owed and never enqueued. For each size it times (median of a few
repetitions, the owed rows made due again before each):

* one sweep (``enqueue.sweep``; goal ≤ 50 ms): what beat runs every minute;
* ``link_missing_users``: the full outer join ``connectycube_sync --dirty`` runs before selecting;
* ``connectycube_sync --dirty --dry-run`` (the selection alone);
* the admin changelist of ``CubeUser`` and its sync-health page (Django test client, superuser).

The curve says whether each costs O(owed rows) or O(users). The slowest operation at the largest
size is replayed with every query timed, and the slowest query is printed with ``EXPLAIN ANALYZE``.

    python -m benchmarks.db_scale [--sizes 10000,100000,1000000] [--reps 5]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks._common import (
    Row,
    child_env,
    median,
    print_rows,
    rows_to_json,
    run_child,
    setup_django,
    throwaway_postgres,
)

NAME = "db_scale"
MODULE = "benchmarks.db_scale"
OWED = 100
SWEEP_GOAL_MS = 50.0
FLAT_GOAL = 2.0  # the largest size's time over the smallest's: O(owed), not O(users)


def _grow(n: int) -> None:
    """Users 1..n (adding only the missing ones) with synced links; then exactly OWED owed."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from django_connectycube.models import CubeUser

    users = get_user_model()._meta.db_table
    links = CubeUser._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT coalesce(max(id), 0) FROM {users}")  # noqa: S608
        have = cursor.fetchone()[0]
        cursor.execute(
            f"""INSERT INTO {users} (id, password, is_superuser, username, first_name,
                last_name, email, is_staff, is_active, date_joined, phone, website, tags,
                avatar, bio)
            SELECT g, '!', false, 'user' || g, 'First', 'Last ' || g, 'u' || g || '@example.com',
                false, true, now(), '', '', '', '', ''
            FROM generate_series(%s, %s) AS g""",  # noqa: S608
            [have + 1, n],
        )
        cursor.execute(
            f"""INSERT INTO {links} (user_id, cube_id, external_id, login, withheld, state,
                dirty_version, synced_version, pushed_digest, password_version, avatar_uid,
                avatar_digest, attempts, last_error, last_synced_at, created_at, updated_at)
            SELECT g, g, 'bench-' || g, 'user' || g, '{{}}', 'synced', 1, 1, '', 0, '', '', 0,
                '', now(), now(), now()
            FROM generate_series(%s, %s) AS g""",  # noqa: S608
            [have + 1, n],
        )
        cursor.execute(f"SELECT setval(pg_get_serial_sequence('{users}', 'id'), %s)", [n + 1])
        cursor.execute(f"UPDATE {links} SET state = 'synced' WHERE state <> 'synced'")  # noqa: S608
        step = max(1, n // OWED)
        cursor.execute(
            f"""UPDATE {links} SET state = 'pending', dirty_version = 2, enqueued_at = NULL
            WHERE user_id IN (SELECT g * %s FROM generate_series(1, %s) AS g)""",  # noqa: S608
            [step, OWED],
        )
        cursor.execute(f"ANALYZE {users}")
        cursor.execute(f"ANALYZE {links}")


def _operations() -> dict[str, Callable[[], Any]]:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from django_connectycube import enqueue, owed
    from django_connectycube.models import CubeUser

    admin, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(admin)
    links = CubeUser._meta.db_table

    def due_again() -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {links} SET enqueued_at = NULL WHERE state = 'pending'")  # noqa: S608

    def sweep() -> None:
        sent = enqueue.sweep()
        if sent != OWED:
            raise RuntimeError(f"the sweep sent {sent}, not {OWED}")

    sweep.prepare = due_again  # type: ignore[attr-defined]

    def get(path: str) -> Callable[[], None]:
        def view() -> None:
            response = client.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"GET {path}: {response.status_code}")

        return view

    def dry_run() -> None:
        out = io.StringIO()
        call_command("connectycube_sync", "--dirty", "--dry-run", stdout=out)
        if str(OWED) not in out.getvalue():
            raise RuntimeError(f"--dirty --dry-run did not see {OWED} owed: {out.getvalue()}")

    return {
        "sweep (enqueue.sweep)": sweep,
        "link_missing_users (before --dirty)": owed.link_missing_users,
        "connectycube_sync --dirty --dry-run": dry_run,
        "admin changelist": get("/admin/django_connectycube/cubeuser/"),
        "admin sync-health": get("/admin/django_connectycube/cubeuser/sync-health/"),
    }


def _timed(op: Callable[[], Any], reps: int) -> float:
    times = []
    prepare = getattr(op, "prepare", lambda: None)  # made ready outside the timing
    prepare()
    op()  # warm
    for _ in range(reps):
        prepare()
        started = time.perf_counter()
        op()
        times.append(time.perf_counter() - started)
    return median(times) * 1e3


def _explain_slowest(op: Callable[[], Any], explain: bool = True) -> str:
    """Replay op with each query timed; EXPLAIN ANALYZE the slowest one."""
    from django.db import connection

    queries: list[tuple[float, str, Any]] = []

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            queries.append((time.perf_counter() - started, sql, params))

    getattr(op, "prepare", lambda: None)()
    with connection.execute_wrapper(wrapper):
        op()
    total = sum(q[0] for q in queries)
    spent, sql, params = max(queries, key=lambda q: q[0])
    if not explain:
        return f"{len(queries)} queries, {total * 1e3:.1f} ms of them in the database"
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
        plan = "\n".join(r[0] for r in cursor.fetchall())
    sys.stderr.write(
        f"\n-- slowest query: {spent * 1e3:.1f} ms of {total * 1e3:.1f} ms in "
        f"{len(queries)} queries\n{sql % tuple(params or ())}\n{plan}\n"
    )
    head = f"slowest query {spent * 1e3:.0f} ms of {total * 1e3:.0f} ms ({len(queries)} queries)"
    return f"{head}: {sql[:120]}"


def measure(sizes: list[int], reps: int) -> list[Row]:
    setup_django()
    from django.test.utils import override_settings

    from benchmarks.settings import CONNECTYCUBE

    curves: dict[str, dict[int, float]] = {}
    with override_settings(CONNECTYCUBE={**CONNECTYCUBE, "SYNC_ENABLED": True}):
        ops = _operations()
        for n in sizes:
            started = time.perf_counter()
            _grow(n)
            sys.stderr.write(
                f"db_scale: built {n:,} users in {time.perf_counter() - started:.1f} s\n"
            )
            for name, op in ops.items():
                curves.setdefault(name, {})[n] = _timed(op, reps)
        slowest = max(ops, key=lambda k: curves[k][sizes[-1]])
        explained = _explain_slowest(ops[slowest])
        sweep_queries = _explain_slowest(next(iter(ops.values())), explain=False)
    rows = []
    small = sizes[0]
    for name, curve in curves.items():
        for n, ms in curve.items():
            if name.startswith("sweep"):
                goal, met = f"≤ {SWEEP_GOAL_MS:.0f} ms", ms <= SWEEP_GOAL_MS
            elif n == sizes[-1] and n != small:
                goal, met = f"≤ {FLAT_GOAL} (flat)", ms / curve[small] <= FLAT_GOAL
            else:
                goal, met = "", None
            rows.append(
                Row(
                    NAME,
                    f"{name}, {n:,} users ({OWED} owed)",
                    ms,
                    "ms",
                    curve[small],
                    f"{small:,} users",
                    ms / curve[small],
                    goal,
                    met,
                )
            )
    rows[len(sizes) - 1].note = f"one sweep at {sizes[-1]:,} users: {sweep_queries}"
    rows[-1].note = f"slowest at {sizes[-1]:,} users is {slowest}; {explained}"
    return rows


def run(quick: bool = False, sizes: tuple[int, ...] | None = None, reps: int = 5) -> list[Row]:
    sizes = sizes or ((10_000, 100_000) if not quick else (10_000, 50_000))
    args = ["--child", "--sizes", ",".join(map(str, sizes)), "--reps", str(reps)]
    with throwaway_postgres() as url:
        return run_child(MODULE, args, child_env(database_url=url), timeout=3600)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated user counts")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if args.child:
        print(rows_to_json(measure(sizes, args.reps)))
        return
    print_rows(run(args.quick, tuple(sizes), args.reps))


if __name__ == "__main__":
    main()
