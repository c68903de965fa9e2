"""The sync engine: push one user's latest state, its avatar, or its deletion to ConnectyCube.

Every operation here is safe to run twice, concurrently, or after a crash half-way through:

* a worker first takes a lease on the user's :class:`~.models.CubeUser` row, renewed before each
  HTTP attempt, so one user is pushed by one worker at a time (``Busy`` otherwise; the task
  retries shortly) however slow ConnectyCube is (:mod:`.lease`);
* a create is preceded by a look-up by the link's minted ``external_id``, so a retried or
  redelivered task adopts the user an earlier attempt created instead of creating a second one,
  and adopts nothing it cannot prove this site made (:mod:`.adoption`);
* every update re-sends the ``external_id`` and login the link owns, so a remote edit of them is
  undone at the next change;
* the version read before the push is the one recorded as synced, so a save that lands during
  the push keeps the row owed.

The functions take an optional client and raise the client's typed errors; what a failure means
and when it is tried again is the failure policy's business (:mod:`.policy`), and every change
of a row's state is a transition of :mod:`.state`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Container, Iterator
from contextlib import contextmanager
from typing import IO, Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string

from django_connectycube.client import (
    AuthenticationError,
    ConnectyCubeClient,
    NotFound,
    PermissionDenied,
    User,
    UserClient,
)
from django_connectycube.conf import app_settings
from django_connectycube.errors import Busy, SyncConflict
from django_connectycube.models import CubeSession, CubeUser
from django_connectycube.signals import user_deleted_remote, user_synced
from django_connectycube.sync import adoption, breaker, lease, mapping, remote_ids
from django_connectycube.sync.adoption import establish
from django_connectycube.sync.adoption import update as _update
from django_connectycube.sync.avatar import avatar_differs, delete_replaced_avatar, restore_avatar
from django_connectycube.sync.connection import shared_client
from django_connectycube.sync.images import content_type_of
from django_connectycube.sync.logins import AUTH_MODE_PASSWORD, auth_mode
from django_connectycube.sync.owed import mark_dirty
from django_connectycube.sync.policy import CREATED, DELETED, GONE, SKIPPED, UNCHANGED, UPDATED
from django_connectycube.sync.remote_ids import forget_remote_user
from django_connectycube.sync.user_sessions import call_as_user

logger = logging.getLogger("django_connectycube")

__all__ = ["avatar_source", "delete_remote_user", "leased", "push_user"]


@contextmanager
def leased(link_id: int, client: ConnectyCubeClient | None = None) -> Iterator[CubeUser]:
    """Own a link for the length of one push (expires by itself if the worker dies; renewed
    before every HTTP attempt of ``client`` while it lasts)."""
    taken = lease.take(Q(pk=link_id))
    if taken is None:
        raise _busy(link_id)
    with _holding(taken, client) as link:
        if link is None:  # removed between the two statements (the admin's delete)
            raise CubeUser.DoesNotExist(f"ConnectyCube user link {link_id} is gone.")
        yield link


@contextmanager
def _holding(taken: lease.Lease, client: ConnectyCubeClient | None) -> Iterator[CubeUser | None]:
    """The link under ``taken``, read once; the lease ends with the push's record, or here."""
    if client is not None:
        breaker.watch(lease.watch(client))
    try:
        with lease.held(taken):
            link = CubeUser.objects.filter(taken.rows).first()
            # Known by its pk from now on: its user may be deleted meanwhile (user_id emptied).
            taken.rows = Q(pk=link.pk) if link is not None else Q(lease_until=taken.token)
            yield link
    finally:
        taken.release()


def _busy(link: Any) -> Busy:
    return Busy(f"ConnectyCube user link {link} is being pushed by another worker.")


def _take_for_user(user_pk: Any) -> lease.Lease | None:
    """The lease on the user's link, in the statement that finds it; a user without a link is
    linked first. ``None`` when the user is gone (its delete has its own task)."""
    mine = Q(user_id=user_pk)
    taken = lease.take(mine)
    if taken is not None:
        return taken
    if not CubeUser.objects.filter(mine).exists():
        user = get_user_model()._default_manager.filter(pk=user_pk).first()
        if user is None:
            return None
        mark_dirty(user)
        taken = lease.take(mine)
        if taken is not None:
            return taken
    raise _busy(f"of user {user_pk}")


