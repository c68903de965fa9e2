"""rate_limit: 4 worker processes sharing one ``RATE_LIMIT``, as the emulator sees it.

A backfill sharded over one Celery worker with 4 pool processes (``connectycube_sync --all
--distribute``), every process obeying ``RATE_LIMIT`` through the shared Redis cache, against
the emulator (its own process) at an injected RTT. The emulator's request counter is read at
every whole second; the figures are

* the busiest second's requests against the limit (goal: at most 5 % over it);
* the mean rate against the limit (the limit is used, not just respected), and that the
  backfill finishes with every user synced;
* after one 429 with ``Retry-After`` (injected part-way), the longest span in which no request
  arrived, against the ``Retry-After``: every process held back, not just the refused one.

    python -m benchmarks.rate_limit [--quick] [--limit 150] [--latency 20]
"""

from __future__ import annotations

import argparse
import time

from benchmarks._common import (
    EmulatorProcess,
    Row,
    control,
    print_rows,
    rows_to_json,
    setup_django,
)
from benchmarks._workers import run_with_workers

NAME = "rate_limit"
MODULE = "benchmarks.rate_limit"
PROCESSES = 4
CONCURRENCY = 16
SHARDS = 8
RETRY_AFTER = 2.0
OVER_GOAL = 1.05
USE_GOAL = 0.9
PAUSE_GOAL = 0.9


def _inject_429_later(emulator: EmulatorProcess, when: float, latency_ms: int) -> None:
    """One 429 with Retry-After for the first ``POST /users`` after ``when`` (monotonic).

    The emulator applies the first rule that matches, so the 429 goes before the latency rule
    (both are set again, a few milliseconds without latency in between)."""
    import threading

    from benchmarks.backfill_wan import API_ROUTES

    def later() -> None:
        time.sleep(max(0.0, when - time.monotonic()))
        once = {"route": "POST /users", "sequence": [429], "retry_after": RETRY_AFTER}
        control(emulator.url, "DELETE", "faults")
        control(emulator.url, "POST", "faults", json={**once, "latency": latency_ms / 1e3})
        control(
            emulator.url, "POST", "faults", json={"route": API_ROUTES, "latency": latency_ms / 1e3}
        )

    threading.Thread(target=later, daemon=True).start()


def measure(limit: int, latency_ms: int, seconds: float) -> list[Row]:
    setup_django()
    from django.test.utils import override_settings

    from benchmarks._workers import celery_worker, distributed_backfill, emulator_count
    from benchmarks.backfill import _fresh_state, _make_users
    from benchmarks.backfill_wan import _inject
    from benchmarks.settings import CONNECTYCUBE
    from tests.arrivals import Arrivals

    users = int(limit * seconds)
    with EmulatorProcess(in_flight=PROCESSES * CONCURRENCY) as emulator:
        settings = {**CONNECTYCUBE, "API_URL": emulator.url, "SYNC_ENABLED": True}
        with override_settings(CONNECTYCUBE=settings):
            _make_users(users)
            with celery_worker(PROCESSES, emulator, rate_limit=limit) as worker:
                _fresh_state(emulator)
                _inject(emulator, latency_ms)
                emulator.reset_counters()
                injected_at = time.time() + seconds * 0.6
                _inject_429_later(emulator, time.monotonic() + seconds * 0.6, latency_ms)
                with Arrivals(emulator_count(emulator)) as seen:
                    elapsed = distributed_backfill(worker, users, SHARDS, CONCURRENCY)
                total = int(emulator.counts()["total"])
            _inject(emulator, 0)
    per_second = seen.per_second()
    busiest = max(per_second.values(), default=float("nan"))  # none: a machine too loaded
    # Before the 429, from the first request on (the command links and marks users first).
    mean = seen.mean_rate(seen.first_arrival() + 1.0, injected_at)
    still = seen.longest_still(after=injected_at - 0.5)
    where = f"{PROCESSES} worker processes x {CONCURRENCY} threads, {latency_ms} ms RTT"
    return [
        Row(
            NAME,
            f"RATE_LIMIT {limit}/s, {where}: busiest second at the emulator",
            busiest,
            "req/s",
            limit,
            "RATE_LIMIT",
            busiest / limit,
            f"≤ {OVER_GOAL}",
            busiest / limit <= OVER_GOAL,
            f"{len(per_second)} whole seconds read; per second: "
            + ", ".join(str(n) for n in per_second.values()),
        ),
        Row(
            NAME,
            f"RATE_LIMIT {limit}/s: mean rate before the 429",
            mean,
            "req/s",
            limit,
            "RATE_LIMIT",
            mean / limit,
            f"≥ {USE_GOAL}",
            mean / limit >= USE_GOAL,
            f"backfill finished: {users:,} users synced in {elapsed:.1f} s "
            f"({users / elapsed:.0f} users/s, {total / users:.3f} requests/user)",
        ),
        Row(
            NAME,
            f"one 429 with Retry-After {RETRY_AFTER:g} s: longest span without a request",
            still,
            "s",
            RETRY_AFTER,
            "Retry-After",
            still / RETRY_AFTER,
            f"≥ {PAUSE_GOAL}",
            still / RETRY_AFTER >= PAUSE_GOAL,
            "every process holds back, not only the one refused",
        ),
    ]


def run(quick: bool = False, limit: int = 150, latency: int = 20) -> list[Row]:
    seconds = 8.0 if quick else 20.0
    args = ["--child", "--limit", str(limit), "--latency", str(latency)]
    args += ["--seconds", str(seconds)]
    return run_with_workers(MODULE, args, timeout=1800)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--limit", type=int, default=150, help="RATE_LIMIT, requests/s")
    parser.add_argument("--latency", type=int, default=20, help="injected ms")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    if args.child:
        print(rows_to_json(measure(args.limit, args.latency, args.seconds)))
        return
    print_rows(run(args.quick, args.limit, args.latency))


if __name__ == "__main__":
    main()
