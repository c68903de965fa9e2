"""backfill: ``connectycube_sync --all`` against the emulator, versus the ceiling and the naive way.

* subject: ``call_command("connectycube_sync", "--all", "--concurrency", N)`` over N_USERS local
  users (a throwaway PostgreSQL database; users bulk-created, so no signal fires);
* ceiling: N threads, each with one keep-alive ``requests.Session``, doing ``POST /users`` with
  the application token and the same payload shape: what the client library and the emulator
  can do at all on this machine;
* naive: per user, a new ``requests.Session`` (a new TCP connection), ``POST /session`` (a new
  application session), then ``POST /users``, one user after the other, on a subset.

The emulator runs in its own process (its own interpreter lock, as a remote service). The three are
interleaved and repeated; rates are medians. Memory is :mod:`benchmarks.backfill_memory`'s.

    python -m benchmarks.backfill [--quick] [--users 10000] [--concurrency 4] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import pstats
import sys
import threading
import time
from typing import Any

import requests

from benchmarks._common import (
    AUTH_KEY,
    AUTH_SECRET,
    EmulatorProcess,
    Row,
    child_env,
    median,
    print_rows,
    rows_to_json,
    run_child,
    setup_django,
    throwaway_postgres,
)

NAME = "backfill"
MODULE = "benchmarks.backfill"
CEILING_GOAL = 0.8
NAIVE_GOAL = 5.0


def _payload(i: int, tag: str) -> dict[str, Any]:
    return {
        "user": {
            "login": f"ceil-{tag}-{i}",
            "password": "x" * 32,
            "email": f"ceil-{tag}-{i}@example.com",
            "full_name": f"Ceiling User {i}",
            "external_id": f"{tag}-{i}",
        }
    }


def _app_token(url: str, http: requests.Session) -> str:
    from django_connectycube.client.signing import signed_session_params

    body = signed_session_params(1, AUTH_KEY, AUTH_SECRET)
    response = http.post(f"{url}/session", json=body, timeout=10)
    response.raise_for_status()
    return str(response.json()["session"]["token"])


def ceiling(url: str, count: int, concurrency: int, tag: str, limit: float = 120.0) -> float:
    """Requests/s of bare keep-alive ``POST /users`` loops (bounded by count and time)."""
    token = _app_token(url, requests.Session())
    numbers = itertools.count()
    failures: list[str] = []
    deadline = time.monotonic() + limit
    barrier = threading.Barrier(concurrency + 1)

    def loop() -> None:
        http = requests.Session()
        headers = {"CB-Token": token}
        http.get(f"{url}/session", headers=headers, timeout=10)  # connect before timing
        barrier.wait()
        while time.monotonic() < deadline:
            i = next(numbers)
            if i >= count:
                return
            response = http.post(f"{url}/users", json=_payload(i, tag), headers=headers, timeout=10)
            if response.status_code != 201:
                failures.append(response.text[:200])
                return
        http.close()

    threads = [threading.Thread(target=loop) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"ceiling loop failed: {failures[0]}")
    return min(count, next(numbers)) / elapsed


def naive(url: str, count: int, tag: str, limit: float = 120.0) -> float:
    """Users/s the naive way: new connection and new application session per user."""
    from django_connectycube.client.signing import signed_session_params

    deadline = time.monotonic() + limit
    started = time.perf_counter()
    done = 0
    for i in range(count):
        if time.monotonic() > deadline:
            break
        with requests.Session() as http:
            body = signed_session_params(1, AUTH_KEY, AUTH_SECRET)
            token = http.post(f"{url}/session", json=body, timeout=10).json()["session"]["token"]
            response = http.post(
                f"{url}/users",
                json=_payload(i, tag),
                headers={"CB-Token": token, "Connection": "close"},
                timeout=10,
            )
            if response.status_code != 201:
                raise RuntimeError(f"naive create failed: {response.text[:200]}")
        done += 1
    return done / (time.perf_counter() - started)


def _make_users(n: int) -> None:
    from django.contrib.auth import get_user_model

    User = get_user_model()
    have = User.objects.count()
    batch = [
        User(
            username=f"bf{i:06d}",
            email=f"bf{i}@example.com",
            first_name="Back",
            last_name=f"Fill {i}",
            password="!",  # noqa: S106 (an unusable password)
        )
        for i in range(have, n)
    ]
    User.objects.bulk_create(batch, batch_size=1000)


def _fresh_state(emulator: EmulatorProcess) -> None:
    from django.core.cache import cache

    from django_connectycube.models import CubeSession, CubeUser
    from django_connectycube.sync.connection import reset_clients

    CubeUser.objects.all().delete()
    CubeSession.objects.all().delete()
    emulator.reset()
    cache.clear()  # the shared application token died with the emulator's state
    reset_clients()


def backfill(emulator: EmulatorProcess, concurrency: int, users: int) -> tuple[float, int]:
    """Users/s of ``connectycube_sync --all``; also the remote calls it made."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    User = get_user_model()
    if User.objects.count() != users:
        raise RuntimeError(f"expected {users} local users")
    _fresh_state(emulator)
    emulator.reset_counters()
    out = io.StringIO()
    started = time.perf_counter()
    call_command("connectycube_sync", "--all", "--concurrency", str(concurrency), stdout=out)
    elapsed = time.perf_counter() - started
    calls = int(emulator.counts()["total"])
    text = out.getvalue()
    if f"Pushed {users} user(s)" not in text or "failed" in text:
        raise RuntimeError(f"backfill did not push {users} users cleanly: {text}")
    return users / elapsed, calls


