"""backfill_memory: peak resident memory of ``connectycube_sync --all``, 100,000 users vs 10,000.

Each size runs in a fresh process, so its peak resident set (``ru_maxrss``: Python objects, the
database driver, the HTTP pool, everything) belongs to that backfill alone. The emulator runs in
a process of its own (it keeps every user it was sent, which is not the app's memory), and the
users are made beforehand by another process, in chunks. A backfill that streams its users keeps
the same peak at any size; one that holds something per user grows with them. Goal: the larger
run's peak at most 1.2 times the smaller's.

    python -m benchmarks.backfill_memory [--quick] [--sizes 10000,100000] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import io
import resource
import time

from benchmarks import _common as bench
from benchmarks._common import Row

NAME = "backfill_memory"
MODULE = "benchmarks.backfill_memory"
GOAL = 1.2
SIZES = (10_000, 100_000)
QUICK_SIZES = (1_000, 5_000)


def _mib(kib: float) -> float:
    return kib / 1024


def _rss_kib() -> int:
    """The current resident set (Linux), in KiB."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() // 1024


def grow(users: int) -> list[Row]:
    """Child process: exactly ``users`` local users and no links, so the next backfill starts
    from scratch (this process's memory is not measured)."""
    bench.setup_django()
    from benchmarks.backfill import _make_users
    from django_connectycube.models import CubeSession, CubeUser

    _make_users(users)
    CubeUser.objects.all().delete()
    CubeSession.objects.all().delete()
    return []


def backfill(users: int, concurrency: int) -> list[Row]:
    """Child process: one ``--all`` backfill; its peak resident set and its resident set before."""
    bench.setup_django()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test.utils import override_settings

    api_url = settings.CONNECTYCUBE["API_URL"]
    bench.control(api_url, "POST", "reset", timeout=30).raise_for_status()
    if get_user_model().objects.count() != users:
        raise RuntimeError(f"expected {users} local users")
    out = io.StringIO()
    before = _rss_kib()
    started = time.perf_counter()
    with override_settings(CONNECTYCUBE={**settings.CONNECTYCUBE, "SYNC_ENABLED": True}):
        call_command("connectycube_sync", "--all", "--concurrency", str(concurrency), stdout=out)
    elapsed = time.perf_counter() - started
    if f"Pushed {users} user(s)" not in out.getvalue():
        raise RuntimeError(f"the backfill did not push {users} users: {out.getvalue()}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return [Row(NAME, f"{users}", peak, "KiB", before, "before", note=f"{users / elapsed:.0f}")]


def run(
    quick: bool = False, sizes: tuple[int, int] | None = None, concurrency: int = 4
) -> list[Row]:
    small, large = sizes or (QUICK_SIZES if quick else SIZES)
    measured: dict[int, Row] = {}
    with bench.throwaway_postgres() as url, bench.EmulatorProcess() as emulator:
        env = bench.child_env(database_url=url, **emulator.env())
        for users in (small, large):
            bench.run_child(MODULE, ["--child", "grow", "--users", str(users)], env, timeout=1800)
            args = ["--child", "backfill", "--users", str(users), "--concurrency", str(concurrency)]
            (measured[users],) = bench.run_child(MODULE, args, env, timeout=3600)
    low, high = measured[small], measured[large]
    ratio = high.value / low.value
    growth = ", ".join(
        f"{_mib(row.value - (row.baseline or 0)):.1f} MiB over the {_mib(row.baseline or 0):.0f} "
        f"MiB before at {int(row.figure):,} ({row.note} users/s)"
        for row in (low, high)
    )
    return [
        Row(
            NAME,
            f"--all peak RSS, {large:,} vs {small:,} users (concurrency {concurrency})",
            _mib(high.value),
            "MiB",
            _mib(low.value),
            f"{small:,} users",
            ratio,
            f"≤ {GOAL}",
            ratio <= GOAL,
            f"fresh process per size, emulator apart; growth during the backfill: {growth}",
        )
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES}")
    parser.add_argument("--sizes", help="two sizes, e.g. 10000,100000")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--child", choices=["grow", "backfill"], help=argparse.SUPPRESS)
    parser.add_argument("--users", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "grow":
        print(bench.rows_to_json(grow(args.users)))
        return
    if args.child == "backfill":
        print(bench.rows_to_json(backfill(args.users, args.concurrency)))
        return
    sizes = None
    if args.sizes:
        small, large = (int(n) for n in args.sizes.split(","))
        sizes = (small, large)
    bench.print_rows(run(args.quick, sizes, args.concurrency))


if __name__ == "__main__":
    main()
