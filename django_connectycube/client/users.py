"""User look-ups (reads), shared by the application and the user scope of the client.

Every public look-up goes through ``GET /users/v2``: it is the only user read that works on every
ConnectyCube application. The v1 routes (``GET /users/{id}``, ``/users/by_login``, ...) are
switched off on a new application ("Overview → Permissions → DISABLE LIST USERS API V1" is
checked by default) and answer 403, so the client has no call for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from .errors import NotFound
from .types import Page, User, iterate_pages

__all__ = ["V2_LIMIT_MAX", "UserReads"]

T = TypeVar("T")

#: The largest page ``GET /users/v2`` serves.
V2_LIMIT_MAX = 100


def _v2_params(
    filters: dict[str, Any],
    offset: int,
    limit: int,
    sort_asc: str | None,
    sort_desc: str | None,
) -> list[tuple[str, Any]]:
    """Query pairs of a v2 search: ``field__op`` becomes ``field[op]`` (``[op][]`` for lists)."""
    params: list[tuple[str, Any]] = []
    for key, value in filters.items():
        name, _, lookup = key.partition("__")
        if lookup in ("in", "nin"):
            values = value.split(",") if isinstance(value, str) else list(value)
            params += [(f"{name}[{lookup}][]", v) for v in values]
        elif lookup:
            params.append((f"{name}[{lookup}]", value))
        else:
            params.append((name, value))
    params += [("offset", offset), ("limit", limit)]
    if sort_asc:
        params.append(("sort_asc", sort_asc))
    if sort_desc:
        params.append(("sort_desc", sort_desc))
    return params


def _paged(page: int, per_page: int) -> tuple[int, int]:
    """v1-style paging (``page`` from 1) as the v2 ``(offset, limit)``."""
    if int(page) < 1:
        raise ValueError(f"page counts from 1, got {page!r}.")
    if not 1 <= int(per_page) <= V2_LIMIT_MAX:
        raise ValueError(f"per_page must be 1 to {V2_LIMIT_MAX}, got {per_page!r}.")
    return (int(page) - 1) * int(per_page), int(per_page)


def _order_type(field: str) -> str:
    """The type word of a v1 ``order`` parameter (``asc date created_at``)."""
    if field == "id" or (field.endswith("_id") and field != "external_id"):
        return "number"
    if field.endswith("_at"):
        return "date"
    return "string"


class UserReads:
    """Mixin of the client's two scopes: the user reads any session may make."""

    def _json_call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError

    # ---- v2: the look-ups the app uses -------------------------------------------------------

    def search_users(
        self,
        *,
        offset: int = 0,
        limit: int = V2_LIMIT_MAX,
        sort_asc: str | None = None,
        sort_desc: str | None = None,
        **filters: Any,
    ) -> Page[User]:
        """A ``GET /users/v2`` page. Filters use lookups: ``login="bob"``, ``id__in=[1, 2]``,
        ``login__start_with="mart"``, ``created_at__gt="2024-01-01T00:00:00Z"``. ConnectyCube
        needs at least one of ``id``, ``login``, ``email``, ``full_name``, ``phone``,
        ``external_id``, ``facebook_id``, ``twitter_id``, ``user_tags``.
        """
        params = _v2_params(filters, offset, limit, sort_asc, sort_desc)
        return Page.from_v2(self._json_call("GET", "users/v2", params=params), User.from_api)

    def find_user(self, **one_filter: Any) -> User | None:
        """The user matching one v2 filter (``login="bob"``), or None; the lowest id wins when
        several match (phone and full name are not unique)."""
        if len(one_filter) != 1:
            raise ValueError(f"find_user takes exactly one filter, got {sorted(one_filter)}.")
        page = self.search_users(limit=1, sort_asc="id", **one_filter)
        return page.items[0] if page.items else None

    def _the_user(self, **one_filter: Any) -> User:
        user = self.find_user(**one_filter)
        if user is None:
            ((field, value),) = one_filter.items()
            raise NotFound(
                f"User not found (no user with {field}={value!r} in GET /users/v2)",
                status=404,
                errors=["User not found"],
                method="GET",
                path="/users/v2",
            )
        return user

    def get_user(self, user_id: int) -> User:
        """The user with this ConnectyCube id (``NotFound`` if none)."""
        return self._the_user(id=int(user_id))

    def get_user_by_login(self, login: str) -> User:
        """The user with this login (``NotFound`` if none)."""
        return self._the_user(login=login)

    def get_user_by_email(self, email: str) -> User:
        """The user with this e-mail (``NotFound`` if none)."""
        return self._the_user(email=email)

    def get_user_by_phone(self, phone: str) -> User:
        """The user with this phone number (``NotFound`` if none)."""
        return self._the_user(phone=phone)

    def get_user_by_external_id(self, external_id: str) -> User:
        """The user whose string ``external_id`` is this (``NotFound`` if none).

        Not ``/users/external/{id}``: that route addresses the deprecated integer
        ``external_user_id``.
        """
        return self._the_user(external_id=str(external_id))

    def find_user_by_external_id(self, external_id: str) -> User | None:
        """Like :meth:`get_user_by_external_id` but None when absent (the sync engine's look-up)."""
        return self.find_user(external_id=str(external_id))

    def _v1_style_page(
        self, page: int, per_page: int, order_by: str | None, descending: bool, **filters: Any
    ) -> Page[User]:
        """A v2 search answered as a numbered page, so ``iter_pages`` asks for ``page=n+1``."""
        offset, limit = _paged(page, per_page)
        sort = {"sort_desc" if descending else "sort_asc": order_by} if order_by else {}
        found = self.search_users(offset=offset, limit=limit, **sort, **filters)
        return Page(
            items=found.items,
            total=found.total,
            page=int(page),
            per_page=limit,
            offset=offset,
            limit=limit,
        )

    def get_users_by_ids(
        self,
        ids: Iterable[int],
        *,
        page: int = 1,
        per_page: int = 10,
        order_by: str = "created_at",
        descending: bool = False,
    ) -> Page[User]:
        """Users with these ids, one page, sorted by ``order_by`` (any v2-sortable field)."""
        id_list = [int(i) for i in ids]
        if not id_list:
            _paged(page, per_page)
            return Page(items=[], total=0, page=int(page), per_page=int(per_page))
        return self._v1_style_page(page, per_page, order_by, descending, id__in=id_list)

    def get_users_by_full_name(
        self,
        full_name: str,
        *,
        page: int = 1,
        per_page: int = 10,
        order_by: str | None = None,
        descending: bool = False,
    ) -> Page[User]:
        """Users whose full name is exactly this, one page (v2 has no substring match)."""
        return self._v1_style_page(page, per_page, order_by, descending, full_name=full_name)

    def get_users_by_tags(
        self,
        tags: str | Iterable[str],
        *,
        page: int = 1,
        per_page: int = 10,
        order_by: str | None = None,
        descending: bool = False,
    ) -> Page[User]:
        """Users carrying any of these tags, one page."""
        tag_list = tags.split(",") if isinstance(tags, str) else list(tags)
        tag_list = [t.strip() for t in tag_list if t.strip()]
        if not tag_list:
            raise ValueError("get_users_by_tags needs at least one tag.")
        return self._v1_style_page(page, per_page, order_by, descending, user_tags__in=tag_list)

    def iter_pages(self, fetch: Callable[..., Page[T]], /, **kwargs: Any) -> Iterator[T]:
        """Every item across pages: ``iter_pages(client.get_users_by_tags, tags=x)``."""
        return iterate_pages(fetch, **kwargs)
