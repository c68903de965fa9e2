"""backfill_wan: ``connectycube_sync --all`` at a WAN's round-trip time, against its limit.

The emulator (its own process) delays every API request by an injected latency (its ``latency``
fault, on every route but its control API), 20 ms and 80 ms. For each latency and concurrency
4, 16 and 64, a backfill of local users (bulk-created in a throwaway PostgreSQL database) is timed
and compared with:

* the limit ``min(concurrency / (requests per user * RTT), cores / CPU per user)``: what any
  client with that many requests in flight can do, unless this machine's cores run out first
  at the CPU the backfill spent per user (the requests per user counted by the emulator);
* the naive way at the same latency: per user a new connection and a new application session,
  then the create, one user after the other;
* in each cell's note, a client that does nothing but ``POST /users`` on keep-alive connections
  at the same latency and concurrency: how far the limit is reachable at all (the emulator's
  own time per request, the HTTP stack's), and what the backfill's own work costs beside it.

It also reports the client process's CPU seconds per synced user (``time.process_time``, the
emulator's CPU excluded) and the wall time 1 M and 10 M users would take at the best rate seen.
Each cell is run ``--repeats`` times, alternating with the bare loop (backfill first, then bare
first), and the medians are reported, so load that comes and goes hits both alike.

    python -m benchmarks.backfill_wan [--quick] [--latencies 20,80] [--concurrency 4,16,64]
"""

from __future__ import annotations

import argparse
import io
import os
import time

from benchmarks._common import (
    EmulatorProcess,
    Row,
    child_env,
    control,
    median,
    print_rows,
    rows_to_json,
    run_child,
    setup_django,
    throwaway_postgres,
)
from benchmarks.backfill import _fresh_state, _make_users, ceiling, naive

NAME = "backfill_wan"
MODULE = "benchmarks.backfill_wan"
LIMIT_GOAL = 0.9
NAIVE_GOAL = 10.0
API_ROUTES = "/[!_]*"  # every path but /_emulator/…


def _inject(emulator: EmulatorProcess, latency_ms: float) -> None:
    control(emulator.url, "DELETE", "faults")
    if latency_ms:
        body = {"route": API_ROUTES, "latency": latency_ms / 1e3}
        control(emulator.url, "POST", "faults", json=body).raise_for_status()


def _backfill(
    emulator: EmulatorProcess, latency_ms: int, concurrency: int, users: int
) -> tuple[float, float, int]:
    """One ``--all`` backfill: (wall seconds, client CPU seconds, remote requests)."""
    from django.core.management import call_command

    _fresh_state(emulator)  # also clears the faults: inject after it
    _inject(emulator, latency_ms)
    emulator.reset_counters()
    out = io.StringIO()
    cpu, wall = time.process_time(), time.perf_counter()
    call_command("connectycube_sync", "--all", "--concurrency", str(concurrency), stdout=out)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    text = out.getvalue()
    if f"Pushed {users} user(s)" not in text or "failed" in text:
        raise RuntimeError(f"backfill did not push {users} users cleanly: {text}")
    return wall, cpu, int(emulator.counts()["total"])


def _cell(
    emulator: EmulatorProcess, lat: int, conc: int, users: int, repeats: int
) -> tuple[float, float, float, float]:
    """A cell's medians over ``repeats`` runs alternating with the bare loop: (backfill wall
    seconds, client CPU seconds, requests, bare loop's requests/s)."""
    backfills: list[tuple[float, float, int]] = []
    bares: list[float] = []
    for index in range(repeats):
        for what in ("backfill", "bare") if index % 2 == 0 else ("bare", "backfill"):
            if what == "backfill":
                backfills.append(_backfill(emulator, lat, conc, users))
            else:
                emulator.reset()
                _inject(emulator, lat)
                bares.append(ceiling(emulator.url, users, conc, f"b{lat}-{conc}-{index}"))
    wall, cpu, calls = (median([b[i] for b in backfills]) for i in range(3))
    return wall, cpu, calls, median(bares)


