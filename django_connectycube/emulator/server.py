"""HTTP servers for the emulator: our threaded HTTP/1.1 server (default) and waitress.

Why our own server: measured on the 2-core reference machine with keep-alive ``requests``
clients, a thread-per-connection server that writes each response in one ``sendall`` with
``TCP_NODELAY`` set served a trivial app at ~2,200 req/s (concurrency 1) against waitress's
~1,600, and ~1,700 against ~1,300 at concurrency 4-16 (``benchmarks/emulator_throughput.py``
prints the current figures for both). The stdlib ``http.server`` manages ~23 req/s because
headers and body leave in separate small writes (Nagle meets delayed ACK).

The server reads request bodies lazily, so the app can refuse an oversized body (413) before it
is read; a refused body that is too large to drain closes the connection instead.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from email.utils import formatdate
from types import TracebackType
from typing import Any
from urllib.parse import unquote_to_bytes

from .app import Emulator
from .wire import MAX_UPLOAD_BODY, DropConnection

__all__ = ["SERVER_KINDS", "EmulatorServer", "ThreadedWSGIServer", "WaitressServer"]

logger = logging.getLogger("django_connectycube.emulator")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

MAX_LINE = 64 * 1024
MAX_HEADERS = 200
#: Idle keep-alive connections are closed after this many seconds.
KEEPALIVE_TIMEOUT = 75.0
#: An unread request body up to this size is drained to keep the connection; larger closes it.
MAX_DRAIN = 1024 * 1024
MAX_CONNECTIONS = 512


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _BodyReader(io.RawIOBase):
    """``wsgi.input`` over the socket, limited to the request's ``Content-Length``."""

    def __init__(self, rfile: io.BufferedReader, length: int) -> None:
        super().__init__()
        self._rfile = rfile
        self.remaining = length

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        if size is None or size < 0 or size > self.remaining:
            size = self.remaining
        data = self._rfile.read(size)
        self.remaining -= len(data)
        if not data:
            self.remaining = 0
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        limit = self.remaining if size is None or size < 0 else min(size, self.remaining)
        data = self._rfile.readline(limit)
        self.remaining -= len(data)
        return data


_date_cache: list[Any] = [0, ""]


def _http_date() -> str:
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0] = now
        _date_cache[1] = formatdate(now, usegmt=True)
    return _date_cache[1]


