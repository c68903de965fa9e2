"""Wire-level helpers: request parsing, error type, multipart.

ConnectyCube's clients disagree on encodings (the JS SDK sends JSON bodies and ``key[]=a`` query
arrays, older SDKs send form bodies with bracket keys and ``key=a,b`` arrays), so everything is
normalised here into one nested ``dict`` before a handler sees it. Handlers then only deal with
Python values and raise :class:`ApiError`, which the app turns into ConnectyCube's error body.
"""

from __future__ import annotations

import errno
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

__all__ = [
    "BLANK",
    "MAX_JSON_BODY",
    "MAX_UPLOAD_BODY",
    "ApiError",
    "DropConnection",
    "parse_bracket_pairs",
    "parse_multipart",
    "parse_query",
    "split_list",
]

#: The real service's word for a missing field [O js-sdk-releases#69].
BLANK = "cannot be blank"

#: JSON and form bodies larger than this are refused with 413 (the real API is behind a proxy
#: that refuses them too; nothing legitimate on these routes comes close).
MAX_JSON_BODY = 1 * 1024 * 1024
#: The storage's documented maximum for one file, plus room for the multipart envelope.
MAX_UPLOAD_BODY = 100 * 1024 * 1024 + 64 * 1024


class ApiError(Exception):
    """An answer other than success: status, ConnectyCube ``errors`` value, extra headers."""

    def __init__(
        self,
        status: int,
        errors: list[str] | dict[str, list[str]],
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        super().__init__(f"{status}: {errors}")
        self.status = status
        self.errors = errors
        self.headers = list(headers)

    @classmethod
    def field(cls, name: str, message: str, status: int = 422) -> ApiError:
        """A validation error in the ``{"errors": {"field": ["msg"]}}`` shape."""
        return cls(status, {name: [message]})


class DropConnection(ConnectionAbortedError):
    """Raised by the app to make the server close the socket without writing a response.

    It is an ``OSError`` carrying ``ECONNABORTED`` on purpose: that is how a WSGI server learns
    that the connection is gone, so cheroot closes it quietly, as a real drop looks to a client.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(errno.ECONNABORTED, reason)


_BRACKETS = re.compile(r"\[([^\[\]]*)\]")


def _split_key(key: str) -> list[str]:
    """``user[login]`` → ``["user", "login"]``; ``tags[]`` → ``["tags", ""]``."""
    first = key.find("[")
    if first <= 0 or not key.endswith("]"):
        return [key]
    rest = key[first:]
    parts = _BRACKETS.findall(rest)
    # Reject keys like "a[b]c[d]" whose brackets do not tile the rest of the key.
    if "".join(f"[{p}]" for p in parts) != rest:
        return [key]
    return [key[:first], *parts]


def parse_bracket_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Turn ``(key, value)`` pairs with Rails-style bracket keys into nested dicts and lists.

    A plain key that repeats becomes a list (``tags=a&tags=b``) so clients that repeat keys
    without brackets are understood too; a scalar and a nested value for the same key keep the
    nested one, since that is the only one a handler can use.
    """
    result: dict[str, Any] = {}
    for key, value in pairs:
        parts = _split_key(key)
        node: Any = result
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            next_is_list = not last and parts[index + 1] == ""
            if part == "":
                if not isinstance(node, list):
                    break
                if last:
                    node.append(value)
                else:
                    child: Any = [] if next_is_list else {}
                    node.append(child)
                    node = child
                continue
            if not isinstance(node, dict):
                break
            if last:
                if part in node and not isinstance(node[part], (dict, list)):
                    previous = node[part]
                    node[part] = [previous, value]
                elif part in node and isinstance(node[part], list) and len(parts) == 1:
                    node[part].append(value)
                elif part not in node:
                    node[part] = value
                continue
            existing = node.get(part)
            wanted: type = list if next_is_list else dict
            if not isinstance(existing, wanted):
                existing = [] if next_is_list else {}
                node[part] = existing
            node = existing
    return result


def parse_query(query_string: str) -> dict[str, Any]:
    """Parse a query string (or a form body) with bracket keys."""
    if not query_string:
        return {}
    return parse_bracket_pairs(parse_qsl(query_string, keep_blank_values=True))


def split_list(value: Any) -> list[str]:
    """Accept both array encodings: ``["a", "b"]`` (``key[]=``) or ``"a,b"`` (``key=a,b``)."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, (dict, list)):
            raise ValueError("expected a list of scalars")
        if isinstance(item, bool):
            item = "true" if item else "false"
        out.extend(part.strip() for part in str(item).split(",") if part.strip())
    return out


def parse_json_body(raw: bytes) -> dict[str, Any]:
    """Decode a JSON object body; anything else is a client error, never a 500."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, [f"Malformed JSON body: {exc}"]) from exc
    except RecursionError as exc:  # e.g. 50,000 nested "[": the stdlib parser recurses
        raise ApiError(400, ["Malformed JSON body: nested too deeply"]) from exc
    if not isinstance(data, dict):
        raise ApiError(400, ["The JSON body must be an object"])
    return data


_PARAM = re.compile(r';\s*([A-Za-z0-9_*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def header_params(value: str) -> tuple[str, dict[str, str]]:
    """Split ``multipart/form-data; boundary=x`` into the main value and its parameters."""
    main, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for match in _PARAM.finditer(";" + rest):
        raw = match.group(2).strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        params[match.group(1).lower()] = raw
    return main.strip().lower(), params


class MultipartFile:
    """One file part of a multipart body."""

    __slots__ = ("content_type", "data", "filename")

    def __init__(self, data: bytes, filename: str | None, content_type: str | None) -> None:
        self.data = data
        self.filename = filename
        self.content_type = content_type


def parse_multipart(body: bytes, boundary: str) -> tuple[dict[str, str], dict[str, MultipartFile]]:
    """Parse a ``multipart/form-data`` body into text fields and file parts.

    The stdlib's ``cgi`` module is deprecated (and gone in 3.13), and the ``email`` parser copies
    large payloads several times, so this is a small byte-level splitter. A part without a
    ``filename`` is still kept as a file when it is the ``file`` field: the ``form-data`` package
    the Node SDK uses omits the filename for Buffer values.
    """
    if not boundary or len(boundary) > 200:
        raise ApiError(400, ["Malformed multipart body: bad boundary"])
    delimiter = b"--" + boundary.encode("latin-1")
    fields: dict[str, str] = {}
    files: dict[str, MultipartFile] = {}
    start = body.find(delimiter)
    if start < 0:
        raise ApiError(400, ["Malformed multipart body: no boundary found"])
    position = start + len(delimiter)
    while True:
        if body[position : position + 2] == b"--":
            break
        if body[position : position + 2] != b"\r\n":
            raise ApiError(400, ["Malformed multipart body: bad delimiter line"])
        position += 2
        header_end = body.find(b"\r\n\r\n", position)
        if header_end < 0:
            raise ApiError(400, ["Malformed multipart body: unterminated part headers"])
        headers: dict[str, str] = {}
        for line in body[position:header_end].split(b"\r\n"):
            key, sep, value = line.decode("utf-8", "replace").partition(":")
            if sep:
                headers[key.strip().lower()] = value.strip()
        next_delimiter = body.find(b"\r\n" + delimiter, header_end + 4)
        if next_delimiter < 0:
            raise ApiError(400, ["Malformed multipart body: missing closing boundary"])
        content = body[header_end + 4 : next_delimiter]
        position = next_delimiter + 2 + len(delimiter)
        _, disposition = header_params(headers.get("content-disposition", ""))
        name = disposition.get("name")
        if name is None:
            continue
        filename = disposition.get("filename")
        if filename is not None or name == "file" or "content-type" in headers:
            files[name] = MultipartFile(content, filename, headers.get("content-type"))
        else:
            fields[name] = content.decode("utf-8", "replace")
    return fields, files


def coerce_int(value: Any, name: str, *, minimum: int | None = None) -> int:
    """An integer from JSON or from a form/query string; 422 naming the field otherwise."""
    if isinstance(value, bool):
        raise ApiError.field(name, "must be an integer")
    if isinstance(value, int):
        result = value
    elif (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,18}\s*", value)
    ):
        result = int(value)
    else:
        raise ApiError.field(name, "must be an integer")
    if minimum is not None and result < minimum:
        raise ApiError.field(name, f"must be greater than or equal to {minimum}")
    return result


def coerce_bool(value: Any, name: str) -> bool:
    """A boolean from JSON (``true``) or a form value (``"true"``, ``"1"``)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "false", "0", ""):
        return value.strip().lower() in ("true", "1")
    raise ApiError.field(name, "must be a boolean")


def coerce_str(value: Any, name: str) -> str:
    """A string; numbers are accepted as their text (phones and ids often arrive as numbers)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ApiError.field(name, "must be a string")


def require_mapping(value: Any, name: str) -> Mapping[str, Any]:
    """A nested object such as ``user`` or ``blob``; other types are the caller's mistake."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ApiError.field(name, "must be an object")
    return value