def measure(users: int, concurrency: int, reps: int, naive_users: int, profile: bool) -> list[Row]:
    setup_django()
    from django.test.utils import override_settings

    from benchmarks.settings import CONNECTYCUBE

    with EmulatorProcess() as emulator:
        # Users come from bulk_create (no signals); the sync command needs SYNC_ENABLED.
        settings = {**CONNECTYCUBE, "API_URL": emulator.url, "SYNC_ENABLED": True}
        with override_settings(CONNECTYCUBE=settings):
            if profile:
                _make_users(users)
                prof = cProfile.Profile()
                prof.enable()
                rate, _ = backfill(emulator, concurrency, users)
                prof.disable()
                text = io.StringIO()
                pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(30)
                sys.stderr.write(f"backfill {rate:.0f} users/s (profiled)\n{text.getvalue()}")
                return []
            _make_users(users)
            rates: dict[str, list[float]] = {"backfill": [], "ceiling": [], "naive": []}
            calls = 0
            for rep in range(reps):
                emulator.reset()
                rates["ceiling"].append(ceiling(emulator.url, users, concurrency, f"c{rep}"))
                rate, calls = backfill(emulator, concurrency, users)
                rates["backfill"].append(rate)
                emulator.reset()
                rates["naive"].append(naive(emulator.url, naive_users, f"n{rep}"))
    b, c, n = (median(rates[k]) for k in ("backfill", "ceiling", "naive"))
    where = f"{users:,} users, concurrency {concurrency}"
    return [
        Row(
            NAME,
            f"--all, {where}: vs ceiling",
            b,
            "users/s",
            c,
            "keep-alive POST /users loop",
            b / c,
            f"≥ {CEILING_GOAL}",
            b / c >= CEILING_GOAL,
            f"medians of {reps} interleaved runs; {calls / users:.3f} remote calls per user",
        ),
        Row(
            NAME,
            f"--all, {where}: vs naive",
            b,
            "users/s",
            n,
            f"new connection+session per user, {naive_users} users",
            b / n,
            f"≥ {NAIVE_GOAL}",
            b / n >= NAIVE_GOAL,
        ),
    ]


def run(quick: bool = False, users: int | None = None, concurrency: int = 4) -> list[Row]:
    users = users or (2000 if quick else 10000)
    reps, naive_users = (1, 200) if quick else (3, 500)
    args = ["--child", "--users", str(users), "--concurrency", str(concurrency)]
    args += ["--reps", str(reps), "--naive-users", str(naive_users)]
    with throwaway_postgres() as url:
        return run_child(MODULE, args, child_env(database_url=url), timeout=1800)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--users", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--profile", action="store_true", help="cProfile one backfill")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--naive-users", type=int, default=500)
    args = parser.parse_args(argv)
    if args.child:
        rows = measure(args.users, args.concurrency, args.reps, args.naive_users, args.profile)
        print(rows_to_json(rows))
        return
    if args.profile:
        with throwaway_postgres() as url:
            child = ["--child", "--profile", "--users", str(args.users or 2000)]
            run_child(
                MODULE,
                [*child, "--concurrency", str(args.concurrency)],
                child_env(database_url=url),
                timeout=1800,
            )
        return
    print_rows(run(args.quick, args.users, args.concurrency))


if __name__ == "__main__":
    main()
