"""backfill_sharded: ``connectycube_sync --all --distribute`` over 1, 2 and 4 worker processes.

One process pushing users is bound by its interpreter lock (client CPU per synced user, see
``backfill_wan``) long before it reaches what the network allows at high concurrency. Here the
backfill is sharded over real Celery worker processes (prefork, Redis broker, the throwaway
PostgreSQL database), each running the backfill engine with CONCURRENCY threads over its shards,
against the emulator (its own process) delaying every request by an injected RTT. Figures:

* users/s from the command until every user is synced, against the limit
  ``concurrency * processes / (requests per user * RTT)`` (requests counted by the emulator);
* the same against 1 process (on 2 cores, expect at most ~2x however many processes);
* the workers' CPU seconds per synced user (their main and pool processes, from ``/proc``),
  and the rate the machine's cores allow at that cost.

    python -m benchmarks.backfill_sharded [--quick] [--latency 20] [--processes 1,2,4]
"""

from __future__ import annotations

import argparse
import os

from benchmarks._common import EmulatorProcess, Row, print_rows, rows_to_json, setup_django
from benchmarks._workers import run_with_workers

NAME = "backfill_sharded"
MODULE = "benchmarks.backfill_sharded"
CONCURRENCY = 64
SHARDS = 8  # a multiple of every process count, so shards spread evenly
LIMIT_GOAL = 0.9


def measure(latency_ms: int, processes: list[int], users: int) -> list[Row]:
    setup_django()
    from django.test.utils import override_settings

    from benchmarks._workers import celery_worker, cpu_seconds, distributed_backfill
    from benchmarks.backfill import _fresh_state, _make_users
    from benchmarks.backfill_wan import _inject
    from benchmarks.settings import CONNECTYCUBE

    rates: dict[int, float] = {}
    per_user: dict[int, float] = {}
    cpu_per_user: dict[int, float] = {}
    with EmulatorProcess(in_flight=CONCURRENCY * max(processes)) as emulator:
        settings = {**CONNECTYCUBE, "API_URL": emulator.url, "SYNC_ENABLED": True}
        with override_settings(CONNECTYCUBE=settings):
            _make_users(users)
            for count in processes:
                with celery_worker(count, emulator) as worker:
                    _fresh_state(emulator)  # clears the faults too: inject after it
                    _inject(emulator, latency_ms)
                    emulator.reset_counters()
                    cpu = cpu_seconds(worker)
                    seconds = distributed_backfill(worker, users, SHARDS, CONCURRENCY)
                    cpu_per_user[count] = (cpu_seconds(worker) - cpu) / users
                    rates[count] = users / seconds
                    per_user[count] = int(emulator.counts()["total"]) / users
            _inject(emulator, 0)
    rows = []
    one = rates[processes[0]]
    for count in processes:
        rate = rates[count]
        limit = CONCURRENCY * count / (per_user[count] * latency_ms / 1e3)
        rows.append(
            Row(
                NAME,
                f"{latency_ms} ms RTT, concurrency {CONCURRENCY} x {count} process(es): vs limit",
                rate,
                "users/s",
                limit,
                "concurrency x processes / (requests/user x RTT)",
                rate / limit,
                f"≥ {LIMIT_GOAL}",
                rate / limit >= LIMIT_GOAL,
                f"{users:,} users in {SHARDS} shards; {per_user[count]:.3f} requests/user; "
                f"{rate / one:.2f}x {processes[0]} process(es); worker CPU "
                f"{cpu_per_user[count] * 1e3:.2f} ms/user, so {os.cpu_count()} cores allow "
                f"{os.cpu_count() / cpu_per_user[count]:,.0f} users/s at most",
            )
        )
    for count in processes[1:]:
        rows.append(
            Row(
                NAME,
                f"{count} processes vs {processes[0]}",
                rates[count],
                "users/s",
                one,
                f"{processes[0]} process(es)",
                rates[count] / one,
                note="2 cores shared with the emulator, PostgreSQL and Redis: at most ~2x",
            )
        )
    return rows


def run(
    quick: bool = False,
    latency: int = 20,
    processes: tuple[int, ...] = (1, 2, 4),
    users: int | None = None,
) -> list[Row]:
    users = users or (1600 if quick else 4000)
    args = ["--child", "--latency", str(latency), "--users", str(users)]
    args += ["--processes", ",".join(map(str, processes))]
    return run_with_workers(MODULE, args, timeout=3600)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--latency", type=int, default=20, help="injected ms")
    parser.add_argument("--processes", default="1,2,4", help="worker processes, comma-separated")
    parser.add_argument("--users", type=int, default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    processes = [int(v) for v in args.processes.split(",")]
    if args.child:
        print(rows_to_json(measure(args.latency, processes, args.users)))
        return
    print_rows(run(args.quick, args.latency, tuple(processes), args.users))


if __name__ == "__main__":
    main()
