"""User routes that write: sign-up, update, delete, password reset (reads: :mod:`.lookups_api`)."""

from __future__ import annotations

from .base import NOT_FOUND
from .email_confirmation import EmailConfirmation
from .transport import Request, Response
from .wire import ApiError, require_mapping

__all__ = ["UserHandlers"]


class UserHandlers(EmailConfirmation):
    """Handlers of ``/users`` and its sub-routes."""

    def handle_create_user(self, request: Request) -> Response:
        params = request.params
        if "user" not in params:
            raise ApiError.field("user", "can't be blank")
        data = require_mapping(params["user"], "user")
        user = self._register(request, data)
        return Response(201, {"user": user.to_json()})

    def handle_update_user(self, request: Request, id: str) -> Response:
        user = self._current_user(request)
        if not id.isdigit() or int(id) != user.id:
            raise ApiError(403, ["Forbidden. You can only update your own user."])
        data = require_mapping(request.params.get("user"), "user")
        self.store.update_user(user, data)
        return Response(200, {"user": user.to_json()})

    def handle_delete_user(self, request: Request, id: str) -> Response:
        user = self._current_user(request)
        if not id.isdigit() or int(id) != user.id:
            raise ApiError(403, ["Forbidden. You can only delete your own user."])
        self.store.delete_user(user)
        return Response(200)

    def handle_delete_user_by_external_id(self, request: Request, external_id: str) -> Response:
        user = self._current_user(request)
        with self.store.lock:
            target = self._by_external_user_id(external_id)
            if target is None:
                raise ApiError(404, NOT_FOUND)
            if target.id != user.id:
                raise ApiError(403, ["Forbidden. You can only delete your own user."])
            self.store.delete_user(target)
        return Response(200)

    def handle_reset_password(self, request: Request) -> Response:
        email = self._required_param(request, "email")
        self.store.record_password_reset(email)
        return Response(200)
