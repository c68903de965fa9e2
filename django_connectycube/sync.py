"""The sync engine: push one user's latest state, its avatar, or its deletion to ConnectyCube.

Every operation here is safe to run twice, concurrently, or after a crash half-way through:

* a worker first takes a short lease on the user's :class:`~.models.CubeUser` row, so one user is
  pushed by one worker at a time (``Busy`` otherwise; the task retries shortly);
* a create is preceded by a look-up by ``external_id`` (the local pk), so a retried or redelivered
  task adopts the user an earlier attempt created instead of creating a second one;
* the version read before the push is the one recorded as synced, so a save that lands during
  the push keeps the row owed.

The functions take an optional client and raise the client's typed errors; the retry policy lives
in :mod:`.tasks`.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import os
from collections.abc import Container, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import IO, Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone
from django.utils.module_loading import import_string

from . import mapping, remote_ids
from .client import (
    AuthenticationError,
    ConnectyCubeClient,
    NotFound,
    PermissionDenied,
    User,
    UserClient,
    ValidationError,
)
from .conf import app_settings
from .models import CubeSession, CubeUser
from .remote import get_client
from .sessions import call_as_user
from .signals import user_deleted_remote, user_sync_failed, user_synced

logger = logging.getLogger("django_connectycube")

__all__ = [
    "Busy",
    "SyncConflict",
    "delete_remote_user",
    "push_avatar",
    "push_user",
    "record_failure",
]

#: What a push did, as returned by :func:`push_user` and the tasks.
CREATED, ADOPTED, UPDATED, UNCHANGED, SKIPPED, DELETED, GONE = (
    "created",
    "adopted",
    "updated",
    "unchanged",
    "skipped",
    "deleted",
    "already-gone",
)


class Busy(Exception):
    """Owed work elsewhere blocks this push (another worker holds the user's lease, or a pending
    delete/rename of another local user still holds its login); try again in a moment."""


class SyncConflict(Exception):
    """ConnectyCube holds data that belongs to someone else; an operator has to decide."""


@contextmanager
def leased(link_id: int) -> Iterator[CubeUser]:
    """Own a link for the length of one push (expires by itself if the worker dies)."""
    now = timezone.now()
    until = now + timedelta(seconds=app_settings.LEASE_SECONDS)
    claimed = (
        CubeUser.objects.filter(pk=link_id)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=until)
    )
    if not claimed:
        raise Busy(f"ConnectyCube user link {link_id} is being pushed by another worker.")
    try:
        yield CubeUser.objects.get(pk=link_id)
    finally:
        CubeUser.objects.filter(pk=link_id, lease_until=until).update(lease_until=None)


def _link_for_user(user_pk: Any) -> CubeUser | None:
    link = CubeUser.objects.filter(user_id=user_pk).only("pk").first()
    if link is not None:
        return link
    user = get_user_model()._default_manager.filter(pk=user_pk).first()
    if user is None:
        return None
    from .outbox import mark_dirty

    mark_dirty(user)
    return CubeUser.objects.filter(user_id=user_pk).only("pk").first()


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
    link_ref = _link_for_user(user_pk)
    if link_ref is None:
        return SKIPPED  # the user is gone; its delete has its own task
    client = client or get_client()
    with leased(link_ref.pk) as link:
        if link.state != CubeUser.State.PENDING:
            return SKIPPED
        user = get_user_model()._default_manager.filter(pk=user_pk).first()
        if user is None:
            return SKIPPED
        version = link.dirty_version
        fields = mapping.get_user_fields(user)
        digest = mapping.fields_digest(fields)
        outcome = UNCHANGED
        remote: User | None = None

        if link.cube_id is None:
            remote, outcome = establish(link, fields, client, absent)
        elif digest != link.pushed_digest:
            try:
                remote = _update(link, fields, client)
                outcome = UPDATED
            except (NotFound, PermissionDenied, AuthenticationError):
                if _remote_is_ours(client, link):
                    raise
                # Deleted on ConnectyCube behind our back, or forgotten by a remote that was
                # reset (its id may even be someone else's now): create it again.
                CubeSession.objects.filter(user_id=link.user_id).delete()
                link.cube_id = None
                remote, outcome = establish(link, fields, client)
        if remote is not None:
            link.login = remote.login or fields.get("login", link.login)

        avatar_changed = _push_avatar_locked(link, user, client)

        _record_success(link, version, digest, created=outcome == CREATED)
        if outcome != UNCHANGED or avatar_changed:
            user_synced.send(CubeUser, link=link, created=outcome == CREATED)
        return outcome if outcome != UNCHANGED or not avatar_changed else UPDATED


def establish(
    link: CubeUser, fields: dict[str, Any], client: ConnectyCubeClient, absent: Container[str] = ()
) -> tuple[User, str]:
    """Give a leased link its remote user: create it, or adopt (and update) the one that an
    earlier attempt created. Sets ``cube_id``, ``login`` and ``password_version`` on ``link``."""
    remote, outcome = _create_or_adopt(link, fields, client, absent)
    if outcome != CREATED:
        # Found, not made: another link's claim to this id may be the right one.
        holder = remote_ids.other_holder(link, remote.id)
        if holder is not None:
            raise SyncConflict(remote_ids.conflict_message(link, remote.id, holder))
    link.cube_id = remote.id
    link.login = remote.login or fields.get("login", "")
    if outcome == ADOPTED and _differs(remote, fields):
        remote = _update(link, fields, client)
        link.login = remote.login or link.login
    return remote, outcome


def _remote_is_ours(client: ConnectyCubeClient, link: CubeUser) -> bool:
    try:
        remote_ids.remote_user_of(link, client)
    except NotFound:
        return False
    return True


def _differs(remote: User, fields: dict[str, Any]) -> bool:
    for key, value in fields.items():
        remote_key = "user_tags" if key == "tag_list" else key
        if (getattr(remote, remote_key, None) or "") != (value or ""):
            return True
    return False


def _create_or_adopt(
    link: CubeUser, fields: dict[str, Any], client: ConnectyCubeClient, absent: Container[str] = ()
) -> tuple[User, str]:
    existing = (
        None if link.external_id in absent else client.find_user_by_external_id(link.external_id)
    )
    if existing is not None:
        link.password_version = link.password_version or mapping.current_password_version()
        return existing, ADOPTED
    version = mapping.current_password_version()
    password = mapping.derive_password(link.external_id, version)
    try:
        created = client.create_user(**fields, password=password)
    except ValidationError as exc:
        if link.external_id in absent:
            # The bulk look-up is stale: someone created this user since. Adopt it as usual.
            return _create_or_adopt(link, fields, client)
        taken = _taken_fields(exc)
        if not taken:
            raise
        # Lost a race with another create of this same user, or the login/email is someone
        # else's: only adopt when the remote user carries our external id.
        holders: set[str] = set()
        for key in taken:
            other = _find_by(client, key, fields.get(key))
            if other is not None and other.external_id == link.external_id:
                link.password_version = version
                return other, ADOPTED
            if other is not None and other.external_id:
                holders.add(other.external_id)
        if CubeUser.objects.owed().filter(external_id__in=holders).exclude(pk=link.pk).exists():
            # The holder is one of ours with work still owed (a deleted user whose remote delete
            # has not run yet, or a rename not yet pushed): that work frees the login/email.
            raise Busy(
                f"The login/email of local user {link.external_id} is still held on ConnectyCube "
                f"by local user(s) {', '.join(sorted(holders))}, whose pending change frees it."
            ) from exc
        owner = ", ".join(f"{k} {fields.get(k)!r}" for k in taken)
        raise SyncConflict(
            f"ConnectyCube already has a user with {owner} that is not local user "
            f"{link.external_id}. Change it locally (or delete that ConnectyCube user), then "
            "re-sync this user from the admin."
        ) from exc
    link.password_version = version
    return created, CREATED


def _taken_fields(exc: ValidationError) -> list[str]:
    return [
        key
        for key, messages in exc.field_errors.items()
        if key in ("login", "email") and any("taken" in m for m in messages)
    ]


def _find_by(client: ConnectyCubeClient, key: str, value: Any) -> User | None:
    if not value:
        return None
    try:
        return (
            client.get_user_by_login(value) if key == "login" else client.get_user_by_email(value)
        )
    except NotFound:
        return None


def _update(link: CubeUser, fields: dict[str, Any], client: ConnectyCubeClient) -> User:
    cube_id = link.cube_id
    return call_as_user(link, lambda uc: uc.update_user(cube_id, fields), client=client)


def _record_success(link: CubeUser, version: int, digest: str, *, created: bool) -> None:
    """Record the pushed version; a remote id another link holds (unique ``cube_id``) is either
    released from that link (ConnectyCube just ``created`` it for this one) or a conflict."""
    now = timezone.now()
    try:
        with remote_ids.claim_guard():
            _write_success(link, version, digest, now)
        return
    except IntegrityError as exc:
        cube_id = link.cube_id or 0
        holder = remote_ids.other_holder(link, cube_id)
        if not created or holder is None:
            raise SyncConflict(remote_ids.conflict_message(link, cube_id, holder)) from exc
        remote_ids.release_stale_claim(holder, cube_id)
    _write_success(link, version, digest, now)


def _write_success(link: CubeUser, version: int, digest: str, now: Any) -> None:
    CubeUser.objects.filter(pk=link.pk).update(
        cube_id=link.cube_id,
        login=link.login,
        password_version=link.password_version,
        avatar_uid=link.avatar_uid,
        avatar_digest=link.avatar_digest,
        pushed_digest=digest,
        synced_version=version,
        state=state_after_push(version),
        attempts=0,
        last_error="",
        last_synced_at=now,
        updated_at=now,
    )


def state_after_push(version: int) -> Case:
    """The state a row gets once ``version`` is on ConnectyCube, decided inside the ``UPDATE``:
    a delete that arrived meanwhile wins; a save that arrived meanwhile keeps the row owed."""
    return Case(
        When(state=CubeUser.State.DELETING, then=Value(CubeUser.State.DELETING)),
        When(dirty_version=version, then=Value(CubeUser.State.SYNCED)),
        default=Value(CubeUser.State.PENDING),
    )


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
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    value.open("rb")
    return value, name, content_type


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
        call_as_user(
            link, lambda uc: uc.update_user(link.cube_id, avatar="", custom_data={}), client=client
        )
        link.avatar_uid = link.avatar_digest = ""
        return True
    fileobj, name, content_type = source
    content, digest = _digest_file(fileobj)
    if digest == link.avatar_digest:
        return False

    def upload(uc: UserClient) -> str:
        current = uc.get_user(link.cube_id).custom_data_json
        updated = uc.set_avatar(
            content, name, content_type, user_id=link.cube_id, custom_data=current
        )
        return updated.avatar_uid or ""

    link.avatar_uid = call_as_user(link, upload, client=client)
    link.avatar_digest = digest
    return True


def push_avatar(user_pk: Any, *, client: ConnectyCubeClient | None = None) -> str:
    """Upload the user's avatar if its content changed since the last upload, and link it."""
    link_ref = CubeUser.objects.filter(user_id=user_pk).only("pk").first()
    if link_ref is None:
        return SKIPPED
    client = client or get_client()
    with leased(link_ref.pk) as link:
        user = get_user_model()._default_manager.filter(pk=user_pk).first()
        if user is None or link.cube_id is None:
            return SKIPPED  # push_user creates the user first and uploads the avatar itself
        if not _push_avatar_locked(link, user, client):
            return UNCHANGED
        CubeUser.objects.filter(pk=link.pk).update(
            avatar_uid=link.avatar_uid, avatar_digest=link.avatar_digest, updated_at=timezone.now()
        )
        return UPDATED


