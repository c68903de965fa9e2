"""Minted external ids, fallback logins, the data migration, and what adoption accepts as proof."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client, override_settings

from django_connectycube import errors
from django_connectycube.conf import ConfigurationError
from django_connectycube.models import CubeSession, CubeUser, identity
from django_connectycube.sessions import login as sessions
from django_connectycube.sync import mapping, policy
from django_connectycube.sync import push as sync
from django_connectycube.sync.connection import shared_client

User = get_user_model()
CREDS = {"APPLICATION_ID": 7, "AUTH_KEY": "k", "AUTH_SECRET": "s"}
VERIFY = "/api/connectycube/cidp/verify/"
LOGIN = "/api/connectycube/login/"


# ---- minting ---------------------------------------------------------------------------------


def test_minted_ids_are_prefixed_random_and_recognisable():
    with override_settings(CONNECTYCUBE={**CREDS, "EXTERNAL_ID_PREFIX": "prod"}):
        ids = {identity.mint_external_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(i.startswith("prod-") and len(i) == len("prod-") + 26 for i in ids)
    assert all(identity.is_minted(i) for i in ids)
    for legacy in ("42", "0", "9f1c2d3e-aaaa-4bbb-8ccc-123456789abc", "", "dj-short"):
        assert not identity.is_minted(legacy)


def test_a_bad_prefix_names_the_setting():
    with override_settings(CONNECTYCUBE={**CREDS, "EXTERNAL_ID_PREFIX": "has-dash"}):
        with pytest.raises(ConfigurationError, match=r'CONNECTYCUBE\["EXTERNAL_ID_PREFIX"\]'):
            identity.mint_external_id()


def test_fallback_logins_are_valid_unpredictable_and_keep_the_wanted_one_readable():
    logins = {identity.fallback_login("bob") for _ in range(50)}
    assert len(logins) == 50
    assert all(login.startswith("bob-") and len(login) == 12 for login in logins)
    long = identity.fallback_login("x" * 70)
    assert len(long) == mapping.LOGIN_MAX and long.startswith("x" * 61 + "-")


def test_sent_fields_keep_withholding_only_what_the_mapping_still_wants():
    fields = {"login": "bob", "email": "b@x.org", "full_name": "Bob"}
    withheld = {"login": "bob", "email": "b@x.org"}
    sent, still = identity.sent_fields(fields, withheld, "bob-1a2b3c4d")
    assert sent == {"login": "bob-1a2b3c4d", "full_name": "Bob"}
    assert still == withheld
    changed = {**fields, "email": "new@x.org"}
    sent, still = identity.sent_fields(changed, withheld, "bob-1a2b3c4d")
    assert sent["email"] == "new@x.org" and still == {"login": "bob"}


# ---- the data migration ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_existing_external_ids_and_new_links_are_minted():
    executor = MigrationExecutor(connection)
    before = [("django_connectycube", "0001_initial")]
    after = [("django_connectycube", "0002_minted_external_ids")]
    user = User.objects.create(username="legacy")
    blank = User.objects.create(username="blank")
    try:
        executor.migrate(before)
        old_apps = executor.loader.project_state(before).apps
        OldCubeUser = old_apps.get_model("django_connectycube", "CubeUser")
        OldCubeUser.objects.all().delete()
        OldCubeUser.objects.create(user_id=user.pk, external_id=str(user.pk), cube_id=77)
        OldCubeUser.objects.create(user_id=blank.pk, external_id="")
        executor.loader.build_graph()
        executor.migrate(after)
    finally:
        MigrationExecutor(connection).migrate(
            MigrationExecutor(connection).loader.graph.leaf_nodes()
        )
    kept = CubeUser.objects.get(user=user)
    assert (kept.external_id, kept.cube_id, kept.withheld) == (str(user.pk), 77, {})
    assert identity.is_minted(CubeUser.objects.get(user=blank).external_id)
    newcomer = User.objects.create(username="newcomer")
    assert identity.is_minted(CubeUser.objects.get(user=newcomer).external_id)


# ---- adoption --------------------------------------------------------------------------------

pytestmark_db = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cube(connectycube_emulator, settings, no_broker, clean_cache):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "RETRIES": 0}
    return connectycube_emulator


@pytestmark_db
def test_a_pre_minting_link_keeps_its_password_and_is_adopted_on_proof(cube):
    user = User.objects.create(username="veteran")
    # A link from before minting: external id = pk, remote user made with that password.
    CubeUser.objects.filter(user=user).update(external_id=str(user.pk))
    cube.create_user(
        login="veteran", password=mapping.derive_password(str(user.pk)), external_id=str(user.pk)
    )
    assert sync.push_user(user.pk) == policy.ADOPTED
    link = CubeUser.objects.get(user=user)
    assert link.external_id == str(user.pk)  # kept: its remote user carries it
    row = sessions.get_session_for_user(user)  # and the derived password still logs in
    assert row.cube_user_id == link.cube_id


@pytestmark_db
def test_adoption_accepts_a_rotated_out_password_version(cube, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "PASSWORD_SECRETS": {1: "old", 2: "new"}}
    user = User.objects.create(username="rotated")
    external_id = CubeUser.objects.get(user=user).external_id
    cube.create_user(
        login="rotated", password=mapping.derive_password(external_id, 1), external_id=external_id
    )
    assert sync.push_user(user.pk) == policy.ADOPTED
    assert CubeUser.objects.get(user=user).password_version == 1


@pytestmark_db
def test_several_remote_users_with_one_external_id_adopt_none(cube):
    user = User.objects.create(username="twice")
    external_id = CubeUser.objects.get(user=user).external_id
    password = mapping.derive_password(external_id)
    first = cube.create_user(login="twice", password=password, external_id=external_id)
    second = cube.create_user(login="twice2", password=password)
    with cube.store.lock:  # a service that does not keep external ids unique
        cube.store._unindex(cube.store.users[second["id"]])
        cube.store.users[second["id"]].external_id = external_id
        cube.store._index(cube.store.users[second["id"]])
    with pytest.raises(errors.SyncConflict, match=f"Several ConnectyCube users .*{first['id']}"):
        sync.push_user(user.pk)


@pytestmark_db
def test_a_taken_external_id_on_update_is_a_conflict_naming_its_holder(cube):
    user = User.objects.create(username="edited")
    sync.push_user(user.pk)
    link = CubeUser.objects.get(user=user)
    with cube.store.lock:  # the user moved her external id away; someone else took it
        cube.store._unindex(cube.store.users[link.cube_id])
        cube.store.users[link.cube_id].external_id = "elsewhere"
        cube.store._index(cube.store.users[link.cube_id])
    other = cube.create_user(login="grabber", password="x" * 12, external_id=link.external_id)
    user.first_name = "Changed"
    user.save()
    with pytest.raises(errors.SyncConflict, match=f"ConnectyCube user {other['id']} carries"):
        sync.push_user(user.pk)


# ---- CIdP ------------------------------------------------------------------------------------


@pytest.fixture
def cidp_cube(cube, live_server, settings):
    settings.CONNECTYCUBE = {**settings.CONNECTYCUBE, "AUTH_MODE": "cidp"}
    cube.configure(cidp_url=live_server.url + VERIFY)
    return cube


def cidp_login(user):
    client = Client()
    client.force_login(user)
    return client.post(LOGIN)


@pytestmark_db
def test_cidp_never_trusts_a_pk_form_id_without_a_remote_user(cidp_cube):
    user = User.objects.create(username="old")
    CubeUser.objects.filter(user=user).update(external_id=str(user.pk))
    planted = shared_client().create_user(
        login="planted", password="p" * 12, external_id=str(user.pk)
    )
    response = cidp_login(user)
    assert response.status_code == 200, response.content
    link = CubeUser.objects.get(user=user)
    assert response.json()["user_id"] == link.cube_id != planted.id
    assert identity.is_minted(link.external_id)


@pytestmark_db
def test_cidp_user_whose_id_now_answers_with_someone_else_is_a_409(cidp_cube):
    victim, mallory = User.objects.create(username="victim"), User.objects.create(username="mal")
    assert cidp_login(victim).status_code == cidp_login(mallory).status_code == 200
    link, hers = CubeUser.objects.get(user=victim), CubeUser.objects.get(user=mallory)
    own_cube_id = link.cube_id
    with cidp_cube.store.lock:  # a service that does not keep external ids unique
        cidp_cube.store._by_external_id[link.external_id] = {hers.cube_id}
    CubeSession.objects.filter(user=victim).delete()
    response = cidp_login(victim)
    assert response.status_code == 409, response.content
    link.refresh_from_db()
    assert (link.state, link.cube_id) == ("failed", own_cube_id)
    assert str(hers.cube_id) in link.last_error


@pytestmark_db
def test_cidp_user_whose_account_vanished_gets_a_new_id_not_the_claimants(cidp_cube):
    victim, mallory = User.objects.create(username="victim"), User.objects.create(username="mal")
    assert cidp_login(victim).status_code == 200
    session = cidp_login(mallory).json()
    link = CubeUser.objects.get(user=victim)
    old_id, old_cube_id = link.external_id, link.cube_id
    cidp_cube.store.delete_user(cidp_cube.store.users[old_cube_id])  # deleted on ConnectyCube
    claimant = shared_client().as_user(session["token"], user_id=session["user_id"])
    claimant.update_user(session["user_id"], {"external_id": old_id})  # she read it earlier
    CubeSession.objects.filter(user=victim).delete()
    response = cidp_login(victim)
    assert response.status_code == 200, response.content
    link.refresh_from_db()
    assert response.json()["user_id"] == link.cube_id not in (old_cube_id, session["user_id"])
    assert link.external_id != old_id and identity.is_minted(link.external_id)
