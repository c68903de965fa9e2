"""Command-line options shared by ``python -m django_connectycube.emulator`` and
``manage.py connectycube_emulator``, so the two can never drift apart."""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import Any

from .control_access import CONTROL_TOKEN_ENV, CONTROL_TOKEN_HEADER, bind_warning
from .identity import CIDP_FAILURE_STYLES, DEFAULT_CIDP_FAILURE_STYLE
from .persistence import StateFileError
from .server import THREADS, EmulatorServer, ServerNotInstalled
from .switches import SWITCH_DEFAULTS
from .wire import ApiError

__all__ = ["add_arguments", "build_parser", "main", "run"]


def _mapping(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def add_arguments(
    parser: argparse.ArgumentParser, defaults: Mapping[str, Any] | None = None
) -> None:
    """Add the emulator's options; ``defaults`` may hold app_id / auth_key / auth_secret."""
    defaults = defaults or {}
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to bind (default 127.0.0.1; anything else warns: the control API hands "
        "out every token)",
    )
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any free)")
    parser.add_argument("--app-id", type=int, default=defaults.get("app_id", 1))
    parser.add_argument("--auth-key", default=defaults.get("auth_key", "emulator-auth-key"))
    parser.add_argument(
        "--auth-secret", default=defaults.get("auth_secret", "emulator-auth-secret")
    )
    parser.add_argument(
        "--require-signature",
        action="store_true",
        help="refuse POST /session without a valid HMAC signature",
    )
    parser.add_argument(
        "--cidp-url",
        default=None,
        help="Custom Identity Provider verification URL, called as GET URL?token=<login> "
        "(a loopback URL unless --allow-remote-cidp)",
    )
    parser.add_argument(
        "--allow-remote-cidp",
        action="store_true",
        help="let --cidp-url and POST /_emulator/config set a cidp_url on another machine "
        "(the emulator fetches it)",
    )
    parser.add_argument(
        "--cidp-mapping",
        type=_mapping,
        default=None,
        help='CIdP response mapping as JSON, e.g. \'{"uid": "#{user.id}"}\'',
    )
    parser.add_argument(
        "--cidp-failure-style",
        choices=tuple(CIDP_FAILURE_STYLES),
        default=DEFAULT_CIDP_FAILURE_STYLE,
        help="how a refused CIdP verification is answered: 200 or 422 with an errors body",
    )
    parser.add_argument(
        "--deny-auto-create",
        action="store_true",
        help="answer 404 'User not found' instead of creating users on first session",
    )
    parser.add_argument(
        "--firebase-key",
        default="emulator-firebase-key",
        help="HS256 key that Firebase access tokens must be signed with",
    )
    switches = parser.add_argument_group(
        "dashboard switches",
        "A new ConnectyCube application's defaults unless changed (see docs/fidelity.md)",
    )
    switches.add_argument(
        "--enable-v1-users-api",
        dest="v1_users_api",
        action="store_true",
        help="uncheck DISABLE LIST USERS API V1: serve the deprecated v1 user look-ups",
    )
    switches.add_argument(
        "--deny-users-list",
        dest="allow_users_list",
        action="store_false",
        help='untick "Allow to retrieve a list of users via API"',
    )
    switches.add_argument(
        "--deny-other-user-info",
        dest="allow_other_user_info",
        action="store_false",
        help='untick "Allow to retrieve other user\'s info"',
    )
    switches.add_argument(
        "--require-email-confirmation",
        action="store_true",
        help='tick "Require email confirmation": sign-ups need an email and its link',
    )
    switches.add_argument(
        "--enable-online-users-api",
        dest="online_users_api",
        action="store_true",
        help='tick "Enable Online Users API" (GET /users/online)',
    )
    switches.add_argument(
        "--admin-api-key",
        default=None,
        metavar="KEY",
        help="Administration API key: enables DELETE /admin/user/{id}",
    )
    parser.add_argument(
        "--threads",
        type=_positive,
        default=THREADS,
        metavar="N",
        help=f"requests served at once (default {THREADS}); a request delayed by an injected "
        "latency holds one meanwhile",
    )
    parser.add_argument(
        "--state-file",
        default=None,
        metavar="PATH",
        help="SQLite file that keeps users, sessions and blobs across restarts (created if "
        "missing; POST /_emulator/reset empties it)",
    )
    control = parser.add_argument_group(
        "control API", "Who may call /_emulator/... (never the ConnectyCube routes)"
    )
    control.add_argument(
        "--control-token",
        default=os.environ.get(CONTROL_TOKEN_ENV) or None,
        metavar="TOKEN",
        help=f"require header {CONTROL_TOKEN_HEADER}: TOKEN on control routes except health "
        f"(default: ${CONTROL_TOKEN_ENV}, unset = no token)",
    )
    control.add_argument(
        "--control-host",
        dest="control_hosts",
        action="append",
        default=[],
        metavar="NAME",
        help="accept this Host name on control routes besides loopback names, IP addresses "
        "and --host (repeatable; e.g. a docker-compose service name)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m django_connectycube.emulator",
        description="Serve a local ConnectyCube REST emulator until stopped.",
    )
    add_arguments(parser)
    return parser