# ---- deletes ---------------------------------------------------------------------------------


def delete_remote_user(link_id: int, *, client: ConnectyCubeClient | None = None) -> str:
    """Delete the remote user of a tombstone; a user already gone counts as done."""
    client = client or get_client()
    with leased(link_id) as link:
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
                raise SyncConflict(
                    f"ConnectyCube user {remote.id} belongs to external id {remote.external_id}, "
                    f"not {link.external_id}; it was not deleted."
                )
            link.login = remote.login or link.login
            link.cube_id = remote.id
            try:
                _delete(link, remote, client)
                outcome = DELETED
            except NotFound:
                outcome = GONE
        now = timezone.now()
        CubeUser.objects.filter(pk=link.pk, state=CubeUser.State.DELETING).update(
            state=CubeUser.State.DELETED,
            synced_version=F("dirty_version"),
            attempts=0,
            last_error="",
            last_synced_at=now,
            updated_at=now,
        )
        link.refresh_from_db()
        user_deleted_remote.send(CubeUser, link=link)
        return outcome


def _delete(link: CubeUser, remote: User, client: ConnectyCubeClient) -> None:
    """With the Administration API key, delete without the user's session (works for CIdP users
    and users whose derived password no longer works); without it, as the user."""
    if client.has_admin_api_key:
        client.admin_delete_user(remote.id)
    else:
        call_as_user(link, lambda uc: uc.delete_self(), client=client)


