"""The emulator's HTTP plumbing: a parsed request, a buffered response, and route matching.

Plain WSGI on purpose (see :mod:`.app`); these classes are shared by every handler module.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode

from .models import Session
from .wire import (
    MAX_JSON_BODY,
    ApiError,
    header_params,
    parse_json_body,
    parse_multipart,
    parse_query,
)

__all__ = ["Handler", "Request", "Response", "Route", "index_routes"]


class Request:
    """One incoming request, with its parameters parsed lazily (uploads never parse JSON)."""

    __slots__ = (
        "_params",
        "environ",
        "json_suffix",
        "method",
        "path",
        "session",
        "template",
        "token_given",
    )

    def __init__(self, environ: dict[str, Any], method: str, path: str, json_suffix: bool) -> None:
        self.environ = environ
        self.method = method
        self.path = path
        self.json_suffix = json_suffix
        self.session: Session | None = None
        #: Whether the request carried a token at all (known or not).
        self.token_given = False
        self.template = ""
        self._params: dict[str, Any] | None = None

    def header(self, name: str) -> str | None:
        return self.environ.get("HTTP_" + name.upper().replace("-", "_"))

    @property
    def base_url(self) -> str:
        """The URL clients reach the emulator at, for the upload and download URLs it hands out.

        Behind a TLS-terminating proxy (how the JS SDK 3, which only speaks https, is tested)
        the proxy's ``X-Forwarded-Proto`` names the scheme; the ``Host`` header the address.
        """
        scheme = self.environ.get("wsgi.url_scheme", "http")
        forwarded = (self.environ.get("HTTP_X_FORWARDED_PROTO") or "").split(",")[0].strip()
        if forwarded.lower() in ("http", "https"):
            scheme = forwarded.lower()
        host = self.environ.get("HTTP_HOST")
        if not host:
            name = self.environ.get("SERVER_NAME", "127.0.0.1")
            host = f"{name}:{self.environ.get('SERVER_PORT', '80')}"
        return f"{scheme}://{host}"

    def read_body(self, limit: int) -> bytes:
        """The raw body, refusing (413) anything over ``limit`` before reading it."""
        raw_length = self.environ.get("CONTENT_LENGTH")
        if raw_length is None and self.environ.get("wsgi.input_terminated"):
            return self._read_streamed(limit)
        raw_length = raw_length or "0"
        try:
            length = int(raw_length)
        except ValueError as exc:
            raise ApiError(400, ["Invalid Content-Length"]) from exc
        if length < 0:
            raise ApiError(400, ["Invalid Content-Length"])
        if length > limit:
            raise _too_large(limit)
        if length == 0:
            return b""
        stream = self.environ["wsgi.input"]
        body = stream.read(length)
        if len(body) < length:
            raise ApiError(400, ["Request body is shorter than its Content-Length"])
        return body

    def _read_streamed(self, limit: int) -> bytes:
        """A body of unknown length (``Transfer-Encoding: chunked``), read up to ``limit``.

        The server decodes the chunks; a malformed or oversized encoding surfaces as whatever
        its stream raises, which this app cannot know the types of.
        """
        try:
            body: bytes = self.environ["wsgi.input"].read(limit + 1)
        except Exception as exc:
            raise ApiError(400, [f"Malformed chunked body: {exc}"]) from exc
        if len(body) > limit:
            raise _too_large(limit)
        return body

    @property
    def query(self) -> dict[str, Any]:
        return parse_query(self.environ.get("QUERY_STRING", ""))

    @property
    def params(self) -> dict[str, Any]:
        """Query parameters merged with the body (JSON, form, or multipart fields)."""
        if self._params is None:
            params = self.query
            body = self.read_body(MAX_JSON_BODY)
            if body:
                params.update(self._parse_body(body))
            self._params = params
        return self._params

    def _parse_body(self, body: bytes) -> dict[str, Any]:
        content_type, options = header_params(self.environ.get("CONTENT_TYPE", ""))
        if content_type == "application/json" or content_type.endswith("+json"):
            return parse_json_body(body)
        if content_type == "application/x-www-form-urlencoded":
            return self._parse_form(body)
        if content_type == "multipart/form-data":
            fields, _ = parse_multipart(body, options.get("boundary", ""))
            return parse_query(urlencode(list(fields.items())))
        stripped = body.lstrip()
        if stripped.startswith((b"{", b"[")):
            return parse_json_body(body)
        return self._parse_form(body)

    @staticmethod
    def _parse_form(body: bytes) -> dict[str, Any]:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ApiError(400, ["Form body is not valid UTF-8"]) from exc
        return parse_query(text)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, [f"Request body too large (limit is {limit} bytes)"])


class Response:
    """A buffered answer: the servers write it in one go (no Nagle/delayed-ACK stalls)."""

    __slots__ = ("body", "headers", "status")

    def __init__(
        self,
        status: int = 200,
        body: Any = None,
        headers: Iterable[tuple[str, str]] = (),
        *,
        raw: bytes | None = None,
        content_type: str = "application/json; charset=utf-8",
    ) -> None:
        self.status = status
        self.headers = list(headers)
        if raw is not None:
            self.body = raw
            self.headers.append(("Content-Type", content_type))
        elif body is None:
            self.body = b""
            self.headers.append(("Content-Type", "text/plain; charset=utf-8"))
        else:
            self.body = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
            self.headers.append(("Content-Type", content_type))


Handler = Callable[..., Response]


class Route:
    __slots__ = ("auth", "handler", "method", "parts", "template")

    def __init__(self, method: str, template: str, handler: str, auth: str) -> None:
        self.method = method
        self.template = f"{method} {template.replace(':int}', '}')}"
        self.handler = handler
        self.auth = auth
        self.parts = template.strip("/").split("/")

    def match(self, segments: list[str]) -> dict[str, str] | None:
        if len(segments) != len(self.parts):
            return None
        captured: dict[str, str] = {}
        for pattern, segment in zip(self.parts, segments, strict=True):
            if pattern.startswith("{"):
                name = pattern[1:-1]
                if name.endswith(":int"):
                    if not segment.isdigit():
                        return None
                    name = name[:-4]
                if not segment:
                    return None
                captured[name] = segment
            elif pattern != segment:
                return None
        return captured


def index_routes(table: Iterable[Route]) -> dict[str, list[Route]]:
    """Bucket routes by their first path segment, so a request tries only a handful."""
    index: dict[str, list[Route]] = {}
    for route in table:
        index.setdefault(route.parts[0], []).append(route)
    return index
