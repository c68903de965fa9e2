"""The rules of a user's writable fields: types, lengths, uniqueness, normalisation.

Shared by sign-up, update and the identity providers, so every way a user comes to exist obeys
the same rules as ``POST /users``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any, Protocol

from .models import User
from .wire import ApiError, coerce_int, coerce_str, split_list

__all__ = [
    "LOGIN_MAX",
    "LOGIN_MIN",
    "MAX_TAGS",
    "USER_STRING_FIELDS",
    "clean_user_fields",
    "guest_login",
    "normalise",
]

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


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: Fields the server trims [D users.md: "Dacia Kail " is stored as "Dacia Kail"].
_TRIMMED = frozenset({"login", "email", "full_name", "website"})


def normalise(name: str, value: str) -> str | None:
    """A field as the server stores it: trimmed, and a website with a scheme.

    [D users.md] ``"website": "pavalli.com.au"`` comes back as ``"http://pavalli.com.au"``.
    """
    if name in _TRIMMED:
        value = value.strip()
    if name == "website" and value and not _SCHEME.match(value):
        value = f"http://{value}"
    return value or None


class UserLookups(Protocol):
    """The store's unique indexes, which the uniqueness rules consult."""

    def user_by_login(self, login: str) -> User | None: ...

    def user_by_email(self, email: str) -> User | None: ...

    def user_by_external_id(self, external_id: str) -> User | None: ...


def guest_login() -> str:
    """The login the server gives a guest: ``guest_login_`` and 36 hex digits [D auth.mdx]."""
    return f"guest_login_{secrets.token_hex(18).upper()}"


def clean_user_fields(
    data: Mapping[str, Any], existing: User | None, lookups: UserLookups
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
            cleaned[name] = normalise(name, coerce_str(value, name))
        except ApiError:
            fail(name, "must be a string")

    def unique(name: str, holder: Any) -> None:
        if holder is not None and (existing is None or holder.id != existing.id):
            fail(name, "has already been taken.")

    login = cleaned.get("login")
    if login is not None:
        if len(login) < LOGIN_MIN:
            fail("login", f"is too short (minimum is {LOGIN_MIN} characters)")
        elif len(login) > LOGIN_MAX:
            fail("login", f"is too long (maximum is {LOGIN_MAX} characters)")
        else:
            unique("login", lookups.user_by_login(login))
    email = cleaned.get("email")
    if email is not None:
        if not _EMAIL.match(email) or len(email) > 255:
            fail("email", "is invalid")
        else:
            unique("email", lookups.user_by_email(email))
    external_id = cleaned.get("external_id")
    if external_id is not None:
        unique("external_id", lookups.user_by_external_id(external_id))
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