def make_server(options: Mapping[str, Any]) -> EmulatorServer:
    return EmulatorServer(
        host=options["host"],
        port=options["port"],
        application_id=options["app_id"],
        auth_key=options["auth_key"],
        auth_secret=options["auth_secret"],
        require_signature=options["require_signature"],
        cidp_url=options["cidp_url"],
        allow_remote_cidp=bool(options.get("allow_remote_cidp")),
        cidp_response_mapping=options["cidp_mapping"],
        cidp_failure_style=options.get("cidp_failure_style", DEFAULT_CIDP_FAILURE_STYLE),
        deny_auto_create=options["deny_auto_create"],
        firebase_key=options["firebase_key"],
        state_file=options.get("state_file"),
        control_token=options.get("control_token"),
        control_hosts=options.get("control_hosts") or (),
        threads=options.get("threads") or THREADS,
        **{key: options[key] for key in SWITCH_DEFAULTS},
    )


def run(options: Mapping[str, Any], out: Any = None, err: Any = None) -> int:
    """Serve in the foreground; print the URL alone on stdout first so scripts can read it."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        server = make_server(options)
    except StateFileError as exc:
        err.write(f"ConnectyCube emulator: {exc}\n")
        return 2
    except ApiError as exc:  # a setting the emulator refuses, e.g. a remote --cidp-url
        problems = exc.errors.items() if isinstance(exc.errors, dict) else [("", exc.errors)]
        for name, messages in problems:
            err.write(f"ConnectyCube emulator: {name.replace('_', '-')} {' '.join(messages)}\n")
        return 2
    try:
        server.bind()
    except ServerNotInstalled as exc:
        err.write(f"ConnectyCube emulator: {exc}\n")
        return 2
    except OSError as exc:
        err.write(f"ConnectyCube emulator: {_cannot_listen(server, exc)}\n")
        return 2
    out.write(f"{server.url}\n")
    out.flush()
    warning = bind_warning(server.host, options.get("control_token"))
    if warning:
        err.write(f"{warning}\n")
    emulator = server.emulator
    kept = emulator.store.state_file
    err.write(
        f"ConnectyCube emulator: application_id={emulator.application_id} "
        f"auth_key={emulator.auth_key} "
        f"v1_users_api={emulator.v1_users_api} "
        f"state={kept.path if kept is not None else 'in memory'}; Ctrl+C to stop\n"
    )
    err.flush()
    _serve_until_signalled(server)
    return 0


def _cannot_listen(server: EmulatorServer, exc: OSError) -> str:
    where = f"{server.host}:{server.requested_port}"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot serve on {where}: the port is taken. Another process is listening there: "
            "stop it or pick another --port (0 picks a free one)."
        )
    return f"cannot serve on {where}: {exc.strerror or exc}"


def _serve_until_signalled(server: EmulatorServer) -> None:
    """Serve until Ctrl-C or SIGTERM, then stop cleanly.

    The handlers only note the signal: raising from a handler (KeyboardInterrupt) could land
    inside the threading machinery of a connection being accepted and end in a traceback. So the
    server runs in its own thread and this one sleeps until a signal was noted.
    """
    received: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    try:
        previous = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: no signals arrive here; serve in this thread
        try:
            server.serve_forever()
        finally:
            server.stop()
        return
    try:
        server.start()
        while not received and server.serving:
            time.sleep(0.2)
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    options = vars(build_parser().parse_args(argv))
    return run(options)
