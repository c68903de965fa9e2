"""ConnectyCube's Administration API: calls made with the application's admin key.

The key (dashboard → Overview → Administration API Credentials, Advanced plan and up) is sent as
``CB-Administration-API-Key`` instead of a session token. It lets the app delete any user without
that user's session: users who log in through the Custom Identity Provider (no password to log
in with) and users whose derived password no longer works.
"""

from __future__ import annotations

import requests

from .errors import APIError, ConfigurationError
from .transport import Transport

__all__ = ["ADMIN_KEY_HEADER", "AdminApi"]

ADMIN_KEY_HEADER = "CB-Administration-API-Key"


class AdminApi:
    """Mixin of ``ConnectyCubeClient``: the admin calls (need ``admin_api_key``)."""

    transport: Transport
    _admin_api_key: str | None

    @property
    def has_admin_api_key(self) -> bool:
        """True when the client was given an Administration API key."""
        return bool(self._admin_api_key)

    def _admin_call(self, method: str, path: str) -> requests.Response:
        if not self._admin_api_key:
            raise ConfigurationError(
                f"{method} /{path} needs the Administration API key: pass admin_api_key= to "
                'ConnectyCubeClient or set CONNECTYCUBE["ADMIN_API_KEY"] (ConnectyCube '
                "dashboard → Overview → Administration API Credentials)."
            )
        return self.transport.request(
            method, path, headers={ADMIN_KEY_HEADER: self._admin_api_key}, safe=True
        )

    def admin_delete_user(self, user_id: int) -> None:
        """Delete any user (``DELETE /admin/user/{id}``), no session of theirs needed.

        Raises ``NotFound`` when there is no such user, ``AuthenticationError`` or
        ``PermissionDenied`` when the key is refused, ``ConfigurationError`` without a key.
        """
        path = f"admin/user/{int(user_id)}"
        response = self._admin_call("DELETE", path)
        try:
            body = response.json() if response.content.strip() else {}
        except ValueError:
            body = {}
        if isinstance(body, dict) and body.get("success") is False:
            raise APIError(
                f"ConnectyCube did not delete user {int(user_id)} (DELETE /{path} answered "
                f"{response.text[:200]!r})",
                status=response.status_code,
                response=response,
                method="DELETE",
                path=f"/{path}",
            )
