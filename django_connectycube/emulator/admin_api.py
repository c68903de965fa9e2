"""The Admin API: ``DELETE /admin/user/{id}`` with the ``CB-Administration-API-Key`` header.

[D admin_api/user.md, admin_api.md] The key is generated in the dashboard (Advanced plan and
up); the call deletes any user without that user's session and answers ``{"success": true}``.
The refusals are not documented; the emulator's are inferred ([I] in ``docs/fidelity.md``):

- no header: 401 ``{"errors": ["Administration API key is required"]}``;
- a key, but none set up for the application (``admin_api_key`` is ``None``): 403
  ``{"errors": ["Administration API is not enabled for this application"]}``;
- a wrong key: 401 ``{"errors": ["Invalid Administration API key"]}``;
- no such user: 404 ``{"errors": ["User not found"]}`` (the text of other user misses).
"""

from __future__ import annotations

import hmac

from .base import USER_NOT_FOUND, EmulatorBase
from .transport import Request, Response
from .wire import ApiError

__all__ = ["ADMIN_KEY_HEADER", "AdminHandlers"]

ADMIN_KEY_HEADER = "CB-Administration-API-Key"


class AdminHandlers(EmulatorBase):
    """Handlers of ``/admin``."""

    admin_api_key: str | None

    def _check_admin_key(self, request: Request) -> None:
        given = request.header(ADMIN_KEY_HEADER)
        if not given:
            raise ApiError(401, ["Administration API key is required"])
        if self.admin_api_key is None:
            raise ApiError(403, ["Administration API is not enabled for this application"])
        if not hmac.compare_digest(given.encode(), self.admin_api_key.encode()):
            raise ApiError(401, ["Invalid Administration API key"])

    def handle_admin_delete_user(self, request: Request, id: str) -> Response:
        self._check_admin_key(request)
        with self.store.lock:
            user = self.store.users.get(int(id)) if id.isdigit() else None
            if user is None:
                raise ApiError(404, USER_NOT_FOUND)
            self.store.delete_user(user)
        return Response(200, {"success": True})
