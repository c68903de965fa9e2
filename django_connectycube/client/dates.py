"""Every date the client reads from ConnectyCube: in bodies, in ``CB-Token-ExpirationDate`` and
in the HTTP-date headers (``Date``, ``Retry-After``).

One parser per format, each answering None for anything unreadable: a malformed date from the
server is never an exception in the middle of a call.
"""

from __future__ import annotations

import email.utils
import functools
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests

__all__ = ["parse_datetime", "parse_expiration_header", "parse_http_date", "response_date"]


def parse_datetime(value: Any) -> datetime | None:
    """Parse the API's ISO 8601 UTC dates (``2018-12-05T11:58:02Z``, milliseconds allowed)."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    text = str(value).strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def parse_expiration_header(value: str | None) -> datetime | None:
    """Parse ``CB-Token-ExpirationDate: YYYY-MM-DD HH:MM:SS UTC`` (ISO 8601 accepted too)."""
    if not value:
        return None
    return _parse_expiration(str(value))


# Every answer of an application session carries both headers, and many answers within a
# second carry the same text: remembering recent texts spares parsing them again.
@functools.lru_cache(maxsize=128)
def _parse_expiration(value: str) -> datetime | None:
    text = value.strip()
    if text.upper().endswith("UTC"):
        text = text[:-3].strip()
    # ``fromisoformat`` first: a fraction of ``strptime``'s cost, and no lock shared by threads.
    parsed = parse_datetime(text)
    if parsed is not None:
        return parsed
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP date (RFC 9110: ``Sun, 06 Nov 1994 08:49:37 GMT``, or the obsolete forms), aware;
    a date without a zone is taken as UTC, as HTTP dates always are."""
    if not value or not str(value).strip():
        return None
    return _parse_http_date(str(value).strip())


@functools.lru_cache(maxsize=128)
def _parse_http_date(text: str) -> datetime | None:
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def response_date(response: requests.Response | None) -> datetime | None:
    """The server's clock when it answered: the response's ``Date`` header, if readable."""
    if response is None:
        return None
    return parse_http_date(response.headers.get("Date"))
