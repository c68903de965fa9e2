"""Who a link is on ConnectyCube: the external id the engine mints, and the fields it owns.

A remote user's ``external_id``, login and e-mail can be edited by that user with the token this
app hands out, so on their own they are evidence, never proof. What the engine relies on instead:

* **A minted external id.** Each link gets ``<EXTERNAL_ID_PREFIX>-<26 random base32 characters>``
  (130 bits from :mod:`secrets`), stored on its row when the link is made: nobody can predict the
  next one (a bare primary key can be pre-claimed by anyone who can count), two sites sharing one
  ConnectyCube application never mint the same one, and a reused primary key gets a new one.
  Links made before this scheme keep their primary-key-form id (``"42"``): their remote users
  already carry it.
* **Withheld fields.** When the login or e-mail the mapping wants is held on ConnectyCube by an
  account the engine cannot prove is this user's, the user still gets an account of their own:
  under a *fallback login* (the wanted one, cut, plus ``-`` and 8 random hex digits, so a squatter
  cannot pre-claim it either) and without the e-mail. The row records what was withheld
  (``CubeUser.withheld``); a local change of that field tries it again.
"""

from __future__ import annotations

import base64
import re
import secrets
from typing import Any

from django_connectycube.conf import ConfigurationError, app_settings

__all__ = [
    "EXTERNAL_ID_PATTERN",
    "FALLBACK_SUFFIX_LENGTH",
    "PREFIX_PATTERN",
    "external_id_prefix",
    "fallback_login",
    "is_minted",
    "mint_external_id",
    "sent_fields",
]

#: What ``EXTERNAL_ID_PREFIX`` may be: it must never contain the ``-`` that ends it.
PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_.]{1,32}")
#: A minted external id under any prefix (a primary key, integer or UUID, never matches).
EXTERNAL_ID_PATTERN = re.compile(r"[A-Za-z0-9_.]{1,32}-[a-z2-7]{26}")
#: ``-`` plus this many hex digits end a fallback login.
FALLBACK_SUFFIX_LENGTH = 9
_LOGIN_MAX = 70


def external_id_prefix() -> str:
    """The configured prefix, validated (its error names the setting)."""
    prefix = app_settings.EXTERNAL_ID_PREFIX
    if not isinstance(prefix, str) or not PREFIX_PATTERN.fullmatch(prefix):
        raise ConfigurationError(
            f'CONNECTYCUBE["EXTERNAL_ID_PREFIX"] must be 1 to 32 of A-Z a-z 0-9 _ . (no "-"), '
            f"got {prefix!r}."
        )
    return prefix


def mint_external_id() -> str:
    """A new external id for a new link: ``<prefix>-<130 random bits in base32>``."""
    token = base64.b32encode(secrets.token_bytes(17)).decode("ascii")[:26].lower()
    return f"{external_id_prefix()}-{token}"


def is_minted(external_id: str) -> bool:
    """Whether an external id was minted (unguessable), not a pre-upgrade primary key."""
    return bool(EXTERNAL_ID_PATTERN.fullmatch(external_id or ""))


def fallback_login(wanted: str) -> str:
    """A login of the user's own when ``wanted`` is held by an account that is not theirs."""
    suffix = "-" + secrets.token_hex((FALLBACK_SUFFIX_LENGTH - 1) // 2)
    base = (wanted or "user")[: _LOGIN_MAX - len(suffix)]
    return base + suffix


def sent_fields(
    fields: dict[str, Any], withheld: dict[str, Any], login: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields a push sends, and the withheld map still in force.

    ``fields`` is the mapping's wish; ``withheld`` maps a field to the value ConnectyCube would
    not take; ``login`` is the login the link owns. A withheld value the mapping still wants is
    replaced (login: the owned one) or left out (e-mail); one the mapping no longer wants is
    dropped from the map, so the new value is tried.
    """
    sent = dict(fields)
    still: dict[str, Any] = {}
    for key, value in (withheld or {}).items():
        if key not in sent or sent[key] != value:
            continue
        still[key] = value
        if key == "login" and login:
            sent["login"] = login
        else:
            sent.pop(key)
    return sent, still
