"""Every date format of the wire, in one place: those the emulator writes and those it reads.

Written: ISO 8601 with a ``Z`` in bodies, the ``CB-Token-ExpirationDate`` header's own format,
and HTTP dates (the ``Date`` header when the clock is moved, the upload form's ``Expires``).

Read, in user filters: [D users.md] v2 date filters take "date (string or timestamp)"
(``2019-11-06T09:21:41Z``, ``1690886495``); v1 ``date`` filters take ``yyyy-mm-dd`` or
``yyyy.mm.dd``. [S] The JS SDK passes the caller's value through its query serializer, which
writes a ``Date`` with ``String(date)`` (``Wed Nov 06 2019 09:21:41 GMT+0000 (Coordinated
Universal Time)``) and an ISO string from ``toISOString()`` with milliseconds. Which of these the
real server parses beyond the documented ones is not known; accepting them all is inferred.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from email.utils import formatdate, parsedate_to_datetime

from .wire import ApiError

__all__ = ["expiry_header", "http_date", "iso", "parse_filter_date"]

#: A Unix time above this is in milliseconds (``Date.now()``), not seconds.
_MILLISECONDS_FROM = 10**11
_DOTTED = re.compile(r"^(\d{4})\.(\d{2})\.(\d{2})$")
_JS_DATE_STRING = re.compile(
    r"^[A-Za-z]{3} ([A-Za-z]{3}) (\d{1,2}) (\d{4}) (\d{2}:\d{2}:\d{2}) GMT([+-]\d{4})(?: \(.*\))?$"
)


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 UTC with a ``Z``, the format of every date in ConnectyCube's bodies."""
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def expiry_header(moment: datetime) -> str:
    """The ``CB-Token-ExpirationDate`` format, which differs from the body dates."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def http_date(moment: datetime) -> str:
    """An HTTP date (``Sun, 06 Nov 1994 08:49:37 GMT``)."""
    return formatdate(moment.timestamp(), usegmt=True)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _parse(text: str) -> datetime | None:
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds = float(text)
        if seconds >= _MILLISECONDS_FROM:
            seconds /= 1000
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    dotted = _DOTTED.match(text)
    if dotted:
        text = "-".join(dotted.groups())
    try:
        return _utc(datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00")))
    except ValueError:
        pass
    js = _JS_DATE_STRING.match(text)
    if js:
        month, day, year, clock, offset = js.groups()
        return datetime.strptime(f"{month} {day} {year} {clock} {offset}", "%b %d %Y %H:%M:%S %z")
    try:
        return _utc(parsedate_to_datetime(text))  # Date.toUTCString(), RFC 2822
    except (TypeError, ValueError, IndexError):
        return None


def parse_filter_date(value: object, name: str) -> datetime:
    """A filter's date; 422 naming the filter when the value is none of the known forms."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ApiError.field(name, f"has an invalid date: {value!r}")
    try:
        parsed = _parse(str(value).strip())
    except (ValueError, OverflowError, OSError):
        parsed = None
    if parsed is None:
        raise ApiError.field(name, f"has an invalid date: {value!r}")
    return parsed
