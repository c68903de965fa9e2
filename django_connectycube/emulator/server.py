""":class:`EmulatorServer`: the emulator on a port, served by cheroot.

Why cheroot rather than waitress or werkzeug's threaded server: see "Which HTTP server" in the
README's emulator section (``python -m benchmarks.emulator_throughput`` measures the three).
It is the ``[emulator]`` extra's only dependency and is imported when a server starts, never
before: the emulator's WSGI app and the pytest plugin import without it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from types import ModuleType, TracebackType
from typing import Any

from .app import Emulator

__all__ = ["INSTALL_HINT", "THREADS", "EmulatorServer", "ServerNotInstalled"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

INSTALL_HINT = 'pip install "django-connectycube[emulator]"'

#: Requests served at once by default. Each request holds a thread until answered, injected
#: latency included, so a client with more requests in flight than this waits for the server,
#: not for the latency: start it with more (``--threads``) to measure such a client.
THREADS = 32


class ServerNotInstalled(ImportError):
    """The emulator's HTTP server (the ``[emulator]`` extra) is not installed."""


def _server_module() -> ModuleType:
    try:
        from . import cheroot_server
    except ImportError as exc:
        raise ServerNotInstalled(
            f"Serving the ConnectyCube emulator needs its HTTP server, cheroot ({exc}). "
            f"Install the extra: {INSTALL_HINT}"
        ) from exc
    return cheroot_server


def _in_daemon_thread(function: Callable[[], None]) -> None:
    """Run ``function`` in a daemon thread and wait for it, re-raising what it raised.

    Threads inherit the daemon flag of the thread that creates them: cheroot's workers, created
    this way, never keep the interpreter alive at exit when a server was not stopped (a test
    that failed before its ``stop()``).
    """
    failure: list[BaseException] = []

    def run() -> None:
        try:
            function()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name="connectycube-emulator-bind", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def _socket_error(host: str, port: int) -> OSError | None:
    """Why ``host:port`` cannot be listened on, with its ``errno`` (cheroot's error is text)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.create_server((host, port), family=family):
            return None
    except OSError as exc:
        return exc


class EmulatorServer:
    """An :class:`Emulator` listening on a port, in a background thread or in the foreground."""

    def __init__(
        self,
        emulator: Emulator | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        app: WSGIApp | None = None,
        threads: int = THREADS,
        **emulator_kwargs: Any,
    ) -> None:
        """``app`` serves another WSGI callable in the emulator's place (the benchmark's
        baseline); ``threads`` is how many requests are served at once; ``emulator_kwargs``
        are :class:`Emulator`'s when no ``emulator`` is given."""
        if threads < 1:
            raise ValueError(f"threads must be at least 1, not {threads}")
        if emulator is not None and emulator_kwargs:
            raise TypeError("pass either an Emulator or its keyword arguments, not both")
        self.emulator = emulator if emulator is not None else Emulator(**emulator_kwargs)
        self.host = host
        self.requested_port = port
        self.threads = threads
        self._app: WSGIApp = app if app is not None else self.emulator
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the emulator server has not been started")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def bind(self) -> None:
        """Listen on the port (``OSError`` when it is taken), without serving yet."""
        if self._server is not None:
            raise RuntimeError("the emulator server is already started")
        server = _server_module().build_server(
            self._app, self.host, self.requested_port, threads=self.threads
        )
        try:
            _in_daemon_thread(server.prepare)
        except OSError as exc:
            raise _socket_error(self.host, self.requested_port) or exc from exc
        self._server = server
        self._port = int(server.bind_addr[1])
        self.emulator.url = self.url
        self.emulator.control_access.allow_host(self.host)

    def start(self) -> EmulatorServer:
        """Listen and serve from a daemon thread; returns at once, ready for requests."""
        if self._server is None:
            self.bind()
        self._thread = threading.Thread(
            target=self._server.serve, name="connectycube-emulator", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Listen and serve in the calling thread until :meth:`stop` or KeyboardInterrupt."""
        if self._server is None:
            self.bind()
        try:
            self._server.serve()
        finally:
            self.emulator.faults.release_held()

    def stop(self) -> None:
        """Stop listening, close open connections, release held requests."""
        server, self._server = self._server, None
        if server is None:
            return
        self.emulator.faults.release_held()
        server.stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None
        self.emulator.close()

    @property
    def serving(self) -> bool:
        """Whether the server's thread (:meth:`start`) is still serving."""
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> EmulatorServer:
        return self.start() if self._server is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
