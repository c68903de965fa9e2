"""User look-ups: the deprecated v1 routes, ``GET /users/v2`` and ``GET /users/online``.

Every route here answers according to the dashboard switches (:mod:`.switches`): on a new
application the v1 routes are refused and only v2 works.
"""

from __future__ import annotations

from functools import partial

from .base import USER_NOT_FOUND
from .models import User
from .queries import v1_page, v1_select
from .switches import SwitchGuards
from .transport import Request, Response
from .v2_query import v2_page
from .wire import BLANK, ApiError, coerce_int, split_list

__all__ = ["LookupHandlers"]

#: Most users one ``GET /users/online`` shows (the v2 page size; the real one is not documented).
ONLINE_LIMIT = 100


class LookupHandlers(SwitchGuards):
    """Handlers of the routes that read users."""

    def _one_user(self, request: Request, user: User | None) -> Response:
        if user is None:
            raise ApiError(404, USER_NOT_FOUND)
        self._check_other_user_info(request, [user])
        return Response(200, {"user": user.to_json()})

    def handle_get_user(self, request: Request, id: str) -> Response:
        self._require_v1()
        with self.store.lock:
            return self._one_user(request, self.store.users.get(int(id)) if id.isdigit() else None)

    def handle_user_by_login(self, request: Request) -> Response:
        self._require_v1()
        login = self._required_param(request, "login")
        with self.store.lock:
            return self._one_user(request, self.store.user_by_login(login))

    def handle_user_by_email(self, request: Request) -> Response:
        self._require_v1()
        email = self._required_param(request, "email")
        with self.store.lock:
            return self._one_user(request, self.store.user_by_email(email))

    def _user_by_attribute(self, request: Request, param: str, attribute: str) -> Response:
        self._require_v1()
        value = self._required_param(request, param)
        with self.store.lock:
            found = next(
                (u for u in self.store.users.values() if getattr(u, attribute) == value), None
            )
            return self._one_user(request, found)

    def handle_user_by_phone(self, request: Request) -> Response:
        return self._user_by_attribute(request, "phone", "phone")

    def handle_user_by_facebook_id(self, request: Request) -> Response:
        return self._user_by_attribute(request, "facebook_id", "facebook_id")

    def handle_user_by_twitter_id(self, request: Request) -> Response:
        return self._user_by_attribute(request, "twitter_id", "twitter_id")

    def handle_user_by_external_id(self, request: Request, external_id: str) -> Response:
        """``/users/external/{id}`` reads the deprecated integer ``external_user_id`` [D]."""
        self._require_v1()
        with self.store.lock:
            return self._one_user(request, self._by_external_user_id(external_id))

    def _v1_list(self, request: Request, found: list[User], order_only: bool = False) -> Response:
        params = request.params
        selected = v1_select(found, {"order": params.get("order")} if order_only else params)
        reveal = partial(self._check_other_user_info, request)
        return Response(200, v1_page(selected, params, reveal))

    def handle_users_by_full_name(self, request: Request) -> Response:
        self._require_v1()
        self._require_users_list()
        needle = self._required_param(request, "full_name").lower()
        with self.store.lock:
            found = [u for u in self.store.users.values() if needle in (u.full_name or "").lower()]
            return self._v1_list(request, found, order_only=True)

    def handle_users_by_tags(self, request: Request) -> Response:
        self._require_v1()
        self._require_users_list()
        try:
            wanted = set(split_list(request.params.get("tags")))
        except ValueError as exc:
            raise ApiError.field("tags", "must be a list of strings") from exc
        if not wanted:
            raise ApiError.field("tags", BLANK)
        with self.store.lock:
            found = [u for u in self.store.users.values() if wanted.intersection(u.tags)]
            return self._v1_list(request, found, order_only=True)

    def handle_list_users(self, request: Request) -> Response:
        self._require_v1()
        self._require_users_list()
        with self.store.lock:
            return self._v1_list(request, list(self.store.users.values()))

    def handle_list_users_v2(self, request: Request) -> Response:
        self._require_users_list()
        params = request.params
        reveal = partial(self._check_other_user_info, request)
        with self.store.lock:
            return Response(200, v2_page(self.store, params, reveal))

    def handle_online_users(self, request: Request) -> Response:
        """``GET /users/online``: users with a live session, or their ``count``.

        The shapes (``{"users": [...]}``, ``{"count": n}``) are the JS SDK 6's types.
        """
        self._require_online_users_api()
        self._require_users_list()
        params = request.params
        with self.store.lock:
            online = self.store.online_users()
            if params.get("count") not in (None, "", "0", "false", False):
                return Response(200, {"count": len(online)})
            offset = coerce_int(params.get("offset", 0) or 0, "offset", minimum=0)
            limit = coerce_int(
                params.get("limit", ONLINE_LIMIT) or ONLINE_LIMIT, "limit", minimum=1
            )
            shown = online[offset : offset + min(limit, ONLINE_LIMIT)]
            self._check_other_user_info(request, shown)
            return Response(200, {"users": [u.to_json() for u in shown]})
