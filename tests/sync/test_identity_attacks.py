"""The identity attacks of the "Identity you can trust" issue, replayed against the emulator.

The attacker is an ordinary user of the site: she gets a ConnectyCube token from our login API and
edits her own remote record with it (``UserClient.update_user``), or signs an account up with the
application's auth key (it ships inside every frontend). Each test failed before external ids
were minted per link and adoption required proof.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from django_connectycube import errors
from django_connectycube.checks import configuration as checks
from django_connectycube.emulator import mint_firebase_token
from django_connectycube.models import CubeSession, CubeUser, identity
from django_connectycube.sync import mapping, policy
from django_connectycube.sync import push as sync
from django_connectycube.sync.connection import shared_client

User = get_user_model()
LOGIN = "/api/connectycube/login/"
VERIFY = "/api/connectycube/cidp/verify/"
PROJECT = "demo-project"

pytestmark = [
    pytest.mark.usefixtures("no_broker", "clean_cache"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def cube(connectycube_emulator, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "RETRIES": 0}
    return connectycube_emulator


@pytest.fixture
def cidp_cube(cube, live_server, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "AUTH_MODE": "cidp"}
    cube.configure(cidp_url=live_server.url + VERIFY)
    return cube


def make_user(username, **fields):
    return User.objects.create_user(username=username, email=f"{username}@example.com", **fields)


def api_login(user):
    client = Client()
    client.force_login(user)
    return client.post(LOGIN)


def link_of(user):
    return CubeUser.objects.get(user=user)


def next_pk():
    """The pk the next local user gets, counted from the newest one (the attacker herself)."""
    return User.objects.order_by("-pk").first().pk + 1


def edit_own_record(session, **changes):
    """What the attacker can do with the token our login API handed her."""
    client = shared_client().as_user(session["token"], user_id=session["user_id"])
    return client.update_user(session["user_id"], changes)


# ---- CIdP: account takeover through a pre-claimed external_id --------------------------------


def test_cidp_victim_never_receives_an_account_pre_claimed_with_her_external_id(cidp_cube):
    # Mallory, a user of the site, signs an account up herself (auth key), carrying the
    # external id the victim is about to get under a pk-based scheme: a password she knows.
    make_user("mallory")
    predicted = next_pk()
    planted = shared_client().create_user(
        login="victim", password="mallory-knows-it", external_id=str(predicted)
    )
    victim = make_user("victim")
    assert victim.pk == predicted  # the prediction was right: only the minting protects her
    response = api_login(victim)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["user_id"] != planted.id
    link = link_of(victim)
    assert body["user_id"] == link.cube_id
    assert cidp_cube.store.users[link.cube_id].external_id == link.external_id
    assert identity.is_minted(link.external_id)
    # The planted account is untouched and still nobody's.
    assert cidp_cube.store.users[planted.id].external_id == str(predicted)
    assert not CubeUser.objects.filter(cube_id=planted.id).exists()


def test_cidp_attacker_editing_her_own_external_id_cannot_capture_the_next_user(cidp_cube):
    mallory = make_user("mallory")
    session = api_login(mallory).json()
    edit_own_record(session, external_id=str(next_pk()))
    victim = make_user("victim")
    response = api_login(victim)
    assert response.status_code == 200, response.content
    assert response.json()["user_id"] == link_of(victim).cube_id != session["user_id"]
    assert link_of(mallory).cube_id == session["user_id"]  # her link is her own, unchanged


# ---- password mode: squatting ----------------------------------------------------------------


def test_password_mode_squatter_does_not_deny_the_victim_a_session_of_her_own(cube):
    mallory = make_user("mallory")
    session = api_login(mallory).json()
    # Her record now looks exactly like what the victim's would under a pk-based scheme.
    edit_own_record(
        session,
        external_id=str(next_pk()),
        login="victim",
        email="victim@example.com",
        full_name="",
    )
    victim = make_user("victim")
    response = api_login(victim)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    link = link_of(victim)
    assert response.json()["user_id"] == link.cube_id != session["user_id"]
    own = cube.store.users[link.cube_id]
    assert own.login.startswith("victim-") and own.login == link.login
    assert own.email is None  # the squatted e-mail is left off
    assert link.withheld == {"login": "victim", "email": "victim@example.com"}
    assert link.state == "synced"
    # Looked up by her external id, the victim is herself, not the squatter.
    client = Client()
    client.force_login(victim)
    found = client.get("/api/connectycube/users/", {"external_id": link.external_id}).json()
    assert [profile["id"] for profile in found["results"]] == [link.cube_id]
    # The squatter keeps what she took; the victim's local change frees her e-mail later.
    assert cube.store.users[session["user_id"]].login == "victim"


def test_a_freed_login_is_taken_back_at_the_next_change(cube):
    squatter = cube.create_user(login="victim", password="x" * 12, external_id="squat")
    victim = make_user("victim")
    assert sync.push_user(victim.pk) == policy.CREATED
    assert link_of(victim).withheld == {"login": "victim"}
    cube.store.delete_user(cube.store.users[squatter["id"]])
    victim.username = "victim"  # unchanged: the fallback stays until the mapped login changes
    victim.save()
    sync.push_user(victim.pk)
    assert cube.store.users[link_of(victim).cube_id].login.startswith("victim-")
    victim.username = "victoria"
    victim.save()
    assert sync.push_user(victim.pk) == policy.UPDATED
    link = link_of(victim)
    assert (cube.store.users[link.cube_id].login, link.login, link.withheld) == (
        "victoria",
        "victoria",
        {},
    )


# ---- cube_id uniqueness ----------------------------------------------------------------------


def test_a_remote_id_linked_to_another_row_is_a_recorded_conflict_and_a_409(cube):
    alice, bob = make_user("alice"), make_user("bob")
    sync.push_user(alice.pk)
    shared = link_of(alice).cube_id
    bob_link = link_of(bob)
    # A restored backup or a hand edit: bob's external id and password now fit alice's account.
    remote = cube.store.users[shared]
    cube.store.update_user(
        remote, {"external_id": bob_link.external_id, "login": "bob", "email": "bob@example.com"}
    )
    remote.set_password(mapping.derive_password(bob_link.external_id))
    response = api_login(bob)
    assert response.status_code == 409, response.content
    assert response.json() == {
        "detail": "This account could not be set up on ConnectyCube (it conflicts with data "
        "there); an administrator has to resolve it.",
        "code": "connectycube_conflict",
    }
    bob_link.refresh_from_db()
    assert (bob_link.state, bob_link.cube_id) == ("failed", None)
    assert f"ConnectyCube user {shared}" in bob_link.last_error
    assert "re-sync" in bob_link.last_error
    assert link_of(alice).cube_id == shared


def test_a_unique_violation_while_recording_is_a_conflict_not_an_integrity_error(cube, monkeypatch):
    alice, bob = make_user("alice"), make_user("bob")
    sync.push_user(alice.pk)
    bob_link = link_of(bob)
    cube.create_user(  # bob's own earlier create, whose answer was lost...
        login="bob",
        password=mapping.derive_password(bob_link.external_id),
        external_id=bob_link.external_id,
    )
    # ...and, racing with it, alice's row recorded the same remote id (the check in adoption
    # ran before that write landed).
    monkeypatch.setattr(
        "django_connectycube.sync.remote_ids.other_holder", lambda link, cube_id: None
    )
    CubeUser.objects.filter(pk=link_of(alice).pk).update(cube_id=cube.users[-1]["id"])
    with pytest.raises(errors.SyncConflict, match="is linked to ConnectyCube id"):
        sync.push_user(bob.pk)
    from django_connectycube.sync import tasks

    assert tasks.push_user.apply(args=(bob.pk,)).get() == "failed"
    assert link_of(bob).state == "failed"


# ---- reused primary keys ---------------------------------------------------------------------


def test_a_reused_pk_gets_a_new_account_while_the_old_one_is_still_deleted(cube):
    old = make_user("oldtimer")
    sync.push_user(old.pk)
    tombstone = link_of(old)
    old_pk, old_cube_id = old.pk, tombstone.cube_id
    old.delete()  # the remote delete has to wait: no broker
    newcomer = User.objects.create_user(pk=old_pk, username="newcomer")
    assert sync.push_user(newcomer.pk) == policy.CREATED
    link = link_of(newcomer)
    assert link.pk != tombstone.pk
    assert link.cube_id != old_cube_id
    assert link.external_id != tombstone.external_id
    tombstone.refresh_from_db()
    assert (tombstone.state, tombstone.user_id, tombstone.cube_id) == (
        "deleting",
        None,
        old_cube_id,
    )
    assert old_cube_id in cube.store.users  # not inherited, not yet deleted
    # The newcomer's session is of her own account.
    assert api_login(newcomer).json()["user_id"] == link.cube_id
    # The delete that had to wait still happens, and only to the old account.
    assert sync.delete_remote_user(tombstone.pk) == policy.DELETED
    assert old_cube_id not in cube.store.users
    assert link.cube_id in cube.store.users
    assert link_of(newcomer).state == "synced"


# ---- Firebase phone login --------------------------------------------------------------------


def firebase_login(cube, phone):
    token = mint_firebase_token(cube.firebase_key, PROJECT, phone_number=phone)
    body = {"provider": "firebase_phone", "firebase_phone": {"project_id": PROJECT}}
    body["firebase_phone"]["access_token"] = token
    return Client().post(LOGIN, body, content_type="application/json")


def test_firebase_phone_login_refuses_a_plain_profile_field(cube, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "FIREBASE_PHONE_LOOKUP": "phone"}
    mallory = make_user("mallory")
    sync.push_user(mallory.pk)
    mallory.phone = "+447700900123"  # the victim's number, typed into her own profile
    mallory.save()
    response = firebase_login(cube, "+447700900123")  # the victim proves her number
    assert response.status_code == 403, response.content
    assert response.json()["code"] == "firebase_phone_disabled"
    assert not CubeSession.objects.filter(user=mallory).exists()
    assert [m.id for m in checks.check_settings()] == ["connectycube.E003"]


VERIFIED_PHONES: dict[str, str] = {}


def verified_phone_owner(phone):
    """An integrator's look-up over numbers users proved (here: a dict the test fills)."""
    username = VERIFIED_PHONES.get(phone)
    return User.objects.filter(username=username).first() if username else None


