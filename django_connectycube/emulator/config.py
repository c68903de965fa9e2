"""The emulator's run-time settings: credentials, identity providers and the dashboard switches.

One table of keys for the constructor, ``Emulator.configure()``, the control API's
``/_emulator/config`` and the CLI, so they cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from .identity import CIDP_FAILURE_STYLES
from .switches import SWITCH_DEFAULTS, coerce_switch
from .wire import ApiError, coerce_bool, coerce_int, coerce_str, require_mapping

__all__ = ["CONFIG_KEYS", "coerce_setting"]

_BASE_KEYS = (
    "application_id",
    "auth_key",
    "auth_secret",
    "require_signature",
    "cidp_url",
    "cidp_response_mapping",
    "cidp_failure_style",
    "deny_auto_create",
    "firebase_key",
)
CONFIG_KEYS: tuple[str, ...] = _BASE_KEYS + tuple(SWITCH_DEFAULTS)


def coerce_setting(key: str, value: Any) -> Any:
    """The value ``configure()`` stores for ``key``; 422 naming the key when it is wrong."""
    if key not in CONFIG_KEYS:
        raise ApiError(422, [f"Unknown setting(s): {key}"])
    if key in SWITCH_DEFAULTS:
        return coerce_switch(key, value)
    if key in ("require_signature", "deny_auto_create"):
        return coerce_bool(value, key)
    if key == "application_id":
        return coerce_int(value, key, minimum=1)
    if key == "cidp_response_mapping":
        return dict(require_mapping(value, key)) or None
    if key == "cidp_failure_style":
        if value not in CIDP_FAILURE_STYLES:
            raise ApiError.field(key, f"must be one of {', '.join(CIDP_FAILURE_STYLES)}")
        return value
    if key == "cidp_url":
        return None if value in (None, "") else coerce_str(value, key)
    if not isinstance(value, str) or not value:
        raise ApiError.field(key, "must be a non-empty string")
    return value
