"""emulator_lookup: the emulator's CPU per ``GET /users/v2`` look-up at 1 k, 10 k and 100 k users.

Every test and benchmark talks to the emulator, and a ``GET /users/v2?id=`` that walked every
stored user made a big backfill's checks O(users) each. The emulator is called as a WSGI app in
this process (no server, no client: only its own work is timed), seeded with users through its
seeding API, and asked for users picked at random by ``id``, ``login`` and ``external_id``. At
each size the rounds alternate with a trivial WSGI app (a fixed small JSON answer, the same
call), so each figure is also a ratio to a baseline taken at the same moment. Goal: the largest
size's ratio at most 1.25 times the smallest size's (flat, not O(users)).

    python -m benchmarks.emulator_lookup [--quick] [--sizes 1000,10000,100000]
"""

from __future__ import annotations

import argparse
import io
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

from benchmarks._common import Row, median, print_rows
from benchmarks.emulator_throughput import _baseline_app

NAME = "emulator_lookup"
FLAT_GOAL = 1.25
LOOKUPS = ("id", "login", "external_id")
PASSWORD = "bench-pass-1"  # noqa: S105 (seeded users of a throwaway emulator)


def _caller(app: Callable[..., Iterable[bytes]], token: str) -> Callable[[str], bytes]:
    base = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/users/v2",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "HTTP_CB_TOKEN": token,
    }

    def call(query: str) -> bytes:
        environ = {**base, "QUERY_STRING": query, "wsgi.input": io.BytesIO(b"")}
        return b"".join(app(environ, lambda status, headers: None))

    return call


def _cpu_per_request(call: Callable[[str], bytes], queries: list[str]) -> float:
    began = time.process_time()
    for query in queries:
        call(query)
    return (time.process_time() - began) / len(queries) * 1e6


def measure(sizes: list[int], rounds: int, per_round: int) -> list[Row]:
    from django_connectycube.emulator.app import Emulator

    emulator = Emulator()
    have = 0
    rng = random.Random(7)
    results: dict[tuple[str, int], tuple[float, float]] = {}
    token = ""
    for size in sizes:
        for i in range(have, size):
            emulator.create_user(login=f"user{i}", password=PASSWORD, external_id=f"x{i}")
        have = size
        token = token or emulator.create_session(1)
        ours, bare = _caller(emulator, token), _caller(_baseline_app, token)
        for lookup in LOOKUPS:
            picks = [rng.randrange(size) for _ in range(per_round)]
            value = {"id": "{}", "login": "user{}", "external_id": "x{}"}[lookup]
            queries = [f"{lookup}={value.format(i + (lookup == 'id'))}" for i in picks]
            if b'"total_entries":1' not in ours(queries[0]):
                raise RuntimeError(f"{lookup} look-up found nothing: {ours(queries[0])[:200]!r}")
            samples: dict[str, list[float]] = {"ours": [], "bare": []}
            for index in range(rounds):
                for name in ("ours", "bare") if index % 2 == 0 else ("bare", "ours"):
                    samples[name].append(
                        _cpu_per_request(ours if name == "ours" else bare, queries)
                    )
            results[(lookup, size)] = (median(samples["ours"]), median(samples["bare"]))
    return _rows(results, sizes, rounds, per_round)


def _rows(
    results: dict[tuple[str, int], tuple[float, float]], sizes: list[int], rounds: int, n: int
) -> list[Row]:
    rows = []
    small, large = sizes[0], sizes[-1]
    for (lookup, size), (ours, bare) in results.items():
        ratio = ours / bare
        row = Row(
            NAME,
            f"GET /users/v2?{lookup}=, {size:,} users: CPU per request",
            ours,
            "µs",
            bare,
            "trivial WSGI app, same call",
            ratio,
        )
        if size == large and large != small:
            first_ours, first_bare = results[(lookup, small)]
            growth = ratio / (first_ours / first_bare)
            row.goal, row.met = f"≤ {FLAT_GOAL}x at {small:,} (flat)", growth <= FLAT_GOAL
            row.note = (
                f"{growth:.2f}x the ratio at {small:,} users; medians of {rounds} alternating "
                f"rounds of {n} random look-ups, in process (no server, no client)"
            )
        rows.append(row)
    return rows


def run(quick: bool = False) -> list[Row]:
    sizes = [1_000, 10_000] if quick else [1_000, 10_000, 100_000]
    return measure(sizes, rounds=4 if quick else 8, per_round=200 if quick else 500)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 and 10,000 users")
    parser.add_argument("--sizes", default="", help="comma-separated user counts")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--per-round", type=int, default=500)
    args: Any = parser.parse_args(argv)
    if args.sizes:
        sizes = sorted(int(s) for s in args.sizes.split(","))
        print_rows(measure(sizes, args.rounds, args.per_round))
    else:
        print_rows(run(args.quick))


if __name__ == "__main__":
    main()
