"""Emulator: transport details (encodings, suffix, CORS, malformed input) and the HTTP server."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

import pytest
import requests

from django_connectycube.emulator import Emulator, EmulatorServer
from django_connectycube.emulator.wire import (
    MAX_UPLOAD_BODY,
    parse_multipart,
    parse_query,
    split_list,
)
from tests.emulator.support import Api


@pytest.fixture
def api(connectycube_emulator: Emulator) -> Api:
    api = Api(connectycube_emulator)
    api.app_session()
    return api


# -- parsing helpers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("user%5Blogin%5D=bob&user[password]=x", {"user": {"login": "bob", "password": "x"}}),
        ("tags[]=a&tags[]=b", {"tags": ["a", "b"]}),
        ("tags=a,b", {"tags": "a,b"}),
        ("tags=a&tags=b&tags=c", {"tags": ["a", "b", "c"]}),
        ("login[in][]=a&login[in][]=b&limit=5", {"login": {"in": ["a", "b"]}, "limit": "5"}),
        ("filter[]=number%20id%20in%201%2c2", {"filter": ["number id in 1,2"]}),
        ("a[b]c=1&empty=", {"a[b]c": "1", "empty": ""}),
    ],
)
def test_parse_query_bracket_keys(query: str, expected: dict[str, Any]) -> None:
    assert parse_query(query) == expected


def test_split_list_accepts_both_array_encodings() -> None:
    assert split_list(["a", "b"]) == split_list("a,b") == split_list("a, b,") == ["a", "b"]
    assert split_list(None) == []
    with pytest.raises(ValueError, match="scalars"):
        split_list([{"x": 1}])


def test_parse_multipart_fields_and_files() -> None:
    body = (
        b'--B\r\nContent-Disposition: form-data; name="key"\r\n\r\nabc\r\n'
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="f.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n\x00\r\n\x01\r\n--B--\r\n"
    )
    fields, files = parse_multipart(body, "B")
    assert fields == {"key": "abc"}
    assert files["file"].data == b"\x00\r\n\x01" and files["file"].filename == "f.bin"


# -- URL forms and encodings --------------------------------------------------------------------


@pytest.mark.connectycube_emulator(v1_users_api=True)
def test_json_suffix_is_optional_everywhere(api: Api) -> None:
    user = api.signup("suffix")
    for path in (f"/users/{user['id']}", f"/users/{user['id']}.json", f"/users/{user['id']}/"):
        assert api.get(path).status_code == 200, path
    assert api.get("/session.json").status_code == 200
    assert api.get("/users/v2.json", params={"login": "suffix"}).json()["total_entries"] == 1


def test_get_parameters_in_a_body_are_accepted(api: Api) -> None:
    api.signup("bodyget")
    response = api.get("/users/v2", json={"login": "bodyget"})
    assert response.status_code == 200 and response.json()["total_entries"] == 1


def test_json_and_form_bodies_are_equivalent(api: Api) -> None:
    as_json = api.post(
        "/users", json={"user": {"login": "jsonu", "password": "p", "tag_list": ["t"]}}
    )
    as_form = api.post(
        "/users", data={"user[login]": "formu", "user[password]": "p", "user[tag_list]": "t"}
    )
    assert as_json.status_code == as_form.status_code == 201
    assert as_json.json()["user"]["user_tags"] == as_form.json()["user"]["user_tags"] == "t"


def test_body_without_content_type_is_sniffed(api: Api) -> None:
    response = api.post(
        "/users", data=json.dumps({"user": {"login": "sniffed", "password": "p"}}).encode()
    )
    assert response.status_code == 201, response.text


def test_urls_follow_a_tls_proxy(api: Api) -> None:
    """Behind a TLS-terminating proxy, the upload and download URLs use the proxy's scheme."""
    api.signup("proxied")
    api.user_session("proxied")
    headers = {"X-Forwarded-Proto": "https", "Host": "cube.example:8443"}
    blob = api.post(
        "/blobs", json={"blob": {"content_type": "a/b", "name": "x"}}, headers=headers
    ).json()["blob"]
    assert blob["blob_object_access"]["params"].startswith("https://cube.example:8443/_storage?")
    ignored = api.post(
        "/blobs",
        json={"blob": {"content_type": "a/b", "name": "y"}},
        headers={"X-Forwarded-Proto": "gopher"},
    ).json()["blob"]
    assert ignored["blob_object_access"]["params"].startswith(f"{api.base}/_storage?")


def test_unknown_route_is_404_with_errors(api: Api) -> None:
    response = api.get("/nothing/here")
    assert (response.status_code, response.json()) == (404, {"errors": ["Not found"]})
    assert api.call("PATCH", "/users/1").status_code == 404


# -- CORS ---------------------------------------------------------------------------------------


def test_cors_preflight(api: Api) -> None:
    response = api.http.options(
        f"{api.base}/users/1.json",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "cb-token, content-type, cb-sdk",
        },
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "PUT" in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["Access-Control-Allow-Headers"] == "cb-token, content-type, cb-sdk"
    assert api.emulator.request_count() == 1  # the app session only; preflights are not counted


def test_cors_headers_on_every_response(api: Api) -> None:
    for response in (api.get("/session"), api.get("/users/999"), api.get("/session", token="x")):
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert response.headers["Access-Control-Expose-Headers"] == "CB-Token-ExpirationDate, Date"
        assert "Date" in response.headers


