"""What adoption accepts as proof that a remote user is the link's, and how an update ends when
the user's login keeps being taken (:mod:`django_connectycube.sync.adoption`)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from django_connectycube.client import ServerError, ValidationError
from django_connectycube.errors import Busy, SyncConflict
from django_connectycube.models import CubeUser, identity
from django_connectycube.sync import adoption, mapping, policy
from django_connectycube.sync import push as sync
from django_connectycube.sync.connection import shared_client

pytestmark = pytest.mark.django_db(transaction=True)
User = get_user_model()


@pytest.fixture
def cube(connectycube_emulator, settings, no_broker, clean_cache):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "RETRIES": 0}
    return connectycube_emulator


@pytest.fixture
def cidp(cube, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "AUTH_MODE": "cidp"}
    return cube


def legacy_link(username: str) -> CubeUser:
    """A link from before minting: its external id is the user's primary key."""
    user = User.objects.create(username=username)
    CubeUser.objects.filter(user=user).update(external_id=str(user.pk))
    return CubeUser.objects.get(user=user)


def test_cidp_mode_adopts_an_unminted_external_id_only_on_password_proof(cidp):
    # Anyone can sign up carrying a guessable pk-form external id: in CIdP mode, too, only the
    # password this site derives proves the account is ours.
    link = legacy_link("veteran")
    before = link.password_version
    planted = shared_client().create_user(
        login="veteran", password="mallory-knows-it", external_id=link.external_id
    )
    with pytest.raises(SyncConflict, match="does not accept the password"):
        adoption.adopt(link, planted, shared_client())
    assert link.password_version == before  # nothing was taken as proven


def test_cidp_mode_adopts_an_unminted_external_id_that_accepts_the_derived_password(cidp):
    link = legacy_link("proven")
    ours = shared_client().create_user(
        login="proven",
        password=mapping.derive_password(link.external_id),
        external_id=link.external_id,
    )
    assert adoption.adopt(link, ours, shared_client()).id == ours.id
    assert link.password_version == mapping.current_password_version()


def test_cidp_mode_adopts_a_minted_external_id_without_a_password(cidp):
    # Nobody can know a minted id before its remote user exists: the id is the proof, and the
    # remote user (made by a CIdP login) has no password of ours to try.
    user = User.objects.create(username="minted")
    link = CubeUser.objects.get(user=user)
    remote = shared_client().create_user(
        login="minted", password="not-derived-1", external_id=link.external_id
    )
    assert adoption.adopt(link, remote, shared_client()).id == remote.id
    assert link.password_version == mapping.current_password_version()


