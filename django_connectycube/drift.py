"""What differs between a link and its remote user, for ``connectycube_sync --verify``.

Identity fields (``external_id``, login, e-mail) are told apart from the rest: their owner can
edit them on ConnectyCube with the token this app hands out, and an edit there is how an account
is dressed up as someone else's. The engine restores them at the next push of the user; the
report says who edited what in the meantime.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import identity, mapping
from .models import CubeUser

__all__ = ["IDENTITY_FIELDS", "Drift", "compare"]

IDENTITY_FIELDS = ("external_id", "login", "email")


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
    if link.cube_id is None or remote is None:
        return Drift(fields=["missing on ConnectyCube"])
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
