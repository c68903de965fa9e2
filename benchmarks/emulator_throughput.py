"""Emulator throughput: requests/s for ``GET /users/{id}`` and ``POST /users``.

Keep-alive clients (one ``requests.Session`` per thread) at concurrency 1, 4 and 16, against
each HTTP server the emulator can run on. Every figure is also given as a ratio to a baseline
measured in the same run: a trivial WSGI app (a fixed small JSON answer) served by the same
server and loaded by the same client, so the ratio isolates the emulator's own cost from the
machine, the server and the ``requests`` client (which is the ceiling on 2 cores).

The server runs in a subprocess so that it does not share the client's GIL.

    python -m benchmarks.emulator_throughput            # ~75 s: both servers, 3 s per cell
    python -m benchmarks.emulator_throughput --servers threaded --duration 2

Only 127.0.0.1 is ever contacted; every load loop stops after ``--duration`` seconds.
"""

from __future__ import annotations

import argparse
import itertools
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


def serve(kind: str, app_name: str) -> None:
    """Subprocess entry: serve the emulator or the baseline, print the URL, run until killed."""
    from django_connectycube.emulator import EmulatorServer

    app = _baseline_app if app_name == "baseline" else None
    # GET /users/{id} is a v1 look-up, off on a new application: switched on here so the figures
    # stay comparable across versions (v1 and v2 look-ups share the same store and JSON cost).
    server = EmulatorServer(
        server=kind, app=app, auth_key=AUTH_KEY, auth_secret=AUTH_SECRET, v1_users_api=True
    )
    server.start()
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


class Served:
    """A server subprocess for the duration of a ``with`` block."""

    def __init__(self, kind: str, app_name: str) -> None:
        module = "benchmarks.emulator_throughput"
        self.args = [sys.executable, "-m", module, "--serve", kind, app_name]

    def __enter__(self) -> str:
        self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def __exit__(self, *exc: object) -> None:
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


def load(url: str, route: str, concurrency: int, duration: float, run_id: str) -> float:
    """Requests/s over ``duration`` seconds with ``concurrency`` keep-alive clients."""
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
    return sum(counts) / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument(
        "--servers", nargs="+", default=["threaded", "waitress"], choices=["threaded", "waitress"]
    )
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "APP"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(*args.serve)
        return 0
    print(f"emulator throughput, {args.duration:g} s per cell, requests.Session clients in threads")
    header = f"{'server':<9} {'route':<16} {'conc':>4} {'req/s':>8} {'baseline':>9} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    results: dict[tuple[str, str, int], float] = {}
    for kind in args.servers:
        baseline: dict[tuple[str, int], float] = {}
        with Served(kind, "baseline") as url:
            for route, concurrency in itertools.product(ROUTES, CONCURRENCY):
                baseline[route, concurrency] = load(url, route, concurrency, args.duration, "x")
        with Served(kind, "emulator") as url:
            for run, (route, concurrency) in enumerate(itertools.product(ROUTES, CONCURRENCY)):
                rate = load(url, route, concurrency, args.duration, str(run))
                results[kind, route, concurrency] = rate
                base = baseline[route, concurrency]
                print(
                    f"{kind:<9} {route:<16} {concurrency:>4} {rate:>8,.0f} {base:>9,.0f} "
                    f"{rate / base:>6.2f}",
                    flush=True,
                )
    if len(args.servers) > 1:
        first, second = args.servers[:2]
        print(f"\n{first} vs {second} (emulator, same route and concurrency):")
        for route, concurrency in itertools.product(ROUTES, CONCURRENCY):
            ratio = results[first, route, concurrency] / results[second, route, concurrency]
            print(f"  {route:<16} c={concurrency:<3} {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