def push_user(
    user_pk: Any,
    *,
    client: ConnectyCubeClient | None = None,
    absent: Container[str] = (),
) -> str:
    """Bring ConnectyCube up to the user's current local state; returns what was done.

    ``absent``: external ids a caller just found missing on ConnectyCube in one bulk query (the
    sync command, per chunk), so their create skips its own look-up. Still no duplicates: a
    remote user made since then carries our login and external id, so the create is refused as
    taken and that user is adopted below.
    """
    taken = _take_for_user(user_pk)
    if taken is None:
        return SKIPPED
    client = client or shared_client()
    with _holding(taken, client) as link:
        if link is None or link.state != CubeUser.State.PENDING:
            return SKIPPED
        user = get_user_model()._default_manager.filter(pk=user_pk).first()
        if user is None:
            return SKIPPED
        version = link.dirty_version
        fields = mapping.get_user_fields(user, link.external_id)
        digest = mapping.fields_digest(fields)
        outcome = UNCHANGED
        remote: User | None = None

        if link.cube_id is None:
            remote, outcome = establish(link, fields, client, absent)
        elif digest != link.pushed_digest:
            try:
                remote = _update(link, fields, client)
                outcome = UPDATED
            except GONE_ERRORS:
                if remote_ids.still_ours(link, client):
                    raise
                remote, outcome, digest = _recreate(link, fields, client)
        if remote is not None:
            remote_ids.learn(link, remote.id, remote.login)

        try:
            avatar_changed = _push_avatar_locked(link, user, client)
        except GONE_ERRORS:
            if outcome == CREATED or remote_ids.still_ours(link, client):
                raise
            remote, outcome, digest = _recreate(link, fields, client)
            avatar_changed = _push_avatar_locked(link, user, client)
        if remote is not None and not avatar_changed:
            _restore_avatar_locked(link, remote, client)

        _record_success(link, version, digest, created=outcome == CREATED, taken=taken)
        if outcome != UNCHANGED or avatar_changed:
            user_synced.send(CubeUser, link=link, created=outcome == CREATED)
        return outcome if outcome != UNCHANGED or not avatar_changed else UPDATED


#: What a call naming the user answers when that user is gone (or its id is someone else's).
GONE_ERRORS = (NotFound, PermissionDenied, AuthenticationError)


def _recreate(
    link: CubeUser, fields: dict[str, Any], client: ConnectyCubeClient
) -> tuple[User, str, str]:
    """The remote user was deleted on ConnectyCube behind our back, or forgotten by a remote
    that was reset (its id may even be someone else's now): a new account, under a new
    external id (the old one is readable by anyone and may be claimed by now)."""
    CubeSession.objects.filter(user_id=link.user_id).delete()
    fields = forget_remote_user(link, fields)
    remote, outcome = establish(link, fields, client)
    return remote, outcome, mapping.fields_digest(fields)


def _record_success(
    link: CubeUser, version: int, digest: str, *, created: bool, taken: lease.Lease
) -> None:
    """Record the pushed version, ending the lease in the same statement; a remote id another
    link holds (unique ``cube_id``) is either released from that link (ConnectyCube just
    ``created`` it for this one) or a conflict."""
    now = timezone.now()
    try:
        with remote_ids.claim_guard():
            _write_success(link, version, digest, now, taken)
        return
    except IntegrityError as exc:
        cube_id = link.cube_id or 0
        holder = remote_ids.other_holder(link, cube_id)
        if not created or holder is None:
            raise SyncConflict(remote_ids.conflict_message(link, cube_id, holder)) from exc
        remote_ids.release_stale_claim(holder, cube_id)
    _write_success(link, version, digest, now, taken)


def _write_success(link: CubeUser, version: int, digest: str, now: Any, taken: lease.Lease) -> None:
    CubeUser.objects.filter(pk=link.pk).record_pushed(
        version,
        now,
        lease=taken.token,
        cube_id=link.cube_id,
        external_id=link.external_id,
        login=link.login,
        withheld=link.withheld,
        password_version=link.password_version,
        avatar_uid=link.avatar_uid,
        avatar_digest=link.avatar_digest,
        pushed_digest=digest,
    )
    taken.ended = True


# ---- avatars ---------------------------------------------------------------------------------


def avatar_source(user: Any) -> tuple[IO[bytes], str, str] | None:
    """The user's avatar as ``(file, name, content type)``, or ``None`` when there is none.

    ``CONNECTYCUBE["AVATAR_FIELD"]`` names a file/image field of the user model, or is a callable
    (or dotted path to one) taking the user and returning a Django ``File``, a
    ``(file, name, content_type)`` tuple, or ``None``.
    """
    source = app_settings.AVATAR_FIELD
    if not source:
        return None
    if isinstance(source, str) and "." in source:
        source = import_string(source)
    value = source(user) if callable(source) else getattr(user, source, None)
    if not value:
        return None
    if isinstance(value, tuple):
        return value
    name = os.path.basename(getattr(value, "name", "") or "avatar")
    value.open("rb")
    return value, name, content_type_of(value)  # the content's type; the name may lie