class ThreadedWSGIServer:
    """A small HTTP/1.1 keep-alive WSGI server: one thread per connection, one write per reply."""

    def __init__(self, app: WSGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self._socket = socket.socket(
            socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM
        )
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self._socket.listen(256)
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._stopping = threading.Event()

    def serve_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, address = self._socket.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                continue
            self._slots.acquire()
            with self._lock:
                self._connections.add(conn)
            thread = threading.Thread(
                target=self._serve_connection,
                args=(conn, address),
                name="connectycube-emulator-conn",
                daemon=True,
            )
            thread.start()

    def shutdown(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    # -- one connection ------------------------------------------------------------------------

    def _serve_connection(self, conn: socket.socket, address: Any) -> None:
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(KEEPALIVE_TIMEOUT)
            rfile = conn.makefile("rb", buffering=64 * 1024)
            try:
                while not self._stopping.is_set():
                    if not self._handle_one(conn, rfile, address):
                        break
            finally:
                rfile.close()
        except (OSError, ValueError):
            pass  # client went away, timed out, or the server is stopping
        finally:
            with self._lock:
                self._connections.discard(conn)
            try:
                conn.close()
            finally:
                self._slots.release()

    def _send_error(self, conn: socket.socket, status: int, message: str) -> None:
        body = json.dumps({"errors": [message]}).encode()
        reason = {
            400: "Bad Request",
            413: "Payload Too Large",
            431: "Request Header Fields Too Large",
            501: "Not Implemented",
            505: "HTTP Version Not Supported",
        }.get(status, "Error")
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nAccess-Control-Allow-Origin: *\r\n"
            f"Date: {_http_date()}\r\nConnection: close\r\n\r\n"
        )
        conn.sendall(head.encode("latin-1") + body)

    def _handle_one(self, conn: socket.socket, rfile: io.BufferedReader, address: Any) -> bool:
        """Serve one request; ``False`` when the connection must close afterwards."""
        line = rfile.readline(MAX_LINE + 1)
        if not line:
            return False
        if line in (b"\r\n", b"\n"):  # tolerate a stray CRLF between pipelined requests
            line = rfile.readline(MAX_LINE + 1)
            if not line:
                return False
        try:
            environ, keep_alive = self._parse_head(line, rfile, conn, address)
        except _BadRequest as bad:
            self._send_error(conn, bad.status, bad.message)
            return False
        status_headers: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            if exc_info and status_headers:
                raise exc_info[1].with_traceback(exc_info[2])
            status_headers[:] = [status, headers]
            return lambda data: None  # the legacy write() callable; our app never uses it

        try:
            result = self.app(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except DropConnection:
            return False  # a real drop: no response bytes at all
        except Exception:
            logger.exception("emulator app raised")
            self._send_error(conn, 500, "Internal Server Error")
            return False
        reader = environ["wsgi.input"]
        if isinstance(reader, _BodyReader) and reader.remaining:
            if reader.remaining > MAX_DRAIN:
                keep_alive = False
            else:
                while reader.read(64 * 1024):
                    pass
        status, headers = status_headers
        lines = [f"HTTP/1.1 {status}\r\n"]
        has_length = has_date = False
        for name, value in headers:
            lowered = name.lower()
            if lowered == "content-length":
                has_length = True
            elif lowered == "date":
                has_date = True
            lines.append(f"{name}: {value}\r\n")
        if not has_length:
            lines.append(f"Content-Length: {len(body)}\r\n")
        if not has_date:
            lines.append(f"Date: {_http_date()}\r\n")
        if not keep_alive:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        conn.sendall("".join(lines).encode("latin-1") + body)
        return keep_alive

    def _parse_head(
        self, line: bytes, rfile: io.BufferedReader, conn: socket.socket, address: Any
    ) -> tuple[dict[str, Any], bool]:
        if len(line) > MAX_LINE:
            raise _BadRequest(431, "Request line too long")
        try:
            method, target, version = line.decode("latin-1").rstrip("\r\n").split(" ")
        except ValueError as exc:
            raise _BadRequest(400, "Malformed request line") from exc
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            raise _BadRequest(505, "Unsupported HTTP version")
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS + 1):
            raw = rfile.readline(MAX_LINE + 1)
            if len(raw) > MAX_LINE:
                raise _BadRequest(431, "Header line too long")
            if raw in (b"\r\n", b"\n", b""):
                break
            name, sep, value = raw.decode("latin-1").partition(":")
            if not sep or not name or name != name.strip():
                raise _BadRequest(400, "Malformed header line")
            key = name.lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        else:
            raise _BadRequest(431, "Too many headers")
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.1":
            keep_alive = "close" not in connection
        else:
            keep_alive = "keep-alive" in connection
        path, _, query = target.partition("?")
        if path.startswith(("http://", "https://")):
            path = "/" + path.split("/", 3)[-1] if path.count("/") >= 3 else "/"
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method.upper(),
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query,
            "SERVER_NAME": self.host,
            "SERVER_PORT": str(self.port),
            "SERVER_PROTOCOL": version,
            "REMOTE_ADDR": address[0] if isinstance(address, tuple) else "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for key, value in headers.items():
            if key == "content-type":
                environ["CONTENT_TYPE"] = value
            elif key == "content-length":
                continue
            else:
                environ["HTTP_" + key.upper().replace("-", "_")] = value
        if headers.get("expect", "").lower() == "100-continue":
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._read_chunked(rfile)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ["wsgi.input"] = io.BytesIO(body)
        else:
            raw_length = headers.get("content-length", "0") or "0"
            if not raw_length.isdigit():
                raise _BadRequest(400, "Invalid Content-Length")
            length = int(raw_length)
            environ["CONTENT_LENGTH"] = str(length)
            environ["wsgi.input"] = _BodyReader(rfile, length)
        return environ, keep_alive

    @staticmethod
    def _read_chunked(rfile: io.BufferedReader) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size_line = rfile.readline(MAX_LINE + 1)
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise _BadRequest(400, "Malformed chunked body") from exc
            if size == 0:
                while rfile.readline(MAX_LINE + 1) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > MAX_UPLOAD_BODY:
                raise _BadRequest(413, "Request body too large")
            chunk = rfile.read(size)
            if len(chunk) < size:
                raise _BadRequest(400, "Truncated chunked body")
            chunks.append(chunk)
            rfile.readline(MAX_LINE + 1)


class WaitressServer:
    """waitress behind the same interface, kept for comparison in the benchmark."""

    def __init__(
        self, app: WSGIApp, host: str = "127.0.0.1", port: int = 0, threads: int = 16
    ) -> None:
        import waitress.server

        self._server = waitress.server.create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            ident="connectycube-emulator",
            # With socket-error logging off, an OSError raised by the app (our DropConnection)
            # makes waitress close the channel without writing a response: a real drop.
            log_socket_errors=False,
            max_request_body_size=MAX_UPLOAD_BODY + 1024,
            channel_timeout=int(KEEPALIVE_TIMEOUT),
            clear_untrusted_proxy_headers=True,
        )
        self.host = host
        self.port: int = self._server.effective_port  # type: ignore[union-attr]

    def serve_forever(self) -> None:
        self._server.run()

    def shutdown(self) -> None:
        from waitress import wasyncore

        # ``close()`` alone leaves open channels in the loop's map, so ``run()`` would keep
        # going; closing every dispatcher empties the map and ends the loop.
        self._server.close()
        wasyncore.close_all(self._server._map)  # type: ignore[union-attr]
        self._server.task_dispatcher.shutdown(timeout=2)  # type: ignore[union-attr]


