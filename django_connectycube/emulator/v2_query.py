"""``GET /users/v2``: the user look-up that works on every application.

The rules are the docs' [D users.md "Retrieve Users V2"]: fields are *stand-alone* (``id``,
``login``, ``email``, ``full_name``, ``phone``, ``external_id``, ``facebook_id``,
``twitter_id``), *stand-alone/additional* (``user_tags``) or *additional* (the three dates);
operators are *primary* (``eq``, i.e. a plain value, ``in``, ``start_with``), *exclude*
(``nin``) or *compare* (``gt``, ``lt``, ``gte``, ``lte``). A query needs at least one stand-alone
field with a primary operator; stand-alone fields take no compare operator; ``start_with`` needs
4+ characters and forces ``limit`` to 5.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, Protocol

from .dates import parse_filter_date
from .models import User
from .queries import DATE_FIELDS, Reveal
from .wire import ApiError, coerce_int, split_list

__all__ = ["V2_INDEXED", "V2_STANDALONE", "UserIndex", "v2_page"]

V2_LIMIT_DEFAULT = 100
V2_LIMIT_MAX = 100
START_WITH_MIN = 4
START_WITH_LIMIT = 5

V2_STANDALONE = frozenset(
    {"id", "login", "email", "full_name", "phone", "external_id", "facebook_id", "twitter_id"}
)
V2_SORTABLE = V2_STANDALONE | DATE_FIELDS
#: Stand-alone fields whose exact values the store indexes: a page filtered by one of them with a
#: plain value or ``in`` reads only the users those values name, however many are stored.
V2_INDEXED = ("id", "external_id", "login", "email")
_RESERVED = frozenset({"offset", "limit", "sort_asc", "sort_desc", "token"})
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "lt": operator.lt,
    "gte": operator.ge,
    "lte": operator.le,
}

Predicate = Callable[[User], bool]


class UserIndex(Protocol):
    """The store, as a v2 page reads it."""

    @property
    def users(self) -> Mapping[int, User]:
        """Every user by id."""

    def users_with(self, name: str, values: Collection[Any]) -> Iterable[User]:
        """Every user whose ``name`` (one of :data:`V2_INDEXED`) may equal one of ``values``."""


def _scalar(name: str, value: Any) -> Any:
    if isinstance(value, (dict, list)):
        raise ApiError(422, [f"'{name}' must be a single value"])
    if name == "id":
        return coerce_int(value, name)
    return str(value)


def _values(name: str, value: Any) -> list[Any]:
    try:
        items = split_list(value)
    except ValueError as exc:
        raise ApiError(422, [f"'{name}' must be a list of values"]) from exc
    return [_scalar(name, v) for v in items]


def _user_value(user: User, name: str) -> Any:
    value = getattr(user, name)
    return value if name == "id" or value is None else str(value)


def _tag_predicates(value: Any) -> tuple[list[Predicate], bool]:
    """``user_tags``: a plain list (all of them) or ``in`` are primary; ``nin`` excludes."""
    if not isinstance(value, dict):
        tags = set(_values("user_tags", value))
        return [lambda u: tags.issubset(u.tags)], True
    predicates: list[Predicate] = []
    primary = False
    for op, operand in value.items():
        tags = set(_values("user_tags", operand))
        if op == "in":
            predicates.append(lambda u, t=tags: bool(t.intersection(u.tags)))  # type: ignore[misc]  # a lambda's bound default
            primary = True
        elif op == "nin":
            predicates.append(lambda u, t=tags: not t.intersection(u.tags))  # type: ignore[misc]  # a lambda's bound default
        else:
            raise ApiError(422, [f"Unsupported operator '{op}' for 'user_tags'"])
    return predicates, primary


def _field_predicates(name: str, value: Any) -> tuple[list[Predicate], bool, bool]:
    """A stand-alone field's predicates, whether one is primary, whether it forces limit 5."""
    if not isinstance(value, dict):
        expected = _scalar(name, value)
        return [lambda u: _user_value(u, name) == expected], True, False
    predicates: list[Predicate] = []
    primary = start_with = False
    for op, operand in value.items():
        if op == "in":
            allowed = set(_values(name, operand))
            predicates.append(lambda u, a=allowed: _user_value(u, name) in a)  # type: ignore[misc]  # a lambda's bound default
            primary = True
        elif op == "nin":
            denied = set(_values(name, operand))
            predicates.append(lambda u, d=denied: _user_value(u, name) not in d)  # type: ignore[misc]  # a lambda's bound default
        elif op == "start_with":
            prefix = str(_scalar(name, operand)).lower()
            if len(prefix) < START_WITH_MIN:
                raise ApiError(
                    422, [f"'{name}[start_with]' needs at least {START_WITH_MIN} characters"]
                )
            predicates.append(
                lambda u, p=prefix: (_user_value(u, name) or "").lower().startswith(p)  # type: ignore[misc]  # a lambda's bound default
            )
            primary = start_with = True
        else:
            raise ApiError(422, [f"Unsupported operator '{op}' for '{name}'"])
    return predicates, primary, start_with