def test_firebase_phone_login_trusts_a_vouched_callable(cube, settings):
    settings.CONNECTYCUBE = {
        **settings.CONNECTYCUBE,
        "FIREBASE_PHONE_LOOKUP": "tests.sync.test_identity_attacks.verified_phone_owner",
        "FIREBASE_PROJECT_ID": PROJECT,
    }
    victim = make_user("victim")
    mallory = make_user("mallory", phone="+447700900123")  # a typed-in number counts for nothing
    VERIFIED_PHONES["+447700900123"] = "victim"
    try:
        response = firebase_login(cube, "+447700900123")
    finally:
        VERIFIED_PHONES.clear()
    assert response.status_code == 200, response.content
    assert response.json()["user_id"] == link_of(victim).cube_id
    assert link_of(mallory).cube_id is None
    assert checks.check_settings() == []


# ---- two sites sharing one application ------------------------------------------------------


def test_staging_and_production_on_one_application_never_adopt_each_others_users(
    cidp_cube, settings
):
    settings.CONNECTYCUBE = {
        **settings.CONNECTYCUBE,
        "EXTERNAL_ID_PREFIX": "staging",
        "PASSWORD_SECRETS": {1: "staging secret"},
    }
    alice = make_user("alice")
    # Production's alice has the same pk (another database), under the pk-based scheme.
    production = shared_client().create_user(
        login="alice",
        email="alice@example.com",
        password="production-pw",
        external_id=str(alice.pk),
    )
    response = api_login(alice)
    assert response.status_code == 200, response.content
    link = link_of(alice)
    assert response.json()["user_id"] == link.cube_id != production.id
    assert link.external_id.startswith("staging-")
    prod = cidp_cube.store.users[production.id]
    assert (prod.external_id, prod.login, prod.email) == (
        str(alice.pk),
        "alice",
        "alice@example.com",
    )