# -- malformed input: always a 4xx with an errors body ------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"\xff\xfe", "application/json"),
        (b"\xff=\xfe", "application/x-www-form-urlencoded"),
        (b'"just a string"', "application/json"),
    ],
)
def test_malformed_bodies_are_400(api: Api, body: bytes, content_type: str) -> None:
    response = api.post("/users", data=body, headers={"Content-Type": content_type})
    assert response.status_code == 400
    assert "errors" in response.json()


def test_wrong_types_are_422(api: Api) -> None:
    for body in (
        {"user": {"login": 5.5, "password": True}},
        {"user": {"login": "typed", "password": "p", "tag_list": {"a": 1}}},
    ):
        response = api.post("/users", json=body)
        assert response.status_code == 422, body
        assert isinstance(response.json()["errors"], dict)


def test_oversized_json_body_is_413_without_reading_it(api: Api) -> None:
    huge = b'{"user": {"login": "' + b"x" * (2 * 1024 * 1024) + b'"}}'
    response = api.post("/users", data=huge, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "errors" in response.json()
    assert api.get("/session").status_code == 200  # the server is still healthy


def test_invalid_content_length_is_400() -> None:
    with EmulatorServer() as server:
        raw = _raw_request(
            server.port, b"POST /session HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"
        )
    assert raw.startswith(b"HTTP/1.1 400") and b'"errors"' in raw


def test_garbage_request_line_is_400() -> None:
    with EmulatorServer() as server:
        raw = _raw_request(server.port, b"NONSENSE\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 400") and b'"errors"' in raw


# -- the server itself --------------------------------------------------------------------------


def _raw_request(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and b"Connection: close" in b"".join(chunks):
                continue
        return b"".join(chunks)


def test_keep_alive_serves_many_requests_on_one_connection() -> None:
    with EmulatorServer() as server, socket.create_connection(("127.0.0.1", server.port)) as sock:
        stream = sock.makefile("rb")
        for _ in range(3):
            sock.sendall(b"GET /users/1 HTTP/1.1\r\nHost: x\r\n\r\n")
            status = stream.readline()
            assert status.startswith(b"HTTP/1.1 401")
            length = 0
            while (line := stream.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
                assert not line.lower().startswith(b"connection: close")
            assert b"errors" in stream.read(length)


def test_chunked_request_body() -> None:
    with EmulatorServer() as server:
        body = json.dumps({"application_id": 1, "auth_key": "emulator-auth-key"}).encode()
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        raw = _raw_request(
            server.port,
            b"POST /session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunked,
        )
    assert raw.startswith(b"HTTP/1.1 201"), raw[:200]


def test_expect_100_continue() -> None:
    with EmulatorServer() as server:
        body = b'{"application_id": 1, "auth_key": "emulator-auth-key"}'
        raw = _raw_request(
            server.port,
            b"POST /session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body),
        )
    assert raw.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201")


@pytest.mark.parametrize(
    ("path", "declared"),
    [("/session", 2 * 1024 * 1024), ("/_storage", MAX_UPLOAD_BODY + 1024 * 1024)],
    ids=["over the JSON limit", "over the upload limit"],
)
def test_an_oversized_body_is_refused_before_it_is_sent(path: str, declared: int) -> None:
    """413 as soon as the headers arrive: the client has sent none of the body (the read would
    block until the socket timeout if the server waited for it)."""
    with EmulatorServer() as server:
        raw = _raw_request(
            server.port,
            b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (path.encode(), declared),
        )
    assert raw.startswith(b"HTTP/1.1 413"), raw[:200]
    assert b"Connection: close" in raw
    assert json.loads(raw.partition(b"\r\n\r\n")[2])["errors"]


def test_instances_share_no_state() -> None:
    with EmulatorServer() as first, EmulatorServer() as second:
        Api(first.emulator).signup("only-here")
        assert len(first.emulator.users) == 1
        assert second.emulator.users == []
        assert first.url != second.url


def test_stop_releases_port_and_server_restarts() -> None:
    server = EmulatorServer().start()
    url = server.url
    server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/session", timeout=2)
    server.stop()  # idempotent


def test_concurrent_signups_of_one_login_create_exactly_one_user(api: Api) -> None:
    results: list[int] = []
    barrier = threading.Barrier(16)

    def signup() -> None:
        session = requests.Session()
        barrier.wait()
        response = session.post(
            f"{api.base}/users",
            json={"user": {"login": "racer", "password": "p"}},
            headers={"CB-Token": api.token or ""},
            timeout=10,
        )
        results.append(response.status_code)

    threads = [threading.Thread(target=signup) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [201] + [422] * 15
    assert len(api.emulator.users) == 1


def test_concurrent_mixed_load_is_consistent(api: Api) -> None:
    errors: list[str] = []

    def worker(index: int) -> None:
        session = requests.Session()
        headers = {"CB-Token": api.token or ""}
        for n in range(25):
            response = session.post(
                f"{api.base}/users",
                json={"user": {"login": f"w{index}_{n}", "password": "p"}},
                headers=headers,
                timeout=10,
            )
            if response.status_code != 201:
                errors.append(response.text)
                continue
            user_id = response.json()["user"]["id"]
            got = session.get(f"{api.base}/users/v2?id={user_id}", headers=headers, timeout=10)
            if got.status_code != 200 or got.json()["items"][0]["id"] != user_id:
                errors.append(got.text)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({u["id"] for u in api.emulator.users}) == 200
    assert api.emulator.request_count("POST /users") == 200
    assert api.emulator.request_count("GET /users/v2") == 200
