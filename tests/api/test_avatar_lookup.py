"""The avatar other users see is the one this site uploaded, whatever the remote user says.

A ConnectyCube user can change their own ``avatar`` and ``custom_data`` with their own token
(the SDK lets any logged-in user do so). The look-ups build ``avatar_url`` from the blob uid our
link recorded, never from the remote user, and the next push of the user puts our avatar back.
"""

from __future__ import annotations

import json

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.utils import timezone

from django_connectycube.models import CubeUser
from django_connectycube.sync import push as sync
from django_connectycube.sync.user_sessions import call_as_user
from tests.sync.test_sync import PNG, make_user

pytestmark = [pytest.mark.usefixtures("no_broker", "clean_cache"), pytest.mark.django_db]

EVIL = "https://evil.example/x.png"
USERS = "/api/connectycube/users/"


@pytest.fixture
def cube(connectycube_emulator, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "RETRIES": 0}
    return connectycube_emulator


@pytest.fixture
def alice(cube) -> CubeUser:
    """A user whose avatar this site uploaded, who then points it elsewhere herself."""
    user = make_user("alice")
    user.avatar.save("me.png", ContentFile(PNG), save=True)
    sync.push_user(user.pk)
    link = CubeUser.objects.get(user=user)
    assert link.avatar_uid
    call_as_user(
        link,
        lambda uc: uc.update_user(
            link.cube_id, avatar=EVIL, custom_data={"avatar_uid": EVIL, "colour": "red"}
        ),
    )
    return link


@pytest.fixture
def bob(cube) -> Client:
    user = make_user("bob")
    sync.push_user(user.pk)
    client = Client()
    client.force_login(user)
    return client


def _remote(cube, cube_id: int) -> dict:
    return next(u for u in cube.users if u["id"] == cube_id)


def test_others_see_the_avatar_we_uploaded_not_the_one_she_set(cube, alice, bob, settings):
    ours = f"{settings.CONNECTYCUBE['API_URL']}/blobs/{alice.avatar_uid}"
    listed = bob.get(USERS, {"ids": str(alice.cube_id)})
    detail = bob.get(f"{USERS}{alice.cube_id}/")
    for response in (listed, detail):
        assert response.status_code == 200
        assert "evil.example" not in response.content.decode()
    [profile] = listed.json()["results"]
    assert profile["avatar_url"] == detail.json()["avatar_url"] == ours
    # The SDK's convention (custom_data.avatar_uid) says the same, her other keys are kept.
    assert profile["custom_data"] == {"avatar_uid": alice.avatar_uid, "colour": "red"}


def test_a_user_without_an_avatar_of_ours_shows_none(cube, bob):
    stranger = cube.create_user(
        login="stranger",
        password="12345678",
        avatar=EVIL,
        custom_data=json.dumps({"avatar_uid": EVIL, "colour": "blue"}),
    )
    response = bob.get(f"{USERS}{stranger['id']}/")
    assert response.status_code == 200
    assert response.json()["avatar_url"] is None
    assert response.json()["custom_data"] == {"colour": "blue"}
    assert "evil.example" not in response.content.decode()


def test_the_next_push_puts_our_avatar_back(cube, alice):
    blobs = len(cube.blobs)
    CubeUser.objects.filter(pk=alice.pk).resync(timezone.now())
    sync.push_user(alice.user_id)
    remote = _remote(cube, alice.cube_id)
    assert remote["avatar"] == alice.avatar_uid
    custom = remote["custom_data"]
    custom = json.loads(custom) if isinstance(custom, str) else custom
    assert custom == {"avatar_uid": alice.avatar_uid, "colour": "red"}
    assert len(cube.blobs) == blobs  # put back, not uploaded again
    assert CubeUser.objects.get(pk=alice.pk).avatar_uid == alice.avatar_uid
