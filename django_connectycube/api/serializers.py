"""Request and response shapes of the API.

Profiles are built from the client's typed :class:`~django_connectycube.client.User`, never from
raw server objects, so a field ConnectyCube adds tomorrow is not exposed by accident.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from django_connectycube.client import User

__all__ = [
    "FILTERS",
    "MAX_PER_PAGE",
    "ORDERINGS",
    "ErrorSerializer",
    "FirebasePhoneSerializer",
    "LoginSerializer",
    "PasswordResetSerializer",
    "ProfilePageSerializer",
    "ProfileSerializer",
    "SessionSerializer",
    "UserQuerySerializer",
    "avatar_url",
]

#: The look-ups ``GET users/`` accepts; exactly one per request.
FILTERS = ("ids", "login", "login_prefix", "email", "full_name", "phone", "external_id", "tags")
#: ConnectyCube's ``login[start_with]``: at least this many characters, and at most
#: :data:`PREFIX_RESULTS` users per answer, whatever the limit asked for.
PREFIX_MIN_LENGTH = 4
PREFIX_RESULTS = 5
#: Sort fields ConnectyCube can order a v1 listing by (``-`` for descending).
ORDER_FIELDS = ("id", "created_at", "updated_at", "last_request_at", "full_name", "login")
ORDERINGS = tuple(p + f for f in ORDER_FIELDS for p in ("", "-"))
MAX_PER_PAGE = 100


class ErrorSerializer(serializers.Serializer):
    """Every error body: ``{"detail": "...", "code": "..."}`` (documentation only)."""

    detail = serializers.CharField()
    code = serializers.CharField()


class FirebasePhoneSerializer(serializers.Serializer):
    project_id = serializers.CharField(required=False, max_length=200)
    access_token = serializers.CharField(max_length=8192, trim_whitespace=True)


class LoginSerializer(serializers.Serializer):
    """No body (an already authenticated request), credentials, or a Firebase phone token."""

    username = serializers.CharField(required=False, max_length=254, trim_whitespace=False)
    password = serializers.CharField(
        required=False, max_length=4096, trim_whitespace=False, style={"input_type": "password"}
    )
    provider = serializers.ChoiceField(choices=["firebase_phone"], required=False)
    firebase_phone = FirebasePhoneSerializer(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        has_credentials = "username" in attrs or "password" in attrs
        if attrs.get("provider") == "firebase_phone":
            if has_credentials:
                raise serializers.ValidationError(
                    _("Send either username and password or a provider, not both.")
                )
            if "firebase_phone" not in attrs:
                raise serializers.ValidationError(
                    {"firebase_phone": [_("This field is required.")]}
                )
        elif "firebase_phone" in attrs:
            raise serializers.ValidationError({"provider": [_("This field is required.")]})
        elif has_credentials:
            missing = [name for name in ("username", "password") if name not in attrs]
            if missing:
                raise serializers.ValidationError(
                    {name: [_("This field is required.")] for name in missing}
                )
        return attrs


class SessionSerializer(serializers.Serializer):
    """What a frontend needs for ``ConnectyCube.init({appId, token}, {endpoints: {api_url}})``."""

    token = serializers.CharField()
    expires_at = serializers.DateTimeField()
    user_id = serializers.IntegerField(help_text="The ConnectyCube user id.")
    application_id = serializers.IntegerField()
    api_url = serializers.URLField()


class PasswordResetSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)


class UserQuerySerializer(serializers.Serializer):
    """``GET users/`` query parameters: exactly one filter, paging and ordering."""

    ids = serializers.CharField(required=False, help_text="Comma-separated ConnectyCube ids.")
    login = serializers.CharField(required=False, max_length=70)
    login_prefix = serializers.CharField(
        required=False,
        min_length=PREFIX_MIN_LENGTH,
        max_length=70,
        help_text=f"The beginning of a login ({PREFIX_MIN_LENGTH}+ characters); at most "
        f"{PREFIX_RESULTS} users come back.",
    )
    email = serializers.EmailField(required=False, max_length=254)
    full_name = serializers.CharField(required=False, max_length=200)
    phone = serializers.CharField(required=False, max_length=64)
    external_id = serializers.CharField(required=False, max_length=255)
    tags = serializers.CharField(required=False, help_text="Comma-separated tags (any matches).")
    page = serializers.IntegerField(required=False, min_value=1, max_value=100_000, default=1)
    per_page = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_PER_PAGE, default=10
    )
    ordering = serializers.ChoiceField(choices=ORDERINGS, required=False, default="created_at")

    def validate_ids(self, value: str) -> list[int]:
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if not parts:
            raise serializers.ValidationError(_("Give at least one id."))
        if len(parts) > MAX_PER_PAGE:
            raise serializers.ValidationError(_("At most %d ids.") % MAX_PER_PAGE)
        try:
            ids = [int(p) for p in parts]
        except ValueError as exc:
            raise serializers.ValidationError(_("Ids must be integers.")) from exc
        if any(i < 1 or i > 2**63 - 1 for i in ids):
            raise serializers.ValidationError(_("Ids must be positive integers."))
        return ids

    def validate_tags(self, value: str) -> list[str]:
        tags = [t.strip() for t in value.split(",") if t.strip()]
        if not tags:
            raise serializers.ValidationError(_("Give at least one tag."))
        return tags

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = [name for name in FILTERS if name in attrs]
        if len(given) != 1:
            message = (
                _("Give exactly one of: %s.") % ", ".join(FILTERS)
                if not given
                else _("Only one filter at a time; got %s.") % ", ".join(given)
            )
            raise serializers.ValidationError({name: [message] for name in given or FILTERS})
        attrs["filter"] = given[0]
        return attrs


def avatar_url(uid: str | None, api_url: str) -> str | None:
    """The URL of the avatar blob ``uid`` without any token: ``{api_url}/blobs/{uid}``.

    ``uid`` is the blob this site uploaded (the link's record), never what the remote user
    carries: any user can set their own ``avatar`` and ``custom_data`` to any text, a URL of
    their choosing included. That is ConnectyCube's public blob URL. A private blob needs
    ``?token=`` added by the frontend with *its own* session token; the API never puts a token
    in another user's data.
    """
    if not uid:
        return None
    return f"{api_url.rstrip('/')}/blobs/{quote(uid, safe='')}"


def _custom_data(user: User, avatar_uid: str | None) -> Any:
    """The user's ``custom_data``, with its ``avatar_uid`` (the SDK's avatar) being ours."""
    if not user.custom_data:
        return {"avatar_uid": avatar_uid} if avatar_uid else None
    try:
        value = json.loads(user.custom_data)
    except ValueError:
        return user.custom_data
    if isinstance(value, dict):
        value.pop("avatar_uid", None)
        if avatar_uid:
            value["avatar_uid"] = avatar_uid
    return value


class ProfileSerializer(serializers.Serializer):
    """A user's public profile; ``email``/``phone`` only for oneself unless the setting allows.

    Context: ``api_url`` (str), ``own_cube_id`` (the requester's ConnectyCube id or None),
    ``expose_contact`` (bool) and ``avatars`` (ConnectyCube id -> the avatar blob uid this site
    uploaded; a user missing from it shows no avatar).
    """

    id = serializers.IntegerField()
    login = serializers.CharField(allow_null=True)
    full_name = serializers.CharField(allow_null=True)
    avatar_url = serializers.SerializerMethodField()
    user_tags = serializers.SerializerMethodField()
    custom_data = serializers.SerializerMethodField()
    email = serializers.EmailField(allow_null=True, required=False)
    phone = serializers.CharField(allow_null=True, required=False)

    def get_avatar_url(self, user: User) -> str | None:
        return avatar_url(self._avatar_uid(user), self.context["api_url"])

    def _avatar_uid(self, user: User) -> str | None:
        return self.context.get("avatars", {}).get(user.id)

    def get_user_tags(self, user: User) -> list[str]:
        return user.tags

    def get_custom_data(self, user: User) -> Any:
        return _custom_data(user, self._avatar_uid(user))

    def to_representation(self, user: User) -> dict[str, Any]:
        data = super().to_representation(user)
        own = self.context.get("own_cube_id") is not None and user.id == self.context["own_cube_id"]
        if not (own or self.context.get("expose_contact")):
            data.pop("email", None)
            data.pop("phone", None)
        return data


class ProfilePageSerializer(serializers.Serializer):
    """A DRF-style page of profiles (``next``/``previous`` are absolute URLs or null)."""

    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ProfileSerializer(many=True)


try:  # typed schema for the method fields when drf-spectacular is installed
    from drf_spectacular.types import OpenApiTypes
    from drf_spectacular.utils import extend_schema_field

    extend_schema_field(serializers.URLField(allow_null=True))(ProfileSerializer.get_avatar_url)
    extend_schema_field(serializers.ListField(child=serializers.CharField()))(
        ProfileSerializer.get_user_tags
    )
    extend_schema_field(OpenApiTypes.ANY)(ProfileSerializer.get_custom_data)
except ImportError:  # pragma: no cover - the schema is optional
    pass
