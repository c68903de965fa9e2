"""How the API words a failure: always ``{"detail": ..., "code": ...}`` with a stable code."""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response

__all__ = ["UNAVAILABLE", "error_response"]

#: The code of every 503: ConnectyCube is slow, down or rate limiting.
UNAVAILABLE = "connectycube_unavailable"


def error_response(detail: Any, code: str, status_code: int, **headers: str) -> Response:
    """An error answer; header names use ``_`` for ``-`` (``Retry_After="5"``)."""
    response = Response({"detail": str(detail), "code": code}, status=status_code)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response
