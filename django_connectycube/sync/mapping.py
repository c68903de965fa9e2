"""What a local user looks like on ConnectyCube, and the password it logs in with.

The mapping is a callable ``user -> dict`` of ConnectyCube user fields, replaceable with
``CONNECTYCUBE["USER_FIELDS"] = "myproject.cube.user_fields"``. A save only triggers a push when a
field the mapping reads changed; a callable declares those fields with :func:`reads` (without the
declaration every save of the user triggers a push, and unchanged results are not sent anyway).

Passwords are derived, never stored: ``HMAC-SHA256(secret, "<application id>:<external id>")``
under a numbered secret from ``CONNECTYCUBE["PASSWORD_SECRETS"]``, so rotating a secret means
adding a new number; the version a remote user was created with is kept on its ``CubeUser`` row.
The external id is the link's (:mod:`.identity`): minted per link, or the primary key for links
made before minting, so those users' passwords never changed.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.conf import settings
from django.db import models

from django_connectycube.conf import ConfigurationError, app_settings

__all__ = [
    "LOGIN_MAX",
    "LOGIN_MIN",
    "current_password_version",
    "default_user_fields",
    "derive_login",
    "derive_password",
    "fields_digest",
    "get_user_fields",
    "reads",
    "trigger_fields",
]

LOGIN_MIN, LOGIN_MAX = 3, 70
_LOGIN_FORBIDDEN = re.compile(r"[^A-Za-z0-9_.@+\-]")

F = TypeVar("F", bound=Callable[..., Any])


def reads(*field_names: str) -> Callable[[F], F]:
    """Declare the local fields a mapping callable reads, so other saves don't trigger a push."""

    def decorate(func: F) -> F:
        func.trigger_fields = frozenset(field_names)  # type: ignore[attr-defined]
        return func

    return decorate


def derive_login(user: models.Model) -> str:
    """A ConnectyCube login from the username: kept as is when valid, else made valid and unique.

    A username of 3 to 70 allowed characters is used unchanged (it is unique locally, so
    it is unique remotely). Anything else is transliterated, cut, and given a suffix from the pk so
    two local users can never map to one login.
    """
    raw = str(user.get_username() or "")  # type: ignore[attr-defined]
    ascii_only = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode("ascii")
    login = _LOGIN_FORBIDDEN.sub("_", ascii_only)
    if login == raw and LOGIN_MIN <= len(login) <= LOGIN_MAX:
        return login
    suffix = "-" + hashlib.sha256(str(user.pk).encode()).hexdigest()[:8]
    return (login[: LOGIN_MAX - len(suffix)] or "user") + suffix


def _field_names(model: type[models.Model]) -> set[str]:
    return {f.name for f in model._meta.concrete_fields}


def _default_sources(model: type[models.Model]) -> frozenset[str]:
    names = _field_names(model)
    wanted = {
        getattr(model, "USERNAME_FIELD", "username"),
        getattr(model, "EMAIL_FIELD", "email"),
        "first_name",
        "last_name",
        "full_name",
        "name",
        "phone",
        "website",
        "tags",
    }
    return frozenset(names & wanted)


def default_user_fields(user: models.Model) -> dict[str, Any]:
    """Login, e-mail, full name, and phone/website/tags when the user model has them."""
    model = type(user)
    names = _field_names(model)
    fields: dict[str, Any] = {"login": derive_login(user)}
    email_field = model.get_email_field_name() if hasattr(model, "get_email_field_name") else ""
    email = getattr(user, email_field, "") if email_field in names else ""
    if email:
        fields["email"] = email
    full_name = ""
    if callable(getattr(user, "get_full_name", None)):
        full_name = user.get_full_name() or ""  # type: ignore[attr-defined]
    elif "full_name" in names or "name" in names:
        full_name = getattr(user, "full_name", None) or getattr(user, "name", "") or ""
    fields["full_name"] = full_name.strip()
    for name in ("phone", "website"):
        if name in names:
            fields[name] = getattr(user, name) or ""
    if "tags" in names:
        tags = user.tags or []  # type: ignore[attr-defined]  # a custom user model's
        if isinstance(tags, str):
            tags = [t.strip() for t in tags.split(",")]
        fields["tag_list"] = ",".join(t for t in tags if t)
    return fields


default_user_fields.trigger_fields = None  # type: ignore[attr-defined]  # derived per model


def mapper() -> Callable[[models.Model], dict[str, Any]]:
    """The configured mapping callable."""
    func = app_settings.USER_FIELDS
    if not callable(func):
        raise ConfigurationError(
            f'CONNECTYCUBE["USER_FIELDS"] must be a callable or a dotted path to one, got {func!r}.'
        )
    return func