SERVER_KINDS: dict[str, type[ThreadedWSGIServer] | type[WaitressServer]] = {
    "threaded": ThreadedWSGIServer,
    "waitress": WaitressServer,
}


class EmulatorServer:
    """An :class:`Emulator` listening on a port, in a background thread or in the foreground."""

    def __init__(
        self,
        emulator: Emulator | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        server: str = "threaded",
        app: WSGIApp | None = None,
        **emulator_kwargs: Any,
    ) -> None:
        if emulator is not None and emulator_kwargs:
            raise TypeError("pass either an Emulator or its keyword arguments, not both")
        if server not in SERVER_KINDS:
            raise ValueError(f"unknown server {server!r}; choose from {sorted(SERVER_KINDS)}")
        self.emulator = emulator if emulator is not None else Emulator(**emulator_kwargs)
        self.host = host
        self.requested_port = port
        self.server_kind = server
        self._app: WSGIApp = app if app is not None else self.emulator
        self._server: ThreadedWSGIServer | WaitressServer | None = None
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

    def _bind(self) -> None:
        if self._server is not None:
            raise RuntimeError("the emulator server is already started")
        self._server = SERVER_KINDS[self.server_kind](self._app, self.host, self.requested_port)
        self._port = self._server.port
        self.emulator.url = self.url
        self.emulator.control_access.allow_host(self.host)

    def start(self) -> EmulatorServer:
        """Listen and serve from a daemon thread; returns at once, ready for requests."""
        if self._server is None:
            self._bind()
        assert self._server is not None
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="connectycube-emulator", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Listen and serve in the calling thread until :meth:`stop` or KeyboardInterrupt."""
        if self._server is None:
            self._bind()
        assert self._server is not None
        try:
            self._server.serve_forever()
        finally:
            self.emulator.faults.release_held()

    def stop(self) -> None:
        """Stop listening, close open connections, release held requests."""
        server, self._server = self._server, None
        if server is None:
            return
        self.emulator.faults.release_held()
        server.shutdown()
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
