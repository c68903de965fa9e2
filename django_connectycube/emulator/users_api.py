"""User routes that write: sign-up, update, delete, password reset (reads: :mod:`.lookups_api`)."""

from __future__ import annotations

from .base import COULD_NOT_FIND_USER, USER_NOT_FOUND
from .email_confirmation import EmailConfirmation
from .models import User
from .transport import Request, Response
from .wire import BLANK, ApiError, require_mapping

__all__ = ["UserHandlers"]


class UserHandlers(EmailConfirmation):
    """Handlers of ``/users`` and its sub-routes."""

    def handle_create_user(self, request: Request) -> Response:
        params = request.params
        if "user" not in params:
            raise ApiError.field("user", BLANK)
        data = require_mapping(params["user"], "user")
        user = self._register(request, data)
        return Response(201, {"user": user.to_json()})

    def _own_user(self, request: Request, id: str | None) -> User:
        """The session's user, when ``id`` names it (or is absent, as the JS SDK may send).

        Any other id, existing or not, is "Couldn't find user." [O js-sdk-releases#8]: users
        can update and delete only themselves (status 404 inferred).
        """
        user = self._current_user(request)
        if id is not None and (not id.isdigit() or int(id) != user.id):
            raise ApiError(404, COULD_NOT_FIND_USER)
        return user

    def _update(self, request: Request, id: str | None) -> Response:
        user = self._own_user(request, id)
        data = require_mapping(request.params.get("user"), "user")
        self.store.update_user(user, data)
        return Response(200, {"user": user.to_json()})

    def _delete(self, request: Request, id: str | None) -> Response:
        self.store.delete_user(self._own_user(request, id))
        return Response(200)

    def handle_update_user(self, request: Request, id: str) -> Response:
        return self._update(request, id)

    def handle_update_current_user(self, request: Request) -> Response:
        return self._update(request, None)

    def handle_delete_user(self, request: Request, id: str) -> Response:
        return self._delete(request, id)

    def handle_delete_current_user(self, request: Request) -> Response:
        return self._delete(request, None)

    def handle_delete_user_by_external_id(self, request: Request, external_id: str) -> Response:
        user = self._current_user(request)
        with self.store.lock:
            target = self._by_external_user_id(external_id)
            if target is None:
                raise ApiError(404, USER_NOT_FOUND)
            if target.id != user.id:
                raise ApiError(403, ["Forbidden. You can only delete your own user."])
            self.store.delete_user(target)
        return Response(200)

    def handle_reset_password(self, request: Request) -> Response:
        email = self._required_param(request, "email")
        self.store.record_password_reset(email)
        return Response(200)