# ---- identity re-asserted on every push; --verify reports edits ------------------------------


def test_remote_identity_edits_are_reported_and_undone_at_the_next_change(cube):
    alice = make_user("alice")
    session = api_login(alice).json()
    link = link_of(alice)
    edit_own_record(session, external_id="someone-else", login="not-alice")
    out = StringIO()
    with pytest.raises(CommandError, match="differ"):
        call_command("connectycube_sync", "--verify", stdout=out)
    report = out.getvalue()
    assert "identity edited on ConnectyCube" in report
    assert "external_id is 'someone-else'" in report and "login is 'not-alice'" in report
    assert "1 with identity fields edited" in report
    # Her stored token has expired meanwhile: the push logs in under the edited login (found by
    # the remote id only we recorded) and puts both fields back.
    CubeSession.objects.filter(user=alice).delete()
    alice.first_name = "Alice"
    alice.save()
    assert sync.push_user(alice.pk) == policy.UPDATED
    remote = cube.store.users[link.cube_id]
    assert (remote.external_id, remote.login) == (link.external_id, "alice")
    assert [u for u in cube.users if not u["external_id"]] == []  # no stray account left
    out = StringIO()
    call_command("connectycube_sync", "--verify", stdout=out)
    assert "0 with drift" in out.getvalue()