def _digest_file(fileobj: IO[bytes]) -> tuple[bytes, str]:
    content = fileobj.read()
    if hasattr(fileobj, "close"):
        fileobj.close()
    return content, hashlib.sha256(content).hexdigest()


def _push_avatar_locked(link: CubeUser, user: Any, client: ConnectyCubeClient) -> bool:
    source = avatar_source(user)
    if source is None:
        if not link.avatar_uid:
            return False
        previous = link.avatar_uid

        def unlink(uc: UserClient) -> None:
            uc.update_user(link.cube_id, avatar="", custom_data={})
            delete_replaced_avatar(uc, previous)

        call_as_user(link, unlink, client=client)
        link.avatar_uid = link.avatar_digest = ""
        return True
    fileobj, name, content_type = source
    content, digest = _digest_file(fileobj)
    if digest == link.avatar_digest:
        return False
    previous = link.avatar_uid

    def upload(uc: UserClient) -> str:
        current = uc.get_user(link.cube_id).custom_data_json
        updated = uc.set_avatar(
            content, name, content_type, user_id=link.cube_id, custom_data=current
        )
        delete_replaced_avatar(uc, previous, updated.avatar_uid or "")
        return updated.avatar_uid or ""

    link.avatar_uid = call_as_user(link, upload, client=client)
    link.avatar_digest = digest
    return True


def _restore_avatar_locked(link: CubeUser, remote: User, client: ConnectyCubeClient) -> None:
    """Put back the avatar the link recorded when the user pointed theirs elsewhere (only when
    the site manages avatars: ``AVATAR_FIELD``)."""
    if app_settings.AVATAR_FIELD and avatar_differs(remote, link.avatar_uid):
        call_as_user(link, lambda uc: restore_avatar(uc, remote, link.avatar_uid), client=client)


# ---- deletes ---------------------------------------------------------------------------------


def delete_remote_user(link_id: int, *, client: ConnectyCubeClient | None = None) -> str:
    """Delete the remote user of a tombstone; a user already gone counts as done."""
    client = client or shared_client()
    with leased(link_id, client) as link:
        if link.state != CubeUser.State.DELETING:
            return SKIPPED
        remote: User | None
        if link.cube_id is not None:
            try:
                remote = client.get_user(link.cube_id)
            except NotFound:
                remote = None
        else:
            remote = client.find_user_by_external_id(link.external_id)
        outcome = GONE
        if remote is not None:
            if remote.external_id not in (None, "", link.external_id):
                _prove_ours_despite_edit(link, remote, client)
            remote_ids.learn(link, remote.id, remote.login)
            try:
                _delete(link, remote, client)
                outcome = DELETED
            except NotFound:
                outcome = GONE
        CubeUser.objects.filter(pk=link.pk).record_deleted(timezone.now())
        link.refresh_from_db()
        user_deleted_remote.send(CubeUser, link=link)
        return outcome


def _prove_ours_despite_edit(link: CubeUser, remote: User, client: ConnectyCubeClient) -> None:
    """The user at our remote id carries another external id: its owner edited it (they hold a
    token), or a remote that forgot us gave the id to someone else. Only a login with the
    password this site derives proves the first; anything else is a conflict, never a delete."""
    unproven = SyncConflict(
        f"ConnectyCube user {remote.id} carries external id {remote.external_id!r}, not "
        f"{link.external_id!r}, and nothing proves it is this site's; it was not deleted. If it "
        "is the deleted user's account, delete it on ConnectyCube; then re-sync the row."
    )
    if auth_mode() != AUTH_MODE_PASSWORD:
        raise unproven
    try:
        adoption.prove_password(link, remote, client)
    except SyncConflict as exc:
        raise unproven from exc


def _delete(link: CubeUser, remote: User, client: ConnectyCubeClient) -> None:
    """With the Administration API key, delete without the user's session (works for CIdP users
    and users whose derived password no longer works); without it, as the user."""
    if client.has_admin_api_key:
        client.admin_delete_user(remote.id)
    else:
        call_as_user(link, lambda uc: uc.delete_self(), client=client)
