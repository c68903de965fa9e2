"""Redaction of tokens, passwords, auth keys and secrets from every log line and error message.

Two nets: patterns catch secrets by the name they travel under (``CB-Token: ...``,
``password=...``, ``"token": "..."``), and a bounded registry catches known secret values
wherever they appear (the client registers its auth key, auth secret and every token it sees).
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict

__all__ = [
    "REDACTED",
    "RedactingFilter",
    "forget_secret",
    "log",
    "redact",
    "register_secret",
]

REDACTED = "[redacted]"

#: Names under which secrets travel on the wire or in our own messages.
SECRET_NAMES = (
    "cb-token",
    "cb-authkey",
    "token",
    "access_token",
    "auth_key",
    "auth_secret",
    "authkey",
    "password",
    "old_password",
    "signature",
    "secret",
)

_names = "|".join(re.escape(n) for n in sorted(SECRET_NAMES, key=len, reverse=True))
_PATTERNS = (
    # JSON or Python repr: "token": "abc" / 'password': 'x'
    re.compile(rf"""(?i)(["'](?:{_names})["']\s*:\s*)(["'])(?:(?!\2).)*\2"""),
    # Header lines: CB-Token: abc
    re.compile(rf"(?i)\b((?:{_names})\s*:\s*)([^\s,;]+)"),
    # Query strings and form bodies, flat or bracketed: token=abc, user[password]=x
    re.compile(rf"(?i)((?:^|[?&\s\[])(?:{_names})\]?=)([^&\s]*)"),
)

_MAX_SECRETS = 2048
_MIN_SECRET_LENGTH = 6
_secrets: OrderedDict[str, None] = OrderedDict()
_secrets_lock = threading.Lock()


def register_secret(value: object) -> None:
    """Remember a secret value so it is redacted wherever it appears (most recent 2048 kept)."""
    if not isinstance(value, str) or len(value) < _MIN_SECRET_LENGTH:
        return
    with _secrets_lock:
        _secrets[value] = None
        _secrets.move_to_end(value)
        while len(_secrets) > _MAX_SECRETS:
            _secrets.popitem(last=False)


def forget_secret(value: object) -> None:
    """Drop a value from the registry (a destroyed token)."""
    with _secrets_lock:
        _secrets.pop(value, None)  # type: ignore[call-overload]


def _pattern_sub(match: re.Match[str]) -> str:
    if match.re is _PATTERNS[0]:
        quote = match.group(2)
        return f"{match.group(1)}{quote}{REDACTED}{quote}"
    return f"{match.group(1)}{REDACTED}"


def redact(text: object) -> str:
    """Return ``str(text)`` with every known secret value and named secret replaced."""
    out = str(text)
    with _secrets_lock:
        known = list(_secrets)
    for value in known:
        if value in out:
            out = out.replace(value, REDACTED)
    for pattern in _PATTERNS:
        out = pattern.sub(_pattern_sub, out)
    return out


def log(logger: logging.Logger, level: int, message: str, *args: object) -> None:
    """Log a line through :func:`redact`: the only way the client writes to its logger."""
    if logger.isEnabledFor(level):
        logger.log(level, redact(message % args if args else message))


class RedactingFilter(logging.Filter):
    """A logging filter that redacts a record's final message; attach it to any handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True
