"""session_view: what ``GET session/`` costs a page load with a valid stored token.

Against the plainest DRF view that could answer it: session authentication, one indexed
``SELECT`` (the requester's link by ``user_id``) and a four-key JSON body. Both run through
Django's WSGI handler with the test settings' middleware and the same session cookie, in rounds
that alternate the two views; the figure is the median CPU per request (``time.process_time``,
so the in-memory SQLite database's work counts too). Also counted, outside the timed loops: the
ConnectyCube requests (emulator in its own process) and the database writes of those requests.

    python -m benchmarks.session_view [--quick]
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from typing import Any

from benchmarks._common import (
    EmulatorProcess,
    Row,
    child_env,
    median,
    print_rows,
    rows_to_json,
    run_child,
    setup_django,
)

NAME = "session_view"
MODULE = "benchmarks.session_view"
GOAL = 1.25
BARE = "/bench/bare-session/"
SESSION = "/api/connectycube/session/"
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def _bare_view() -> Any:
    """The baseline: DRF, session auth, one indexed read, a four-key body."""
    from rest_framework.authentication import SessionAuthentication
    from rest_framework.permissions import IsAuthenticated
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from django_connectycube.models import CubeUser

    class BareSessionView(APIView):
        authentication_classes = [SessionAuthentication]
        permission_classes = [IsAuthenticated]

        def get(self, request: Any) -> Response:
            link = CubeUser.objects.only("pk", "cube_id", "external_id", "state").get(
                user_id=request.user.pk
            )
            return Response(
                {
                    "id": link.pk,
                    "user_id": link.cube_id,
                    "external_id": link.external_id,
                    "state": link.state,
                }
            )

    return BareSessionView.as_view()


def __getattr__(name: str) -> Any:
    """``urlpatterns``, built on first use (after Django is set up): this module is the
    benchmark's URLconf, the site's routes plus the baseline's."""
    if name != "urlpatterns":
        raise AttributeError(name)
    from django.urls import include, path

    return [
        path("bench/bare-session/", _bare_view()),
        path("api/connectycube/", include("django_connectycube.api.urls")),
    ]


def _caller(cookie: str) -> Callable[[str], tuple[int, bytes]]:
    """A GET through Django's WSGI handler, as a server would make it (no test client)."""
    from django.core.handlers.wsgi import WSGIHandler

    handler = WSGIHandler()
    base = {
        "REQUEST_METHOD": "GET",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver",
        "HTTP_COOKIE": cookie,
        "QUERY_STRING": "",
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
    }

    def call(path: str) -> tuple[int, bytes]:
        status: list[str] = []
        environ = {**base, "PATH_INFO": path, "wsgi.input": io.BytesIO(b"")}
        body = b"".join(handler(environ, lambda s, h, *a: status.append(s)))
        return int(status[0].split()[0]), body

    return call


def measure(rounds: int, per_round: int) -> list[Row]:
    setup_django()
    from django.conf import settings as django_settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, override_settings

    from benchmarks.settings import CONNECTYCUBE
    from django_connectycube.sessions import login as sessions

    user = get_user_model().objects.create_user("bench-session", "bench-session@example.com")
    with (
        EmulatorProcess() as emulator,
        override_settings(CONNECTYCUBE={**CONNECTYCUBE, "API_URL": emulator.url}),
        override_settings(ROOT_URLCONF=MODULE, DEBUG=False),
    ):
        token = sessions.get_session_for_user(user).token  # pushed and logged in once
        client = Client()
        client.force_login(user)
        name = django_settings.SESSION_COOKIE_NAME
        cookie = f"{name}={client.cookies[name].value}"
        call = _caller(cookie)
        for path in (SESSION, BARE):  # warm both, and check they answer
            status, body = call(path)
            if status != 200:
                raise RuntimeError(f"{path} answered {status}: {body[:300]!r}")
        if token.encode() not in call(SESSION)[1]:
            raise RuntimeError("the session view did not hand out the stored token")

        emulator.reset_counters()
        with CaptureQueriesContext(connection) as queries:
            for _ in range(20):
                call(SESSION)
        writes = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(WRITES)]
        remote = emulator.counts()["total"]
        reads = len(queries.captured_queries) / 20

        samples: dict[str, list[float]] = {SESSION: [], BARE: []}
        for index in range(rounds):  # alternate which view goes first
            order = (SESSION, BARE) if index % 2 == 0 else (BARE, SESSION)
            for path in order:
                began = time.process_time()
                for _ in range(per_round):
                    call(path)
                samples[path].append((time.process_time() - began) / per_round * 1e6)
        remote += emulator.counts()["total"]
    ours, bare = median(samples[SESSION]), median(samples[BARE])
    spread = f"{min(samples[SESSION]):.0f} to {max(samples[SESSION]):.0f} µs"
    return [
        Row(
            NAME,
            "GET session/, valid stored token: CPU per request",
            ours,
            "µs",
            bare,
            "DRF view, session auth, 1 indexed SELECT, 4-key body",
            ours / bare,
            f"≤ {GOAL}",
            ours / bare <= GOAL,
            f"medians of {rounds} alternating rounds of {per_round} requests each through "
            f"Django's WSGI handler (SQLite in memory); ours {spread}; "
            f"{reads:.0f} statements per request",
        ),
        Row(
            NAME,
            "GET session/, valid stored token: ConnectyCube requests",
            float(remote),
            "requests",
            goal="0",
            met=remote == 0,
            note=f"over {20 + rounds * per_round} requests",
        ),
        Row(
            NAME,
            "GET session/, valid stored token: database writes",
            float(len(writes)),
            "statements",
            goal="0",
            met=not writes,
            note="over 20 requests" + (f"; first: {writes[0][:120]}" if writes else ""),
        ),
    ]


def run(quick: bool = False) -> list[Row]:
    rounds, per_round = ("10", "200") if quick else ("20", "300")
    args = ["--child", "--rounds", rounds, "--per-round", per_round]
    return run_child(MODULE, args, child_env(), timeout=600)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--per-round", type=int, default=300)
    args = parser.parse_args(argv)
    if args.child:
        print(rows_to_json(measure(args.rounds, args.per_round)))
        return
    print_rows(run(args.quick))


if __name__ == "__main__":
    main()
