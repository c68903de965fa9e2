"""Emulator throughput: requests/s for ``GET /users/{id}`` and ``POST /users``, per HTTP server.

Keep-alive clients (one ``requests.Session`` per thread) at concurrency 1, 4 and 16, against the
emulator served by each candidate server: ``cheroot`` (what :class:`EmulatorServer` runs),
``waitress`` and ``werkzeug``'s threaded server (with ``TCP_NODELAY``). Every figure is also given
as a ratio to a baseline measured in the same run: a trivial WSGI app (a fixed small JSON answer)
served by the same server and loaded by the same client, so the ratio isolates the emulator's own
cost from the machine, the server and the ``requests`` client (which is the ceiling on 2 cores).

Each server runs in its own subprocess (its own GIL). All of them are started first, then every
cell (route, concurrency) is measured on each server in turn, ``--rounds`` times, and the median
is printed: on a shared machine, load that comes and goes then hits every server alike instead of
whichever happened to be measured at the time.

    python -m benchmarks.emulator_throughput            # ~3 min: three servers, 2 rounds of 2 s
    python -m benchmarks.emulator_throughput --servers cheroot --duration 1 --rounds 1

Only 127.0.0.1 is ever contacted; every load loop stops after ``--duration`` seconds.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import requests

CONCURRENCY = (1, 4, 16)
ROUTES = ("GET /users/{id}", "POST /users")
AUTH_KEY = "bench-key"
AUTH_SECRET = "bench-secret"  # noqa: S105 (a local benchmark credential)
#: The server :class:`EmulatorServer` runs; the others are served here only, for comparison.
SHIPPED = "cheroot"
CANDIDATES = ("cheroot", "waitress", "werkzeug")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _baseline_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The cheapest possible answer with a body of the emulator's size class."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    body = b'{"user":{"id":1,"login":"baseline","email":null,"full_name":null}}'
    status = "201 Created" if environ["REQUEST_METHOD"] == "POST" else "200 OK"
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    start_response(status, headers)
    return [body]


def _announce(port: int) -> None:
    print(f"http://127.0.0.1:{port}", flush=True)


def _serve_shipped(app: WSGIApp | None) -> None:
    from django_connectycube.emulator import EmulatorServer

    # GET /users/{id} is a v1 look-up, off on a new application: switched on here so the figures
    # stay comparable across versions (v1 and v2 look-ups share the same store and JSON cost).
    server = EmulatorServer(app=app, auth_key=AUTH_KEY, auth_secret=AUTH_SECRET, v1_users_api=True)
    server.start()
    _announce(server.port)
    while True:
        time.sleep(3600)


def _serve_waitress(app: WSGIApp) -> None:
    import logging

    import waitress.server

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "Task queue depth is 1"

    server = waitress.server.create_server(app, host="127.0.0.1", port=0, threads=16)
    _announce(server.effective_port)  # type: ignore[union-attr]
    server.run()


def _serve_werkzeug(app: WSGIApp) -> None:
    from werkzeug.serving import WSGIRequestHandler, make_server

    class Handler(WSGIRequestHandler):
        # Without it, headers and body leave in separate small writes and Nagle's algorithm
        # meets the client's delayed ACK: ~25 req/s.
        disable_nagle_algorithm = True

        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Handler)
    _announce(server.server_port)
    server.serve_forever()


def serve(kind: str, app_name: str) -> None:
    """Subprocess entry: serve the emulator or the baseline, print the URL, run until killed."""
    baseline = app_name == "baseline"
    if kind == SHIPPED:
        _serve_shipped(_baseline_app if baseline else None)
        return
    from django_connectycube.emulator import Emulator

    app = (
        _baseline_app
        if baseline
        else Emulator(auth_key=AUTH_KEY, auth_secret=AUTH_SECRET, v1_users_api=True)
    )
    {"waitress": _serve_waitress, "werkzeug": _serve_werkzeug}[kind](app)


class Served:
    """A server subprocess, until :meth:`stop`."""

    def __init__(self, kind: str, app_name: str) -> None:
        module = "benchmarks.emulator_throughput"
        args = [sys.executable, "-m", module, "--serve", kind, app_name]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url:
            self.stop()
            raise RuntimeError(f"the {kind} server did not start (see above)")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def _prepare(url: str, run_id: str) -> tuple[str, int]:
    """An application token and a user id to read (the baseline ignores both)."""
    http = requests.Session()
    response = http.post(f"{url}/session", json={"application_id": 1, "auth_key": AUTH_KEY})
    if "session" not in response.json():
        return "baseline", 1
    token = response.json()["session"]["token"]
    user = http.post(
        f"{url}/users",
        json={"user": {"login": f"bench-reader-{run_id}", "password": "p"}},
        headers={"CB-Token": token},
    ).json()["user"]
    return token, user["id"]


def load(url: str, route: str, concurrency: int, duration: float, run_id: str) -> tuple[int, float]:
    """Requests served, and the seconds it took, by ``concurrency`` keep-alive clients."""
    token, user_id = _prepare(url, run_id)
    counts = [0] * concurrency
    failures: list[str] = []
    barrier = threading.Barrier(concurrency + 1)
    deadline: list[float] = [0.0]
    sequence = itertools.count()

    def worker(index: int) -> None:
        http = requests.Session()
        headers = {"CB-Token": token}
        if route.startswith("GET"):
            target = f"{url}/users/{user_id}"
            http.get(target, headers=headers)  # open the connection before timing
            barrier.wait()
            while time.perf_counter() < deadline[0]:
                response = http.get(target, headers=headers)
                if response.status_code != 200:
                    failures.append(response.text[:200])
                    return
                counts[index] += 1
        else:
            target = f"{url}/users"
            http.get(f"{url}/session", headers=headers)
            barrier.wait()
            while time.perf_counter() < deadline[0]:
                login = f"b{run_id}-{next(sequence)}"
                response = http.post(
                    target, json={"user": {"login": login, "password": "p"}}, headers=headers
                )
                if response.status_code != 201:
                    failures.append(response.text[:200])
                    return
                counts[index] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + duration
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{route} failed under load: {failures[0]}")
    return sum(counts), elapsed


def _available(kinds: list[str]) -> list[str]:
    """The servers that are installed; a missing comparison server is named, not fatal."""
    found = []
    for kind in kinds:
        if importlib.util.find_spec(kind) is None:
            print(f"({kind} is not installed: pip install {kind} to compare it)", flush=True)
        else:
            found.append(kind)
    return found


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a process has used; NaN where /proc is missing."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


Cell = tuple[str, str, str, int]  # server, app, route, concurrency


def measure(
    kinds: list[str], duration: float, rounds: int
) -> tuple[dict[Cell, float], dict[Cell, float]]:
    """Median requests/s, and the server's median CPU microseconds per request, per cell.

    Cells are interleaved by server. CPU per request barely moves with the machine's other load,
    where requests/s does: on a shared machine it is the steadier of the two.
    """
    servers = {(k, a): Served(k, a) for k in kinds for a in ("baseline", "emulator")}
    rates: dict[Cell, list[float]] = {}
    costs: dict[Cell, list[float]] = {}
    try:
        for run in range(rounds):
            for cell, (route, concurrency) in enumerate(itertools.product(ROUTES, CONCURRENCY)):
                for (kind, app), served in servers.items():
                    key = (kind, app, route, concurrency)
                    cpu = _cpu_seconds(served.process.pid)
                    count, elapsed = load(served.url, route, concurrency, duration, f"{run}{cell}")
                    cpu = _cpu_seconds(served.process.pid) - cpu
                    rates.setdefault(key, []).append(count / elapsed)
                    costs.setdefault(key, []).append(cpu / count * 1e6)
    finally:
        for served in servers.values():
            served.stop()
    return (
        {key: statistics.median(values) for key, values in rates.items()},
        {key: statistics.median(values) for key, values in costs.items()},
    )


def _report(kinds: list[str], rates: dict[Cell, float], costs: dict[Cell, float]) -> None:
    header = f"{'server':<9} {'route':<16} {'conc':>4} {'req/s':>8} {'baseline':>9} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    cells = list(itertools.product(kinds, ROUTES, CONCURRENCY))
    for kind, route, concurrency in cells:
        rate, base = (rates[kind, app, route, concurrency] for app in ("emulator", "baseline"))
        print(
            f"{kind:<9} {route:<16} {concurrency:>4} {rate:>8,.0f} {base:>9,.0f} "
            f"{rate / base:>6.2f}"
        )
    print("\nserver CPU per request, microseconds (lower is better):")
    for kind, route, concurrency in cells:
        cost, base = (costs[kind, app, route, concurrency] for app in ("emulator", "baseline"))
        print(
            f"  {kind:<9} {route:<16} c={concurrency:<3} emulator {cost:>5,.0f}  "
            f"baseline {base:>5,.0f}"
        )
    others = [kind for kind in kinds if kind != SHIPPED]
    if SHIPPED in kinds and others:
        print(
            f"\n{SHIPPED} vs the others, emulator, same cell (req/s ratio; CPU per request ratio):"
        )
        for route, concurrency in itertools.product(ROUTES, CONCURRENCY):
            ours = (SHIPPED, "emulator", route, concurrency)
            ratios = "  ".join(
                f"{kind} {rates[ours] / rates[kind, 'emulator', route, concurrency]:.2f}x; "
                f"{costs[ours] / costs[kind, 'emulator', route, concurrency]:.2f}x"
                for kind in others
            )
            print(f"  {route:<16} c={concurrency:<3} {ratios}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="measurements per cell (median)")
    parser.add_argument("--servers", nargs="+", default=list(CANDIDATES), choices=CANDIDATES)
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "APP"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(*args.serve)
        return 0
    kinds = _available(args.servers)
    print(
        f"emulator throughput, median of {args.rounds} x {args.duration:g} s per cell, "
        "requests.Session clients in threads",
        flush=True,
    )
    _report(kinds, *measure(kinds, args.duration, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
