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

import os
import secrets
import threading
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from .dates import iso
from .models import (
    GUEST_SESSION_TTL,
    SESSION_TTL,
    SIGNATURE_WINDOW,
    Blob,
    OutboxEmail,
    Session,
    User,
)
from .outbox import CONFIRM_EMAIL_PATH, Mailbox
from .persistence import Changes, PersistedStore, StateFile
from .user_fields import clean_user_fields, guest_login
from .wire import BLANK, ApiError

#: How long an upload form stays valid (the docs' example: one hour [D storage.md]).
UPLOAD_TTL = timedelta(hours=1)

__all__ = ["CONFIRM_EMAIL_PATH", "Store"]


class Store(Mailbox, PersistedStore):
    """All mutable state of one emulator instance, plus its clock (real time + offset)."""

    def __init__(self, state_file: str | os.PathLike[str] | None = None) -> None:
        self.lock = threading.RLock()
        self.clock_offset = timedelta(0)
        #: Where the records are kept across restarts (:mod:`.persistence`), if anywhere.
        self.state_file = StateFile(state_file) if state_file is not None else None
        self._changes = Changes()
        self._clear()
        if self.state_file is not None:
            self._restore(self.state_file.load())

    def _clear(self) -> None:
        self.users: dict[int, User] = {}
        self.sessions: dict[str, Session] = {}
        self.blobs: dict[int, Blob] = {}
        self.blobs_by_uid: dict[str, Blob] = {}
        self.outbox: list[OutboxEmail] = []
        self.used_nonces: dict[tuple[str, str], datetime] = {}
        self._by_login: dict[str, int] = {}
        self._by_email: dict[str, int] = {}
        # External ids may repeat on a service that does not keep them unique (tests make one).
        self._by_external_id: dict[str, set[int]] = {}
        self._next_user_id = 1
        self._next_session_id = 1
        self._next_blob_id = 1

    def reset(self) -> None:
        """Forget everything, in the state file too."""
        with self.lock:
            self._clear()
            self._changes = Changes()
            self.clock_offset = timedelta(0)
            if self.state_file is not None:
                self.state_file.clear()

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
        nonce: int | None = None,
        ts: int | None = None,
    ) -> Session:
        """A new token; ``nonce``/``ts`` echo the request's, else a random nonce and the time."""
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
                nonce=secrets.randbelow(2**31) if nonce is None else nonce,
                ts=int(now.timestamp()) if ts is None else ts,
            )
            self._next_session_id += 1
            self.sessions[session.token] = session
            self._changed_session(session.token)
            if user is not None:
                user.last_request_at = now
                self._changed_user(user.id)
            return session

    def touch_session(self, token: str) -> Session | None:
        """Look a token up and slide its expiry; an expired token is forgotten on the spot."""
        with self.lock:
            session = self.sessions.get(token)
            if session is None:
                return None
            now = self.now()
            self._changed_session(token)
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
                self._changed_user(user.id)
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
            self._changed_session(session.token)

    def destroy_session(self, token: str) -> None:
        with self.lock:
            self.sessions.pop(token, None)
            self._changed_session(token)

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
        user_ids = self._by_external_id.get(external_id)
        return self.users.get(min(user_ids)) if user_ids else None

    def users_with(self, name: str, values: Collection[Any]) -> list[User]:
        """Users whose id, external id, login or e-mail may be one of ``values``: a v2 page's
        candidates (the login and e-mail indexes fold case; the page's filter compares exactly).
        """
        if name == "id":
            ids = set(values)
        elif name == "external_id":
            ids = set().union(*(self._by_external_id.get(str(v), ()) for v in values))
        else:
            index = self._by_login if name == "login" else self._by_email
            ids = {index[key] for key in (str(v).lower() for v in values) if key in index}
        return [self.users[i] for i in sorted(ids) if i in self.users]

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
            self._by_external_id.setdefault(user.external_id, set()).add(user.id)

    def _unindex(self, user: User) -> None:
        if user.login:
            self._by_login.pop(user.login.lower(), None)
        if user.email:
            self._by_email.pop(user.email.lower(), None)
        if user.external_id:
            holders = self._by_external_id.get(user.external_id, set())
            holders.discard(user.id)
            if not holders:
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
                    errors.setdefault("login", []).append(BLANK)
                if require_password and "password" not in cleaned and "password" not in errors:
                    errors.setdefault("password", []).append(BLANK)
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
            if is_guest:  # [D auth.mdx] a generated login and an empty (not null) phone
                user.login = user.login or guest_login()
                user.phone = ""
            user.firebase_uid = firebase_uid
            user.source = source
            self.users[user.id] = user
            self._index(user)
            self._changed_user(user.id)
            return user

    def update_user(self, user: User, data: Mapping[str, Any]) -> User:
        """Apply a ``PUT /users/{id}``; a new password needs the current one as ``old_password``."""
        with self.lock:
            cleaned, errors = self._clean_fields(data, user)
            if "password" in cleaned and user.password_hash is not None:
                old = data.get("old_password")
                if old is None or old == "":
                    errors.setdefault("old_password", []).append(BLANK)
                elif not isinstance(old, (str, int)) or not user.check_password(str(old)):
                    errors.setdefault("old_password", []).append("is invalid")
            login = cleaned.get("login", user.login)
            email = cleaned.get("email", user.email)
            if not login and not email and not user.is_guest and user.firebase_uid is None:
                errors.setdefault("login", []).append(BLANK)
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
            self._changed_user(user.id)
            return user

    def delete_user(self, user: User) -> None:
        """Remove a user and the sessions that stood for them (their tokens stop working)."""
        with self.lock:
            self._unindex(user)
            self.users.pop(user.id, None)
            self._changed_user(user.id)
            for token in [t for t, s in self.sessions.items() if s.user_id == user.id]:
                del self.sessions[token]
                self._changed_session(token)

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
                upload_expires=now + UPLOAD_TTL,
            )
            self._next_blob_id += 1
            self.blobs[blob.id] = blob
            self.blobs_by_uid[blob.uid] = blob
            self._changed_blob(blob.id)
            return blob

    def store_upload(self, blob: Blob, data: bytes) -> None:
        with self.lock:
            blob.data = data
            blob.updated_at = self.now()
            self._changed_blob(blob.id, data=True)

    def complete_blob(self, blob: Blob, size: int) -> None:
        with self.lock:
            now = self.now()
            blob.size = size
            blob.blob_status = "complete"
            blob.set_completed_at = now
            blob.updated_at = now
            self._changed_blob(blob.id)

    def update_blob(
        self,
        blob: Blob,
        *,
        renew: bool = False,
        name: str | None = None,
        content_type: str | None = None,
    ) -> None:
        """Rename or retype a blob; ``renew`` opens a new upload and makes it incomplete."""
        with self.lock:
            now = self.now()
            blob.name = name or blob.name
            blob.content_type = content_type or blob.content_type
            if renew:
                blob.blob_status = None
                blob.set_completed_at = None
                blob.upload_expires = now + UPLOAD_TTL
            blob.updated_at = now
            self._changed_blob(blob.id)

    def delete_blob(self, blob: Blob) -> None:
        with self.lock:
            self.blobs.pop(blob.id, None)
            self.blobs_by_uid.pop(blob.uid, None)
            self._changed_blob(blob.id)

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
