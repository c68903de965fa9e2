"""Typed results: what the client returns instead of raw dicts.

Each type keeps the full server object in ``raw`` so a field the server adds tomorrow is still
reachable, and no token ever shows in a ``repr``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from .dates import parse_datetime, parse_expiration_header
from .errors import MalformedResponse

__all__ = [
    "Blob",
    "BlobObjectAccess",
    "Page",
    "Session",
    "User",
    "UserSession",
    "iterate_pages",
    "parse_datetime",
    "parse_expiration_header",
]

T = TypeVar("T")
B = TypeVar("B", bound=Callable[..., Any])


def _parsed(build: B) -> B:
    """Turn a server object of the wrong shape into :class:`MalformedResponse`, so a caller
    sees one typed client error instead of a ``KeyError`` from deep inside a dataclass."""

    @functools.wraps(build)
    def wrapper(cls: type, data: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return build(cls, data, *args, **kwargs)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedResponse(
                f"ConnectyCube answered something that is not a {cls.__name__}: {exc!r}"
            ) from exc

    return wrapper  # type: ignore[return-value]


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class User:
    """A ConnectyCube user (``password`` is never returned by the server)."""

    id: int
    login: str | None = None
    email: str | None = None
    full_name: str | None = None
    phone: str | None = None
    website: str | None = None
    custom_data: str | None = None
    user_tags: str | None = None
    avatar: str | None = None
    external_id: str | None = None
    external_user_id: int | None = None
    facebook_id: str | None = None
    twitter_id: str | None = None
    timezone: int | None = None
    is_guest: bool | None = None
    blob_id: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_request_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    @_parsed
    def from_api(cls, data: Mapping[str, Any]) -> User:
        """Build from a server user object (bare, or wrapped as ``{"user": {...}}``)."""
        if "user" in data and isinstance(data["user"], Mapping):
            data = data["user"]
        custom = data.get("custom_data")
        if custom is not None and not isinstance(custom, str):
            custom = json.dumps(custom)
        return cls(
            id=int(data["id"]),
            login=_str(data.get("login")),
            email=_str(data.get("email")),
            full_name=_str(data.get("full_name")),
            phone=_str(data.get("phone")),
            website=_str(data.get("website")),
            custom_data=custom,
            user_tags=_str(data.get("user_tags")),
            avatar=_str(data.get("avatar")),
            external_id=_str(data.get("external_id")),
            external_user_id=_int(data.get("external_user_id")),
            facebook_id=_str(data.get("facebook_id")),
            twitter_id=_str(data.get("twitter_id")),
            timezone=_int(data.get("timezone")),
            is_guest=data.get("is_guest"),
            blob_id=_int(data.get("blob_id")),
            created_at=parse_datetime(data.get("created_at")),
            updated_at=parse_datetime(data.get("updated_at")),
            last_request_at=parse_datetime(data.get("last_request_at")),
            raw=dict(data),
        )

    @property
    def tags(self) -> list[str]:
        """``user_tags`` split into a list."""
        if not self.user_tags:
            return []
        return [t.strip() for t in self.user_tags.split(",") if t.strip()]

    @property
    def custom_data_json(self) -> dict[str, Any]:
        """``custom_data`` decoded as a JSON object, or ``{}`` when it is empty or not JSON."""
        if not self.custom_data:
            return {}
        try:
            value = json.loads(self.custom_data)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    @property
    def avatar_uid(self) -> str | None:
        """The avatar blob uid, from ``custom_data.avatar_uid`` or else ``avatar``."""
        uid = self.custom_data_json.get("avatar_uid")
        return str(uid) if uid else self.avatar


@dataclass(frozen=True)
class Session:
    """An application or user session. ``expires_at`` comes from ``CB-Token-ExpirationDate``."""

    token: str = field(repr=False)
    id: int | None = None
    application_id: int | None = None
    user_id: int | None = None
    user: User | None = None
    nonce: int | None = None
    ts: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    expires_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    @_parsed
    def from_api(cls, data: Mapping[str, Any], *, expires_at: datetime | None = None) -> Session:
        """Build from a ``{"session": {...}}`` answer or the bare session object."""
        if "session" in data and isinstance(data["session"], Mapping):
            data = data["session"]
        user_data = data.get("user")
        return cls(
            token=str(data["token"]),
            id=_int(data.get("id")),
            application_id=_int(data.get("application_id")),
            user_id=_int(data.get("user_id")),
            user=User.from_api(user_data) if isinstance(user_data, Mapping) else None,
            nonce=_int(data.get("nonce")),
            ts=_int(data.get("ts")),
            created_at=parse_datetime(data.get("created_at")),
            updated_at=parse_datetime(data.get("updated_at")),
            expires_at=expires_at,
            raw={k: v for k, v in data.items() if k != "token"},
        )

    @property
    def is_user_session(self) -> bool:
        """True when the session belongs to a user (it can write that user's data)."""
        return self.user_id is not None


#: A session created with user credentials (``user`` and ``user_id`` are set).
UserSession = Session


@dataclass(frozen=True)
class BlobObjectAccess:
    """Upload (``params``) or download (``download_url``) access for a blob."""

    id: int | None = None
    blob_id: int | None = None
    expires: datetime | None = None
    object_access_type: str | None = None
    params: str | None = field(default=None, repr=False)
    download_url: str | None = field(default=None, repr=False)

    @classmethod
    @_parsed
    def from_api(cls, data: Mapping[str, Any]) -> BlobObjectAccess:
        """Build from ``blob_object_access``."""
        return cls(
            id=_int(data.get("id")),
            blob_id=_int(data.get("blob_id")),
            expires=parse_datetime(data.get("expires")),
            object_access_type=_str(data.get("object_access_type")),
            params=_str(data.get("params")),
            download_url=_str(data.get("download_url")),
        )


@dataclass(frozen=True)
class Blob:
    """A file in ConnectyCube storage."""

    id: int
    uid: str
    content_type: str | None = None
    name: str | None = None
    size: int | None = None
    public: bool | None = None
    blob_status: str | None = None
    set_completed_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    access: BlobObjectAccess | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    @_parsed
    def from_api(cls, data: Mapping[str, Any]) -> Blob:
        """Build from ``{"blob": {...}}`` or the bare blob object."""
        if "blob" in data and isinstance(data["blob"], Mapping):
            data = data["blob"]
        access = data.get("blob_object_access")
        return cls(
            id=int(data["id"]),
            uid=str(data["uid"]),
            content_type=_str(data.get("content_type")),
            name=_str(data.get("name")),
            size=_int(data.get("size")),
            public=data.get("public"),
            blob_status=_str(data.get("blob_status")),
            set_completed_at=parse_datetime(data.get("set_completed_at")),
            created_at=parse_datetime(data.get("created_at")),
            updated_at=parse_datetime(data.get("updated_at")),
            access=BlobObjectAccess.from_api(access) if isinstance(access, Mapping) else None,
            raw=dict(data),
        )

    @property
    def is_complete(self) -> bool:
        """True once the upload was marked complete."""
        return self.blob_status == "complete" or self.set_completed_at is not None


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing. v1 routes fill ``page``/``per_page``; v2 fill ``offset``/``limit``."""

    items: list[T]
    total: int
    page: int | None = None
    per_page: int | None = None
    offset: int | None = None
    limit: int | None = None

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def has_next(self) -> bool:
        """True when more items follow this page."""
        return self.next_params() is not None

    def next_params(self) -> dict[str, int] | None:
        """The paging arguments that fetch the next page, or None on the last page."""
        if not self.items:
            return None
        if self.page is not None:
            per_page = self.per_page or len(self.items)
            if self.page * per_page >= self.total:
                return None
            return {"page": self.page + 1}
        start = self.offset or 0
        if start + len(self.items) >= self.total:
            return None
        return {"offset": start + len(self.items)}

    @classmethod
    @_parsed
    def from_v2(cls, data: Mapping[str, Any], item: Callable[[Mapping[str, Any]], T]) -> Page[T]:
        """Build from ``{"limit", "skip", "total_entries", "items": [...]}``."""
        items = [item(x) for x in data.get("items") or []]
        return cls(
            items=items,
            total=_int(data.get("total_entries")) or 0,
            offset=_int(data.get("skip")) or 0,
            limit=_int(data.get("limit")),
        )


def iterate_pages(fetch: Callable[..., Page[T]], /, **kwargs: Any) -> Iterator[T]:
    """Yield every item of a listing, fetching page after page with ``fetch(**kwargs)``."""
    seen_pages = 0
    while True:
        page = fetch(**kwargs)
        yield from page.items
        params = page.next_params()
        seen_pages += 1
        if params is None or seen_pages > 100_000:
            return
        kwargs.update(params)
