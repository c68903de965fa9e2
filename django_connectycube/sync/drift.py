"""What differs between a link and its remote user: ``connectycube_sync --verify`` reports it,
the verification (:mod:`.verification`) repairs links whose remote user is gone.

Both read remote users the same way (:func:`fetch`: ``GET /users/v2`` by id, a hundred at a
time; the v1 look-ups are off on real applications) and judge them by the same rule
(:func:`lost`: missing, or not carrying the link's external id, as :mod:`.remote_ids` says).

Identity fields (``external_id``, login, e-mail) are told apart from the rest: their owner can
edit them on ConnectyCube with the token this app hands out, and an edit there is how an account
is dressed up as someone else's. The engine restores them at the next push of the user; the
report says who edited what in the meantime.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django_connectycube.client import ConnectyCubeClient, User
from django_connectycube.models import CubeUser, identity
from django_connectycube.sync import mapping, remote_ids

__all__ = ["BATCH", "IDENTITY_FIELDS", "MISSING", "Drift", "compare", "fetch", "lost"]

IDENTITY_FIELDS = ("external_id", "login", "email")
#: Ids per look-up: the most one ``GET /users/v2`` page holds.
BATCH = 100
MISSING = "missing on ConnectyCube"


def fetch(client: ConnectyCubeClient, links: Sequence[CubeUser]) -> dict[int, User]:
    """The remote users at these links' ids, by id (at most :data:`BATCH` links: one request).

    A link whose id is absent from the answer has no remote user. Errors propagate: a failed
    look-up proves nothing missing.
    """
    ids = [link.cube_id for link in links if link.cube_id is not None]
    if len(ids) > BATCH:
        raise ValueError(f"At most {BATCH} links per look-up, got {len(ids)}.")
    if not ids:
        return {}
    page = client.get_users_by_ids(ids, per_page=BATCH)
    return {user.id: user for user in page.items}


def lost(link: CubeUser, remote: User | None) -> str | None:
    """Why the remote user found at a live link's id is not the link's (``None``: it is)."""
    if remote is None:
        return MISSING
    if remote_ids.is_ours(link, remote):
        return None
    return (
        f"ConnectyCube user {remote.id} carries external id {remote.external_id!r}, not ours "
        f"({link.external_id!r})"
    )


def _remote_value(remote: Any, key: str) -> Any:
    return getattr(remote, "user_tags" if key == "tag_list" else key, None)


@dataclass
class Drift:
    """One link's differences: identity edits, other fields, and notes that are not drift."""

    identity: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.identity or self.fields)


def compare(link: CubeUser, remote: Any) -> Drift:
    """How one link differs from its remote user (``None``: not found on ConnectyCube)."""
    if link.user_id is None:
        gone = [] if remote is None else [f"deleted locally, still on ConnectyCube as {remote.id}"]
        return Drift(fields=gone)
    if link.cube_id is None or lost(link, remote) == MISSING:
        return Drift(fields=[MISSING])
    wanted = mapping.get_user_fields(link.user, link.external_id)
    sent, _ = identity.sent_fields(wanted, link.withheld, link.login)
    owned = {"external_id": link.external_id, "login": sent.get("login") or link.login}
    if "email" in sent:
        owned["email"] = sent["email"]
    edited = [
        f"{key} is {_remote_value(remote, key)!r}, ours {value!r}"
        for key, value in owned.items()
        if (_remote_value(remote, key) or "") != (value or "")
    ]
    others = [
        f"{key}: local {value!r}, remote {_remote_value(remote, key)!r}"
        for key, value in sent.items()
        if key not in IDENTITY_FIELDS and (_remote_value(remote, key) or "") != (value or "")
    ]
    if link.state != CubeUser.State.SYNCED:
        others.append(f"state is {link.state}")
    notes = [
        f"{key} {value!r} is held by another account (withheld)"
        for key, value in sorted((link.withheld or {}).items())
    ]
    return Drift(identity=edited, fields=others, notes=notes)
