"""User routes: sign-up, the v1 look-ups and lists, ``/users/v2``, update, delete, reset."""

from __future__ import annotations

from .base import NOT_FOUND, EmulatorBase
from .queries import v1_page, v1_select, v2_page
from .store import User
from .transport import Request, Response
from .wire import ApiError, require_mapping, split_list

__all__ = ["UserHandlers"]


class UserHandlers(EmulatorBase):
    """Handlers of ``/users`` and its sub-routes."""

    def handle_create_user(self, request: Request) -> Response:
        params = request.params
        if "user" not in params:
            raise ApiError.field("user", "can't be blank")
        data = require_mapping(params["user"], "user")
        user = self.store.create_user(data)
        return Response(201, {"user": user.to_json()})

    def _user_or_404(self, user: User | None) -> Response:
        if user is None:
            raise ApiError(404, NOT_FOUND)
        return Response(200, {"user": user.to_json()})

    def handle_get_user(self, request: Request, id: str) -> Response:
        return self._user_or_404(self.store.users.get(int(id)) if id.isdigit() else None)

    def handle_user_by_login(self, request: Request) -> Response:
        login = self._required_param(request, "login")
        with self.store.lock:
            return self._user_or_404(self.store.user_by_login(login))

    def handle_user_by_email(self, request: Request) -> Response:
        email = self._required_param(request, "email")
        with self.store.lock:
            return self._user_or_404(self.store.user_by_email(email))

    def _user_by_attribute(self, request: Request, param: str, attribute: str) -> Response:
        value = self._required_param(request, param)
        with self.store.lock:
            found = next(
                (u for u in self.store.users.values() if getattr(u, attribute) == value), None
            )
            return self._user_or_404(found)

    def handle_user_by_phone(self, request: Request) -> Response:
        return self._user_by_attribute(request, "phone", "phone")

    def handle_user_by_facebook_id(self, request: Request) -> Response:
        return self._user_by_attribute(request, "facebook_id", "facebook_id")

    def handle_user_by_twitter_id(self, request: Request) -> Response:
        return self._user_by_attribute(request, "twitter_id", "twitter_id")

    def handle_user_by_external_id(self, request: Request, external_id: str) -> Response:
        with self.store.lock:
            return self._user_or_404(self.store.user_by_external_id(external_id))

    def handle_users_by_full_name(self, request: Request) -> Response:
        needle = self._required_param(request, "full_name").lower()
        params = request.params
        with self.store.lock:
            found = [u for u in self.store.users.values() if needle in (u.full_name or "").lower()]
            found = v1_select(found, {"order": params.get("order")})
            return Response(200, v1_page(found, params))

    def handle_users_by_tags(self, request: Request) -> Response:
        params = request.params
        try:
            wanted = set(split_list(params.get("tags")))
        except ValueError as exc:
            raise ApiError.field("tags", "must be a list of strings") from exc
        if not wanted:
            raise ApiError.field("tags", "can't be blank")
        with self.store.lock:
            found = [u for u in self.store.users.values() if wanted.intersection(u.tags)]
            found = v1_select(found, {"order": params.get("order")})
            return Response(200, v1_page(found, params))

    def handle_list_users(self, request: Request) -> Response:
        params = request.params
        with self.store.lock:
            found = v1_select(self.store.users.values(), params)
            return Response(200, v1_page(found, params))

    def list_users_v2(self, request: Request) -> Response:
        params = request.params
        with self.store.lock:
            return Response(200, v2_page(list(self.store.users.values()), params))

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
            target = self.store.user_by_external_id(external_id)
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

    # -- blobs ---------------------------------------------------------------------------------
