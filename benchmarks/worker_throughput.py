"""worker_throughput: changes synced per second by real Celery workers with 1, 2 and 4 processes.

Each configuration is a real prefork worker subprocess (``tests.worker.Worker``) on a throwaway
Redis queue, sharing a throwaway PostgreSQL database with this process, pushing to the emulator
(its own process). USERS already-synced users with warm sessions are each updated once (the
save enqueues ``push_user`` after commit); the figure is changes/s from the first save until
every row is synced. Configurations are interleaved (1, 2, 4, 4, 2, 1) and medians taken;
ratios are against 1 process in the same run. 2 cores: expect scaling to flatten past 2.

    python -m benchmarks.worker_throughput [--quick] [--changes 500]
"""

from __future__ import annotations

import argparse
import io
import time
from typing import Any

from benchmarks._common import (
    REDIS_URL,
    EmulatorProcess,
    Row,
    child_env,
    median,
    print_rows,
    purge_redis_queue,
    rows_to_json,
    run_child,
    setup_django,
    throwaway_postgres,
)

NAME = "worker_throughput"
MODULE = "benchmarks.worker_throughput"
#: (worker processes, persistent DB connections in the worker via ``?conn_max_age=60``)
CONFIGS = ((1, False), (2, False), (4, False), (2, True))


def _all_synced(version: int) -> bool:
    from django_connectycube.models import CubeUser

    return not CubeUser.objects.exclude(state="synced", synced_version__gte=version).exists()


def _round(users: list[Any], version: int, limit: float) -> float:
    """Update every user once; changes/s until all are synced at ``version``."""
    started = time.perf_counter()
    for user in users:
        user.first_name = f"v{version}"
        user.save()
    deadline = time.monotonic() + limit
    while not _all_synced(version):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not all changes synced within {limit}s")
        time.sleep(0.02)
    return len(users) / (time.perf_counter() - started)


def measure(changes: int, reps: int) -> list[Row]:
    setup_django()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import override_settings

    from benchmarks.settings import CONNECTYCUBE
    from django_connectycube.models import CubeUser
    from tests.worker import Worker, database_url_of

    User = get_user_model()
    rates: dict[tuple[int, bool], list[float]] = {c: [] for c in CONFIGS}
    with EmulatorProcess() as emulator:
        settings = {**CONNECTYCUBE, "API_URL": emulator.url}
        with override_settings(CONNECTYCUBE=settings):  # bulk_create sends no signals
            User.objects.bulk_create(
                User(username=f"wt{i}", email=f"wt{i}@example.com", password="!")  # noqa: S106
                for i in range(changes)
            )
            call_command("connectycube_sync", "--all", stdout=io.StringIO())
        users = list(User.objects.order_by("pk"))
        version = int(max(CubeUser.objects.values_list("dirty_version", flat=True)))
        cube = {
            "API_URL": emulator.url,
            "APPLICATION_ID": 1,
            "AUTH_KEY": settings["AUTH_KEY"],
            "AUTH_SECRET": settings["AUTH_SECRET"],
        }
        options: dict[str, Any] = {"extra_env": {"DJANGO_SETTINGS_MODULE": "tests.settings"}}
        order = [*CONFIGS, *reversed(CONFIGS)] * reps
        for processes, persistent in order:
            database_url = database_url_of(connection.settings_dict)
            worker = Worker(
                broker_url=REDIS_URL,
                database_url=database_url + ("?conn_max_age=60" if persistent else ""),
                connectycube=cube,
                concurrency=processes,
                **options,
            )
            try:
                worker.start()
                with override_settings(CONNECTYCUBE={**settings, "TASK_QUEUE": worker.queue}):
                    version += 1
                    _round(users, version, limit=300)  # warm: pool processes, sessions
                    version += 1
                    rates[processes, persistent].append(_round(users, version, limit=300))
            finally:
                worker.stop()
                purge_redis_queue(worker.queue)
    one = median(rates[1, False])
    rows = []
    for processes, persistent in CONFIGS:
        rate = median(rates[processes, persistent])
        what = f"{processes} process(es)" + (", CONN_MAX_AGE=60" if persistent else "")
        rows.append(
            Row(NAME, f"{what}, {changes} changes", rate, "changes/s", one, "1 process", rate / one)
        )
    rows[0].note = (
        f"medians of {len(rates[1, False])} runs per configuration; 2 cores shared with the "
        "emulator, PostgreSQL, Redis and this process"
    )
    return rows


def run(quick: bool = False, changes: int | None = None) -> list[Row]:
    changes = changes or (200 if quick else 500)
    reps = 1
    with throwaway_postgres() as url:
        env = child_env(database_url=url, broker_url=REDIS_URL, redis_url=REDIS_URL)
        args = ["--child", "--changes", str(changes), "--reps", str(reps)]
        return run_child(MODULE, args, env, timeout=1800)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--changes", type=int, default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--reps", type=int, default=1)
    args = parser.parse_args(argv)
    if args.child:
        print(rows_to_json(measure(args.changes, args.reps)))
        return
    print_rows(run(args.quick, args.changes))


if __name__ == "__main__":
    main()
