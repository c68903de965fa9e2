"""HMAC-SHA1 request signing for ``POST /session``.

The server verifies a signature whenever one is sent, and older SDKs always sign, so the client
signs every session request and the emulator checks the same algorithm from the same function.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["flatten_params", "sign", "signature_base_string", "signed_session_params"]


def flatten_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Flatten one level of nesting into bracket keys (``user[login]``), as the server signs them.

    ``None`` values are dropped because the wire never carries them; booleans are lower-cased to
    match what a JSON or form body would carry.
    """
    flat: dict[str, str] = {}
    for key, value in params.items():
        if key == "signature" or value is None:
            continue
        if isinstance(value, Mapping):
            for sub_key, sub_value in value.items():
                if sub_value is None or isinstance(sub_value, Mapping):
                    continue
                flat[f"{key}[{sub_key}]"] = _scalar(sub_value)
        else:
            flat[key] = _scalar(value)
    return flat


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def signature_base_string(params: Mapping[str, Any]) -> str:
    """The sorted ``key=value`` string that is signed, with raw (un-encoded) values."""
    return "&".join(sorted(f"{k}={v}" for k, v in flatten_params(params).items()))


def sign(params: Mapping[str, Any], auth_secret: str) -> str:
    """Lower-case hex HMAC-SHA1 of the base string, keyed with the application's secret."""
    base = signature_base_string(params).encode("utf-8")
    return hmac.new(auth_secret.encode("utf-8"), base, hashlib.sha1).hexdigest()


def signed_session_params(
    application_id: int | str,
    auth_key: str,
    auth_secret: str,
    extra: Mapping[str, Any] | None = None,
    *,
    nonce: int | None = None,
    timestamp: int | None = None,
) -> dict[str, Any]:
    """A complete, signed ``POST /session`` body, valid whether or not the server verifies."""
    body: dict[str, Any] = {
        "application_id": application_id,
        "auth_key": auth_key,
        "nonce": nonce if nonce is not None else secrets.randbelow(2**31 - 1) + 1,
        "timestamp": timestamp if timestamp is not None else int(time.time()),
    }
    if extra:
        body.update(extra)
    body["signature"] = sign(body, auth_secret)
    return body
