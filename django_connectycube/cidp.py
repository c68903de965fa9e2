"""This site as ConnectyCube's Custom Identity Provider (``AUTH_MODE = "cidp"``).

Instead of a derived password, :mod:`.sessions` logs a user in with a short-lived token signed
with Django's ``SECRET_KEY`` (:func:`make_login_token`). ConnectyCube hands that token to the
verification URL configured in its dashboard, which is :func:`verify` here, and maps our answer
to its user. Configure, in the ConnectyCube dashboard (or the emulator's ``cidp_url``):

* verification URL ``https://<your site>/<api prefix>/cidp/verify/`` (GET ``?token=``);
* response mapping ``{"uid": "#{uid}", "login": "#{login}", "email": "#{email}",
  "full_name": "#{full_name}"}``: ``uid`` is the link's minted ``external_id`` (never the bare
  primary key, which anyone could put on an account of theirs beforehand), the same one the sync
  engine gives the users it creates, so both paths agree on who is who. A login or e-mail the
  link had to withhold (another account holds it) is answered as the link's fallback login and
  no e-mail.

The answer has the official starter kit's shape, ``{"uid", "login", "email", "user": {"id",
"login", "email"}}`` plus ``full_name``, or 422 ``{"error": "..."}``.

A local user that was deleted can no longer log in, yet the sync engine must log its remote user
in once more to delete it (only a user may delete itself). For that, a *tombstone token* names
the link's ``external_id`` instead of a user, and is accepted only while that link is owed a
remote delete.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.core import signing
from django.core.exceptions import ValidationError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from . import identity, mapping
from .conf import app_settings
from .models import CubeUser

logger = logging.getLogger("django_connectycube")

__all__ = [
    "SALT",
    "identity_for",
    "make_login_token",
    "make_tombstone_token",
    "read_login_token",
    "verify",
]

#: Keeps these tokens from being valid for any other use of ``SECRET_KEY`` (and vice versa).
SALT = "django_connectycube.cidp.login"


def make_login_token(user_pk: Any) -> str:
    """A token that lets ConnectyCube log this local user in, for ``CIDP_TOKEN_MAX_AGE`` s."""
    return signing.dumps({"u": str(user_pk)}, salt=SALT, compress=True)


def make_tombstone_token(external_id: str) -> str:
    """A token for the remote user of a deleted local user, so the sync engine can delete it."""
    return signing.dumps({"x": str(external_id)}, salt=SALT, compress=True)


def _payload(token: str) -> dict[str, Any]:
    payload = signing.loads(token, salt=SALT, max_age=int(app_settings.CIDP_TOKEN_MAX_AGE))
    if not isinstance(payload, dict) or not any(
        isinstance(payload.get(key), str) for key in ("u", "x")
    ):
        raise signing.BadSignature("Unexpected token payload.")
    return payload


def read_login_token(token: str) -> str:
    """The local user pk inside a token; ``signing.BadSignature`` if forged, old or malformed."""
    payload = _payload(token)
    if not isinstance(payload.get("u"), str):
        raise signing.BadSignature("Not a user token.")
    return payload["u"]


def identity_for(user: Any) -> dict[str, Any] | None:
    """What the verifier tells ConnectyCube about a user (the mapping's fields, uid first), or
    None for a user without a link: the ``uid`` is only ever the link's minted external id."""
    link = CubeUser.objects.filter(user_id=user.pk).only("external_id", "login", "withheld").first()
    if link is None:
        return None
    wanted = mapping.get_user_fields(user, link.external_id)
    fields, _ = identity.sent_fields(wanted, link.withheld, link.login)
    uid = link.external_id
    login = fields.get("login") or mapping.derive_login(user)
    email = fields.get("email") or ""
    return {
        "uid": uid,
        "login": login,
        "email": email,
        "full_name": fields.get("full_name") or "",
        "user": {"id": uid, "login": login, "email": email},
    }


def _token_from(request: HttpRequest) -> str | None:
    token = request.GET.get("token") or request.POST.get("token")
    if token:
        return token
    if request.method == "POST" and request.content_type == "application/json":
        try:
            body = json.loads(request.body.decode("utf-8") or "{}")
        except (UnicodeDecodeError, ValueError):
            return None
        value = body.get("token") if isinstance(body, dict) else None
        return value if isinstance(value, str) and value else None
    return None


def _refuse(message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=422)


@csrf_exempt  # called server-to-server by ConnectyCube, with no cookie
@never_cache
@require_http_methods(["GET", "POST"])
def verify(request: HttpRequest) -> JsonResponse:
    """The verification endpoint ConnectyCube calls with the token our login sent it."""
    token = _token_from(request)
    if not token:
        return _refuse("token is required")
    try:
        payload = _payload(token)
    except signing.BadSignature:  # SignatureExpired is a subclass
        return _refuse("invalid or expired token")
    if isinstance(payload.get("x"), str):
        return _tombstone_answer(payload["x"])
    user_pk = payload["u"]
    User = get_user_model()
    try:
        user = User._default_manager.filter(pk=user_pk).first()
    except (ValueError, TypeError, ValidationError):
        user = None
    answer = identity_for(user) if user is not None and getattr(user, "is_active", True) else None
    if answer is None:
        return _refuse("invalid or expired token")
    return JsonResponse(answer)


def _tombstone_answer(external_id: str) -> JsonResponse:
    link = CubeUser.objects.filter(
        external_id=external_id, user__isnull=True, state=CubeUser.State.DELETING
    ).first()
    if link is None:
        return _refuse("invalid or expired token")
    login = link.login
    return JsonResponse(
        {
            "uid": link.external_id,
            "login": login,
            "email": "",
            "full_name": "",
            "user": {"id": link.external_id, "login": login, "email": ""},
        }
    )
