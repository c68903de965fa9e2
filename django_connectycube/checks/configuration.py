"""System checks of the ``CONNECTYCUBE`` settings and the URLs the app needs, with stable ids.

Ids are public (projects silence them in ``SILENCED_SYSTEM_CHECKS``; the README lists them):
never renumber one. The shared helpers here (``e002``, the type rules) serve every check module,
so one wrong value reads the same wherever it is found.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import FieldDoesNotExist
from django.db.models import FileField
from django.urls import NoReverseMatch, reverse
from django.utils.module_loading import import_string

from django_connectycube.conf import (
    DEFAULTS,
    REMOVED,
    REQUIRED,
    ConfigurationError,
    app_settings,
)

CHECK_TAG = "connectycube"

#: A setting's test and what the message says it must be.
Rule = tuple[Callable[[Any], bool], str]


def _number(*, integer: bool = False, positive: bool = False) -> Callable[[Any], bool]:
    kinds = int if integer else (int, float)

    def valid(value: Any) -> bool:
        if not isinstance(value, kinds) or isinstance(value, bool):
            return False
        return value > 0 if positive else value >= 0

    return valid


NUMBER: Rule = (_number(), "a non-negative number")
POSITIVE_NUMBER: Rule = (_number(positive=True), "a positive number (seconds)")
INTEGER: Rule = (_number(integer=True), "a non-negative integer")
POSITIVE_INTEGER: Rule = (_number(integer=True, positive=True), "a positive integer")
CACHE_ALIAS: Rule = (
    lambda value: isinstance(value, str) and value in getattr(settings, "CACHES", {}),
    "an alias in settings.CACHES",
)


def e002(name: str, problem: str, hint: str | None = None) -> Error:
    return Error(f'CONNECTYCUBE["{name}"] {problem}', hint=hint, id="connectycube.E002")


def type_errors(rules: Mapping[str, Rule]) -> list[CheckMessage]:
    """One ``E002`` per setting whose value its rule refuses."""
    messages: list[CheckMessage] = []
    for name, (valid, expected) in rules.items():
        value = app_settings.get(name)
        if not valid(value):
            messages.append(e002(name, f"must be {expected}, got {value!r}."))
    return messages


def readable() -> bool:
    """Whether ``CONNECTYCUBE`` can be read at all (``check_settings`` says why when not)."""
    try:
        app_settings.reload()
        app_settings.unknown_keys()
    except ConfigurationError:
        return False
    return True


def missing_credentials() -> list[str]:
    """The required credentials that are not set, for ``E001`` and the doctor alike."""
    return [name for name in sorted(REQUIRED) if app_settings.get(name) in (None, "")]


VALUE_RULES: dict[str, Rule] = {
    "RETRIES": INTEGER,
    "LEASE_SECONDS": INTEGER,
    "SWEEP_AFTER": INTEGER,
    "MAX_RETRY_WAIT": NUMBER,
    "FIREBASE_PHONE_FIELD_VERIFIED": (lambda v: isinstance(v, bool), "True or False"),
}


@register(Tags.compatibility, CHECK_TAG)
def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Missing credentials (``E001``), unusable values (``E002``, ``E003``, ``E011``), a clear-text
    API URL (``W001``), Firebase without its project (``W006``) and unknown keys (``W003``)."""
    try:
        app_settings.reload()
        unknown = app_settings.unknown_keys()
    except ConfigurationError as exc:
        return [Error(str(exc), id="connectycube.E002", hint="Use a dict.")]

    messages: list[CheckMessage] = [
        Error(
            f'CONNECTYCUBE["{name}"] is not set.',
            hint=f'Add "{name}" to the CONNECTYCUBE dict from the ConnectyCube dashboard '
            "(Overview).",
            id="connectycube.E001",
        )
        for name in missing_credentials()
    ]
    app_id = app_settings.get("APPLICATION_ID")
    if app_id not in (None, "") and not str(app_id).isdigit():
        messages.append(e002("APPLICATION_ID", f"must be a positive integer, got {app_id!r}."))
    messages.extend(_check_api_url())
    messages.extend(type_errors(VALUE_RULES))
    messages.extend(_check_values())
    messages.extend(_check_avatar_field())
    messages.extend(_check_identity())

    for name in unknown:
        messages.append(_w003(name))
    return messages


