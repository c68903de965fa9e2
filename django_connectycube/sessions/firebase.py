"""Where a Firebase-verified phone number finds its local user, and why that source is trusted.

Firebase proves that the person logging in holds a phone number; the login then hands them the
account of the local user *with that number*. If the number came from a profile field any user
can type into, an attacker who types in a victim's number receives the victim's next Firebase
login (or the victim receives the attacker's account). So ``FIREBASE_PHONE_LOOKUP`` must name a
source the integrator vouches for:

* a callable ``phone -> user or None`` (or its dotted path) that reads only verified numbers, or
* a user model field that only ever holds verified numbers, declared so with
  ``FIREBASE_PHONE_FIELD_VERIFIED = True``.

A plain field without that declaration is refused: by the system check ``connectycube.E003``, and
at login time with a 403 (``firebase_phone_disabled``). ``None`` (the default) switches Firebase
phone login off.

The number itself comes from the Firebase ID token ConnectyCube has just accepted (its
``phone_number`` claim, see :func:`phone_claims`), never from the ``phone`` of the ConnectyCube
user that comes back with the session: any user may edit that field with their own token.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.utils.module_loading import import_string

from django_connectycube.conf import ConfigurationError, app_settings

__all__ = [
    "InvalidFirebaseToken",
    "PhoneClaims",
    "PhoneLookup",
    "UnverifiedPhoneField",
    "phone_claims",
    "phone_lookup",
]

PhoneLookup = Callable[[str], Any]
SETTING = 'CONNECTYCUBE["FIREBASE_PHONE_LOOKUP"]'


class UnverifiedPhoneField(ConfigurationError):
    """The phone look-up names a plain profile field nobody vouched for."""


def phone_lookup() -> PhoneLookup | str | None:
    """The configured source: a callable, a verified field name, or None when login is off.

    Raises :class:`~.conf.ConfigurationError` (``UnverifiedPhoneField`` for an unvouched field)
    with a message naming the setting to fix.
    """
    lookup = app_settings.get("FIREBASE_PHONE_LOOKUP")
    if lookup in (None, ""):
        return None
    if callable(lookup):
        return lookup
    if not isinstance(lookup, str):
        raise ConfigurationError(
            f"{SETTING} must be a dotted path to a callable(phone), a user model field name, or "
            f"None, got {lookup!r}."
        )
    if "." in lookup:
        try:
            func = import_string(lookup)
        except ImportError as exc:
            problem = f"{SETTING} = {lookup!r} could not be imported: {exc}"
            raise ConfigurationError(problem) from exc
        if not callable(func):
            raise ConfigurationError(f"{SETTING} = {lookup!r} is not callable.")
        return func
    model = get_user_model()
    try:
        model._meta.get_field(lookup)
    except FieldDoesNotExist as exc:
        raise ConfigurationError(
            f"{SETTING} = {lookup!r} is not a field of {model._meta.label}; name the phone field "
            "or give a dotted path to a callable(phone)."
        ) from exc
    if app_settings.get("FIREBASE_PHONE_FIELD_VERIFIED") is not True:
        raise UnverifiedPhoneField(
            f"{SETTING} = {lookup!r} names a plain field of {model._meta.label}, and nothing says "
            "it holds only verified numbers: anyone who can type a victim's number into it would "
            "receive the victim's Firebase login. Point the setting at a callable(phone) that "
            'reads verified numbers only, or set CONNECTYCUBE["FIREBASE_PHONE_FIELD_VERIFIED"] '
            "= True if your project only ever stores numbers the user has proven in that field."
        )
    return lookup


class InvalidFirebaseToken(ValueError):
    """A token that cannot prove a phone number to this site; the message says why."""


@dataclass(frozen=True)
class PhoneClaims:
    """What a Firebase ID token says about its holder: the Firebase uid and the phone."""

    uid: str
    phone_number: str


def _payload(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3 or not parts[1]:
        raise InvalidFirebaseToken("it is not a JSON Web Token")
    text = parts[1]
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        claims = json.loads(raw)
    except (binascii.Error, ValueError) as exc:  # UnicodeDecodeError is a ValueError too
        raise InvalidFirebaseToken("its payload is not base64url JSON") from exc
    if not isinstance(claims, dict):
        raise InvalidFirebaseToken("its payload is not a JSON object")
    return claims


def phone_claims(token: str, project_id: str, *, now: float | None = None) -> PhoneClaims:
    """The phone number a Firebase ID token of ``project_id`` stands for.

    The signature is not checked here because the claims only count once ConnectyCube has
    accepted this very token, and ConnectyCube checks it against Google's keys before it does.
    What ConnectyCube's answer does not give is a number nobody could have typed in: the
    ``phone`` of the user it returns is editable by that user. So the number is read from the
    token, and the audience and issuer are checked here, since a token of any other Firebase
    project proves nothing (anyone can mint one, with test numbers, for any number).

    Raises :class:`InvalidFirebaseToken` for a malformed token, another project's, an expired
    one, or one without a subject or a phone number.
    """
    claims = _payload(token)
    if claims.get("aud") != project_id:
        raise InvalidFirebaseToken("its audience is not this site's Firebase project")
    if claims.get("iss") != f"https://securetoken.google.com/{project_id}":
        raise InvalidFirebaseToken("its issuer is not this site's Firebase project")
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        raise InvalidFirebaseToken("it has no expiry")
    if exp <= (time.time() if now is None else now):
        raise InvalidFirebaseToken("it has expired")
    uid, phone = claims.get("sub"), claims.get("phone_number")
    if not isinstance(uid, str) or not uid:
        raise InvalidFirebaseToken("it names no Firebase user")
    if not isinstance(phone, str) or not phone.strip():
        raise InvalidFirebaseToken("it carries no phone number")
    return PhoneClaims(uid=uid, phone_number=phone.strip())
