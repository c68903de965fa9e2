"""cheroot (CherryPy's WSGI server) set up for the emulator.

Imported only when a server starts, so the emulator's WSGI app, the pytest plugin and everything
else import without the ``[emulator]`` extra. What is set here, and why:

- ConnectyCube's error body on cheroot's own refusals (a malformed request line or header, a
  ``Content-Length`` that is no number, a body over the upload limit): every 4xx a client sees
  then has the ``{"errors": [...]}`` shape its error handling parses.
- Keep-alive without a cap on idle connections (cheroot keeps 10 by default and closes the
  rest), closed after 75 s idle (nginx's default, a common front for such APIs).
- A fixed thread pool (``threads``, :data:`.server.THREADS` unless asked), larger than any
  test's concurrency: a request held by a ``timeout`` fault or delayed by a ``latency`` one
  keeps its thread meanwhile, and idle keep-alive connections hold none.
"""

from __future__ import annotations

import json
from typing import Any

from cheroot import server as cheroot_http
from cheroot import wsgi

from .server import THREADS, WSGIApp
from .wire import MAX_UPLOAD_BODY

__all__ = ["KEEPALIVE_TIMEOUT", "build_server"]

#: Idle keep-alive connections are closed after this many seconds.
KEEPALIVE_TIMEOUT = 75
#: Connections waiting to be accepted (``listen()`` backlog).
BACKLOG = 256
#: Seconds between wake-ups of the connection loop, the longest a ``stop()`` waits for it.
STOP_LATENCY = 0.05
#: Request headers larger than this are refused.
MAX_HEADER_BYTES = 64 * 1024


class _Request(cheroot_http.HTTPRequest):
    def simple_response(self, status: Any, msg: Any = "") -> None:
        text = msg.decode("latin-1") if isinstance(msg, bytes) else str(msg)
        body = json.dumps({"errors": [text or str(status)[4:]]})
        super().simple_response(status, body)


class _Connection(cheroot_http.HTTPConnection):
    RequestHandlerClass = _Request


def build_server(app: WSGIApp, host: str, port: int, *, threads: int = THREADS) -> wsgi.Server:
    """A cheroot server for ``app``, not yet bound (``prepare()`` binds and starts threads)."""
    server = wsgi.Server(
        (host, port),
        app,
        numthreads=threads,
        server_name=host,
        request_queue_size=BACKLOG,
        timeout=KEEPALIVE_TIMEOUT,
    )
    server.ConnectionClass = _Connection
    server.keep_alive_conn_limit = None  # type: ignore[assignment]  # None: no limit
    # The connection loop notices a stop at its next wake-up: at cheroot's 0.5 s, every test
    # that starts its own server would wait that long for its ``stop()``.
    server.expiration_interval = STOP_LATENCY
    # A declared body above the largest the app accepts is refused (413) before a byte of it is
    # read; smaller ones are the app's to judge. The margin covers a chunked body's framing.
    server.max_request_body_size = MAX_UPLOAD_BODY + 64 * 1024
    server.max_request_header_size = MAX_HEADER_BYTES
    return server