def _check_api_url() -> list[CheckMessage]:
    api_url = app_settings.get("API_URL")
    parts = urlsplit(api_url) if isinstance(api_url, str) else None
    production = DEFAULTS["API_URL"]
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return [
            e002("API_URL", f"must be an http(s) URL, got {api_url!r}.", f'e.g. "{production}".')
        ]
    if parts.scheme == "https" or settings.DEBUG or _is_loopback(parts.hostname):
        return []
    return [
        Warning(
            f'CONNECTYCUBE["API_URL"] ({api_url}) is not https while DEBUG is off: tokens and '
            "passwords would cross the network in clear text.",
            hint=f'Use "{production}" or another https URL.',
            id="connectycube.W001",
        )
    ]


def _w003(name: str) -> Warning:
    """An unknown key: a setting earlier versions had (and what replaced it), or a typo."""
    if name in REMOVED:
        return Warning(
            f'CONNECTYCUBE["{name}"] is no longer a setting of django-connectycube and is ignored.',
            hint=f"{REMOVED[name][0].upper()}{REMOVED[name][1:]}; remove it from CONNECTYCUBE.",
            id="connectycube.W003",
        )
    return Warning(
        f'CONNECTYCUBE["{name}"] is not a setting of django-connectycube and is ignored.',
        hint="Check the spelling against the settings table in the README.",
        id="connectycube.W003",
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_values() -> list[CheckMessage]:
    """The keys whose shape is more than a type: they would fail deep inside a task or request."""
    messages: list[CheckMessage] = []
    timeout = app_settings.get("TIMEOUT")
    is_seconds = NUMBER[0]
    pair = isinstance(timeout, list | tuple) and len(timeout) == 2
    if not (is_seconds(timeout) or (pair and all(is_seconds(t) for t in timeout))):
        messages.append(
            e002("TIMEOUT", f"must be seconds or a (connect, read) pair, got {timeout!r}.")
        )
    enqueue = app_settings.get("ENQUEUE")
    if enqueue not in ("background", "immediate"):
        messages.append(e002("ENQUEUE", f'must be "background" or "immediate", got {enqueue!r}.'))
    try:
        app_settings.USER_FIELDS  # noqa: B018  (imports the dotted path)
    except ConfigurationError as exc:
        messages.append(Error(str(exc), id="connectycube.E002"))
    secrets = app_settings.get("PASSWORD_SECRETS")
    if secrets is not None and (
        not isinstance(secrets, dict)
        or not secrets
        or not all(str(k).isdigit() and isinstance(v, str) and v for k, v in secrets.items())
    ):
        messages.append(
            e002(
                "PASSWORD_SECRETS",
                "must map integer versions to non-empty secrets.",
                'e.g. {1: env("CUBE_PASSWORD_SECRET")}; never remove a version still in use.',
            )
        )
    admin_key = app_settings.get("ADMIN_API_KEY")
    if admin_key is not None and (not isinstance(admin_key, str) or not admin_key.strip()):
        messages.append(
            e002(
                "ADMIN_API_KEY",
                f"must be a non-empty string or None, got {type(admin_key).__name__}.",
                "Copy it from the dashboard (Overview → Administration API Credentials), or "
                "leave it out.",
            )
        )
    keys = app_settings.get("TOKEN_KEYS")
    if keys is not None and (isinstance(keys, str | bytes) or not keys):
        messages.append(e002("TOKEN_KEYS", "must be a non-empty list of keys, newest first."))
    return messages


def _check_identity() -> list[CheckMessage]:
    """The external-id prefix, and the source Firebase phone logins trust."""
    from django_connectycube.models import identity
    from django_connectycube.sessions import firebase

    messages: list[CheckMessage] = []
    try:
        identity.external_id_prefix()
    except ConfigurationError as exc:
        messages.append(Error(str(exc), hint='e.g. "prod" and "staging"', id="connectycube.E002"))
    try:
        lookup = firebase.phone_lookup()
    except firebase.UnverifiedPhoneField as exc:
        messages.append(
            Error(
                str(exc),
                hint="See the README, 'Identity and passwords': Firebase phone login.",
                id="connectycube.E003",
            )
        )
    except ConfigurationError as exc:
        messages.append(Error(str(exc), id="connectycube.E002"))
    else:
        if lookup is not None and not app_settings.get("FIREBASE_PROJECT_ID"):
            messages.append(
                Warning(
                    "FIREBASE_PHONE_LOOKUP is set but FIREBASE_PROJECT_ID is not: every Firebase "
                    "phone login is refused (another project's token proves nothing).",
                    hint="Set FIREBASE_PROJECT_ID to your Firebase project's id.",
                    id="connectycube.W006",
                )
            )
    return messages


def _check_avatar_field() -> list[CheckMessage]:
    from django.contrib.auth import get_user_model

    source = app_settings.get("AVATAR_FIELD")
    if not source or callable(source):
        return []
    if not isinstance(source, str):
        return [e002("AVATAR_FIELD", f"must be a field name or a callable, got {source!r}.")]
    if "." in source:
        try:
            import_string(source)
        except ImportError as exc:
            return [e002("AVATAR_FIELD", f"= {source!r} could not be imported: {exc}")]
        return []
    model = get_user_model()
    hint = (
        "Name a FileField/ImageField of the user model, a dotted path to a callable(user) "
        "returning a file, or leave AVATAR_FIELD out."
    )
    try:
        field = model._meta.get_field(source)
    except FieldDoesNotExist:
        return [
            e002("AVATAR_FIELD", f"names {source!r}, not a field of {model._meta.label}.", hint)
        ]
    if isinstance(field, FileField):
        return []
    return [
        Error(
            f'CONNECTYCUBE["AVATAR_FIELD"] names {model._meta.label}.{source}, a '
            f"{type(field).__name__}, not a file field: no avatar would ever be uploaded.",
            hint=hint,
            id="connectycube.E011",
        )
    ]


def reverses(name: str, **kwargs: Any) -> bool:
    try:
        reverse(name, kwargs=kwargs or None)
    except NoReverseMatch:
        return False
    return True


#: The URL name Django's reset e-mail template links to.
RESET_CONFIRM_URL = "password_reset_confirm"


@register(Tags.urls, CHECK_TAG)
def check_password_reset_urls(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """``W010``: the reset e-mail's link must be buildable, or the worker fails unseen."""
    if not reverses("connectycube:password-reset") or not readable():
        return []  # the API is not mounted (nothing sends reset e-mails), or E002 says why
    options = app_settings.get("PASSWORD_RESET_OPTIONS") or {}
    if isinstance(options, dict) and options.get("email_template_name"):
        return []  # the project's own template decides where the link points
    if reverses(RESET_CONFIRM_URL, uidb64="MQ", token="set-password"):  # noqa: S106
        return []
    return [
        Warning(
            f"The API's password reset is mounted, but {RESET_CONFIRM_URL!r}, which Django's "
            "reset e-mail links to, cannot be reversed: resets answer 202 and send no e-mail.",
            hint="Mount Django's PasswordResetConfirmView as password_reset_confirm (and "
            "PasswordResetCompleteView as password_reset_complete), as the README's Quickstart "
            'does, or set CONNECTYCUBE["PASSWORD_RESET_OPTIONS"]["email_template_name"].',
            id="connectycube.W010",
        )
    ]
