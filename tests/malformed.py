"""Malformed success answers from a running emulator: the request is carried out, the answer's
body is garbage.

The emulator's fault rules fail a request before it is handled (an error status, a dropped
connection, a timeout). A hosted service also fails after the fact: a proxy truncates the body,
the server answers ``200`` with an HTML page or a half-written object. That case matters most
for a create, which really happened although the client could not read the answer. This wraps
an in-process :class:`~django_connectycube.emulator.Emulator` without changing it.
"""

from __future__ import annotations

import threading
from typing import Any

from django_connectycube.emulator.faults import route_matches

__all__ = ["TRUNCATED", "WRONG_SHAPE", "MalformedSuccess"]

#: A body cut off in the middle (invalid JSON).
TRUNCATED = b'{"user": {"id": 4'
#: Valid JSON that is not the promised object (a user without an id).
WRONG_SHAPE = b'{"user": {"login": "?"}}'


class MalformedSuccess:
    """Replace the body of the next ``count`` 2xx answers to ``route`` (all while ``count`` is
    None) with ``body``; use as a context manager or call :meth:`install`/:meth:`remove`."""

    def __init__(
        self,
        emulator: Any,
        route: str = "POST /users",
        *,
        count: int | None = 1,
        body: bytes = TRUNCATED,
    ) -> None:
        self.emulator = emulator
        self.route = route
        self.remaining = count
        self.body = body
        self.applied = 0
        self._lock = threading.Lock()
        self._original: Any = None

    def _take(self, method: str, path: str, status: int) -> bool:
        if not 200 <= status < 300 or not route_matches(
            self.route, f"{method} {path}", f"{method} {path}"
        ):
            return False
        with self._lock:
            if self.remaining is not None:
                if self.remaining <= 0:
                    return False
                self.remaining -= 1
            self.applied += 1
            return True

    def install(self) -> MalformedSuccess:
        original = self._original = self.emulator._dispatch

        def dispatch(environ: dict[str, Any], method: str, raw_path: str) -> Any:
            response = original(environ, method, raw_path)
            path = raw_path.rstrip("/") or "/"
            if self._take(method, path, response.status):
                response.body = self.body
            return response

        self.emulator._dispatch = dispatch
        return self

    def remove(self) -> None:
        if self._original is not None:
            self.emulator._dispatch = self._original
            self._original = None

    def __enter__(self) -> MalformedSuccess:
        return self.install()

    def __exit__(self, *exc_info: object) -> None:
        self.remove()
