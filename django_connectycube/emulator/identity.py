"""External identities: the Custom Identity Provider call and Firebase token verification.

**CIdP.** The real service calls the app's verification URL (``GET url?token=<login>``) and maps
the JSON answer to a user with a *response mapping* configured in its dashboard, e.g.
``{"uid": "#{user.id}", "login": "#{user.login}"}``: keys are ConnectyCube's fields, values are
templates over the verifier's answer. ``uid`` identifies the user (stored as ``external_id``), so
the same person logging in again finds the same user.

A login the verifier refuses is answered the way the real service has been seen to answer it:
``Bad Authentication data. Unauthorized on remote side. Status: <verifier status>.Response
"<verifier body>"`` (or ``.With empty response``), with 200 [O web-samples#77, ``POST /session``]
or with 422 [O reactnative-samples#88, ``POST /login``], as ``cidp_failure_style`` chooses; an
answer whose mapping yields no ``uid`` is 422 ``Custom Identity Provider uid is required``
[O web-samples#128, js-sdk-releases#99].

**Firebase.** The emulator cannot ask Google, so by default a ``firebase_phone`` /
``firebase_email`` access token is accepted when it is an HS256 JWT signed with the key given to
the emulator (``firebase_key``), whose ``aud`` is the ``project_id``, whose ``exp`` is in the
future on the emulator's clock, whose ``iss`` is ``https://securetoken.google.com/<project_id>``,
and which carries ``sub`` plus ``phone_number`` (or ``email``): a real Firebase ID token's claims,
signed with a shared key instead of Google's. The user it logs in is the one made for its ``sub``
(the Firebase uid) on first login; the ``phone`` of that user is only a copy taken then, which
its owner may edit like any other field.
Tests mint such tokens with :func:`mint_firebase_token`. Any other rule can be plugged in with
the emulator's ``firebase_verifier`` argument.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .wire import ApiError

__all__ = [
    "CIDP_FAILURE_STYLES",
    "DEFAULT_CIDP_FAILURE_STYLE",
    "DEFAULT_CIDP_MAPPING",
    "FirebaseIdentity",
    "FirebaseVerifier",
    "HmacFirebaseVerifier",
    "apply_mapping",
    "call_cidp",
    "firebase_issuer",
    "mint_firebase_token",
]

#: Fits the official starter kit's answer ``{"uid", "login", "email", "user": {...}}``.
DEFAULT_CIDP_MAPPING: dict[str, str] = {
    "uid": "#{uid}",
    "login": "#{login}",
    "email": "#{email}",
    "full_name": "#{full_name}",
}
CIDP_TIMEOUT = 10.0

#: The status a refused verification is answered with, by ``cidp_failure_style``.
CIDP_FAILURE_STYLES: dict[str, int] = {"200-errors": 200, "422": 422}
#: The one public log of a refused CIdP login on ``POST /session`` (the route our client uses)
#: shows 200; the 422 logs are of ``POST /login``.
DEFAULT_CIDP_FAILURE_STYLE = "200-errors"
_BAD_AUTH = "Bad Authentication data. Unauthorized on remote side."
_VERIFIER_BODY_SHOWN = 64 * 1024

_PLACEHOLDER = re.compile(r"#\{([^}]*)\}")


def _lookup(data: Any, path: str) -> Any:
    node = data
    for part in path.strip().split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def apply_mapping(mapping: Mapping[str, Any], answer: Any) -> dict[str, Any]:
    """Render each template of a response mapping against the verifier's JSON answer.

    A template that is exactly one placeholder keeps the value's JSON type; templates with text
    around placeholders render as strings; missing paths render as ``None`` / empty text.
    """
    result: dict[str, Any] = {}
    for key, template in mapping.items():
        if not isinstance(template, str):
            result[key] = template
            continue
        whole = _PLACEHOLDER.fullmatch(template)
        if whole:
            result[key] = _lookup(answer, whole.group(1))
            continue

        def render(match: re.Match[str]) -> str:
            value = _lookup(answer, match.group(1))
            return "" if value is None else str(value)

        result[key] = _PLACEHOLDER.sub(render, template)
    return result


def _uid_required() -> ApiError:
    return ApiError(422, {"base": ["Custom Identity Provider uid is required"]})


def call_cidp(
    url: str, token: str, mapping: Mapping[str, Any] | None, failure_status: int = 200
) -> dict[str, Any]:
    """Ask the verification URL about a token; the mapped fields, or an :class:`ApiError` of
    the real service's shape (``failure_status`` for a refusal).

    Called without the store's lock held: the verifier may be slow, or may be served by the
    same test process.
    """
    separator = "&" if urllib.parse.urlsplit(url).query else "?"
    full_url = f"{url}{separator}{urllib.parse.urlencode({'token': token})}"
    request = urllib.request.Request(full_url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=CIDP_TIMEOUT) as response:  # noqa: S310
            body = response.read(1024 * 1024)
    except urllib.error.HTTPError as exc:
        said = exc.read(_VERIFIER_BODY_SHOWN).decode("utf-8", "replace")
        detail = f"Response {json.dumps(said)}" if said else "With empty response"
        raise ApiError(failure_status, [f"{_BAD_AUTH} Status: {exc.code}.{detail}"]) from exc
    except (urllib.error.URLError, OSError) as exc:
        # What the real service says when it cannot reach the verifier is not public [I].
        message = f"{_BAD_AUTH} Custom identity provider is unreachable: {exc}"
        raise ApiError(failure_status, [message]) from exc
    try:
        answer = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _uid_required() from exc  # an unreadable answer maps to no uid [I]
    fields = apply_mapping(mapping or DEFAULT_CIDP_MAPPING, answer)
    uid = fields.get("uid")
    if uid is None or uid == "" or isinstance(uid, (dict, list, bool)):
        raise _uid_required()
    fields["uid"] = str(uid)
    return fields


# -- Firebase ----------------------------------------------------------------------------------


@dataclass
class FirebaseIdentity:
    """Who a verified Firebase token stands for."""

    uid: str
    phone_number: str | None = None
    email: str | None = None


#: ``(provider, project_id, access_token, now) -> FirebaseIdentity``; raise ApiError to refuse.
FirebaseVerifier = Callable[[str, str, str, datetime], FirebaseIdentity]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def firebase_issuer(project_id: str) -> str:
    """The ``iss`` of every Firebase ID token of a project."""
    return f"https://securetoken.google.com/{project_id}"


def mint_firebase_token(
    key: str,
    project_id: str,
    *,
    uid: str | None = None,
    phone_number: str | None = None,
    email: str | None = None,
    expires_in: int = 3600,
    issued_at: int | None = None,
    claims: Mapping[str, Any] | None = None,
) -> str:
    """Make an access token the default verifier accepts (for tests and demos).

    Its claims are those of a real Firebase ID token (``iss``, ``aud``, ``sub``, ``iat``,
    ``exp``, ``phone_number`` / ``email``); only the signature differs. ``issued_at`` defaults
    to the real time; pass the emulator's clock (``int(emu.now().timestamp())``) when a test has
    advanced it. ``claims`` adds or replaces claims, and a ``None`` value drops one, to make the
    tokens a test must see refused.
    """
    now = int(time.time()) if issued_at is None else issued_at
    payload_claims: dict[str, Any] = {
        "iss": firebase_issuer(project_id),
        "aud": project_id,
        "sub": uid or hashlib.sha1(f"{phone_number}|{email}".encode()).hexdigest()[:28],  # noqa: S324
        "iat": now,
        "exp": now + expires_in,
    }
    if phone_number is not None:
        payload_claims["phone_number"] = phone_number
    if email is not None:
        payload_claims["email"] = email
    for name, value in (claims or {}).items():
        if value is None:
            payload_claims.pop(name, None)
        else:
            payload_claims[name] = value
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64url(json.dumps(payload_claims, separators=(",", ":")).encode())
    signature = hmac.new(key.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}"


class HmacFirebaseVerifier:
    """The default verifier: HS256 JWTs signed with the emulator's ``firebase_key``."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(
        self, provider: str, project_id: str, access_token: str, now: datetime
    ) -> FirebaseIdentity:
        invalid = ApiError(401, ["Invalid Firebase access token"])
        parts = access_token.split(".")
        if len(parts) != 3:
            raise invalid
        try:
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
            signature = _b64url_decode(parts[2])
        except (ValueError, UnicodeDecodeError) as exc:
            raise invalid from exc
        if not isinstance(header, dict) or header.get("alg") != "HS256":
            raise invalid
        expected = hmac.new(
            self.key.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256
        ).digest()
        if not hmac.compare_digest(expected, signature) or not isinstance(claims, dict):
            raise invalid
        if claims.get("aud") != project_id or claims.get("iss") != firebase_issuer(project_id):
            raise ApiError(401, ["Firebase token was issued for another project"])
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or exp <= now.timestamp():
            raise ApiError(401, ["Firebase access token has expired"])
        uid = claims.get("sub")
        if not isinstance(uid, str) or not uid:
            raise invalid
        identity = FirebaseIdentity(
            uid=uid, phone_number=claims.get("phone_number"), email=claims.get("email")
        )
        if provider == "firebase_phone" and not identity.phone_number:
            raise ApiError(401, ["Firebase token has no phone_number"])
        if provider == "firebase_email" and not identity.email:
            raise ApiError(401, ["Firebase token has no email"])
        return identity
