"""The emulator's records: users, sessions, blobs and outbox emails, with their wire shapes.

``to_json`` is exactly what ConnectyCube returns; ``to_state`` adds what the control API shows
tests (``has_password``, ``source``, ``expires_at``...). Passwords are kept only as salted hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .dates import iso

__all__ = [
    "GUEST_SESSION_TTL",
    "SESSION_TTL",
    "SIGNATURE_WINDOW",
    "Blob",
    "OutboxEmail",
    "Session",
    "User",
]

SESSION_TTL = timedelta(hours=2)
GUEST_SESSION_TTL = timedelta(days=1)
#: How far a signed request's timestamp may be from the server's clock (either direction).
SIGNATURE_WINDOW = timedelta(minutes=60)


def _hash_password(password: str, salt: str) -> str:
    return hashlib.sha256(f"{salt}:{password}".encode()).hexdigest()


@dataclass
class User:
    """A ConnectyCube user as the emulator stores it (the password only as a salted hash)."""

    id: int
    created_at: datetime
    updated_at: datetime
    login: str | None = None
    email: str | None = None
    full_name: str | None = None
    phone: str | None = None
    website: str | None = None
    custom_data: str | None = None
    user_tags: str | None = None
    avatar: str | None = None
    external_user_id: int | None = None
    external_id: str | None = None
    facebook_id: str | None = None
    twitter_id: str | None = None
    timezone: int | str | None = None
    is_guest: bool = False
    blob_id: int | None = None
    last_request_at: datetime | None = None
    password_hash: str | None = None
    password_salt: str = field(default_factory=lambda: secrets.token_hex(8))
    firebase_uid: str | None = None
    source: str = "signup"
    #: False from sign-up until the link of the confirmation email is followed, on applications
    #: that "Require email confirmation".
    email_confirmed: bool = True
    confirmation_token: str | None = None

    def set_password(self, password: str | None) -> None:
        self.password_hash = (
            None if password is None else _hash_password(password, self.password_salt)
        )

    def check_password(self, password: str) -> bool:
        if self.password_hash is None:
            return False
        return hmac.compare_digest(self.password_hash, _hash_password(password, self.password_salt))

    @property
    def tags(self) -> list[str]:
        return [t for t in (self.user_tags or "").split(",") if t]

    def to_json(self) -> dict[str, Any]:
        """The user object exactly as ConnectyCube returns it (never the password)."""
        return {
            "id": self.id,
            "login": self.login,
            "email": self.email,
            "full_name": self.full_name,
            "phone": self.phone,
            "website": self.website,
            "custom_data": self.custom_data,
            "user_tags": self.user_tags,
            "avatar": self.avatar,
            "external_user_id": self.external_user_id,
            "external_id": self.external_id,
            "facebook_id": self.facebook_id,
            "twitter_id": self.twitter_id,
            "timezone": self.timezone,
            "is_guest": self.is_guest,
            "blob_id": self.blob_id,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "last_request_at": iso(self.last_request_at),
        }

    def to_state(self) -> dict[str, Any]:
        """The control API's view: the wire object plus what tests need to assert on."""
        data = self.to_json()
        data["has_password"] = self.password_hash is not None
        data["source"] = self.source
        data["email_confirmed"] = self.email_confirmed
        return data


@dataclass
class Session:
    """A session token; ``user_id`` is ``None`` for an application (read-only) session."""

    id: int
    token: str
    application_id: int
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    ttl: timedelta
    user_id: int | None = None
    nonce: int = 0
    ts: int = 0

    def to_json(self, user: User | None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "user_id": self.user_id,
            "application_id": self.application_id,
            "token": self.token,
            "nonce": self.nonce,
            "ts": self.ts,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }
        if user is not None:
            data["user"] = user.to_json()
        return data

    def to_state(self) -> dict[str, Any]:
        data = self.to_json(None)
        data["expires_at"] = iso(self.expires_at)
        return data


@dataclass
class Blob:
    """A stored file; ``data`` is ``None`` until the multipart upload arrives."""

    id: int
    uid: str
    owner_id: int
    content_type: str
    name: str
    public: bool
    created_at: datetime
    updated_at: datetime
    size: int | None = None
    blob_status: str | None = None
    set_completed_at: datetime | None = None
    data: bytes | None = None
    upload_expires: datetime | None = None

    @property
    def completed(self) -> bool:
        return self.blob_status == "complete"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "uid": self.uid,
            "content_type": self.content_type,
            "name": self.name,
            "size": self.size,
            "public": self.public,
            "blob_status": self.blob_status,
            "set_completed_at": iso(self.set_completed_at),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }

    def to_state(self) -> dict[str, Any]:
        data = self.to_json()
        data["owner_id"] = self.owner_id
        data["uploaded"] = self.data is not None
        data["uploaded_size"] = None if self.data is None else len(self.data)
        return data


@dataclass
class OutboxEmail:
    """A password-reset email the real service would have sent."""

    to: str
    user_id: int
    subject: str
    body: str
    sent_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "to": self.to,
            "user_id": self.user_id,
            "subject": self.subject,
            "body": self.body,
            "sent_at": iso(self.sent_at),
        }
