"""Remote calls per client operation, and pooled-vs-unpooled throughput, against the emulator.

Run: ``.venv/bin/python benchmarks/client_calls.py [--iterations N]``

Calls are counted by the emulator's own request counter (``GET /_emulator/requests``), so they
include every retry and session renewal the client made. The goal for a look-up or an update
with warm sessions is 1.00. Throughput is printed as a ratio (pooled / unpooled), measured in the
same run against the same server, because absolute numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

from django_connectycube.client import ConnectyCubeClient, MemoryAppSessionStore
from django_connectycube.emulator import EmulatorServer

APP_ID = 1
AUTH_KEY = "bench-auth-key"
AUTH_SECRET = "bench-auth-secret"  # noqa: S105
PASSWORD = "bench-password"  # noqa: S105


def total_requests(url: str) -> int:
    return int(requests.get(f"{url}/_emulator/requests", timeout=5).json()["total"])


def calls_per_op(url: str, op: Callable[[int], Any], iterations: int) -> float:
    before = total_requests(url)
    for i in range(iterations):
        op(i)
    return (total_requests(url) - before) / iterations


def throughput(op: Callable[[], Any], seconds: float) -> float:
    done = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        op()
        done += 1
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=3.0, help="per throughput run")
    args = parser.parse_args()
    n = args.iterations

    server = EmulatorServer(
        application_id=APP_ID, auth_key=AUTH_KEY, auth_secret=AUTH_SECRET
    ).start()
    try:
        url = server.url
        client = ConnectyCubeClient(
            url, APP_ID, AUTH_KEY, AUTH_SECRET, app_session_store=MemoryAppSessionStore()
        )
        users = [
            client.create_user(
                login=f"bench{i}",
                password=PASSWORD,
                email=f"bench{i}@example.com",
                full_name=f"Bench User {i}",
                external_id=str(1000 + i),
                tag_list=["bench"],
            )
            for i in range(n)
        ]
        me = client.create_user_session(login="bench0", password=PASSWORD)
        as_me = client.as_user(me)
        ids = [u.id for u in users[:10]]
        avatar = b"\x89PNG\r\n\x1a\n" + b"0" * 256

        rows: list[tuple[str, float, str]] = []

        def measure(name: str, op: Callable[[int], Any], goal: str = "") -> None:
            op(0)  # warm: sessions exist and connections are open before counting
            rows.append((name, calls_per_op(url, op, n), goal))

        measure("get_user (warm)", lambda i: client.get_user(users[i].id), "1.00")
        measure("get_user_by_login", lambda i: client.get_user_by_login(f"bench{i}"), "1.00")
        measure(
            "get_user_by_email", lambda i: client.get_user_by_email(f"bench{i}@example.com"), "1.00"
        )
        measure(
            "get_user_by_external_id",
            lambda i: client.get_user_by_external_id(str(1000 + i)),
            "1.00",
        )
        measure("get_users_by_ids (1 page)", lambda i: client.get_users_by_ids(ids), "1.00")
        measure("get_users_by_tags (1 page)", lambda i: client.get_users_by_tags("bench"), "1.00")
        measure("search_users v2 (1 page)", lambda i: client.search_users(login="bench1"), "1.00")
        measure("update_user (warm)", lambda i: as_me.update_user(full_name=f"Bench {i}"), "1.00")
        counter = iter(range(10**6))
        measure(
            "create_user (signup)",
            lambda i: client.create_user(login=f"signup{next(counter)}", password=PASSWORD),
            "1.00",
        )
        measure(
            "upload_file (3 steps)",
            lambda i: as_me.upload_file(io.BytesIO(avatar), "a.png", "image/png"),
            "3.00",
        )
        measure(
            "set_avatar (no custom_data given)",
            lambda i: as_me.set_avatar(avatar, "a.png", "image/png"),
            "5.00",
        )
        measure(
            "set_avatar (custom_data given)",
            lambda i: as_me.set_avatar(avatar, "a.png", "image/png", custom_data={}),
            "4.00",
        )
        cold = [0]

        def cold_lookup(i: int) -> None:
            fresh = ConnectyCubeClient(
                url, APP_ID, AUTH_KEY, AUTH_SECRET, app_session_store=MemoryAppSessionStore()
            )
            fresh.get_user(users[i].id)
            fresh.close()
            cold[0] += 1

        measure("get_user (cold client, new app session)", cold_lookup, "2.00")

        print(f"Remote calls per operation ({n} iterations each, emulator request counter)")
        print(f"{'operation':<42} {'calls/op':>9} {'goal':>6}")
        for name, value, goal in rows:
            print(f"{name:<42} {value:>9.2f} {goal:>6}")

        unpooled = ConnectyCubeClient(
            url, APP_ID, AUTH_KEY, AUTH_SECRET, app_session_store=client.store, pooled=False
        )
        target = users[0].id
        client.get_user(target)
        unpooled.get_user(target)
        pooled_rate = throughput(lambda: client.get_user(target), args.seconds)
        unpooled_rate = throughput(lambda: unpooled.get_user(target), args.seconds)
        print()
        print("Throughput of get_user, one thread, same server and run")
        print(f"pooled (keep-alive, one requests.Session)   {pooled_rate:8.0f} req/s")
        print(f"unpooled (new connection per request)       {unpooled_rate:8.0f} req/s")
        print(f"ratio pooled / unpooled                     {pooled_rate / unpooled_rate:8.2f}x")
        client.close()
        unpooled.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