# ---- failures --------------------------------------------------------------------------------


def record_failure(link_filter: Q, error: BaseException, *, permanent: bool) -> tuple[int, bool]:
    """Count a failed attempt; returns ``(attempts, gave_up)``.

    A permanent error, or the last allowed attempt, marks the row ``failed`` (a dead letter
    the admin can re-sync); deletes that give up stay recognisable by their null ``user``.
    """
    message = _describe(error)
    now = timezone.now()
    link = CubeUser.objects.filter(link_filter).first()
    if link is None:
        return 0, True
    attempts = link.attempts + 1
    gave_up = permanent or attempts >= app_settings.TASK_MAX_ATTEMPTS
    updates: dict[str, Any] = {"attempts": attempts, "last_error": message, "updated_at": now}
    if gave_up:
        updates.update(state=CubeUser.State.FAILED, enqueued_at=None)
    CubeUser.objects.filter(pk=link.pk).update(**updates)
    if gave_up:
        link.refresh_from_db()
        logger.error("Giving up on ConnectyCube sync of %s: %s", link.external_id, message)
        user_sync_failed.send(CubeUser, link=link, error=error)
    else:
        logger.warning(
            "ConnectyCube sync of %s failed (attempt %s): %s", link.external_id, attempts, message
        )
    return attempts, gave_up


def _describe(error: BaseException) -> str:
    if isinstance(error, ValidationError) and error.field_errors:
        details = "; ".join(f"{k}: {', '.join(v)}" for k, v in error.field_errors.items())
        return (
            f"ConnectyCube rejected the user's data ({details}). Fix the local user (or the "
            "USER_FIELDS mapping), then save it or re-sync it from the admin."
        )
    if isinstance(error, AuthenticationError):
        return (
            f"ConnectyCube refused the derived password ({error}). The remote user was not "
            "created by this site, or PASSWORD_SECRETS lost the version it was created with."
        )
    return f"{type(error).__name__}: {error}"
