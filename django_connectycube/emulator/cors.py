"""CORS for the ConnectyCube routes: the JS SDK calls them from any page, as it does the real API.

Control routes get none of this (see :mod:`.control_access`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .transport import Response

__all__ = ["CORS_HEADERS", "preflight"]

CORS_HEADERS = [
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Expose-Headers", "CB-Token-ExpirationDate, Date"),
]
_PREFLIGHT_HEADERS = (
    "CB-Token, CB-AuthKey, CB-SDK, CB-Administration-API-Key, Content-Type, Accept, Authorization"
)


def preflight(environ: Mapping[str, Any]) -> Response:
    """The answer to an ``OPTIONS`` request on a ConnectyCube route: everything is allowed."""
    requested = environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS") or _PREFLIGHT_HEADERS
    return Response(
        204,
        headers=[
            ("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS"),
            ("Access-Control-Allow-Headers", requested),
            ("Access-Control-Max-Age", "86400"),
        ],
    )
