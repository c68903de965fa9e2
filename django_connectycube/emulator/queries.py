"""User look-ups: the v1 list (``filter[]``, ``order``, pages) and ``/users/v2``.

The two generations of the list API differ in everything (filter syntax, paging, item shape,
validation strictness), so each has its own function; both are pure functions over a list of
users, called with the store's lock held.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from .store import User
from .wire import ApiError, coerce_int, split_list

__all__ = ["v1_page", "v1_select", "v2_page"]

V1_PER_PAGE_DEFAULT = 10
V1_PER_PAGE_MAX = 100
V2_LIMIT_DEFAULT = 100
V2_LIMIT_MAX = 100
START_WITH_MIN = 4
START_WITH_LIMIT = 5

#: Called with the users a page is about to show (e.g. to refuse other users' records).
Reveal = Callable[[list[User]], None]

#: Fields a v1 ``filter[]``/``order`` may name.
V1_FIELDS = frozenset(
    {
        "id",
        "login",
        "email",
        "full_name",
        "phone",
        "website",
        "external_user_id",
        "external_id",
        "facebook_id",
        "twitter_id",
        "blob_id",
        "user_tags",
        "created_at",
        "updated_at",
        "last_request_at",
    }
)
DATE_FIELDS = frozenset({"created_at", "updated_at", "last_request_at"})
V2_STANDALONE = frozenset(
    {"id", "login", "email", "full_name", "phone", "external_id", "facebook_id", "twitter_id"}
)
V2_SORTABLE = V2_STANDALONE | DATE_FIELDS


def _parse_date(value: str, name: str) -> datetime:
    text = value.strip()
    try:
        if text.replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(text), tz=timezone.utc)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError) as exc:
        raise ApiError.field(name, f"has an invalid date: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _typed(value: str, kind: str, name: str) -> Any:
    if kind == "number":
        try:
            return float(value)
        except ValueError as exc:
            raise ApiError.field(name, f"has an invalid number: {value!r}") from exc
    if kind == "date":
        return _parse_date(value, name)
    return value


def _field_value(user: User, name: str, kind: str) -> Any:
    value = getattr(user, name)
    if value is None:
        return None
    if kind == "number":
        try:
            return float(value)
        except (TypeError, ValueError):
            return None
    if kind == "date":
        return value
    return str(value)


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": lambda a, b: a > b,
    "lt": lambda a, b: a < b,
    "ge": lambda a, b: a >= b,
    "le": lambda a, b: a <= b,
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
}


def _v1_filter(expression: Any) -> Callable[[User], bool]:
    """Compile ``{number|string|date} {field} {op} {value[,value]}`` into a predicate."""
    if not isinstance(expression, str):
        raise ApiError.field("filter", "must be a string like 'number id in 1,2'")
    parts = expression.split(None, 3)
    if len(parts) != 4:
        raise ApiError.field("filter", f"is invalid: {expression!r}")
    kind, name, op, raw = parts
    if kind not in ("number", "string", "date"):
        raise ApiError.field("filter", f"has an unknown type {kind!r}")
    if name not in V1_FIELDS:
        raise ApiError.field("filter", f"has an unknown field {name!r}")
    if op in _OPS:
        operand = _typed(raw, kind, "filter")
        compare = _OPS[op]

        def simple(user: User) -> bool:
            value = _field_value(user, name, kind)
            if value is None:
                return op == "ne"
            try:
                return compare(value, operand)
            except TypeError:
                return False

        return simple
    values = [_typed(v, kind, "filter") for v in split_list(raw)]
    if op == "between":
        if len(values) != 2:
            raise ApiError.field("filter", "'between' needs two values")
        low, high = values

        def between(user: User) -> bool:
            value = _field_value(user, name, kind)
            return value is not None and low <= value <= high

        return between
    if op == "in":
        allowed = set(values)
        if name == "user_tags":
            return lambda user: bool(allowed.intersection(user.tags))
        return lambda user: _field_value(user, name, kind) in allowed
    raise ApiError.field("filter", f"has an unknown operator {op!r}")


def _v1_order(expression: Any) -> tuple[Callable[[User], Any], bool]:
    if not isinstance(expression, str):
        raise ApiError.field("order", "must be a string like 'asc string created_at'")
    parts = expression.split()
    if len(parts) != 3 or parts[0] not in ("asc", "desc"):
        raise ApiError.field("order", f"is invalid: {expression!r}")
    direction, kind, name = parts
    if kind not in ("number", "string", "date") or name not in V1_FIELDS:
        raise ApiError.field("order", f"is invalid: {expression!r}")

    def key(user: User) -> Any:
        value = _field_value(user, name, kind)
        # Missing values sort last in both directions' natural reading (first when descending).
        return (value is None, value if value is not None else 0, user.id)

    return key, direction == "desc"


def v1_select(users: Iterable[User], params: Mapping[str, Any]) -> list[User]:
    """Apply ``filter[]`` and ``order`` to a set of users."""
    filters = params.get("filter")
    if filters is None:
        expressions: list[Any] = []
    elif isinstance(filters, list):
        expressions = filters
    else:
        expressions = [filters]
    predicates = [_v1_filter(e) for e in expressions]
    selected = [u for u in users if all(p(u) for p in predicates)]
    if params.get("order"):
        key, reverse = _v1_order(params["order"])
        selected.sort(key=key, reverse=reverse)
    else:
        selected.sort(key=lambda u: u.id)
    return selected


def v1_page(
    users: list[User], params: Mapping[str, Any], reveal: Reveal | None = None
) -> dict[str, Any]:
    """The v1 page: each item wrapped in ``{"user": ...}``, pages counted from 1.

    ``reveal`` sees the users of the page before they are shown, and may refuse them.
    """
    page = coerce_int(params.get("page", 1) or 1, "page", minimum=1)
    per_page = coerce_int(
        params.get("per_page", V1_PER_PAGE_DEFAULT) or V1_PER_PAGE_DEFAULT, "per_page", minimum=1
    )
    per_page = min(per_page, V1_PER_PAGE_MAX)
    start = (page - 1) * per_page
    shown = users[start : start + per_page]
    if reveal is not None:
        reveal(shown)
    return {
        "current_page": page,
        "per_page": per_page,
        "total_entries": len(users),
        "items": [{"user": u.to_json()} for u in shown],
    }


# -- v2 ----------------------------------------------------------------------------------------

_V2_RESERVED = frozenset({"offset", "limit", "sort_asc", "sort_desc", "token"})


def _v2_scalar(name: str, value: Any) -> Any:
    if isinstance(value, (dict, list)):
        raise ApiError(422, [f"'{name}' must be a single value"])
    if name == "id":
        return coerce_int(value, name)
    return str(value)


def _v2_values(name: str, value: Any) -> list[Any]:
    try:
        items = split_list(value)
    except ValueError as exc:
        raise ApiError(422, [f"'{name}' must be a list of values"]) from exc
    return [_v2_scalar(name, v) for v in items]


def _v2_user_value(user: User, name: str) -> Any:
    value = getattr(user, name)
    if name == "id":
        return value
    return None if value is None else str(value)


def v2_page(
    users: Iterable[User], params: Mapping[str, Any], reveal: Reveal | None = None
) -> dict[str, Any]:
    """``GET /users/v2``: filters, ``sort_asc``/``sort_desc``, ``offset``/``limit`` (max 100).

    ``reveal`` sees the users of the page before they are shown, and may refuse them.
    """
    predicates: list[Callable[[User], bool]] = []
    standalone = False
    force_limit: int | None = None
    for name, value in params.items():
        if name in _V2_RESERVED:
            continue
        if name == "user_tags":
            standalone = True
            if isinstance(value, dict):
                for op, operand in value.items():
                    tags = set(_v2_values(name, operand))
                    if op == "in":
                        predicates.append(lambda u, t=tags: bool(t.intersection(u.tags)))
                    elif op == "nin":
                        predicates.append(lambda u, t=tags: not t.intersection(u.tags))
                    else:
                        raise ApiError(422, [f"Unsupported operator '{op}' for 'user_tags'"])
            else:
                tags = set(_v2_values(name, value))
                predicates.append(lambda u, t=tags: t.issubset(u.tags))
            continue
        if name in DATE_FIELDS:
            if not isinstance(value, dict) or not value:
                raise ApiError(422, [f"'{name}' needs an operator: gt, lt, gte or lte"])
            for op, operand in value.items():
                if op not in ("gt", "lt", "gte", "lte") or isinstance(operand, (dict, list)):
                    raise ApiError(422, [f"Unsupported operator '{op}' for '{name}'"])
                moment = _parse_date(str(operand), name)
                compare = _OPS[{"gte": "ge", "lte": "le"}.get(op, op)]
                predicates.append(
                    lambda u, n=name, m=moment, c=compare: (
                        getattr(u, n) is not None and c(getattr(u, n), m)
                    )
                )
            continue
        if name not in V2_STANDALONE:
            raise ApiError(422, [f"Unsupported filter field '{name}'"])
        standalone = True
        if isinstance(value, dict):
            for op, operand in value.items():
                if op == "in":
                    allowed = set(_v2_values(name, operand))
                    predicates.append(lambda u, n=name, a=allowed: _v2_user_value(u, n) in a)
                elif op == "nin":
                    denied = set(_v2_values(name, operand))
                    predicates.append(lambda u, n=name, d=denied: _v2_user_value(u, n) not in d)
                elif op == "start_with":
                    prefix = str(_v2_scalar(name, operand))
                    if len(prefix) < START_WITH_MIN:
                        raise ApiError(
                            422,
                            [f"'{name}[start_with]' needs at least {START_WITH_MIN} characters"],
                        )
                    force_limit = START_WITH_LIMIT
                    lowered = prefix.lower()
                    predicates.append(
                        lambda u, n=name, p=lowered: (
                            (_v2_user_value(u, n) or "").lower().startswith(p)
                        )
                    )
                else:
                    raise ApiError(422, [f"Unsupported operator '{op}' for '{name}'"])
        else:
            expected = _v2_scalar(name, value)
            predicates.append(lambda u, n=name, e=expected: _v2_user_value(u, n) == e)
    if not standalone:
        raise ApiError(
            422,
            [
                "At least one of these filters is required: "
                + ", ".join(sorted(V2_STANDALONE | {"user_tags"}))
            ],
        )
    offset = coerce_int(params.get("offset", 0) or 0, "offset", minimum=0)
    limit = coerce_int(params.get("limit", V2_LIMIT_DEFAULT), "limit", minimum=1)
    if limit > V2_LIMIT_MAX:
        raise ApiError.field("limit", f"must be less than or equal to {V2_LIMIT_MAX}")
    if force_limit is not None:
        limit = min(limit, force_limit)
    selected = [u for u in users if all(p(u) for p in predicates)]
    sort_field, reverse = None, False
    if params.get("sort_asc") and params.get("sort_desc"):
        raise ApiError(422, ["Use either sort_asc or sort_desc, not both"])
    if params.get("sort_asc"):
        sort_field = params["sort_asc"]
    elif params.get("sort_desc"):
        sort_field, reverse = params["sort_desc"], True
    if sort_field is not None:
        if not isinstance(sort_field, str) or sort_field not in V2_SORTABLE:
            raise ApiError(422, [f"Unsupported sort field {sort_field!r}"])
        selected.sort(
            key=lambda u: (
                (getattr(u, sort_field) is None, getattr(u, sort_field) or 0, u.id)
                if sort_field in DATE_FIELDS or sort_field == "id"
                else (getattr(u, sort_field) is None, str(getattr(u, sort_field) or ""), u.id)
            ),
            reverse=reverse,
        )
    else:
        selected.sort(key=lambda u: u.id)
    shown = selected[offset : offset + limit]
    if reveal is not None:
        reveal(shown)
    return {
        "limit": limit,
        "skip": offset,
        "total_entries": len(selected),
        "items": [u.to_json() for u in shown],
    }
