"""The deprecated v1 user list: ``filter[]``, ``order`` and pages (``/users/v2``: :mod:`.v2_query`).

The two generations of the list API differ in everything (filter syntax, paging, item shape,
validation strictness), so each has its own module; both are pure functions over a list of
users, called with the store's lock held.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .dates import parse_filter_date
from .models import User
from .wire import ApiError, coerce_int, split_list

__all__ = ["DATE_FIELDS", "Reveal", "v1_page", "v1_select"]

V1_PER_PAGE_DEFAULT = 10
V1_PER_PAGE_MAX = 100

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
NUMBER_FIELDS = frozenset({"id", "external_user_id", "blob_id"})


def field_type(name: str) -> str:
    """The type a v1 filter must declare to match ``name``: number, date or string."""
    if name in NUMBER_FIELDS:
        return "number"
    return "date" if name in DATE_FIELDS else "string"


def _typed(value: str, kind: str, name: str) -> Any:
    if kind == "number":
        try:
            return float(value)
        except ValueError as exc:
            raise ApiError.field(name, f"has an invalid number: {value!r}") from exc
    if kind == "date":
        return parse_filter_date(value, name)
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
    predicate = _v1_predicate(kind, name, op, raw)
    if kind != field_type(name):
        # The declared type must be the field's: "string id in 1,2" matches nothing
        # [O js-sdk-releases#80], as any other mismatch does [I].
        return lambda user: False
    return predicate


def _v1_predicate(kind: str, name: str, op: str, raw: str) -> Callable[[User], bool]:
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
        # An empty page reports per_page 0 [O js-sdk-releases#80].
        "per_page": per_page if shown else 0,
        "total_entries": len(users),
        "items": [{"user": u.to_json()} for u in shown],
    }
