"""The emulator's state: users, sessions, blobs, the password-reset outbox, and its clock.

Everything lives in one :class:`Store` guarded by one re-entrant lock: the emulator serves tests
and benchmarks on a developer machine, where a single lock is far below the HTTP cost and makes
every operation trivially atomic (no two signups can both take the same login). Each
:class:`~django_connectycube.emulator.Emulator` owns its own store, so instances share nothing.

Domain rules (uniqueness, field validation, sliding expiry) live here rather than in the HTTP
layer, so the Python-side helpers that tests call and the wire handlers behave identically.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from .wire import ApiError, coerce_int, coerce_str, iso, split_list

__all__ = [
    "GUEST_SESSION_TTL",
    "SESSION_TTL",
    "Blob",
    "OutboxEmail",
    "Session",
    "Store",
    "User",
]

SESSION_TTL = timedelta(hours=2)
GUEST_SESSION_TTL = timedelta(days=1)
#: How far a signed request's timestamp may be from the server's clock (either direction).
SIGNATURE_WINDOW = timedelta(minutes=60)

LOGIN_MIN, LOGIN_MAX = 3, 70
MAX_TAGS = 5
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")

#: Writable string fields of a user, besides login/email/password which have their own rules.
USER_STRING_FIELDS = (
    "full_name",
    "phone",
    "website",
    "custom_data",
    "avatar",
    "external_id",
    "facebook_id",
    "twitter_id",
)


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
    nonce: int | str | None = None
    ts: int | str | None = None

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


class Store:
    """All mutable state of one emulator instance, plus its clock (real time + offset)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.clock_offset = timedelta(0)
        self._clear()

    def _clear(self) -> None:
        self.users: dict[int, User] = {}
        self.sessions: dict[str, Session] = {}
        self.blobs: dict[int, Blob] = {}
        self.blobs_by_uid: dict[str, Blob] = {}
        self.outbox: list[OutboxEmail] = []
        self.used_nonces: dict[tuple[str, str], datetime] = {}
        self._by_login: dict[str, int] = {}
        self._by_email: dict[str, int] = {}
        self._by_external_id: dict[str, int] = {}
        self._next_user_id = 1
        self._next_session_id = 1
        self._next_blob_id = 1

    @contextmanager
    def locked(self) -> Iterator[Store]:
        with self.lock:
            yield self

    def reset(self) -> None:
        with self.lock:
            self._clear()
            self.clock_offset = timedelta(0)

    # -- clock ---------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The emulator's time: tests move it forward to expire sessions without sleeping."""
        return datetime.now(timezone.utc) + self.clock_offset

    def advance_clock(self, seconds: float) -> datetime:
        with self.lock:
            self.clock_offset += timedelta(seconds=seconds)
            return self.now()

    # -- sessions ------------------------------------------------------------------------------

    def create_session(
        self,
        application_id: int,
        user: User | None,
        *,
        nonce: Any = None,
        ts: Any = None,
    ) -> Session:
        with self.lock:
            now = self.now()
            ttl = GUEST_SESSION_TTL if user is not None and user.is_guest else SESSION_TTL
            session = Session(
                id=self._next_session_id,
                token=secrets.token_hex(20),
                application_id=application_id,
                created_at=now,
                updated_at=now,
                expires_at=now + ttl,
                ttl=ttl,
                user_id=user.id if user is not None else None,
                nonce=nonce,
                ts=ts,
            )
            self._next_session_id += 1
            self.sessions[session.token] = session
            if user is not None:
                user.last_request_at = now
            return session

    def touch_session(self, token: str) -> Session | None:
        """Look a token up and slide its expiry; an expired token is forgotten on the spot."""
        with self.lock:
            session = self.sessions.get(token)
            if session is None:
                return None
            now = self.now()
            if now >= session.expires_at:
                del self.sessions[token]
                return None
            session.expires_at = now + session.ttl
            if session.user_id is not None:
                user = self.users.get(session.user_id)
                if user is None:
                    del self.sessions[token]
                    return None
                user.last_request_at = now
            return session

    def bind_session(self, session: Session, user: User | None) -> None:
        """Upgrade (``POST /login``) or downgrade (``DELETE /login``) a session in place."""
        with self.lock:
            session.user_id = user.id if user is not None else None
            session.updated_at = self.now()
            if user is not None and user.is_guest:
                session.ttl = GUEST_SESSION_TTL
            else:
                session.ttl = SESSION_TTL

    def destroy_session(self, token: str) -> None:
        with self.lock:
            self.sessions.pop(token, None)

    def use_nonce(self, nonce: str, timestamp: str) -> bool:
        """Record a signed request's nonce+timestamp; ``False`` when the pair was seen before."""
        with self.lock:
            now = self.now()
            horizon = now - 2 * SIGNATURE_WINDOW
            if len(self.used_nonces) > 10_000:
                self.used_nonces = {k: v for k, v in self.used_nonces.items() if v > horizon}
            key = (nonce, timestamp)
            if key in self.used_nonces:
                return False
            self.used_nonces[key] = now
            return True

    # -- users ---------------------------------------------------------------------------------

    def user_by_login(self, login: str) -> User | None:
        user_id = self._by_login.get(login.lower())
        return None if user_id is None else self.users.get(user_id)

    def user_by_email(self, email: str) -> User | None:
        user_id = self._by_email.get(email.lower())
        return None if user_id is None else self.users.get(user_id)

    def user_by_external_id(self, external_id: str) -> User | None:
        user_id = self._by_external_id.get(external_id)
        return None if user_id is None else self.users.get(user_id)

    def _index(self, user: User) -> None:
        if user.login:
            self._by_login[user.login.lower()] = user.id
        if user.email:
            self._by_email[user.email.lower()] = user.id
        if user.external_id:
            self._by_external_id[user.external_id] = user.id

    def _unindex(self, user: User) -> None:
        if user.login:
            self._by_login.pop(user.login.lower(), None)
        if user.email:
            self._by_email.pop(user.email.lower(), None)
        if user.external_id:
            self._by_external_id.pop(user.external_id, None)

    def _clean_fields(
        self, data: Mapping[str, Any], existing: User | None
    ) -> tuple[dict[str, Any], dict[str, list[str]]]:
        """Validate writable fields; return the cleaned values and the field errors."""
        cleaned: dict[str, Any] = {}
        errors: dict[str, list[str]] = {}

        def fail(name: str, message: str) -> None:
            errors.setdefault(name, []).append(message)

        for name in ("login", "email", *USER_STRING_FIELDS):
            if name not in data:
                continue
            value = data[name]
            if value is None or value == "":
                cleaned[name] = None
                continue
            try:
                cleaned[name] = (
                    coerce_str(value, name).strip()
                    if name in ("login", "email")
                    else coerce_str(value, name)
                )
            except ApiError:
                fail(name, "must be a string")
        login = cleaned.get("login")
        if login is not None:
            if len(login) < LOGIN_MIN:
                fail("login", f"is too short (minimum is {LOGIN_MIN} characters)")
            elif len(login) > LOGIN_MAX:
                fail("login", f"is too long (maximum is {LOGIN_MAX} characters)")
            else:
                other = self.user_by_login(login)
                if other is not None and (existing is None or other.id != existing.id):
                    fail("login", "has already been taken.")
        email = cleaned.get("email")
        if email is not None:
            if not _EMAIL.match(email) or len(email) > 255:
                fail("email", "is invalid")
            else:
                other = self.user_by_email(email)
                if other is not None and (existing is None or other.id != existing.id):
                    fail("email", "has already been taken.")
        external_id = cleaned.get("external_id")
        if external_id is not None:
            other = self.user_by_external_id(external_id)
            if other is not None and (existing is None or other.id != existing.id):
                fail("external_id", "has already been taken.")
        for name in ("tag_list", "user_tags"):
            if name not in data:
                continue
            try:
                tags = split_list(data[name])
            except ValueError:
                fail("tag_list", "must be an array or a comma-separated string")
                continue
            if len(tags) > MAX_TAGS:
                fail("tag_list", f"is too long (maximum is {MAX_TAGS} tags)")
            cleaned["user_tags"] = ",".join(tags) if tags else None
        for name in ("external_user_id", "blob_id"):
            if name in data:
                if data[name] is None or data[name] == "":
                    cleaned[name] = None
                    continue
                try:
                    cleaned[name] = coerce_int(data[name], name)
                except ApiError:
                    fail(name, "must be an integer")
        if "timezone" in data:
            value = data["timezone"]
            if value is not None and (isinstance(value, (bool, dict, list))):
                fail("timezone", "must be a number or a string")
            else:
                cleaned["timezone"] = value
        if "password" in data:
            value = data["password"]
            if not isinstance(value, (str, int)) or isinstance(value, bool) or value == "":
                fail("password", "must be a non-empty string")
            else:
                cleaned["password"] = str(value)
        return cleaned, errors

    def create_user(
        self,
        data: Mapping[str, Any],
        *,
        require_password: bool = True,
        source: str = "signup",
        is_guest: bool = False,
        firebase_uid: str | None = None,
    ) -> User:
        """Validate and insert a user; 422 with field errors when the data breaks a rule."""
        with self.lock:
            cleaned, errors = self._clean_fields(data, None)
            if not is_guest and firebase_uid is None:
                if not cleaned.get("login") and not cleaned.get("email") and "login" not in errors:
                    errors.setdefault("login", []).append("can't be blank (login or email)")
                if require_password and "password" not in cleaned and "password" not in errors:
                    errors.setdefault("password", []).append("can't be blank")
            if errors:
                raise ApiError(422, errors)
            now = self.now()
            user = User(id=self._next_user_id, created_at=now, updated_at=now)
            self._next_user_id += 1
            password = cleaned.pop("password", None)
            for name, value in cleaned.items():
                setattr(user, name, value)
            user.set_password(password)
            user.is_guest = is_guest
            user.firebase_uid = firebase_uid
            user.source = source
            self.users[user.id] = user
            self._index(user)
            return user

    def update_user(self, user: User, data: Mapping[str, Any]) -> User:
        """Apply a ``PUT /users/{id}``; a new password needs the current one as ``old_password``."""
        with self.lock:
            cleaned, errors = self._clean_fields(data, user)
            if "password" in cleaned and user.password_hash is not None:
                old = data.get("old_password")
                if old is None or old == "":
                    errors.setdefault("old_password", []).append("can't be blank")
                elif not isinstance(old, (str, int)) or not user.check_password(str(old)):
                    errors.setdefault("old_password", []).append("is invalid")
            login = cleaned.get("login", user.login)
            email = cleaned.get("email", user.email)
            if not login and not email and not user.is_guest and user.firebase_uid is None:
                errors.setdefault("login", []).append("can't be blank (login or email)")
            if errors:
                raise ApiError(422, errors)
            self._unindex(user)
            password = cleaned.pop("password", None)
            for name, value in cleaned.items():
                setattr(user, name, value)
            if password is not None:
                user.set_password(password)
            user.updated_at = self.now()
            self._index(user)
            return user

    def delete_user(self, user: User) -> None:
        """Remove a user and the sessions that stood for them (their tokens stop working)."""
        with self.lock:
            self._unindex(user)
            self.users.pop(user.id, None)
            for token in [t for t, s in self.sessions.items() if s.user_id == user.id]:
                del self.sessions[token]

    def record_password_reset(self, email: str) -> OutboxEmail | None:
        with self.lock:
            user = self.user_by_email(email)
            if user is None:
                return None
            message = OutboxEmail(
                to=user.email or email,
                user_id=user.id,
                subject="Password reset instructions",
                body=(
                    "Someone asked to reset the password of your account. "
                    f"Reset code: {secrets.token_hex(8)}"
                ),
                sent_at=self.now(),
            )
            self.outbox.append(message)
            return message

    # -- blobs ---------------------------------------------------------------------------------

    def create_blob(self, owner: User, content_type: str, name: str, public: bool) -> Blob:
        with self.lock:
            now = self.now()
            blob = Blob(
                id=self._next_blob_id,
                uid=secrets.token_hex(16),
                owner_id=owner.id,
                content_type=content_type,
                name=name,
                public=public,
                created_at=now,
                updated_at=now,
                upload_expires=now + timedelta(hours=1),
            )
            self._next_blob_id += 1
            self.blobs[blob.id] = blob
            self.blobs_by_uid[blob.uid] = blob
            return blob

    def delete_blob(self, blob: Blob) -> None:
        with self.lock:
            self.blobs.pop(blob.id, None)
            self.blobs_by_uid.pop(blob.uid, None)

    # -- control API views ---------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "users": [u.to_state() for u in self.users.values()],
                "sessions": [s.to_state() for s in self.sessions.values()],
                "blobs": [b.to_state() for b in self.blobs.values()],
                "outbox": [m.to_json() for m in self.outbox],
                "now": iso(self.now()),
            }
