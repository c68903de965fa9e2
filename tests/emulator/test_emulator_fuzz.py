"""Fuzz of the emulator's parsers over real HTTP: no server errors, no hangs, errors in shape.

Why: the emulator stands in for ConnectyCube in every test and in downstream projects' suites; a
500 or a hang on odd input would be blamed on the code under test. Requests are written byte by
byte on a raw socket (so bodies can be malformed, mis-encoded or shorter/longer than their
``Content-Length``) to every route, with a valid user token so the parsers behind authentication
are reached, and each has a hard timeout. Every answer must be < 500, and a 4xx must carry
ConnectyCube's ``{"errors": ...}`` body.
"""

from __future__ import annotations

import contextlib
import json
import socket
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_connectycube.emulator.routes import CONTROL_TABLE, ROUTE_TABLE
from django_connectycube.emulator.wire import MAX_JSON_BODY
from tests.budget import examples

TIMEOUT = 10.0  # seconds for one request/response; the server's own limits are far below
ROUTES = [(m, t) for m, t, _, _ in ROUTE_TABLE] + [(m, t) for m, t, _ in CONTROL_TABLE]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]

# ---- strategies ---------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=25,
)
field_names = st.sampled_from(
    [
        "user",
        "login",
        "email",
        "password",
        "full_name",
        "tag_list",
        "custom_data",
        "external_id",
        "application_id",
        "auth_key",
        "signature",
        "nonce",
        "timestamp",
        "blob",
        "size",
        "provider",
        "page",
        "per_page",
        "filter",
        "order",
        "advance",
        "route",
        "error_rate",
        "latency",
        "count",
        "sequence",
    ]
)
bracket_keys = st.builds(
    lambda head, parts: head + "".join(f"[{p}]" for p in parts),
    field_names | st.text(max_size=8),
    st.lists(field_names | st.just("") | st.text(max_size=5), max_size=4),
)
shaped_objects = st.dictionaries(field_names, json_values, max_size=6).map(
    lambda d: {"user": d} if d and "user" not in d else d
)


@st.composite
def bodies(draw: st.DrawFn) -> tuple[str | None, bytes]:
    """A ``(content type, body)`` pair: valid, malformed, mis-encoded, huge or deeply nested."""
    kind = draw(
        st.sampled_from(
            ["json", "json-any", "nested", "form", "multipart", "bytes", "bad-utf8", "huge", "none"]
        )
    )
    if kind == "json":
        return "application/json", json.dumps(draw(shaped_objects)).encode()
    if kind == "json-any":
        return draw(st.sampled_from(["application/json", "text/plain", "application/vnd+json"])), (
            json.dumps(draw(json_values)).encode()
        )
    if kind == "nested":
        depth = draw(st.sampled_from([100, 1000, 50_000]))
        opener = draw(st.sampled_from(['{"user":', "[", '{"a":[']))
        ctype = draw(
            st.sampled_from(["application/json", None, "application/x-www-form-urlencoded"])
        )
        if ctype == "application/x-www-form-urlencoded":
            return ctype, ("user" + "[a]" * depth + "=1").encode()
        return ctype, (opener * depth).encode()
    if kind == "form":
        pairs = draw(st.lists(st.tuples(bracket_keys, st.text(max_size=20)), max_size=8))
        body = "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs)
        if draw(st.booleans()):
            body += draw(st.sampled_from(["&%", "=%zz", "&&==", "%ff%fe", "a[=1", "a]]=2"]))
        return "application/x-www-form-urlencoded", body.encode()
    if kind == "multipart":
        boundary = draw(st.sampled_from(["b0undary", "", "x" * 300, "with space", 'q"uote']))
        parts = draw(st.lists(st.tuples(bracket_keys, st.binary(max_size=40)), max_size=4))
        chunks = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value
            + b"\r\n"
            for name, value in parts
        ]
        body = b"".join(chunks) + (f"--{boundary}--\r\n".encode() if draw(st.booleans()) else b"")
        if draw(st.booleans()):
            body = body[: draw(st.integers(0, max(len(body), 1)))]
        return f"multipart/form-data; boundary={boundary}", body
    if kind == "bytes":
        return draw(st.sampled_from([None, "application/octet-stream", "application/json"])), draw(
            st.binary(max_size=200)
        )
    if kind == "bad-utf8":
        ctype = draw(st.sampled_from(["application/json", "application/x-www-form-urlencoded"]))
        return (
            ctype,
            b'{"user": {"login": "\xff\xfe\xc3\x28"}}' if "json" in ctype else b"a=\xff\xfe",
        )
    if kind == "huge":
        size = draw(st.sampled_from([900_000, 1_100_000, 2_000_000]))
        return "application/json", b'{"user": {"login": "' + b"a" * size + b'"}}'
    return None, b""


