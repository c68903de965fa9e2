"""An optional state file: the emulator's users, sessions and blobs survive a restart.

Why: a developer's own emulator (``make demo``, ``manage.py connectycube_emulator``) stands in
for a ConnectyCube application, which does not forget its users when a process restarts. A
database that remembers remote ids while the emulator forgot them is a state no real
application gets into by itself.

The file is a SQLite database (stdlib :mod:`sqlite3`, WAL journal): one row per user, session
and blob, each record as JSON (blob bytes in their own column), plus the id counters. The store
marks what a request changed; :meth:`StateFile.write` saves exactly those records in one
transaction at the end of the request, so the file is never more than one request behind.
Not kept: the clock offset, faults, counters, the outbox and used nonces.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .models import Blob, Session, User

__all__ = ["Changes", "Loaded", "PersistedStore", "StateFile"]

SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (token TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (id INTEGER PRIMARY KEY, record TEXT NOT NULL, data BLOB);
"""
_COUNTERS = ("next_user_id", "next_session_id", "next_blob_id")


@dataclass
class Changes:
    """What changed since the last write: keys of records to save (or delete, when gone)."""

    users: set[int] = field(default_factory=set)
    sessions: set[str] = field(default_factory=set)
    blobs: set[int] = field(default_factory=set)
    blob_data: set[int] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.users or self.sessions or self.blobs or self.blob_data)


@dataclass
class Loaded:
    users: list[User]
    sessions: list[Session]
    blobs: list[Blob]
    counters: dict[str, int]


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, timedelta):
        return {"$seconds": value.total_seconds()}
    raise TypeError(f"cannot store {type(value).__name__}")


def _decode(value: dict[str, Any]) -> Any:
    if "$datetime" in value:
        return datetime.fromisoformat(value["$datetime"])
    if "$seconds" in value:
        return timedelta(seconds=value["$seconds"])
    return value


def _dump(record: User | Session | Blob, *exclude: str) -> str:
    data = {key: value for key, value in asdict(record).items() if key not in exclude}
    return json.dumps(data, default=_encode, separators=(",", ":"))


def _load(cls: type[Any], text: str, **extra: Any) -> Any:
    data = json.loads(text, object_hook=_decode)
    known = {f.name for f in fields(cls)}  # a field removed since the file was written is dropped
    return cls(**{key: value for key, value in data.items() if key in known}, **extra)