class _TakenEveryTime:
    """A user client whose every update is refused: the login is taken (again and again)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def update_user(self, cube_id: int, fields: dict[str, Any]) -> Any:
        self.sent.append(dict(fields))
        raise ValidationError(
            "login has already been taken", status=422, errors={"login": ["has already been taken"]}
        )


def test_an_update_whose_login_is_taken_twice_is_refused_with_the_servers_error(cube, monkeypatch):
    user = User.objects.create(username="squatted")
    link = CubeUser.objects.get(user=user)
    link.login = "squatted"
    user_client = _TakenEveryTime()
    monkeypatch.setattr(adoption, "call_as_user", lambda link, func, client: func(user_client))
    with pytest.raises(ValidationError, match="already been taken"):
        adoption.update(link, {"login": "squatted", "full_name": "S"}, shared_client())
    # Sent once as asked, once more without the login it was told is taken; then given up.
    assert len(user_client.sent) == 2
    assert link.withheld == {"login": "squatted"}


# ---- what is never adopted -------------------------------------------------------------------


def test_a_remote_user_another_link_holds_is_never_adopted(cube):
    holder = CubeUser.objects.get(user=User.objects.create(username="holder"))
    remote = shared_client().create_user(
        login="holder", password=mapping.derive_password(holder.external_id), external_id="x1"
    )
    CubeUser.objects.filter(pk=holder.pk).update(cube_id=remote.id)
    link = CubeUser.objects.get(user=User.objects.create(username="second"))
    with pytest.raises(SyncConflict, match=str(remote.id)):
        adoption.adopt(link, remote, shared_client())


# ---- a login or e-mail someone else holds ----------------------------------------------------


def test_a_login_held_by_a_stranger_gives_the_user_a_fallback_login(cube, caplog):
    squatter = shared_client().create_user(login="bob", password="s" * 12)
    user = User.objects.create(username="bob", email="bob@example.com")
    assert sync.push_user(user.pk) == policy.CREATED
    link = CubeUser.objects.get(user=user)
    remote = cube.store.users[link.cube_id]
    assert remote.login.startswith("bob-") and remote.email == "bob@example.com"
    assert link.withheld == {"login": "bob"}
    assert (
        f"The login 'bob' of {link.external_id} is held by ConnectyCube user {squatter.id}, "
        "which is not this user's; using a fallback login."
    ) in caplog.messages


def test_an_email_held_by_a_stranger_is_left_off(cube, caplog):
    squatter = shared_client().create_user(
        login="other", password="s" * 12, email="ann@example.com"
    )
    user = User.objects.create(username="ann", email="ann@example.com")
    assert sync.push_user(user.pk) == policy.CREATED
    link = CubeUser.objects.get(user=user)
    remote = cube.store.users[link.cube_id]
    assert (remote.login, remote.email) == ("ann", None)
    assert link.withheld == {"email": "ann@example.com"}
    assert (
        f"The email 'ann@example.com' of {link.external_id} is held by ConnectyCube user "
        f"{squatter.id}, which is not this user's; left off."
    ) in caplog.messages


def test_a_login_held_by_a_link_whose_delete_is_owed_makes_the_push_wait(cube):
    leaving = User.objects.create(username="carol")
    sync.push_user(leaving.pk)
    old = CubeUser.objects.get(user=leaving)
    leaving.delete()  # its remote delete is owed, not run (no broker)
    newcomer = User.objects.create(username="carol")
    with pytest.raises(Busy, match=f"still held on ConnectyCube by {old.external_id}, whose"):
        sync.push_user(newcomer.pk)


def test_an_adopted_user_whose_fields_differ_is_updated_to_the_users_own(cube):
    user = User.objects.create(username="dana", first_name="Dana")
    link = CubeUser.objects.get(user=user)
    made = shared_client().create_user(
        login="dana",
        password=mapping.derive_password(link.external_id),
        external_id=link.external_id,
        full_name="Stale Name",
    )
    assert sync.push_user(user.pk) == policy.ADOPTED
    link.refresh_from_db()
    assert (link.cube_id, link.login) == (made.id, "dana")
    assert cube.store.users[made.id].full_name != "Stale Name"


def test_a_fallback_login_for_no_wanted_login_still_reads_as_a_user():
    assert identity.fallback_login("").startswith("user-")


def test_a_value_no_longer_withheld_does_not_stop_the_others_being_withheld():
    fields = {"login": "new", "email": "e@example.com"}
    withheld = {"login": "old", "email": "e@example.com"}
    sent, still = identity.sent_fields(fields, withheld, "old-1a2b3c4d")
    assert sent == {"login": "new"}
    assert still == {"email": "e@example.com"}


def test_a_password_that_logs_in_to_another_user_proves_nothing(cube, monkeypatch):
    # The derived password opened a session, but for someone else (the login moved meanwhile):
    # no proof that the user found by external id is ours.
    link = legacy_link("moved")
    found = shared_client().create_user(
        login="moved",
        password=mapping.derive_password(link.external_id),
        external_id=link.external_id,
    )
    client = shared_client()
    real = client.create_user_session

    def someone_elses_session(**credentials):
        return dataclasses.replace(real(**credentials), user_id=found.id + 1000)

    monkeypatch.setattr(client, "create_user_session", someone_elses_session)
    with pytest.raises(SyncConflict, match="does not accept the password"):
        adoption.adopt(link, found, client)


def test_the_proof_does_not_fail_when_its_session_cannot_be_ended(cube, monkeypatch):
    link = legacy_link("proof")
    found = shared_client().create_user(
        login="proof",
        password=mapping.derive_password(link.external_id),
        external_id=link.external_id,
    )
    client = shared_client()

    def unavailable(token):
        raise ServerError("down", status=503)

    monkeypatch.setattr(client, "destroy_session", unavailable)
    assert adoption.adopt(link, found, client).id == found.id


def test_a_create_refused_because_a_concurrent_push_made_the_user_adopts_it(cube):
    # The bulk look-up said "absent"; by the time of the create, another push had made the user.
    user = User.objects.create(username="erin")
    link = CubeUser.objects.get(user=user)
    made = shared_client().create_user(
        login="erin",
        password=mapping.derive_password(link.external_id),
        external_id=link.external_id,
    )
    fields = mapping.get_user_fields(user, link.external_id)
    remote, outcome = adoption.establish(link, fields, shared_client(), absent={link.external_id})
    assert (remote.id, outcome, link.cube_id) == (made.id, adoption.ADOPTED, made.id)
    assert len(cube.store.users) == 1  # no second user
