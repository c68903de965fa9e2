"""Giving a link its remote user: create it, or adopt one only on proof that this site made it.

ConnectyCube has no idempotency key, so a retried create (a lost answer, a redelivered task)
first looks the link's minted ``external_id`` up and adopts what it finds. What it finds is
evidence, not proof: any user can edit their own ``external_id`` with the token this app hands
out. So a remote user is adopted only when

* it carries the link's ``external_id`` (one remote user, not several),
* no other link already holds it, and
* in password mode (and for pre-minting external ids) it accepts a login with the password this
  site derives for the link; in CIdP mode the minted id, which nobody else can know before the
  remote user exists, is the proof.

Anything else is a :class:`~.failures.SyncConflict`. A login or e-mail held by an account that is
not provably the user's never blocks them: the user gets an account of their own under a
fallback login, without the e-mail, and the link records what was withheld
(:mod:`.identity`). Only a holder that is one of our own links with work still owed (a pending
delete or rename that frees the value) makes the push wait (:class:`~.failures.Busy`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Container, Mapping
from typing import Any

from django.db.models import Q

from django_connectycube.client import (
    AuthenticationError,
    ConnectyCubeClient,
    ConnectyCubeError,
    NotFound,
    User,
    ValidationError,
)
from django_connectycube.errors import Busy, SyncConflict
from django_connectycube.models import CubeUser, identity
from django_connectycube.sync import mapping, remote_ids
from django_connectycube.sync.logins import AUTH_MODE_CIDP, auth_mode
from django_connectycube.sync.policy import ADOPTED, CREATED
from django_connectycube.sync.user_sessions import call_as_user

logger = logging.getLogger("django_connectycube")

__all__ = [
    "adopt",
    "establish",
    "find_by_external_id",
    "prove_password",
    "update",
]

#: Fallback logins tried when the wanted one (and then a fallback) is taken.
MAX_FALLBACKS = 3
#: Mapped fields a squatter can hold; the user gets an account without them.
SQUATTABLE = ("login", "email")


def establish(
    link: CubeUser, fields: dict[str, Any], client: ConnectyCubeClient, absent: Container[str] = ()
) -> tuple[User, str]:
    """Give a leased link its remote user: create it, or adopt (and update) the one an earlier
    attempt created. Sets ``cube_id``, ``login``, ``password_version`` and ``withheld`` on
    ``link``; the caller records them.

    ``absent``: external ids a bulk look-up just found missing, so their create skips its own.
    """
    remote, outcome = _create_or_adopt(link, fields, client, absent)
    remote_ids.learn(link, remote.id, remote.login)
    if outcome == ADOPTED:
        sent, _ = identity.sent_fields(fields, link.withheld, link.login)
        if _differs(remote, sent):
            remote = update(link, fields, client)
    return remote, outcome


def find_by_external_id(client: ConnectyCubeClient, external_id: str) -> User | None:
    """The one remote user carrying ``external_id``; several of them is a conflict."""
    page = client.search_users(external_id=external_id, limit=2)
    if len(page.items) > 1:
        ids = ", ".join(str(user.id) for user in page.items)
        raise SyncConflict(
            f"Several ConnectyCube users ({ids}) carry external id {external_id!r}; nothing was "
            "adopted. Delete the ones that are not this user's (or clear their external_id) on "
            "ConnectyCube, then re-sync the user from the admin."
        )
    return page.items[0] if page.items else None


def adopt(link: CubeUser, remote: User, client: ConnectyCubeClient) -> User:
    """Take ``remote`` (found by the link's external id) as the link's user, once proven ours."""
    holder = remote_ids.other_holder(link, remote.id)
    if holder is not None:  # found, not made: the other link's claim may be the right one
        raise SyncConflict(remote_ids.conflict_message(link, remote.id, holder))
    if auth_mode() == AUTH_MODE_CIDP and identity.is_minted(link.external_id):
        link.password_version = link.password_version or mapping.current_password_version()
        return remote
    link.password_version = prove_password(link, remote, client)
    logger.info("Adopted ConnectyCube user %s for %s", remote.id, link.external_id)
    return remote


def update(link: CubeUser, fields: dict[str, Any], client: ConnectyCubeClient) -> User:
    """Send the user's fields as the user, re-asserting the external id and login it owns.

    A login or e-mail someone else took meanwhile is withheld (the login stays the one the link
    owns), and the update is sent again without it.
    """
    cube_id = link.cube_id
    for attempt in range(2):
        sent, link.withheld = identity.sent_fields(fields, link.withheld, link.login)
        try:
            return call_as_user(
                link,
                lambda uc, sent=sent: uc.update_user(cube_id, sent),  # type: ignore[misc]
                client=client,
            )
        except ValidationError as exc:
            taken = _taken_fields(exc)
            if "external_id" in taken:
                raise SyncConflict(_external_id_taken(link, client)) from exc
            if not taken or attempt:
                raise
            holders = _holders(client, taken, sent)
            _wait_for_owed_holders(link, holders.values(), exc)
            link.withheld = {**link.withheld, **{key: fields.get(key) for key in taken}}
            _log_withheld(link, holders)
    raise AssertionError("unreachable")  # pragma: no cover


# ---- create or adopt -------------------------------------------------------------------------


def _create_or_adopt(
    link: CubeUser, fields: dict[str, Any], client: ConnectyCubeClient, absent: Container[str]
) -> tuple[User, str]:
    if link.external_id not in absent:
        existing = find_by_external_id(client, link.external_id)
        if existing is not None:
            return adopt(link, existing, client), ADOPTED
    version = mapping.current_password_version()
    password = mapping.derive_password(link.external_id, version)
    sent, link.withheld = identity.sent_fields(fields, link.withheld, link.login)
    for attempt in range(MAX_FALLBACKS + 1):
        try:
            created = client.create_user(**sent, password=password)
        except ValidationError as exc:
            taken = _taken_fields(exc)
            if not taken:
                raise
            # A lost answer or a concurrent push of this same link may have made the user.
            existing = find_by_external_id(client, link.external_id)
            if existing is not None:
                return adopt(link, existing, client), ADOPTED
            if "external_id" in taken:
                raise SyncConflict(_external_id_taken(link, client)) from exc
            if attempt == MAX_FALLBACKS:
                raise SyncConflict(
                    f"No free ConnectyCube login found for {link.external_id} after "
                    f"{MAX_FALLBACKS} fallback logins; re-sync the user from the admin."
                ) from exc
            holders = _holders(client, taken, sent)
            _wait_for_owed_holders(link, holders.values(), exc)
            sent = _withhold(link, fields, sent, taken)
            _log_withheld(link, holders)
            continue
        link.password_version = version
        return created, CREATED
    raise AssertionError("unreachable")  # pragma: no cover


def _withhold(
    link: CubeUser, fields: dict[str, Any], sent: dict[str, Any], taken: list[str]
) -> dict[str, Any]:
    """The fields to create with once ``taken`` are held by others: a fallback login, no e-mail."""
    sent = dict(sent)
    for key in taken:
        link.withheld = {**link.withheld, key: fields.get(key, sent.get(key))}
        if key == "login":
            sent["login"] = identity.fallback_login(str(fields.get("login") or sent["login"]))
        else:
            sent.pop(key, None)
    if not sent.get("login") and not sent.get("email"):
        sent["login"] = identity.fallback_login("user")
    return sent


def prove_password(link: CubeUser, remote: User, client: ConnectyCubeClient) -> int:
    """The password version ``remote`` accepts, proving this site made it; else a conflict."""
    if remote.login:
        candidates = mapping.password_candidates(link.external_id, link.password_version or None)
        for version, password in candidates:
            try:
                session = client.create_user_session(login=remote.login, password=password)
            except (AuthenticationError, NotFound):
                continue
            with contextlib.suppress(ConnectyCubeError):  # the proof needs no session afterwards
                client.destroy_session(session.token)
            if session.user_id == remote.id:
                return version
            break
    raise SyncConflict(
        f"ConnectyCube user {remote.id} carries external id {link.external_id!r} but does not "
        "accept the password this site derives for it, so it was not adopted: it was not "
        "created by this site (or PASSWORD_SECRETS lost the version it was created with). "
        "If it is not this user's account, delete it on ConnectyCube or clear its external_id; "
        f"then re-sync local user {link.user_id} from the admin."
    )


def _external_id_taken(link: CubeUser, client: ConnectyCubeClient) -> str:
    holder = find_by_external_id(client, link.external_id)
    who = f"ConnectyCube user {holder.id}" if holder is not None else "another ConnectyCube user"
    return (
        f"{who} carries external id {link.external_id!r}, which belongs to local user "
        f"{link.user_id}. Clear it on ConnectyCube (or delete that user), then re-sync this "
        "user from the admin."
    )


# ---- holders of a taken login or e-mail ------------------------------------------------------


def _taken_fields(exc: ValidationError) -> list[str]:
    return [
        key
        for key, messages in exc.field_errors.items()
        if key in (*SQUATTABLE, "external_id") and any("taken" in m for m in messages)
    ]


def _holders(
    client: ConnectyCubeClient, taken: list[str], sent: Mapping[str, Any]
) -> dict[str, User | None]:
    return {key: _find_by(client, key, sent.get(key)) for key in taken if key in SQUATTABLE}


def _find_by(client: ConnectyCubeClient, key: str, value: Any) -> User | None:
    if not value:
        return None
    try:
        return (
            client.get_user_by_login(value) if key == "login" else client.get_user_by_email(value)
        )
    except NotFound:
        return None


def _wait_for_owed_holders(link: CubeUser, holders: Any, exc: BaseException) -> None:
    """``Busy`` when a holder is one of our links whose owed work frees the value (a deleted
    user whose remote delete has not run yet, a rename not yet pushed)."""
    found = [holder for holder in holders if holder is not None]
    ids = [holder.id for holder in found]
    external_ids = [holder.external_id for holder in found if holder.external_id]
    owed = (
        CubeUser.objects.owed()
        .filter(Q(cube_id__in=ids) | Q(cube_id__isnull=True, external_id__in=external_ids))
        .exclude(pk=link.pk)
        .values_list("external_id", flat=True)
    )
    owners = sorted(owed)
    if owners:
        raise Busy(
            f"The login/email of {link.external_id} is still held on ConnectyCube by "
            f"{', '.join(owners)}, whose pending change frees it."
        ) from exc


def _log_withheld(link: CubeUser, holders: Mapping[str, User | None]) -> None:
    for key, holder in holders.items():
        logger.warning(
            "The %s %r of %s is held by ConnectyCube user %s, which is not this user's; %s.",
            key,
            link.withheld.get(key),
            link.external_id,
            holder.id if holder is not None else "?",
            "using a fallback login" if key == "login" else "left off",
        )


def _differs(remote: User, fields: dict[str, Any]) -> bool:
    for key, value in fields.items():
        remote_key = "user_tags" if key == "tag_list" else key
        if (getattr(remote, remote_key, None) or "") != (value or ""):
            return True
    return False
