"""``connectycube_sync --all --distribute`` with real Celery worker processes on Redis.

The worker processes share PostgreSQL with the test, a Redis broker, and a Redis cache that
holds the one ``RATE_LIMIT`` all of them obey; the emulator counts what arrives, second by
second. A worker's pool processes are killed mid-shard: the shard is redone from the owed
record and no user is created twice.
"""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection

from django_connectycube.models import CubeUser
from django_connectycube.sync import enqueue
from tests.arrivals import Arrivals
from tests.conftest import unavailable
from tests.sync.test_worker_integration import beat  # noqa: F401  (the sweep, as beat runs it)
from tests.worker import Worker, database_url_of, use_broker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
User = get_user_model()
LIMIT = 20


@pytest.fixture(scope="module")
def worker(django_db_setup, django_db_blocker, redis_url, connectycube_emulator_server):
    """Two pool processes obeying one RATE_LIMIT through a Redis cache of their own."""
    from tests.celery import app

    with django_db_blocker.unblock():
        if connection.vendor != "postgresql":
            unavailable("needs PostgreSQL shared with the worker processes (DATABASE_URL)")
        database_url = database_url_of(connection.settings_dict)
    emulator = connectycube_emulator_server.emulator
    previous = app.conf.broker_write_url
    use_broker(app, redis_url)
    w = Worker(
        broker_url=redis_url,
        database_url=database_url,
        connectycube={
            "API_URL": connectycube_emulator_server.url,
            "APPLICATION_ID": emulator.application_id,
            "AUTH_KEY": emulator.auth_key,
            "AUTH_SECRET": emulator.auth_secret,
        },
        extra_env={
            "CACHE_URL": redis_url,
            "CACHE_KEY_PREFIX": uuid.uuid4().hex,
            "CONNECTYCUBE_RATE_LIMIT": str(LIMIT),
        },
    ).start()
    try:
        yield w
    finally:
        w.stop()
        enqueue.flush(10.0)
        use_broker(app, previous)


@pytest.fixture
def cube(connectycube_emulator, worker, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "TASK_QUEUE": worker.queue}
    return connectycube_emulator


def bulk_users(n: int, prefix: str) -> None:
    """Users without a link (bulk_create sends no signal): a site before it installed the app."""
    User.objects.bulk_create(
        User(username=f"{prefix}{i}", email=f"{prefix}{i}@x.org") for i in range(n)
    )


def all_synced(n: int) -> bool:
    return CubeUser.objects.filter(state="synced").count() == n


def distribute(shards: int, concurrency: int) -> None:
    call_command(
        "connectycube_sync",
        "--all",
        "--distribute",
        "--shards",
        str(shards),
        "--concurrency",
        str(concurrency),
    )


def assert_one_remote_user_each(cube, n: int) -> None:
    counts = Counter(user["external_id"] for user in cube.users)
    assert len(counts) == n and set(counts.values()) == {1}


def test_workers_share_the_rate_limit_and_a_429_pauses_them_all(cube, worker):
    bulk_users(100, "rl")
    with Arrivals(cube.request_count) as seen:
        distribute(shards=4, concurrency=8)
        wait_until(lambda: CubeUser.objects.filter(state="synced").count() >= 30, timeout=60)
        cube.set_fault("POST /users", sequence=[429], retry_after=2.0)
        wait_until(lambda: all_synced(100), timeout=120, interval=0.5)
    assert_one_remote_user_each(cube, 100)
    per_second = seen.per_second()
    rates = list(per_second.values())
    # The limiter lets at most LIMIT leave in any second of the senders' clocks; the emulator
    # counts a request when its handler runs, which a busy machine can delay past the second's
    # end. So a second counted here may hold some of its neighbour's requests, but no run of
    # seconds more than one second's worth beyond the limit.
    assert len(rates) >= 4, rates
    for start in per_second:
        run = [per_second.get(start + i) for i in range(3)]
        if None not in run:
            assert sum(run) <= LIMIT * 4, per_second
    assert max(rates) >= LIMIT * 0.8, rates  # and the workers did keep it busy
    assert seen.longest_still() >= 1.5  # the 429's Retry-After held back both processes


def test_a_worker_killed_mid_shard_is_redone_without_duplicates(cube, worker, beat):  # noqa: F811
    bulk_users(40, "kill")
    cube.set_fault("POST /users", latency=0.3)  # keep the shards' creates in flight
    distribute(shards=2, concurrency=4)
    wait_until(lambda: CubeUser.objects.filter(state="synced").count() >= 4, timeout=60)
    assert worker.kill_children() >= 1  # SIGKILL mid-shard: leased rows, unrecorded creates
    cube.clear_faults()
    wait_until(lambda: all_synced(40), timeout=120, interval=0.5)
    assert_one_remote_user_each(cube, 40)
