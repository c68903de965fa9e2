"""A remote that forgot us: the emulator reset (or the application wiped) after users were synced.

ConnectyCube then hands out the remote ids our links still hold, and knows none of our users or
session tokens. This is "a second demo run": the site's database survives, the emulator does not.
Everything must recover (old users re-created, new ones synced) or be a recorded conflict; never
an ``IntegrityError``, a 500, or a row left ``pending`` with no attempt counted.
"""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from django_connectycube.admin import resync
from django_connectycube.models import CubeSession, CubeUser
from django_connectycube.sync import mapping, policy, tasks
from django_connectycube.sync import push as sync

pytestmark = [pytest.mark.usefixtures("no_broker", "clean_cache"), pytest.mark.django_db]
User = get_user_model()
LOGIN = "/api/connectycube/login/"
SESSION = "/api/connectycube/session/"


@pytest.fixture
def cube(connectycube_emulator, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "RETRIES": 0, "MAX_RETRY_WAIT": 1.0}
    return connectycube_emulator


def make_user(username: str) -> User:
    return User.objects.create_user(
        username=username, email=f"{username}@example.com", password=f"pw-{username}-123"
    )


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def link_of(user) -> CubeUser:
    return CubeUser.objects.get(user=user)


def remote_external_ids(cube) -> list[str]:
    return sorted(u["external_id"] for u in cube.users)


@pytest.fixture
def first_run(cube):
    """alice and bob synced, alice with a stored session; then the remote forgets everything."""
    alice, bob = make_user("alice"), make_user("bob")
    for user in (alice, bob):
        assert sync.push_user(user.pk) == policy.CREATED
    assert logged_in(alice).post(LOGIN).status_code == 200
    old_ids = {u.username: link_of(u).cube_id for u in (alice, bob)}
    cube.reset()
    return alice, bob, old_ids


def test_a_new_user_gets_a_remote_id_an_old_link_still_holds(cube, first_run):
    alice, _bob, old_ids = first_run
    carol = make_user("carol")
    assert tasks.push_user.apply(args=(carol.pk,)).get() == policy.CREATED
    carol_link = link_of(carol)
    assert carol_link.state == CubeUser.State.SYNCED
    assert carol_link.cube_id == old_ids["alice"]  # the reset emulator numbers from 1 again
    # alice's claim to that id is provably stale (ConnectyCube just made it for carol): it is
    # released, and alice is owed a push that re-creates her.
    alice_link = link_of(alice)
    assert alice_link.cube_id is None
    assert alice_link.state == CubeUser.State.PENDING and alice_link.is_dirty
    assert not CubeSession.objects.filter(user=alice).exclude(token="").exists()
    assert tasks.push_user.apply(args=(alice.pk,)).get() == policy.CREATED
    assert link_of(alice).state == CubeUser.State.SYNCED
    assert remote_external_ids(cube) == sorted(link_of(u).external_id for u in (alice, carol))


def test_an_edited_old_user_is_created_again(cube, first_run):
    _alice, bob, _old_ids = first_run
    bob.first_name = "Robert"
    bob.save()
    assert tasks.push_user.apply(args=(bob.pk,)).get() == policy.CREATED
    link = link_of(bob)
    assert (link.state, link.attempts, link.last_error) == (CubeUser.State.SYNCED, 0, "")
    [remote] = cube.users
    assert (remote["id"], remote["external_id"], remote["full_name"]) == (
        link.cube_id,
        link.external_id,
        "Robert",
    )


def test_an_old_user_whose_id_was_taken_is_created_again(cube, first_run):
    """bob's stored id now belongs to someone else: bob's remote user is gone, not that one."""
    _alice, bob, old_ids = first_run
    stranger = cube.create_user(login="stranger", password="12345678", external_id="elsewhere")
    cube.create_user(login="stranger2", password="12345678")
    assert old_ids["bob"] == cube.users[1]["id"]
    bob.first_name = "Robert"
    bob.save()
    assert tasks.push_user.apply(args=(bob.pk,)).get() == policy.CREATED
    link = link_of(bob)
    assert link.state == CubeUser.State.SYNCED
    assert link.cube_id not in (stranger["id"], old_ids["bob"])
    others = {u["login"]: u for u in cube.users}
    assert others["stranger2"]["full_name"] in (None, "")  # bob's push never touched it


def test_the_login_api_and_the_session_view_recover(cube, first_run):
    alice, bob, _old_ids = first_run
    carol = make_user("carol")
    response = logged_in(carol).post(LOGIN)  # carol takes alice's old remote id
    assert response.status_code == 200, response.content
    assert response.json()["user_id"] == link_of(carol).cube_id
    for user in (alice, bob):
        session = logged_in(user).get(SESSION)
        assert session.status_code == 200, session.content
        body = session.json()
        link = link_of(user)
        assert body["user_id"] == link.cube_id
        assert link.state == CubeUser.State.SYNCED
        live = [s for s in cube.sessions if s["token"] == body["token"]]
        assert [s["user_id"] for s in live] == [link.cube_id]
    assert remote_external_ids(cube) == sorted(link_of(u).external_id for u in (alice, bob, carol))


