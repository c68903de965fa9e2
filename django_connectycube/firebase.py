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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.utils.module_loading import import_string

from .conf import ConfigurationError, app_settings

__all__ = ["PhoneLookup", "UnverifiedPhoneField", "phone_lookup"]

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
        return lookup  # type: ignore[no-any-return]
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
        return func  # type: ignore[no-any-return]
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
