"""System checks with stable ids, so a misconfiguration shows up in ``manage.py check``.

Ids are part of the public interface (users silence them with ``SILENCED_SYSTEM_CHECKS``); never
renumber one.

- ``connectycube.E001``: a required credential is missing.
- ``connectycube.E002``: a setting has a value of the wrong type (or cannot be imported).
- ``connectycube.W001``: the API URL is not https while ``DEBUG`` is off (loopback hosts, such
  as the built-in emulator, are exempt).
- ``connectycube.W002``: no Celery app is configured, so sync tasks have nowhere to run.
- ``connectycube.W003``: the ``CONNECTYCUBE`` dict has a key the app does not know (a typo, or
  a setting earlier versions had: the hint then says what replaced it).
- ``connectycube.W006``: Firebase phone login is configured without ``FIREBASE_PROJECT_ID``.
- ``connectycube.E011``: ``AVATAR_FIELD`` names a user field that is not a file field.
- ``connectycube.W007``: ``LEASE_SECONDS`` is too short for one slow request
  (:mod:`.retry_checks`, with the types of the retry and circuit-breaker settings).
- ``connectycube.W012``: a protection every process must share sits in a per-process or
  non-atomic cache (:mod:`.security_checks`).
- ``connectycube.E003``: ``FIREBASE_PHONE_LOOKUP`` names a plain profile field nobody vouched
  for as holding verified numbers only (``FIREBASE_PHONE_FIELD_VERIFIED``).

The checks of a project's wiring around the app (URLs, broker, beat) are in
:mod:`.setup_checks`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import FieldDoesNotExist
from django.db.models import FileField
from django.utils.module_loading import import_string

from django_connectycube.checks.celery import configured_celery_app
from django_connectycube.conf import (
    DEFAULTS,
    REMOVED,
    REQUIRED,
    ConfigurationError,
    app_settings,
)

CHECK_TAG = "connectycube"


def _hint(name: str) -> str:
    return f'Add "{name}" to the CONNECTYCUBE dict in your settings.'


@register(Tags.compatibility, CHECK_TAG)
def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Report missing credentials, wrong types and unknown keys in ``CONNECTYCUBE``."""
    try:
        app_settings.reload()
        unknown = app_settings.unknown_keys()
    except ConfigurationError as exc:
        return [Error(str(exc), id="connectycube.E002", hint="Use a dict.")]

    messages: list[CheckMessage] = []
    for name in sorted(REQUIRED):
        if app_settings.get(name) in (None, ""):
            messages.append(
                Error(
                    f'CONNECTYCUBE["{name}"] is not set.',
                    hint=_hint(name) + " Find it in the ConnectyCube dashboard (Overview).",
                    id="connectycube.E001",
                )
            )

    app_id = app_settings.get("APPLICATION_ID")
    if app_id not in (None, "") and not str(app_id).isdigit():
        messages.append(
            Error(
                f'CONNECTYCUBE["APPLICATION_ID"] must be a positive integer, got {app_id!r}.',
                id="connectycube.E002",
            )
        )
    api_url = app_settings.get("API_URL")
    parts = urlsplit(api_url) if isinstance(api_url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        messages.append(
            Error(
                f'CONNECTYCUBE["API_URL"] must be an http(s) URL, got {api_url!r}.',
                hint=f'The production value is "{DEFAULTS["API_URL"]}".',
                id="connectycube.E002",
            )
        )
    elif parts.scheme != "https" and not settings.DEBUG and not _is_loopback(parts.hostname):
        messages.append(
            Warning(
                f'CONNECTYCUBE["API_URL"] ({api_url}) is not https while DEBUG is off: '
                "tokens and passwords would cross the network in clear text.",
                hint=f'Use "{DEFAULTS["API_URL"]}" or another https URL.',
                id="connectycube.W001",
            )
        )

    messages.extend(_check_values())

    for name in unknown:
        messages.append(_w003(name))
    return messages


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


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _e002(name: str, problem: str, hint: str | None = None) -> Error:
    return Error(f'CONNECTYCUBE["{name}"] {problem}', hint=hint, id="connectycube.E002")


def _check_values() -> list[CheckMessage]:
    """Type checks for the keys that would otherwise fail deep inside a task or a request."""
    messages: list[CheckMessage] = []
    timeout = app_settings.get("TIMEOUT")
    pair = isinstance(timeout, list | tuple) and len(timeout) == 2
    if not (_is_number(timeout) or (pair and all(_is_number(t) for t in timeout))):
        messages.append(
            _e002("TIMEOUT", f"must be seconds or a (connect, read) pair, got {timeout!r}.")
        )
    for name in ("RETRIES", "LEASE_SECONDS", "SWEEP_AFTER"):
        value = app_settings.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            messages.append(_e002(name, f"must be a non-negative integer, got {value!r}."))
    if not _is_number(app_settings.get("MAX_RETRY_WAIT")):
        problem = f"must be a non-negative number, got {app_settings.get('MAX_RETRY_WAIT')!r}."
        messages.append(_e002("MAX_RETRY_WAIT", problem))
    enqueue = app_settings.get("ENQUEUE")
    if enqueue not in ("background", "immediate"):
        messages.append(_e002("ENQUEUE", f'must be "background" or "immediate", got {enqueue!r}.'))
    try:
        app_settings.reload()
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
            _e002(
                "PASSWORD_SECRETS",
                "must map integer versions to non-empty secrets.",
                'e.g. {1: env("CUBE_PASSWORD_SECRET")}; never remove a version still in use.',
            )
        )
    admin_key = app_settings.get("ADMIN_API_KEY")
    if admin_key is not None and (not isinstance(admin_key, str) or not admin_key.strip()):
        messages.append(
            _e002(
                "ADMIN_API_KEY",
                f"must be a non-empty string or None, got {type(admin_key).__name__}.",
                "Copy the key from the ConnectyCube dashboard (Overview → Administration API "
                "Credentials), or leave the setting out.",
            )
        )
    keys = app_settings.get("TOKEN_KEYS")
    if keys is not None and (isinstance(keys, str | bytes) or not keys):
        messages.append(_e002("TOKEN_KEYS", "must be a non-empty list of keys, newest first."))
    messages.extend(_check_avatar_field())
    messages.extend(_check_identity())
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
    verified = app_settings.get("FIREBASE_PHONE_FIELD_VERIFIED")
    if not isinstance(verified, bool):
        messages.append(
            _e002("FIREBASE_PHONE_FIELD_VERIFIED", f"must be True or False, got {verified!r}.")
        )
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
                    "phone login is refused (a token of any other project proves nothing).",
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
        return [_e002("AVATAR_FIELD", f"must be a field name or a callable, got {source!r}.")]
    if "." in source:
        try:
            import_string(source)
        except ImportError as exc:
            return [_e002("AVATAR_FIELD", f"= {source!r} could not be imported: {exc}")]
        return []
    model = get_user_model()
    try:
        field = model._meta.get_field(source)
    except FieldDoesNotExist:
        return [
            _e002(
                "AVATAR_FIELD",
                f"names {source!r}, which is not a field of {model._meta.label}.",
                "Name a FileField/ImageField of the user model, or give a dotted path to a "
                "callable(user) returning a file.",
            )
        ]
    if not isinstance(field, FileField):
        return [
            Error(
                f'CONNECTYCUBE["AVATAR_FIELD"] names {model._meta.label}.{source}, a '
                f"{type(field).__name__}, not a file field: no avatar would ever be uploaded.",
                hint="Name a FileField/ImageField of the user model, give a dotted path to a "
                "callable(user) returning a file, or leave AVATAR_FIELD out (no avatars).",
                id="connectycube.E011",
            )
        ]
    return []


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@register(Tags.compatibility, CHECK_TAG)
def check_celery(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Warn when only Celery's implicit fallback app exists: tasks would never reach a worker."""
    if configured_celery_app() is None:
        return [
            Warning(
                "No Celery app is configured, so user changes cannot be pushed to ConnectyCube "
                "in the background.",
                hint=(
                    "Create a Celery app in your project (proj/celery.py) and import it in "
                    "proj/__init__.py, as in Celery's 'First steps with Django' guide."
                ),
                id="connectycube.W002",
            )
        ]
    return []
