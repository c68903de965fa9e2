"""db_scale: the database side of the app at 10 k, 100 k and 1 M users, 100 of them owed.

Users and their ``CubeUser`` links are built with generated SQL (``INSERT … SELECT
generate_series``) in a throwaway PostgreSQL database, then ``VACUUM ANALYZE``-d (what autovacuum
keeps up on a live table: the statistics, and the visibility map index-only scans need). Every
user is linked and synced except 100 spread over the table, which are owed and never enqueued.
For each size it times (median of a few repetitions, the owed rows made due again before each):

* one sweep (``enqueue.sweep``, beat's job every minute; goal ≤ 50 ms), its search for users
  without a link included, and that search alone (``unlinked.sweep_step``: two windows);
* ``connectycube_sync --dirty``'s database side: linking the users saved since it last looked,
  and reading the owed ones (the pushes themselves are the backfill benchmark's);
* the admin changelist of ``CubeUser``, the same filtered to the owed rows, searched by a login
  prefix and by a ConnectyCube id, its deepest numbered page and an "older" page by key from the
  middle of the table, and its sync-health page (goal: ≤ 50 ms in the database each, at the
  largest size);
* for contrast, ``link_missing_users``: the whole-table search ``--all`` runs, O(users) by design.

Goal for all but the last: O(owed rows), not O(users), so the largest size costs ≤ 2 times the
smallest. At the largest size every statement of each operation is replayed under ``EXPLAIN
(ANALYZE, BUFFERS)`` (rolled back): the notes name the scans and any sequential scan of a big
table; ``--plans FILE`` writes the plans in full.

    python -m benchmarks.db_scale [--sizes 10000,100000,1000000] [--reps 5] [--plans FILE]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import db_plans
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
SWEEP = "sweep (enqueue.sweep)"
SWEEP_GOAL_MS = 50.0
FLAT_GOAL = 2.0  # the largest size's time over the smallest's: O(owed), not O(users)
CONTRAST = "link_missing_users (whole table, --all)"
ADMIN = "admin "
ADMIN_DB_GOAL_MS = 50.0


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
        cursor.execute(f"VACUUM ANALYZE {users}")
        cursor.execute(f"VACUUM ANALYZE {links}")


def _operations(size: Callable[[], int]) -> dict[str, Callable[[], Any]]:
    """The timed operations; ``size()`` is the number of users at the moment of the call."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from django_connectycube.management.commands.connectycube_sync import Command
    from django_connectycube.models import CubeUser
    from django_connectycube.sync import enqueue, owed, unlinked

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

    def dirty() -> None:
        pks, total = Command(stdout=io.StringIO()).select("dirty", [], dry_run=False)
        if total != OWED or len(list(pks)) != OWED:
            raise RuntimeError(f"--dirty selected {total} users, not {OWED}")

    def get(path: str | Callable[[], str]) -> Callable[[], None]:
        def view() -> None:
            response = client.get(path if isinstance(path, str) else path())
            if response.status_code != 200:
                raise RuntimeError(f"GET {path}: {response.status_code}")

        return view

    changelist = "/admin/django_connectycube/cubeuser/"
    return {
        SWEEP: sweep,
        "its search for users without a link (unlinked.sweep_step)": unlinked.sweep_step,
        "connectycube_sync --dirty (links new users, reads the owed)": dirty,
        "admin changelist": get(changelist),
        "admin changelist, owed rows (?state=pending)": get(f"{changelist}?state=pending"),
        "admin changelist, search by login prefix (?q=user<n/2>)": get(
            lambda: f"{changelist}?q=user{size() // 2}"
        ),
        "admin changelist, search by ConnectyCube id (?q=<n/3>)": get(
            lambda: f"{changelist}?q={size() // 3}"
        ),
        "admin changelist, deepest numbered page (?p=20)": get(f"{changelist}?p=20"),
        "admin changelist, older rows by key (?id__lt=<n/2>)": get(
            lambda: f"{changelist}?id__lt={size() // 2}"
        ),
        "admin sync-health": get(f"{changelist}sync-health/"),
        CONTRAST: owed.link_missing_users,
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


def _publishing_ms(op: Callable[[], Any]) -> float:
    """The time one run of ``op`` spends in Celery's ``apply_async`` (building and publishing
    messages), which no database work can save."""
    from celery.app.task import Task

    original = Task.apply_async
    spent = [0.0]

    def timed(self: Task, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started

    getattr(op, "prepare", lambda: None)()
    Task.apply_async = timed  # type: ignore[method-assign]
    try:
        op()
    finally:
        Task.apply_async = original  # type: ignore[method-assign]
    return spent[0] * 1e3


def _explained(
    ops: dict[str, Callable[[], Any]], plans_file: str
) -> tuple[dict[str, str], dict[str, float]]:
    """Each operation's plans at the current size: a summary line each, the full text to a file;
    and each one's time in the database (its statements as it ran them)."""
    from django.contrib.auth import get_user_model

    from django_connectycube.models import CubeUser

    big = (get_user_model()._meta.db_table, CubeUser._meta.db_table)
    notes, text, db_ms = {}, [], {}
    for name, op in ops.items():
        prepare = getattr(op, "prepare", lambda: None)
        prepare()
        run = db_plans.capture(op)
        prepare()
        plans = db_plans.explain(run)
        notes[name] = db_plans.summary(plans, run, big)
        db_ms[name] = sum(p.ms for p in run)
        if name == SWEEP:
            publishing = _publishing_ms(op)
            notes[name] += f"; {publishing:.1f} ms in Celery's apply_async ({OWED} messages)"
        text.append(db_plans.full_text(name, plans))
    if plans_file:
        Path(plans_file).write_text("".join(text))
        sys.stderr.write(f"db_scale: plans written to {plans_file}\n")
    return notes, db_ms


def measure(sizes: list[int], reps: int, plans_file: str = "") -> list[Row]:
    setup_django()
    from django.test.utils import override_settings

    from benchmarks.settings import CONNECTYCUBE
    from django_connectycube.sync import unlinked

    curves: dict[str, dict[int, float]] = {}
    current = [0]
    with override_settings(CONNECTYCUBE={**CONNECTYCUBE, "SYNC_ENABLED": True}):
        ops = _operations(lambda: current[0])
        for n in sizes:
            current[0] = n
            started = time.perf_counter()
            _grow(n)
            built = time.perf_counter() - started
            started = time.perf_counter()
            unlinked.catch_up()  # the first look at the users just added, as --dirty would
            sys.stderr.write(
                f"db_scale: built {n:,} users in {built:.1f} s; first look for users without "
                f"a link {time.perf_counter() - started:.2f} s\n"
            )
            for name, op in ops.items():
                curves.setdefault(name, {})[n] = _timed(op, reps)
        notes, db_ms = _explained(ops, plans_file)
    return _rows(curves, sizes, notes) + _admin_rows(db_ms, sizes[-1])


def _admin_rows(db_ms: dict[str, float], size: int) -> list[Row]:
    """Each admin page's time in the database at the largest size, against the goal."""
    return [
        Row(
            NAME,
            f"{name}: time in the database, {size:,} users",
            ms,
            "ms",
            goal=f"≤ {ADMIN_DB_GOAL_MS:.0f} ms",
            met=ms <= ADMIN_DB_GOAL_MS,
        )
        for name, ms in db_ms.items()
        if name.startswith(ADMIN)
    ]


def _rows(
    curves: dict[str, dict[int, float]], sizes: list[int], notes: dict[str, str]
) -> list[Row]:
    rows = []
    small, large = sizes[0], sizes[-1]
    for name, curve in curves.items():
        for n, ms in curve.items():
            if name == SWEEP:
                goal, met = f"≤ {SWEEP_GOAL_MS:.0f} ms", ms <= SWEEP_GOAL_MS
            elif name == CONTRAST:
                goal, met = ("O(users), on demand", None) if n == large else ("", None)
            elif n == large and n != small:
                goal, met = f"≤ {FLAT_GOAL} (flat)", ms / curve[small] <= FLAT_GOAL
            else:
                goal, met = "", None
            row = Row(
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
            if n == large:
                shown = " → ".join(f"{m:.1f}" for m in curve.values())
                row.note = f"{shown} ms; at {large:,} users: {notes.get(name, '')}"
            rows.append(row)
    return rows


def run(
    quick: bool = False, sizes: tuple[int, ...] | None = None, reps: int = 5, plans: str = ""
) -> list[Row]:
    sizes = sizes or ((10_000, 100_000, 1_000_000) if not quick else (10_000, 50_000))
    args = ["--child", "--sizes", ",".join(map(str, sizes)), "--reps", str(reps)]
    args += ["--plans", str(Path(plans).resolve())] if plans else []
    with throwaway_postgres() as url:
        return run_child(MODULE, args, child_env(database_url=url), timeout=3600)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 and 50,000 users")
    parser.add_argument(
        "--sizes", default="10000,100000,1000000", help="comma-separated user counts"
    )
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--plans", default="", help="write every query plan to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = tuple(sorted(int(s) for s in args.sizes.split(",")))
    if args.child:
        print(rows_to_json(measure(list(sizes), args.reps, args.plans)))
        return
    print_rows(run(args.quick, None if args.quick else sizes, args.reps, args.plans))


if __name__ == "__main__":
    main()