def _date_predicates(name: str, value: Any) -> list[Predicate]:
    """An additional date: a plain value is ``eq`` (to the second), or compare operators."""
    if not isinstance(value, dict):
        moment = parse_filter_date(value, name).replace(microsecond=0)
        return [
            lambda u: (
                getattr(u, name) is not None and getattr(u, name).replace(microsecond=0) == moment
            )
        ]
    if not value:
        raise ApiError(422, [f"'{name}' needs a value or an operator: gt, lt, gte or lte"])
    predicates: list[Predicate] = []
    for op, operand in value.items():
        compare = _COMPARE.get(op)
        if compare is None:
            raise ApiError(422, [f"Unsupported operator '{op}' for '{name}'"])
        moment = parse_filter_date(operand, name)
        predicates.append(
            lambda u, m=moment, c=compare: getattr(u, name) is not None and c(getattr(u, name), m)  # type: ignore[misc]  # a lambda's bound default
        )
    return predicates


def _sort(selected: list[User], params: Mapping[str, Any]) -> None:
    if params.get("sort_asc") and params.get("sort_desc"):
        raise ApiError(422, ["Use either sort_asc or sort_desc, not both"])
    field, reverse = params.get("sort_asc"), False
    if not field and params.get("sort_desc"):
        field, reverse = params["sort_desc"], True
    if not field:
        selected.sort(key=lambda u: u.id)
        return
    if not isinstance(field, str) or field not in V2_SORTABLE:
        raise ApiError(422, [f"Unsupported sort field {field!r}"])
    if field in DATE_FIELDS or field == "id":
        selected.sort(key=lambda u: (getattr(u, field) is None, getattr(u, field) or 0, u.id))
    else:
        selected.sort(key=lambda u: (getattr(u, field) is None, str(getattr(u, field) or ""), u.id))
    if reverse:
        selected.reverse()


def _exact_values(name: str, value: Any) -> set[Any] | None:
    """The values an indexed field must equal one of (a plain value or ``in``), if it must."""
    if not isinstance(value, dict):
        return {_scalar(name, value)}
    return set(_values(name, value["in"])) if "in" in value else None


def _candidates(store: UserIndex, params: Mapping[str, Any]) -> Iterable[User]:
    """The users the predicates need to see: those an indexed filter names, else all of them."""
    for name in V2_INDEXED:
        if name in params:
            values = _exact_values(name, params[name])
            if values is not None:
                return store.users_with(name, values)
    return store.users.values()


def v2_page(
    store: UserIndex, params: Mapping[str, Any], reveal: Reveal | None = None
) -> dict[str, Any]:
    """The v2 page: filters, ``sort_asc``/``sort_desc``, ``offset``/``limit`` (max 100).

    ``reveal`` sees the users of the page before they are shown, and may refuse them.
    """
    predicates: list[Predicate] = []
    has_primary = start_with = False
    for name, value in params.items():
        if name in _RESERVED:
            continue
        if name in DATE_FIELDS:
            predicates += _date_predicates(name, value)
        elif name == "user_tags":
            found, primary = _tag_predicates(value)
            predicates += found
            has_primary |= primary
        elif name in V2_STANDALONE:
            found, primary, forces = _field_predicates(name, value)
            predicates += found
            has_primary |= primary
            start_with |= forces
        else:
            raise ApiError(422, [f"Unsupported filter field '{name}'"])
    if not has_primary:
        fields = ", ".join(sorted(V2_STANDALONE | {"user_tags"}))
        raise ApiError(
            422, [f"At least one of {fields} is required, as a value or with in or start_with"]
        )
    offset = coerce_int(params.get("offset", 0) or 0, "offset", minimum=0)
    limit = coerce_int(params.get("limit", V2_LIMIT_DEFAULT), "limit", minimum=1)
    if limit > V2_LIMIT_MAX:
        raise ApiError.field("limit", f"must be less than or equal to {V2_LIMIT_MAX}")
    if start_with:
        limit = min(limit, START_WITH_LIMIT)
    selected = [u for u in _candidates(store, params) if all(p(u) for p in predicates)]
    _sort(selected, params)
    shown = selected[offset : offset + limit]
    if reveal is not None:
        reveal(shown)
    return {
        "limit": limit,
        "skip": offset,
        "total_entries": len(selected),
        "items": [u.to_json() for u in shown],
    }
