"""calls_per_change: remote calls per synced change, counted by the emulator.

1,000 updates of a mapped field on already-synced users whose ConnectyCube sessions are warm,
each pushed with ``sync.push_user`` (what the worker runs), against the emulator in its own
process; the emulator's request counter divided by the number of changes. When the login view
exists (``django_connectycube/api/urls.py``), also: remote calls of a login with a cached, valid
token.

    python -m benchmarks.calls_per_change [--quick]
"""

from __future__ import annotations

import argparse
import importlib.util
from typing import Any

from benchmarks._common import (
    EmulatorProcess,
    Row,
    child_env,
    print_rows,
    rows_to_json,
    run_child,
    setup_django,
)

NAME = "calls_per_change"
MODULE = "benchmarks.calls_per_change"
GOAL = 1.05
USERS = 50


def login_view_available() -> bool:
    return importlib.util.find_spec("django_connectycube.api.urls") is not None


def measure(changes: int) -> list[Row]:
    setup_django()
    from django.contrib.auth import get_user_model
    from django.test.utils import override_settings

    from benchmarks.settings import CONNECTYCUBE
    from django_connectycube.sync import policy
    from django_connectycube.sync import push as sync

    User = get_user_model()
    rows: list[Row] = []
    with EmulatorProcess() as emulator:
        settings = {**CONNECTYCUBE, "API_URL": emulator.url}
        with override_settings(CONNECTYCUBE=settings):
            users = [
                User.objects.create(username=f"cpc{i}", email=f"cpc{i}@example.com")
                for i in range(USERS)
            ]
            for user in users:  # create remotely, then warm each user's session
                sync.push_user(user.pk)
                user.first_name = "Warm"
                user.save()
                sync.push_user(user.pk)
            emulator.reset_counters()
            for i in range(changes):
                user = users[i % len(users)]
                user.first_name = f"Change {i}"
                user.save()
                if sync.push_user(user.pk) != policy.UPDATED:
                    raise RuntimeError("a change was not pushed as an update")
            counts = emulator.counts()
            per_change = counts["total"] / changes
            routes = ", ".join(f"{k} {v}" for k, v in sorted(counts["routes"].items()))
            rows.append(
                Row(
                    NAME,
                    f"{changes:,} updates, warm sessions",
                    per_change,
                    "calls/change",
                    None,
                    "",
                    None,
                    f"≤ {GOAL}",
                    per_change <= GOAL,
                    f"routes: {routes}",
                )
            )
            if login_view_available():
                rows.append(_login_row(emulator, users[0]))
    return rows


def _login_row(emulator: EmulatorProcess, user: Any) -> Row:
    """Remote calls of the login view when the user's stored token is valid (goal: 0)."""
    from django.test import Client
    from django.urls import NoReverseMatch, reverse

    user.set_password("bench-pass")
    user.save()
    client = Client()
    try:
        url = reverse("connectycube:login")
    except NoReverseMatch:
        return Row(
            NAME,
            "login view, cached valid token",
            float("nan"),
            "calls",
            note=(
                "django_connectycube.api.urls exists but has no 'connectycube:login' route to call"
            ),
        )
    body = {"username": user.username, "password": "bench-pass"}
    client.post(url, body, content_type="application/json")  # warm: token stored
    emulator.reset_counters()
    statuses = [
        client.post(url, body, content_type="application/json").status_code for _ in range(20)
    ]
    calls = emulator.counts()["total"] / 20
    return Row(
        NAME,
        "login view, cached valid token",
        calls,
        "calls/login",
        goal="0",
        met=calls == 0 and all(s < 300 for s in statuses),
        note=f"20 logins after a warm one; statuses {sorted(set(statuses))}",
    )


def run(quick: bool = False) -> list[Row]:
    changes = 200 if quick else 1000
    return run_child(MODULE, ["--child", "--changes", str(changes)], child_env(), timeout=600)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--changes", type=int, default=1000)
    args = parser.parse_args(argv)
    if args.child:
        print(rows_to_json(measure(args.changes)))
        return
    print_rows(run(args.quick))


if __name__ == "__main__":
    main()