def test_a_login_after_a_remote_rename_makes_the_row_owed_so_it_is_restored(cube):
    alice = make_user("alice")
    session = api_login(alice).json()
    edit_own_record(session, login="renamed")
    CubeSession.objects.filter(user=alice).delete()
    assert api_login(alice).json()["user_id"] == session["user_id"]
    link = link_of(alice)
    assert (link.state, link.enqueued_at) == ("pending", None)  # the sweep pushes it
    assert sync.push_user(alice.pk) == policy.UPDATED
    assert cube.store.users[link.cube_id].login == "alice"


# ---- the verifier never answers a pk ---------------------------------------------------------


def test_the_cidp_verifier_answers_only_for_linked_users():
    from django_connectycube.sync import cidp

    user = make_user("unlinked")
    CubeUser.objects.filter(user=user).delete()
    response = Client().get(VERIFY, {"token": cidp.make_login_token(user.pk)})
    assert response.status_code == 422


# ---- a deleted user who had edited her own external id ----------------------------------------


def test_a_user_who_edited_her_external_id_is_still_deleted_remotely(cube):
    # She holds a token and may edit her own record; deleting her locally must still delete her
    # account: the derived password proves the remote user at our id is ours.
    mallory = make_user("mallory")
    session = api_login(mallory).json()
    edit_own_record(session, external_id="not-yours-anymore")
    link_id, cube_id = link_of(mallory).pk, link_of(mallory).cube_id
    mallory.delete()
    assert sync.delete_remote_user(link_id) == policy.DELETED
    assert cube_id not in cube.store.users
    assert CubeUser.objects.get(pk=link_id).state == CubeUser.State.DELETED


def test_a_stranger_at_our_old_id_is_never_deleted(cube):
    # A remote that forgot us gave our user's id to someone else: nothing proves it is ours.
    alice = make_user("alice")
    sync.push_user(alice.pk)
    link = link_of(alice)
    cube.store.delete_user(cube.store.users[link.cube_id])
    stranger = cube.create_user(login="stranger", password="12345678", external_id="theirs")
    CubeUser.objects.filter(pk=link.pk).update(cube_id=stranger["id"])
    alice.delete()
    with pytest.raises(errors.SyncConflict, match="not deleted"):
        sync.delete_remote_user(link.pk)
    assert stranger["id"] in cube.store.users
