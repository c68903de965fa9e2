"""The API's JSON: DRF's parser, with nesting deeper than any of our bodies refused.

Every body the API reads is a flat object or one level deeper; a body nested to the depth of
thousands is an attack on the decoder. How deep :mod:`json` goes before it gives up depends on
the interpreter (a ``RecursionError`` near 1,000 on Python 3.11, nothing on 3.13), so the limit is
our own: :data:`MAX_DEPTH`, answered as a parse error on every version. The size of the body is
not checked here: Django's ``request.body`` enforces ``DATA_UPLOAD_MAX_MEMORY_SIZE``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import IO, Any

from rest_framework import parsers

from django_connectycube.api.errors import NestedTooDeep

__all__ = ["MAX_DEPTH", "JSONParser", "load_json"]

#: Deepest nesting of arrays and objects a body may have.
MAX_DEPTH = 32


def _check_depth(value: Any) -> None:
    """Walk the decoded value without recursion; too deep is :class:`NestedTooDeep`."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        if children and depth > MAX_DEPTH:
            raise NestedTooDeep()
        pending.extend((child, depth + 1) for child in children)


def load_json(text: str | bytes) -> Any:
    """``json.loads``, refusing nesting deeper than :data:`MAX_DEPTH` (``ValueError`` for bad
    JSON, as ``json.loads``)."""
    try:
        value = json.loads(text)
    except RecursionError as exc:
        raise NestedTooDeep() from exc
    _check_depth(value)
    return value


class JSONParser(parsers.JSONParser):
    def parse(
        self,
        stream: IO[bytes],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        try:
            value = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise NestedTooDeep() from exc
        _check_depth(value)
        return value
