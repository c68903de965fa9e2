"""Emulator: blob create → upload → complete → read, URLs, delete."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from django_connectycube.emulator import Emulator
from tests.emulator.support import Api

NOT_FOUND = {"errors": ["Not found"]}


@pytest.fixture
def api(connectycube_emulator: Emulator) -> Api:
    api = Api(connectycube_emulator)
    api.signup("uploader")
    api.user_session("uploader")
    return api


def create(api: Api, public: Any = False, name: str = "a.txt") -> dict[str, Any]:
    response = api.post(
        "/blobs", json={"blob": {"content_type": "text/plain", "name": name, "public": public}}
    )
    assert response.status_code == 201, response.text
    return response.json()["blob"]


def upload(api: Api, blob: dict[str, Any], data: bytes, filename: str | None = "a.txt") -> Any:
    url = urlsplit(blob["blob_object_access"]["params"])
    fields = dict(parse_qsl(url.query))
    file_part = (filename, data, "text/plain") if filename else (None, data)
    return api.http.post(
        f"{url.scheme}://{url.netloc}{url.path}", data=fields, files={"file": file_part}, timeout=10
    )


def complete(api: Api, blob: dict[str, Any], size: Any, nested: bool = True) -> Any:
    body = {"blob": {"size": size}} if nested else {"size": size}
    return api.put(f"/blobs/{blob['id']}/complete", json=body)


def stored(api: Api, data: bytes = b"hello", public: Any = False) -> dict[str, Any]:
    blob = create(api, public)
    assert upload(api, blob, data).status_code == 201
    assert complete(api, blob, len(data)).status_code == 200
    return blob


def test_create_answers_write_access(api: Api) -> None:
    blob = create(api)
    assert blob["public"] is False and blob["blob_status"] is None and len(blob["uid"]) == 32
    access = blob["blob_object_access"]
    assert access["object_access_type"] == "Write" and access["blob_id"] == blob["id"]
    url = urlsplit(access["params"])
    assert url.path == "/_storage"
    fields = dict(parse_qsl(url.query))
    assert fields["key"] == blob["uid"] and fields["success_action_status"] == "201"
    assert "+" not in url.query  # the JS SDK decodes values with decodeURIComponent
    # [D storage.md] the form's Expires is an HTTP date ("Mon, 10 Dec 2018 11:26:01 GMT"), the
    # same moment as the ISO "expires" of blob_object_access.
    expires = parsedate_to_datetime(fields["Expires"])
    assert re.fullmatch(r"\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT", fields["Expires"])
    assert expires == datetime.strptime(access["expires"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=timezone.utc
    )


def test_create_validation(api: Api) -> None:
    response = api.post("/blobs", json={"blob": {"name": "x"}})
    assert response.json() == {"errors": {"content_type": ["cannot be blank"]}}
    response = api.post(
        "/blobs", json={"blob": {"name": "x", "content_type": "a/b", "public": "maybe"}}
    )
    assert response.json() == {"errors": {"public": ["must be a boolean"]}}
    assert api.post("/blobs", json={"blob": []}).status_code == 422


def test_form_encoded_create_with_string_boolean(api: Api) -> None:
    response = api.post(
        "/blobs.json",
        data={"blob[content_type]": "image/png", "blob[name]": "p.png", "blob[public]": "true"},
    )
    assert response.status_code == 201
    assert response.json()["blob"]["public"] is True


def test_upload_answers_201_with_xml(api: Api) -> None:
    blob = create(api)
    response = upload(api, blob, b"hello")
    assert response.status_code == 201
    assert response.headers["Content-Type"].startswith("application/xml")
    assert f"<Key>{blob['uid']}</Key>" in response.text and "<PostResponse>" in response.text


def test_upload_without_filename_still_counts_as_the_file(api: Api) -> None:
    blob = create(api)
    assert upload(api, blob, b"buffer", filename=None).status_code == 201
    assert api.emulator.get_blob_data(blob["uid"]) == b"buffer"


def test_upload_refuses_tampered_policy_and_bad_bodies(api: Api) -> None:
    blob = create(api)
    url = urlsplit(blob["blob_object_access"]["params"])
    target = f"{url.scheme}://{url.netloc}{url.path}"
    fields = dict(parse_qsl(url.query))
    tampered = {**fields, "x-amz-signature": "0" * 64}
    response = api.http.post(target, data=tampered, files={"file": ("a", b"x")})
    assert response.status_code == 403 and "errors" in response.json()
    unknown = {**fields, "key": "f" * 32}
    assert api.http.post(target, data=unknown, files={"file": ("a", b"x")}).status_code == 404
    no_file = api.http.post(target, data=fields, files={"other": ("a", b"x")})
    assert no_file.status_code == 400
    not_multipart = api.http.post(target, data=fields)
    assert not_multipart.status_code == 400
    broken = api.http.post(
        target,
        data=b"--xx\r\nnonsense",
        headers={"Content-Type": "multipart/form-data; boundary=xx"},
    )
    assert broken.status_code == 400 and "errors" in broken.json()


def test_upload_policy_expires_after_an_hour(api: Api) -> None:
    blob = create(api)
    api.emulator.advance_clock(3601)
    assert upload(api, blob, b"late").status_code == 403


def test_complete_rules(api: Api) -> None:
    blob = create(api)
    early = complete(api, blob, 5)
    assert early.status_code == 422  # nothing uploaded yet
    upload(api, blob, b"hello")
    assert complete(api, blob, "abc").status_code == 422
    done = complete(api, blob, 5, nested=False)
    assert (done.status_code, done.content) == (200, b"")
    info = api.get(f"/blobs/{blob['id']}").json()["blob"]
    assert (info["blob_status"], info["size"]) == ("complete", 5)
    assert info["set_completed_at"].endswith("Z")


def test_complete_is_lenient_about_the_size(api: Api) -> None:
    """Nothing documents a refusal of a size mismatch [I]: the declared size is kept."""
    blob = create(api)
    upload(api, blob, b"hello")
    assert complete(api, blob, "347").status_code == 200  # [D] the docs send a string
    info = api.get(f"/blobs/{blob['id']}").json()["blob"]
    assert (info["blob_status"], info["size"]) == ("complete", 347)
    assert api.http.get(f"{api.emulator.url}/blobs/{blob['uid']}?token={api.token}").content == (
        b"hello"
    )


def test_update_blob_renames_and_retypes(api: Api) -> None:
    """``PUT /blobs/{id}`` (deprecated) [D storage.md "Edit a file"]."""
    blob = stored(api, b"content")
    response = api.put(f"/blobs/{blob['id']}.json", json={"blob": {"name": "My photo"}})
    assert response.status_code == 200, response.text
    edited = response.json()["blob"]
    assert (edited["name"], edited["content_type"], edited["blob_status"]) == (
        "My photo",
        "text/plain",
        "complete",
    )
    assert "blob_object_access" not in edited
    retyped = api.put(f"/blobs/{blob['id']}", data={"blob[content_type]": "text/markdown"})
    assert retyped.json()["blob"]["content_type"] == "text/markdown"
    too_long = api.put(f"/blobs/{blob['id']}", json={"blob": {"name": "n" * 101}})
    assert (too_long.status_code, too_long.json()) == (
        422,
        {"errors": {"name": ["is too long (maximum is 100 characters)"]}},
    )


def test_update_blob_new_opens_another_upload(api: Api) -> None:
    blob = stored(api, b"first")
    renewed = api.put(f"/blobs/{blob['id']}", json={"blob": {"new": "1"}}).json()["blob"]
    assert renewed["blob_status"] is None
    assert renewed["blob_object_access"]["object_access_type"] == "Write"
    assert upload(api, renewed, b"second").status_code == 201
    assert complete(api, renewed, 6).status_code == 200
    assert api.emulator.get_blob_data(blob["uid"]) == b"second"


def test_update_blob_of_another_user_or_app_session(api: Api) -> None:
    blob = stored(api)
    api.signup("intruder")
    api.user_session("intruder")
    assert api.put(f"/blobs/{blob['id']}", json={"blob": {"name": "x"}}).status_code == 403
    api.app_session()
    refused = api.put(f"/blobs/{blob['id']}", json={"blob": {"name": "x"}})
    assert (refused.status_code, refused.json()) == (
        403,
        {"errors": {"base": ["Forbidden. Need user."]}},
    )


def test_complete_with_post_and_without_size(api: Api) -> None:
    blob = create(api)
    upload(api, blob, b"abc")
    assert api.post(f"/blobs/{blob['id']}/complete.json", json={}).status_code == 200
    assert api.get(f"/blobs/{blob['id']}.json").json()["blob"]["size"] == 3


def test_private_blob_needs_a_token(api: Api) -> None:
    blob = stored(api, b"secret")
    base = api.emulator.url
    anonymous = api.http.get(f"{base}/blobs/{blob['uid']}")
    assert anonymous.status_code == 401
    with_query = api.http.get(f"{base}/blobs/{blob['uid']}?token={api.token}")
    assert (with_query.status_code, with_query.content) == (200, b"secret")
    assert with_query.headers["Content-Type"] == "text/plain"
    with_header = api.get(f"/blobs/{blob['uid']}")
    assert with_header.content == b"secret"
    stale = api.http.get(f"{base}/blobs/{blob['uid']}?token=stale")
    assert stale.status_code == 401


def test_public_blob_downloads_without_token(api: Api) -> None:
    blob = stored(api, b"public!", public=True)
    response = api.http.get(f"{api.emulator.url}/blobs/{blob['uid']}?token=stale")
    assert (response.status_code, response.content) == (200, b"public!")


def test_incomplete_blob_does_not_download(api: Api) -> None:
    blob = create(api, public=True)
    upload(api, blob, b"x")
    assert api.http.get(f"{api.emulator.url}/blobs/{blob['uid']}").status_code == 404


def test_get_blob_json_by_id_and_uid(api: Api) -> None:
    blob = stored(api)
    by_id = api.get(f"/blobs/{blob['id']}")
    by_uid = api.get(f"/blobs/{blob['uid']}.json")
    assert by_id.json() == by_uid.json()
    assert "blob_object_access" not in by_id.json()["blob"]
    assert api.get("/blobs/999").json() == NOT_FOUND
    assert api.get(f"/blobs/{blob['id']}", token=None).status_code == 401


def test_object_download_url_and_download_redirect(api: Api) -> None:
    blob = stored(api, b"data")
    response = api.get(f"/blobs/{blob['uid']}/object", params={"download_url": 1})
    access = response.json()["blob"]["blob_object_access"]
    assert access["object_access_type"] == "Read"
    assert api.http.get(access["download_url"]).content == b"data"
    redirect = api.get(f"/blobs/{blob['uid']}/download", allow_redirects=False)
    assert redirect.status_code == 301
    assert api.http.get(redirect.headers["Location"]).content == b"data"


def test_list_and_delete(api: Api) -> None:
    first = stored(api)
    create(api, name="b.txt")
    page = api.get("/blobs").json()
    assert page["total_entries"] == 2
    assert api.delete(f"/blobs/{first['id']}").status_code == 200
    assert api.get(f"/blobs/{first['id']}").json() == NOT_FOUND
    assert api.delete(f"/blobs/{first['id']}").status_code == 404
    assert len(api.emulator.blobs) == 1


def test_other_users_cannot_complete_or_delete(api: Api) -> None:
    blob = create(api)
    upload(api, blob, b"x")
    api.signup("intruder")
    api.user_session("intruder")
    assert complete(api, blob, 1).status_code == 403
    assert api.delete(f"/blobs/{blob['id']}").status_code == 403


def test_avatar_flow(api: Api) -> None:
    blob = stored(api, b"png-bytes", public=True)
    me = api.get("/session").json()["session"]["user_id"]
    response = api.put(
        f"/users/{me}",
        json={"user": {"avatar": blob["uid"], "custom_data": f'{{"avatar_uid": "{blob["uid"]}"}}'}},
    )
    assert response.json()["user"]["avatar"] == blob["uid"]
