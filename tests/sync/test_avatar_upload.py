"""Avatars on ConnectyCube: the content type comes from the content, replaced blobs are deleted."""

from __future__ import annotations

import io
import logging

import pytest
from django.core.files.base import ContentFile

from django_connectycube.models import CubeUser
from django_connectycube.sync import policy
from django_connectycube.sync import push as sync
from django_connectycube.sync.images import content_type_of, sniff_image_type
from tests.sync.test_sync import PNG, make_user

pytestmark = [pytest.mark.usefixtures("no_broker"), pytest.mark.django_db(transaction=True)]

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"jpeg" * 20


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (b"GIF89a" + b"\x00" * 10, "image/gif"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"BM" + b"\x00" * 30, "image/bmp"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00", "image/avif"),
        (b"%PDF-1.7\n", None),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", None),
        (b"\x89PNG", None),  # truncated signature
        (b"", None),
    ],
)
def test_sniff_image_type(head: bytes, expected: str | None) -> None:
    assert sniff_image_type(head) == expected


def test_content_type_of_leaves_the_file_where_it_was() -> None:
    fileobj = io.BytesIO(JPEG)
    assert content_type_of(fileobj) == "image/jpeg"
    assert fileobj.read() == JPEG


def _blob(cube, uid: str) -> dict | None:
    return next((b for b in cube.blobs if b["uid"] == uid), None)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("me.png", b"this is a text file, not a picture", "application/octet-stream"),
        ("me.png", JPEG, "image/jpeg"),
        ("me", PNG, "image/png"),
    ],
)
def test_uploaded_content_type_is_the_contents(
    connectycube_emulator, name: str, content: bytes, expected: str
) -> None:
    user = make_user()
    user.avatar.save(name, ContentFile(content), save=True)
    sync.push_user(user.pk)
    uid = CubeUser.objects.get(user=user).avatar_uid
    assert _blob(connectycube_emulator, uid)["content_type"] == expected


def test_the_replaced_blob_is_deleted(connectycube_emulator) -> None:
    cube = connectycube_emulator
    user = make_user()
    user.avatar.save("one.png", ContentFile(PNG), save=True)
    sync.push_user(user.pk)
    first = CubeUser.objects.get(user=user).avatar_uid
    user.avatar.save("two.png", ContentFile(PNG + b"2"), save=True)
    assert sync.push_user(user.pk) == policy.UPDATED
    second = CubeUser.objects.get(user=user).avatar_uid
    assert second != first
    assert _blob(cube, first) is None
    assert cube.get_blob_data(second) == PNG + b"2"
    assert [b["uid"] for b in cube.blobs] == [second]


def test_a_removed_avatar_deletes_its_blob(connectycube_emulator) -> None:
    user = make_user()
    user.avatar.save("one.png", ContentFile(PNG), save=True)
    sync.push_user(user.pk)
    uid = CubeUser.objects.get(user=user).avatar_uid
    user.avatar = None
    user.save()
    sync.push_user(user.pk)
    assert CubeUser.objects.get(user=user).avatar_uid == ""
    assert connectycube_emulator.blobs == []
    assert _blob(connectycube_emulator, uid) is None


def test_a_failed_delete_does_not_fail_the_push(connectycube_emulator, caplog) -> None:
    cube = connectycube_emulator
    user = make_user()
    user.avatar.save("one.png", ContentFile(PNG), save=True)
    sync.push_user(user.pk)
    first = CubeUser.objects.get(user=user).avatar_uid
    cube.set_fault("DELETE /blobs/{id}", error_rate=1.0, statuses=[500])
    user.avatar.save("two.png", ContentFile(PNG + b"2"), save=True)
    with caplog.at_level(logging.WARNING, logger="django_connectycube.sync.push"):
        assert sync.push_user(user.pk) == policy.UPDATED
    link = CubeUser.objects.get(user=user)
    assert link.avatar_uid != first and link.state == "synced"
    assert cube.get_blob_data(link.avatar_uid) == PNG + b"2"
    assert _blob(cube, first) is not None  # left behind, and said so
    assert f"replaced avatar blob {first}" in caplog.text
    assert cube.request_count("DELETE /blobs/{id}") >= 1
