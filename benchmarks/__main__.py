"""Run every benchmark and print one table: ``python -m benchmarks [--quick] [--only NAME ...]``.

Every figure is a ratio to a baseline measured side by side in the same run, because absolute
times on a shared machine are not comparable between runs. ``--quick`` uses small sizes (CI).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import io
import re
import sys
import time
from contextlib import redirect_stdout
from typing import Any

from benchmarks._common import Row, fmt, print_rows

BENCHMARKS = (
    "save_overhead",
    "session_view",
    "db_scale",
    "backfill_wan",
    "backfill_sharded",
    "rate_limit",
    "backfill",
    "backfill_memory",
    "calls_per_change",
    "worker_throughput",
    "emulator_lookup",
)


def emulator_rows(quick: bool) -> list[Row]:
    """The emulator issue's benchmark, run through its own ``main`` and parsed."""
    if importlib.util.find_spec("benchmarks.emulator_throughput") is None:
        return [Row("emulator_throughput", "not available", float("nan"), "", note="missing")]
    module = importlib.import_module("benchmarks.emulator_throughput")
    args = ["--servers", module.SHIPPED, "--duration", "1" if quick else "3", "--rounds", "1"]
    out = io.StringIO()
    with redirect_stdout(out):
        module.main(args)
    rows = []
    pattern = re.compile(
        r"^(\w+)\s+(GET /users/\{id\}|POST /users)\s+(\d+)\s+([\d,]+)\s+([\d,]+)\s+([\d.]+)$"
    )
    for line in out.getvalue().splitlines():
        match = pattern.match(line.strip())
        if match:
            server, route, conc, rate, base, ratio = match.groups()
            rows.append(
                Row(
                    "emulator_throughput",
                    f"{server} {route}, concurrency {conc}",
                    float(rate.replace(",", "")),
                    "req/s",
                    float(base.replace(",", "")),
                    "trivial WSGI app, same server",
                    float(ratio),
                )
            )
    if not rows:
        rows.append(
            Row(
                "emulator_throughput",
                "unparsed output",
                float("nan"),
                "",
                note=out.getvalue()[-300:],
            )
        )
    return rows


#: The goals of the "fast where users wait" issue: (goal, benchmark, start of the figure's name).
GOALS = (
    (
        "GET session/, valid token: no ConnectyCube call",
        "session_view",
        "GET session/, valid stored token: ConnectyCube",
    ),
    (
        "GET session/, valid token: no database write",
        "session_view",
        "GET session/, valid stored token: database",
    ),
    (
        "GET session/: CPU ≤ 1.25x a bare DRF view",
        "session_view",
        "GET session/, valid stored token: CPU",
    ),
    ("every admin page ≤ 50 ms in the database", "db_scale", "admin "),
    ("emulator GET /users/v2 CPU flat in stored users", "emulator_lookup", "GET /users/v2"),
    ("backfill at WAN RTT ≥ 0.9 of min(network, CPU) limit", "backfill_wan", ""),
)


def print_goals(rows: list[Row], out: Any = None) -> None:
    """One line per goal of the issue: the figures that judge it and whether each is met."""
    out = out or sys.stdout
    out.write("\n| goal | figure | value | ratio | met? |\n| --- | --- | --- | --- | --- |\n")
    for goal, benchmark, prefix in GOALS:
        judged = [
            r
            for r in rows
            if r.benchmark == benchmark
            and r.figure.startswith(prefix)
            and r.met is not None
            and (benchmark != "db_scale" or "in the database" in r.figure)
            and (benchmark != "backfill_wan" or r.figure.endswith("vs limit"))
        ]
        if not judged:
            out.write(f"| {goal} | not run | - | - | - |\n")
        for r in judged:
            ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
            met = "met" if r.met else "**not met**"
            out.write(f"| {goal} | {r.figure} | {fmt(r.value, r.unit)} | {ratio} | {met} |\n")
    out.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (CI)")
    parser.add_argument("--only", nargs="+", choices=[*BENCHMARKS, "emulator_throughput"])
    args = parser.parse_args(argv)
    chosen = args.only or [*BENCHMARKS, "emulator_throughput"]
    rows: list[Row] = []
    started = time.monotonic()
    for name in chosen:
        began = time.monotonic()
        sys.stderr.write(f"running {name}…\n")
        if name == "emulator_throughput":
            rows += emulator_rows(args.quick)
        else:
            rows += importlib.import_module(f"benchmarks.{name}").run(quick=args.quick)
        sys.stderr.write(f"  {name} took {time.monotonic() - began:.0f}s\n")
    print(
        f"python -m benchmarks{' --quick' if args.quick else ''} "
        f"({time.monotonic() - started:.0f} s)\n"
    )
    print_rows(rows)
    print_goals(rows)
    return 0 if all(r.met is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