def measure(
    latencies: list[int], concurrencies: list[int], seconds: float, naive_n: int, repeats: int = 2
) -> list[Row]:
    setup_django()
    from django.contrib.auth import get_user_model
    from django.test.utils import override_settings

    from benchmarks.settings import CONNECTYCUBE

    User = get_user_model()
    rows: list[Row] = []
    with EmulatorProcess(in_flight=max(concurrencies)) as emulator:
        settings = {**CONNECTYCUBE, "API_URL": emulator.url, "SYNC_ENABLED": True}
        with override_settings(CONNECTYCUBE=settings):
            # Cells in order of the users they need (each about `seconds` at one request per
            # user at the limit), so the user table only grows.
            cells = sorted(
                ((lat, conc) for lat in latencies for conc in concurrencies),
                key=lambda c: c[1] / c[0],
            )
            best: dict[int, float] = {}
            cpu_per_user: list[float] = []
            for lat, conc in cells:
                users = max(100, min(5000, int(seconds * conc / (lat / 1e3))))
                users = max(users, User.objects.count())
                _make_users(users)
                wall, cpu, calls, bare = _cell(emulator, lat, conc, users, repeats)
                per_user = calls / users
                network = conc / (per_user * lat / 1e3)
                cores = os.cpu_count() or 1
                rate, limit = users / wall, min(network, cores * users / cpu)
                bound = "the network" if limit == network else f"{cores} cores' CPU"
                best[lat] = max(best.get(lat, 0.0), rate)
                cpu_per_user.append(cpu / users)
                rows.append(
                    Row(
                        NAME,
                        f"{lat} ms RTT, concurrency {conc}: vs limit",
                        rate,
                        "users/s",
                        limit,
                        "min(concurrency / (requests/user * RTT), cores / CPU per user)",
                        rate / limit,
                        f"≥ {LIMIT_GOAL}",
                        rate / limit >= LIMIT_GOAL,
                        f"{users:,} users, medians of {repeats}; limit set by {bound} (network "
                        f"{network:,.0f}/s); {per_user:.3f} requests/user; client CPU "
                        f"{cpu / users * 1e3:.2f} ms/user ({cpu / wall:.0%} of one core); a bare "
                        f"keep-alive POST /users loop, interleaved: {bare:,.0f}/s "
                        f"({bare * per_user / limit:.2f}"
                        f" of the limit), the backfill {rate * per_user / bare:.2f} of it",
                    )
                )
            for lat in latencies:
                emulator.reset()
                _inject(emulator, lat)
                slow = naive(emulator.url, naive_n, f"n{lat}")
                rows.append(
                    Row(
                        NAME,
                        f"{lat} ms RTT: best backfill vs naive",
                        best[lat],
                        "users/s",
                        slow,
                        f"new connection+session per user, {naive_n} users",
                        best[lat] / slow,
                        f"≥ {NAIVE_GOAL}",
                        best[lat] / slow >= NAIVE_GOAL,
                    )
                )
                for total in (1_000_000, 10_000_000):
                    rows.append(
                        Row(
                            NAME,
                            f"{lat} ms RTT: {total:,} users at the best rate",
                            total / best[lat] / 3600,
                            "h",
                            note="" if rows[-1].unit == "h" else "no server rate limit assumed",
                        )
                    )
            _inject(emulator, 0)
    cpu = median(cpu_per_user)
    rows.append(
        Row(
            NAME,
            "client CPU per synced user (median of the cells)",
            cpu * 1e3,
            "ms",
            note=f"one core's ceiling {1 / cpu:,.0f} users/s; 1 M users = "
            f"{1e6 * cpu / 3600:.2f} CPU hours, 10 M = {1e7 * cpu / 3600:.1f} CPU hours",
        )
    )
    return rows


def run(
    quick: bool = False,
    latencies: tuple[int, ...] = (20, 80),
    concurrencies: tuple[int, ...] = (4, 16, 64),
) -> list[Row]:
    seconds, naive_n, repeats = (1.0, 10, 2) if quick else (4.0, 30, 2)
    args = ["--child", "--latencies", ",".join(map(str, latencies)), "--repeats", str(repeats)]
    args += ["--concurrency", ",".join(map(str, concurrencies)), "--seconds", str(seconds)]
    args += ["--naive-users", str(naive_n)]
    with throwaway_postgres() as url:
        return run_child(MODULE, args, child_env(database_url=url), timeout=3600)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--latencies", default="20,80", help="injected ms, comma-separated")
    parser.add_argument("--concurrency", default="4,16,64", help="comma-separated")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--naive-users", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2, help="runs per cell, interleaved")
    args = parser.parse_args(argv)
    latencies = [int(v) for v in args.latencies.split(",")]
    concurrencies = [int(v) for v in args.concurrency.split(",")]
    if args.child:
        rows = measure(latencies, concurrencies, args.seconds, args.naive_users, args.repeats)
        print(rows_to_json(rows))
        return
    print_rows(run(args.quick, tuple(latencies), tuple(concurrencies)))


if __name__ == "__main__":
    main()
