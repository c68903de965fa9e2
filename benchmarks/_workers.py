"""Real Celery worker processes for the benchmarks that spread a backfill over them.

A worker is ``tests.worker.Worker`` (prefork, its own Redis queue) sharing the child's throwaway
PostgreSQL database and a Redis cache (the application token and the shared rate limit), talking
to the emulator process.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import requests

from benchmarks._common import (
    AUTH_KEY,
    AUTH_SECRET,
    REDIS_URL,
    EmulatorProcess,
    Row,
    child_env,
    purge_redis_queue,
    run_child,
    throwaway_postgres,
)


@contextlib.contextmanager
def celery_worker(
    processes: int, emulator: EmulatorProcess, rate_limit: int | None = None
) -> Iterator[Any]:
    """A started worker with ``processes`` pool processes and production-like settings."""
    from django.db import connection

    from tests.worker import Worker, database_url_of

    env = {
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "CACHE_URL": REDIS_URL,
        "CACHE_KEY_PREFIX": f"bench-{uuid.uuid4().hex[:10]}",
        "CONNECTYCUBE_LEASE_SECONDS": "120",
        "CONNECTYCUBE_RETRIES": "3",
        "CONNECTYCUBE_TEST_BACKOFF_BASE": "2",
        "CONNECTYCUBE_RETRY_HORIZON": str(3 * 24 * 3600),
    }
    if rate_limit is not None:
        env["CONNECTYCUBE_RATE_LIMIT"] = str(rate_limit)
    worker = Worker(
        broker_url=REDIS_URL,
        database_url=database_url_of(connection.settings_dict),
        connectycube={
            "API_URL": emulator.url,
            "APPLICATION_ID": 1,
            "AUTH_KEY": AUTH_KEY,
            "AUTH_SECRET": AUTH_SECRET,
        },
        concurrency=processes,
        extra_env=env,
    )
    try:
        worker.start(timeout=120)
        yield worker
    finally:
        worker.stop()
        purge_redis_queue(worker.queue)


def cpu_seconds(worker: Any) -> float:
    """CPU time (user + system) the worker's main and pool processes have used so far."""
    if worker.process is None:
        return 0.0
    total = 0
    for pid in [worker.process.pid, *worker.children()]:
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / os.sysconf("SC_CLK_TCK")


def distributed_backfill(
    worker: Any, users: int, shards: int, concurrency: int, limit: float = 900.0
) -> float:
    """Seconds from ``connectycube_sync --all --distribute`` until every user is synced."""
    import io

    from django.conf import settings
    from django.core.management import call_command
    from django.test.utils import override_settings

    from django_connectycube.models import CubeUser

    cube = {**settings.CONNECTYCUBE, "TASK_QUEUE": worker.queue}
    args = ["--all", "--distribute", "--shards", str(shards), "--concurrency", str(concurrency)]
    with override_settings(CONNECTYCUBE=cube):
        started = time.perf_counter()
        call_command("connectycube_sync", *args, stdout=io.StringIO())
        deadline = time.monotonic() + limit
        while CubeUser.objects.filter(state="synced").count() < users:
            failed = CubeUser.objects.filter(state="failed").first()
            if failed is not None:
                raise RuntimeError(f"a user failed: {failed.last_error}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"not every user synced within {limit:.0f} s")
            time.sleep(0.05)
        return time.perf_counter() - started


def emulator_count(emulator: EmulatorProcess) -> Callable[[], int]:
    """A reader of the emulator's request counter over one keep-alive connection."""
    http = requests.Session()
    url = f"{emulator.url}/_emulator/requests"
    return lambda: int(http.get(url, timeout=5).json()["total"])


def run_with_workers(module: str, args: list[str], timeout: float) -> list[Row]:
    """Run a benchmark's child on a throwaway PostgreSQL database, publishing to Redis."""
    with throwaway_postgres() as url:
        env = child_env(database_url=url, broker_url=REDIS_URL, redis_url=REDIS_URL)
        return run_child(module, args, env, timeout=timeout)