query_strings = st.one_of(
    st.just(""),
    st.lists(st.tuples(bracket_keys, st.text(max_size=15)), max_size=6).map(
        lambda pairs: "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs)
    ),
    st.sampled_from(
        [
            "filter[]=number id in 1,2",
            "filter[]=string login gt",
            "filter[]=date created_at between x",
            "order=desc string nope",
            "page=0&per_page=-1",
            "page=99999999999999999999&per_page=1e9",
            "limit=abc&offset=-5",
            "login[start_with]=ab",
            "created_at[gt]=not-a-date",
            "id[in][]=x&id[nin][]=",
            "token=%ff%fe&download_url=1",
            "a%zz=1&%=%",
            "tags=" + ",".join(["t"] * 500),
        ]
    ),
)
segments = st.one_of(
    st.sampled_from(
        ["1", "0", "-1", "99999999999999999999", "abc", "", "%ff", "%00", "..", "1.json"]
    ),
    st.text(max_size=30).map(lambda s: quote(s, safe="")),
)


@st.composite
def requests_(draw: st.DrawFn) -> dict[str, Any]:
    method, template = draw(st.sampled_from(ROUTES))
    if draw(st.integers(0, 9)) == 0:
        method = draw(st.sampled_from(METHODS))
    path = template
    for placeholder in ("{id:int}", "{id}", "{uid}", "{external_id}"):
        while placeholder in path:
            path = path.replace(placeholder, draw(segments), 1)
    if draw(st.booleans()) and not path.startswith("/_"):
        path += ".json"
    ctype, body = draw(bodies())
    length_error = draw(st.sampled_from([0, 0, 0, -5, 7, "junk"]))
    return {
        "method": method,
        "path": path,
        "query": draw(query_strings),
        "content_type": ctype,
        "body": body,
        "length": length_error,
        "token": draw(st.sampled_from(["valid", "valid", "none", "bogus"])),
        "auth_key": draw(st.booleans()),
    }


# ---- the wire ------------------------------------------------------------------------------


def _exchange(port: int, raw: bytes) -> tuple[int | None, dict[str, str], bytes]:
    """Send raw bytes, half-close, and read one full response (or fail on a hang).

    Status ``None``: the server reset the connection. It may, after answering 413 to a body too
    large to drain (the unread bytes turn its close into a reset that can overtake the answer).
    """
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.settimeout(TIMEOUT)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(raw)  # the server may answer (413) and close before reading it all
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    raise AssertionError(f"closed without a response (got {data[:200]!r})")
                data += chunk
        except ConnectionResetError:
            return None, {}, b""
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, headers, rest[:length]


def _raw_request(req: dict[str, Any], token: str, auth_key: str) -> bytes:
    target = req["path"] + (f"?{req['query']}" if req["query"] else "")
    body: bytes = req["body"]
    declared: Any = len(body)
    if req["length"] == "junk":
        declared = "12abc"
    elif req["length"]:
        declared = max(0, len(body) + req["length"])
    lines = [f"{req['method']} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    if req["token"] == "valid":
        lines.append(f"CB-Token: {token}")
    elif req["token"] == "bogus":
        lines.append("CB-Token: 0123456789abcdef")
    if req["auth_key"]:
        lines.append(f"CB-AuthKey: {auth_key}")
    if req["content_type"] is not None:
        lines.append(f"Content-Type: {req['content_type']}")
    if body or req["length"]:
        lines.append(f"Content-Length: {declared}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogatepass") + body


@pytest.fixture
def emulator_server(connectycube_emulator_server):
    yield connectycube_emulator_server
    connectycube_emulator_server.emulator.reset()


@settings(
    max_examples=examples(300),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(req=requests_())
def test_every_route_survives_garbage(emulator_server, req):
    emulator = emulator_server.emulator
    emulator.reset()  # a fuzzed control call may have reset, faulted or reconfigured it
    user = emulator.create_user(login="fuzzer", password="fuzz-password")
    token = emulator.create_session(user["id"])
    if req["path"].startswith("/users/") and "1" in req["path"]:
        req["path"] = req["path"].replace("/1", f"/{user['id']}", 1)
    status, _, body = _exchange(emulator_server.port, _raw_request(req, token, emulator.auth_key))
    if status is None:  # a reset is only acceptable as the refusal of an oversized body
        assert len(req["body"]) > MAX_JSON_BODY, (req["method"], req["path"], len(req["body"]))
        return
    assert status < 500, (status, body[:300], req["method"], req["path"], req["content_type"])
    if 400 <= status < 500 and req["method"] != "HEAD":
        payload = json.loads(body)
        assert "errors" in payload, (status, body[:300])
    emulator.clear_faults()


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"[" * 50_000),
        ("application/json", b'{"user":' * 50_000),
        (None, b"[" * 50_000),
    ],
)
def test_deeply_nested_json_is_a_400_not_a_500(emulator_server, content_type, body):
    # Found by the fuzz above: the stdlib JSON parser raised RecursionError (answered 500).
    req = {
        "method": "POST",
        "path": "/session",
        "query": "",
        "content_type": content_type,
        "body": body,
        "length": 0,
        "token": "none",
        "auth_key": False,
    }
    status, _, payload = _exchange(emulator_server.port, _raw_request(req, "", ""))
    assert status == 400
    assert json.loads(payload)["errors"] == ["Malformed JSON body: nested too deeply"]
