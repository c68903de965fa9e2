"""Shared helpers: throwaway databases and queues, an emulator subprocess, statistics, rows.

Every benchmark module exposes ``run(quick: bool) -> list[Row]`` and a ``main()``; a benchmark
that needs its own Django configuration (SQLite vs PostgreSQL) runs its measuring part in a child
process started with :func:`run_child`, which passes rows back as JSON on the last stdout line.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests

from django_connectycube.emulator.control_access import CONTROL_HEADER

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
AUTH_KEY = "bench-auth-key"
AUTH_SECRET = "bench-auth-secret"  # noqa: S105 (a local benchmark credential)
ROW_PREFIX = "BENCH-ROWS "


@dataclass
class Row:
    """One line of the results table."""

    benchmark: str
    figure: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    ratio: float | None = None
    goal: str = ""
    met: bool | None = None
    note: str = ""


def control(
    base_url: str, method: str, path: str, timeout: float = 10, **kwargs: Any
) -> requests.Response:
    """A call to the emulator's control API, with the header it wants on every change."""
    url = f"{base_url}/_emulator/{path}"
    return requests.request(method, url, headers={CONTROL_HEADER: "1"}, timeout=timeout, **kwargs)


def rows_to_json(rows: Sequence[Row]) -> str:
    return ROW_PREFIX + json.dumps([asdict(r) for r in rows])


def rows_from_output(text: str) -> list[Row]:
    for line in reversed(text.splitlines()):
        if line.startswith(ROW_PREFIX):
            return [Row(**r) for r in json.loads(line[len(ROW_PREFIX) :])]
    raise RuntimeError(f"no result rows in the child's output:\n{text[-3000:]}")


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:,.2f}" if unit in ("µs", "ms") or abs(value) < 10 else f"{value:,.0f}"
    return f"{text} {unit}".strip()


def print_rows(rows: Sequence[Row], out: Any = None) -> None:
    """The results table (markdown, so it pastes into the README as is)."""
    out = out or sys.stdout
    head = ("benchmark", "figure", "value", "baseline", "ratio", "goal", "met?")
    lines = [head, tuple("---" for _ in head)]
    for r in rows:
        base = f"{fmt(r.baseline, r.unit)} ({r.baseline_name})" if r.baseline is not None else "-"
        met = "-" if r.met is None else ("yes" if r.met else "**no**")
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
        lines.append((r.benchmark, r.figure, fmt(r.value, r.unit), base, ratio, r.goal, met))
    for line in lines:
        out.write("| " + " | ".join(line) + " |\n")
    notes = [f"- {r.benchmark} / {r.figure}: {r.note}" for r in rows if r.note]
    if notes:
        out.write("\n" + "\n".join(notes) + "\n")
    out.flush()


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


# ---- child processes -----------------------------------------------------------------------


def child_env(**bench: str | None) -> dict[str, str]:
    """The environment of a benchmark child: ``BENCH_*`` variables and our settings module."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    env["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    for key, value in bench.items():
        if value is not None:
            env[f"BENCH_{key.upper()}"] = value
    return env


def run_child(module: str, args: Sequence[str], env: dict[str, str], timeout: float) -> list[Row]:
    """Run ``python -m module args`` and return the rows it printed."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    if done.stderr.strip():
        sys.stderr.write(done.stderr)
    return rows_from_output(done.stdout)


def setup_django() -> None:
    """Configure Django from ``benchmarks.settings`` and migrate the (throwaway) database."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


# ---- services --------------------------------------------------------------------------------


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A new, empty PostgreSQL database for this run, dropped afterwards; yields its URL.

    ``BENCH_PG_NAME`` fixes its name (a database this machine gives the run), else it is random.
    """
    import psycopg

    name = os.environ.get("BENCH_PG_NAME") or f"cube_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def purge_redis_queue(queue: str) -> int:
    """Delete a throwaway Celery queue (and its binding) from Redis; returns messages dropped."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        dropped = int(client.llen(queue))
        client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
        for priority in range(1, 10):
            client.delete(f"{queue}\x06\x16{priority}")
        return dropped
    finally:
        client.close()


class EmulatorProcess:
    """The emulator in its own process (its own GIL), with helpers for its control API."""

    def __init__(self, *, in_flight: int = 0) -> None:
        """``in_flight``: the most requests the benchmark keeps in flight, when that is more
        than the emulator serves at once by default (a delayed request holds a thread)."""
        self.url = ""
        self.process: subprocess.Popen[str] | None = None
        self.threads = max(in_flight + 8, 32)

    def __enter__(self) -> EmulatorProcess:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "django_connectycube.emulator",
                "--port",
                "0",
                "--auth-key",
                AUTH_KEY,
                "--auth-secret",
                AUTH_SECRET,
                "--threads",
                str(self.threads),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/_emulator/health", timeout=2).ok:
                    return self
            time.sleep(0.05)
        raise RuntimeError("the emulator did not start")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def counts(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/_emulator/requests", timeout=10).json()  # type: ignore[no-any-return]

    def reset_counters(self) -> None:
        control(self.url, "DELETE", "requests")

    def reset(self) -> None:
        control(self.url, "POST", "reset", timeout=30)

    def env(self) -> dict[str, str]:
        return {"api_url": self.url, "auth_key": AUTH_KEY, "auth_secret": AUTH_SECRET}