def test_a_conflict_that_cannot_be_proven_stale_is_recorded(cube, first_run):
    """dave's remote user (found by its external id) carries an id alice's link holds: nothing
    proves which claim is right, so dave's row fails with an error naming both, never a 500."""
    alice, _bob, old_ids = first_run
    dave = make_user("dave")
    external_id = link_of(dave).external_id
    password = mapping.derive_password(external_id, mapping.current_password_version())
    cube.create_user(login="dave", password=password, external_id=external_id)
    assert cube.users[0]["id"] == old_ids["alice"]
    assert tasks.push_user.apply(args=(dave.pk,)).get() == "failed"
    link = link_of(dave)
    assert (link.state, link.attempts, link.cube_id) == (CubeUser.State.FAILED, 1, None)
    assert str(old_ids["alice"]) in link.last_error
    assert f"local user {link_of(alice).external_id}" in link.last_error
    assert "re-sync" in link.last_error
    assert link_of(alice).cube_id == old_ids["alice"]  # alice's link is left alone
    response = logged_in(dave).post(LOGIN)
    assert response.status_code == 409
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "connectycube_conflict"


def test_a_dead_stored_token_is_renewed_by_the_session_view(cube, first_run):
    alice, bob, old_ids = first_run
    stale = CubeSession.objects.get(user=alice).token
    response = logged_in(alice).post(SESSION)  # the SDK's sessionExpired hook reports it
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token"] != stale
    link = link_of(alice)
    assert body["user_id"] == link.cube_id
    [remote] = cube.users  # the stray the derived-password login auto-created is gone again
    assert (remote["id"], remote["external_id"]) == (link.cube_id, link.external_id)
    # alice's new remote id is bob's old one: bob's claim was released, and he recovers too
    assert link.cube_id == old_ids["bob"]
    assert link_of(bob).cube_id is None
    assert sync.push_user(bob.pk) == policy.CREATED


@pytest.mark.django_db(transaction=True)  # the command pushes from a thread pool
def test_the_sync_command_recovers_after_a_reset(cube, first_run):
    alice, bob, _old_ids = first_run
    carol, dave = make_user("carol"), make_user("dave")
    out = io.StringIO()
    call_command("connectycube_sync", stdout=out)  # the batched create path: carol and dave
    assert {link_of(u).state for u in (carol, dave)} == {CubeUser.State.SYNCED}
    assert {link_of(u).cube_id for u in (alice, bob)} == {None}  # their ids went to carol, dave
    call_command("connectycube_sync", stdout=out)  # alice and bob, created again
    call_command("connectycube_sync", "--verify", stdout=out)
    assert "0 with drift" in out.getvalue()
    assert remote_external_ids(cube) == sorted(
        link_of(u).external_id for u in (alice, bob, carol, dave)
    )


def test_the_recorded_conflict_is_resolved_as_its_message_says(cube, first_run):
    alice, _bob, old_ids = first_run
    dave = make_user("dave")
    external_id = link_of(dave).external_id
    password = mapping.derive_password(external_id, mapping.current_password_version())
    cube.create_user(login="dave", password=password, external_id=external_id)
    assert tasks.push_user.apply(args=(dave.pk,)).get() == "failed"
    # "Re-sync local user <alice> from the admin first ..., then re-sync this user."
    for user in (alice, dave):
        assert resync(CubeUser.objects.filter(user=user)) == 1
        assert tasks.push_user.apply(args=(user.pk,)).get() in (policy.CREATED, policy.ADOPTED)
    assert link_of(dave).cube_id == old_ids["alice"]
    assert link_of(alice).cube_id not in (None, old_ids["alice"])
    assert {link_of(u).state for u in (alice, dave)} == {CubeUser.State.SYNCED}


@pytest.fixture
def cidp_cube(cube, live_server, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "AUTH_MODE": "cidp"}
    verify = live_server.url + "/api/connectycube/cidp/verify/"
    cube.configure(cidp_url=verify)
    return cube, verify


@pytest.mark.django_db(transaction=True)  # ConnectyCube calls our verifier on a live server
def test_a_cidp_login_after_a_reset_takes_over_a_stale_id(cidp_cube):
    cube, verify = cidp_cube
    alice, carol = make_user("alice"), make_user("carol")
    assert logged_in(alice).post(LOGIN).status_code == 200
    alice_id = link_of(alice).cube_id
    cube.reset()
    cube.configure(cidp_url=verify)
    response = logged_in(carol).post(LOGIN)
    assert response.status_code == 200, response.content
    assert response.json()["user_id"] == link_of(carol).cube_id == alice_id
    assert link_of(alice).cube_id is None
    assert not CubeSession.objects.filter(user=alice).exists()
    again = logged_in(alice).post(LOGIN)
    assert again.status_code == 200, again.content
    assert again.json()["user_id"] == link_of(alice).cube_id not in (None, alice_id)
