"""The HMAC signature of ``POST /session``, checked the way the server checks it.

The server has only what it received (a JSON body or form fields, parsed into nested values), so
it rebuilds the signed text from that: every parameter except ``signature``, a nested object's
members as ``name[member]=value``, values as they read on the wire (``true``, ``1544010993``),
sorted and joined by ``&``. The signature is the hex HMAC-SHA1 of that text keyed with the
application's auth secret [S 3.35.3 ``signParams``; the vectors of the shared protocol doc].
The emulator keeps its own copy of this rule instead of importing a client's: a client that
signs differently from ConnectyCube must fail here as it would there.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

__all__ = ["received_signed_text", "signature_matches"]


def _wire_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):  # a JavaScript array reads "a,b" when signed
        return ",".join(_wire_text(item) for item in value)
    return str(value)


def received_signed_text(params: Mapping[str, Any]) -> str:
    """The text the sender must have signed, rebuilt from the parameters received."""
    pairs: list[str] = []
    for name, value in params.items():
        if name == "signature" or value is None:
            continue
        if not isinstance(value, Mapping):
            pairs.append(f"{name}={_wire_text(value)}")
            continue
        pairs.extend(
            f"{name}[{member}]={_wire_text(item)}"
            for member, item in value.items()
            if item is not None and not isinstance(item, Mapping)
        )
    return "&".join(sorted(pairs))


def signature_matches(params: Mapping[str, Any], auth_secret: str) -> bool:
    """Whether ``params["signature"]`` signs the other parameters with ``auth_secret``."""
    given = params.get("signature")
    if not isinstance(given, str):
        return False
    text = received_signed_text(params).encode("utf-8")
    expected = hmac.new(auth_secret.encode("utf-8"), text, hashlib.sha1).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"), given.lower().encode("utf-8"))