def get_user_fields(user: models.Model, external_id: str | None = None) -> dict[str, Any]:
    """The remote fields for one user, with ``external_id`` always the one its link minted.

    Pass the link's ``external_id`` when you hold the link; otherwise it is read from the
    user's link (and left out when the user has none yet). Never the bare pk: that would let
    anyone who can count claim the next user's identity.
    """
    fields = dict(mapper()(user))
    if external_id is None:
        from django_connectycube.models import CubeUser

        external_id = (
            CubeUser.objects.filter(user_id=user.pk).values_list("external_id", flat=True).first()
        )
    if external_id is None:
        fields.pop("external_id", None)
    else:
        fields["external_id"] = str(external_id)
    return fields


_triggers: dict[tuple[Any, ...], frozenset[str] | None] = {}


def trigger_fields(model: type[models.Model]) -> frozenset[str] | None:
    """Local field names whose change needs a push; ``None`` means any save may need one."""
    func = mapper()
    avatar = app_settings.AVATAR_FIELD
    key = (model, func, avatar if isinstance(avatar, str) else None)
    try:
        return _triggers[key]  # asked on every save with update_fields (e.g. each login)
    except (KeyError, TypeError):
        pass
    declared = getattr(func, "trigger_fields", None)
    if func is default_user_fields:
        declared = _default_sources(model)
    if declared is not None and isinstance(avatar, str) and avatar:
        declared = frozenset(declared) | {avatar}
    result = frozenset(declared) if declared is not None else None
    with contextlib.suppress(TypeError):  # an unhashable mapping callable: just don't cache
        _triggers[key] = result
    return result


def needs_push(model: type[models.Model], update_fields: Iterable[str] | None) -> bool:
    """Whether a save with these ``update_fields`` can change what ConnectyCube has."""
    if update_fields is None:
        return True
    fields = trigger_fields(model)
    return fields is None or bool(fields & set(update_fields))


def fields_digest(fields: dict[str, Any]) -> str:
    """A stable hash of mapped fields, so an unchanged user costs no remote call."""
    encoded = json.dumps(fields, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def _password_secrets() -> dict[int, str]:
    configured = app_settings.PASSWORD_SECRETS
    if not configured:
        return {1: settings.SECRET_KEY}
    try:
        return {int(version): str(secret) for version, secret in dict(configured).items()}
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            'CONNECTYCUBE["PASSWORD_SECRETS"] must map integer versions to secrets, '
            'e.g. {1: "old secret", 2: "new secret"}.'
        ) from exc


def current_password_version() -> int:
    """The newest password version: new remote users are created with it."""
    return max(_password_secrets())


def _hmac_password(secret: str, external_id: Any) -> str:
    message = f"{app_settings.APPLICATION_ID}:{external_id}".encode()
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:32]


#: The version recorded for a password derived from a key in ``SECRET_KEY_FALLBACKS`` (only
#: with the default secret): an older ``SECRET_KEY``, never the current one.
FALLBACK_KEY_VERSION = 0


def password_candidates(external_id: Any, version: int | None = None) -> list[tuple[int, str]]:
    """Passwords the remote user may have, most likely first: the recorded version, then the
    other configured versions, then (with the default secret) ``SECRET_KEY_FALLBACKS``, labelled
    :data:`FALLBACK_KEY_VERSION`.

    Lets a login survive a rotated secret; the caller then moves the user to the current one.
    """
    secrets = _password_secrets()
    first = version if version in secrets else current_password_version()
    ordered = [first, *sorted((v for v in secrets if v != first), reverse=True)]
    candidates = [(v, _hmac_password(secrets[v], external_id)) for v in ordered]
    if not app_settings.PASSWORD_SECRETS:
        fallbacks = getattr(settings, "SECRET_KEY_FALLBACKS", None) or []
        candidates += [
            (FALLBACK_KEY_VERSION, _hmac_password(str(key), external_id)) for key in fallbacks
        ]
    return candidates


def derive_password(external_id: Any, version: int | None = None) -> str:
    """The ConnectyCube password of a link (by its ``external_id``) under a secret version."""
    secrets = _password_secrets()
    version = current_password_version() if version in (None, 0) else version
    if version not in secrets:
        raise ConfigurationError(
            f'CONNECTYCUBE["PASSWORD_SECRETS"] has no secret for version {version}; '
            "keep old versions until every user has been moved to the new one."
        )
    return _hmac_password(secrets[version], external_id)
