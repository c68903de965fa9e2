"""The emulator's state: users, sessions, blobs, the password-reset outbox, and its clock.

Everything lives in one :class:`Store` guarded by one re-entrant lock: the emulator serves tests
and benchmarks on a developer machine, where a single lock is far below the HTTP cost and makes
every operation trivially atomic (no two signups can both take the same login). Each
:class:`~django_connectycube.emulator.Emulator` owns its own store, so instances share nothing.

Domain rules (uniqueness, field validation in :mod:`.user_fields`, sliding expiry) live here
rather than in the HTTP layer, so the Python-side helpers that tests call and the wire handlers
behave identically. The records themselves are in :mod:`.models`.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

from .models import (
    GUEST_SESSION_TTL,
    SESSION_TTL,
    SIGNATURE_WINDOW,
    Blob,
    OutboxEmail,
    Session,
    User,
)
from .user_fields import clean_user_fields
from .wire import ApiError, iso

#: The path of the confirmation link (admin.connectycube.com's, served here by the emulator).
CONFIRM_EMAIL_PATH = "/user_email/confirm_email"

__all__ = [
    "CONFIRM_EMAIL_PATH",
    "GUEST_SESSION_TTL",
    "SESSION_TTL",
    "SIGNATURE_WINDOW",
    "Blob",
    "OutboxEmail",
    "Session",
    "Store",
    "User",
]


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

    def online_users(self) -> list[User]:
        """Users with a session that has not expired, by id (the emulator's "online")."""
        with self.lock:
            now = self.now()
            ids = {s.user_id for s in self.sessions.values() if s.expires_at > now and s.user_id}
            return [self.users[i] for i in sorted(ids) if i in self.users]

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

    def user_by_external_user_id(self, external_user_id: int) -> User | None:
        """The deprecated integer ``external_user_id`` (not indexed: only v1 routes read it)."""
        with self.lock:
            return next(
                (u for u in self.users.values() if u.external_user_id == external_user_id), None
            )

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
        return clean_user_fields(data, existing, self)

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

    def request_email_confirmation(self, user: User, base_url: str) -> OutboxEmail:
        """Mark ``user`` unconfirmed and "send" the confirmation email with its link."""
        with self.lock:
            user.email_confirmed = False
            user.confirmation_token = secrets.token_hex(16)
            link = f"{base_url}{CONFIRM_EMAIL_PATH}?token={user.confirmation_token}"
            message = OutboxEmail(
                to=user.email or "",
                user_id=user.id,
                subject="Email confirmation",
                body=f"Please confirm your registration by following the link: {link}",
                sent_at=self.now(),
            )
            self.outbox.append(message)
            return message

    def confirm_email(self, user: User) -> None:
        with self.lock:
            user.email_confirmed = True
            user.confirmation_token = None

    def user_by_confirmation_token(self, token: str) -> User | None:
        with self.lock:
            return next((u for u in self.users.values() if u.confirmation_token == token), None)

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
