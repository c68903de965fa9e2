"""This site as ConnectyCube's Custom Identity Provider (``AUTH_MODE = "cidp"``).

Instead of a derived password, :mod:`.logins` logs a user in with a short-lived token signed
with Django's ``SECRET_KEY`` (:func:`make_login_token`). ConnectyCube hands that token to the
verification URL configured in its dashboard (the view in :mod:`.api.cidp`), which asks
:func:`answer` here what to tell ConnectyCube about the user. Configure, in the ConnectyCube
dashboard (or the emulator's ``cidp_url``):

* verification URL ``https://<your site>/<api prefix>/cidp/verify/`` (ConnectyCube sends
  ``GET ?token=``, with the request mapping ``{"token": "#{login}"}``; POST with a form or JSON
  ``token`` is accepted too);
* response mapping ``{"uid": "#{uid}", "login": "#{login}", "email": "#{email}",
  "full_name": "#{full_name}"}``: ``uid`` is the link's minted ``external_id`` (never the bare
  primary key, which anyone could put on an account of theirs beforehand), the same one the sync
  engine gives the users it creates, so both paths agree on who is who. A login or e-mail the
  link had to withhold (another account holds it) is answered as the link's fallback login and
  no e-mail.

The answer has the official starter kit's shape, ``{"uid", "login", "email", "user": {"id",
"login", "email"}}`` plus ``full_name``, or 422 ``{"error": "..."}``.

Tokens are single-use (:mod:`.cidp_replay`), expire after ``TOKEN_MAX_AGE`` seconds and are
refused when dated more than ``CLOCK_SKEW`` seconds in the future. ConnectyCube puts the
token in the query string, where access logs keep it: by the time anyone reads a log the token
has been used or has expired, and the README shows how to keep it out of the logs altogether.

A local user that was deleted can no longer log in, yet the sync engine must log its remote user
in once more to delete it (only a user may delete itself). For that, a *tombstone token* names
the link's ``external_id`` instead of a user, and is accepted only while that link is owed a
remote delete.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core import signing
from django.core.exceptions import ValidationError
from django.utils.crypto import get_random_string
from django.views.decorators.debug import sensitive_variables

from django_connectycube.errors import Refused
from django_connectycube.models import CubeUser, identity
from django_connectycube.sync import cidp_replay, mapping

logger = logging.getLogger("django_connectycube")

__all__ = [
    "SALT",
    "answer",
    "identity_for",
    "make_login_token",
    "make_tombstone_token",
    "read_login_token",
]

#: Keeps these tokens from being valid for any other use of ``SECRET_KEY`` (and vice versa).
SALT = "django_connectycube.sync.cidp.login"
#: Seconds a login token is accepted: ConnectyCube verifies it within the login request the
#: client makes right after fetching it, so a minute covers a slow client and keeps a token
#: copied from an access log useless.
TOKEN_MAX_AGE = 60
#: Seconds a token may be dated in the future: servers kept by NTP differ by far less, and a
#: token minted on a fast clock must not live longer than TOKEN_MAX_AGE.
CLOCK_SKEW = 5


class _TokenSigner(signing.TimestampSigner):
    """Django's timestamp signer, also refusing tokens dated beyond ``CLOCK_SKEW`` ahead
    (Django's own only refuses old ones, so a token minted on a fast clock lived longer)."""

    def unsign(self, value: str, max_age: float | timedelta | None = None) -> str:
        result = signing.Signer.unsign(self, value)
        value, timestamp = result.rsplit(self.sep, 1)
        signed_at = signing.b62_decode(timestamp)
        now = time.time()
        if isinstance(max_age, timedelta):
            max_age = max_age.total_seconds()
        if max_age is not None and now - signed_at > max_age:
            raise signing.SignatureExpired(f"Signature age {now - signed_at} > {max_age} seconds")
        if signed_at - now > CLOCK_SKEW:
            raise signing.BadSignature("Signature dated in the future.")
        return value


def _sign(payload: dict[str, str]) -> str:
    # A nonce makes every token unique: single use must not refuse a second login that happens
    # to be signed in the same second for the same user.
    return _TokenSigner(salt=SALT).sign_object(
        {**payload, "n": get_random_string(12)}, compress=True
    )


def make_login_token(user_pk: Any) -> str:
    """A token that lets ConnectyCube log this local user in once, within
    ``TOKEN_MAX_AGE`` seconds."""
    return _sign({"u": str(user_pk)})


def make_tombstone_token(external_id: str) -> str:
    """A token for the remote user of a deleted local user, so the sync engine can delete it."""
    return _sign({"x": str(external_id)})


def _payload(token: str) -> dict[str, Any]:
    payload = _TokenSigner(salt=SALT).unsign_object(token, max_age=TOKEN_MAX_AGE)
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


@sensitive_variables("token", "payload")
def answer(token: str) -> dict[str, Any]:
    """What the verifier tells ConnectyCube about the user a token names; :class:`Refused`
    when the token is forged, old, already used, or names nobody who may log in."""
    try:
        payload = _payload(token)
    except signing.BadSignature:  # SignatureExpired is a subclass
        raise Refused("invalid or expired token") from None
    if not cidp_replay.first_use(token, TOKEN_MAX_AGE + CLOCK_SKEW):
        logger.warning("A CIdP token was presented a second time; refused.")
        raise Refused("token already used")
    if isinstance(payload.get("x"), str):
        return _tombstone_identity(payload["x"])
    user_pk = payload["u"]
    User = get_user_model()
    try:
        user = User._default_manager.filter(pk=user_pk).first()
    except (ValueError, TypeError, ValidationError):
        user = None
    found = identity_for(user) if user is not None and getattr(user, "is_active", True) else None
    if found is None:
        raise Refused("invalid or expired token")
    return found


def _tombstone_identity(external_id: str) -> dict[str, Any]:
    link = CubeUser.objects.filter(
        external_id=external_id, user__isnull=True, state=CubeUser.State.DELETING
    ).first()
    if link is None:
        raise Refused("invalid or expired token")
    login = link.login
    return {
        "uid": link.external_id,
        "login": login,
        "email": "",
        "full_name": "",
        "user": {"id": link.external_id, "login": login, "email": ""},
    }