class StateFile:
    """One SQLite file; the caller serialises access (the store's lock)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._connection: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.executescript(_SCHEMA)
            row = connection.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row is None:
                connection.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            elif row[0] != SCHEMA_VERSION:
                connection.close()
                raise ValueError(
                    f"{self.path} holds emulator state of schema {row[0]}, not {SCHEMA_VERSION}; "
                    "delete the file to start afresh"
                )
            self._connection = connection
        return self._connection

    def load(self) -> Loaded:
        connection = self._connect()
        users = [_load(User, r) for (r,) in connection.execute("SELECT record FROM users")]
        sessions = [_load(Session, r) for (r,) in connection.execute("SELECT record FROM sessions")]
        blobs = [
            _load(Blob, record, data=data)
            for record, data in connection.execute("SELECT record, data FROM blobs")
        ]
        counters = {
            key: int(value)
            for key, value in connection.execute("SELECT key, value FROM meta")
            if key in _COUNTERS
        }
        return Loaded(users, sessions, blobs, counters)

    def write(
        self,
        changes: Changes,
        users: dict[int, User],
        sessions: dict[str, Session],
        blobs: dict[int, Blob],
        counters: dict[str, int],
    ) -> None:
        """Save the changed records (a key no longer in its dict is deleted), in one transaction."""
        connection = self._connect()
        connection.execute("BEGIN")
        try:
            self._write_records(connection, "users", "id", changes.users, users)
            self._write_records(connection, "sessions", "token", changes.sessions, sessions)
            self._write_blobs(connection, changes, blobs)
            connection.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [(key, str(value)) for key, value in counters.items()],
            )
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    @staticmethod
    def _write_records(
        connection: sqlite3.Connection,
        table: str,
        key_column: str,
        keys: set[Any],
        records: dict[Any, User] | dict[Any, Session],
    ) -> None:
        for key in keys:
            record = records.get(key)
            if record is None:
                connection.execute(f"DELETE FROM {table} WHERE {key_column} = ?", (key,))  # noqa: S608
            else:
                connection.execute(
                    f"INSERT OR REPLACE INTO {table} VALUES (?, ?)",  # noqa: S608 (fixed names)
                    (key, _dump(record)),
                )

    @staticmethod
    def _write_blobs(
        connection: sqlite3.Connection, changes: Changes, blobs: dict[int, Blob]
    ) -> None:
        for blob_id in changes.blobs | changes.blob_data:
            blob = blobs.get(blob_id)
            if blob is None:
                connection.execute("DELETE FROM blobs WHERE id = ?", (blob_id,))
                continue
            record = _dump(blob, "data")
            if blob_id in changes.blob_data:
                connection.execute(
                    "INSERT OR REPLACE INTO blobs VALUES (?, ?, ?)", (blob_id, record, blob.data)
                )
                continue
            updated = connection.execute(
                "UPDATE blobs SET record = ? WHERE id = ?", (record, blob_id)
            ).rowcount
            if not updated:
                connection.execute("INSERT INTO blobs VALUES (?, ?, NULL)", (blob_id, record))

    def clear(self) -> None:
        connection = self._connect()
        connection.execute("BEGIN")
        for table in ("users", "sessions", "blobs"):
            connection.execute(f"DELETE FROM {table}")  # noqa: S608 (fixed table names)
        connection.execute("DELETE FROM meta WHERE key != 'schema'")
        connection.execute("COMMIT")

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class PersistedStore:
    """The store's side of the state file: what it marks, restores and commits.

    :class:`~django_connectycube.emulator.store.Store` calls ``_changed_*`` wherever it changes a
    record, and the emulator calls :meth:`commit` at the end of every request.
    """

    lock: Any
    users: dict[int, User]
    sessions: dict[str, Session]
    blobs: dict[int, Blob]
    blobs_by_uid: dict[str, Blob]
    state_file: StateFile | None
    _changes: Changes
    _next_user_id: int
    _next_session_id: int
    _next_blob_id: int
    _index: Callable[[User], None]
    now: Callable[[], datetime]

    def _restore(self, loaded: Loaded) -> None:
        for user in loaded.users:
            self.users[user.id] = user
            self._index(user)
        now = self.now()
        for session in loaded.sessions:
            if session.expires_at > now:
                self.sessions[session.token] = session
            else:  # expired while the emulator was down: drop it from the file too
                self._changed_session(session.token)
        for blob in loaded.blobs:
            self.blobs[blob.id] = blob
            self.blobs_by_uid[blob.uid] = blob
        # A counter never goes below an id in use, so ids are not reused after a restart.
        counters = loaded.counters
        self._next_user_id = max([counters.get("next_user_id", 1), *(i + 1 for i in self.users)])
        self._next_session_id = max(
            [counters.get("next_session_id", 1), *(s.id + 1 for s in self.sessions.values())]
        )
        self._next_blob_id = max([counters.get("next_blob_id", 1), *(i + 1 for i in self.blobs)])

    def commit(self) -> None:
        """Save what changed since the last commit to the state file (a no-op without one)."""
        if self.state_file is None:
            return
        with self.lock:
            if not self._changes:
                return
            changes, self._changes = self._changes, Changes()
            self.state_file.write(
                changes,
                self.users,
                self.sessions,
                self.blobs,
                {
                    "next_user_id": self._next_user_id,
                    "next_session_id": self._next_session_id,
                    "next_blob_id": self._next_blob_id,
                },
            )

    def close(self) -> None:
        with self.lock:
            self.commit()
            if self.state_file is not None:
                self.state_file.close()

    def _changed_user(self, user_id: int) -> None:
        if self.state_file is not None:
            self._changes.users.add(user_id)

    def _changed_session(self, token: str) -> None:
        if self.state_file is not None:
            self._changes.sessions.add(token)

    def _changed_blob(self, blob_id: int, *, data: bool = False) -> None:
        if self.state_file is not None:
            (self._changes.blob_data if data else self._changes.blobs).add(blob_id)
