"""The API's JSON: DRF's parser, with nesting deeper than any of our bodies refused.

Every body the API reads is a flat object or one level deeper; a body nested to the depth of
thousands is an attack on the decoder. How deep :mod:`json` goes before it gives up depends on
the interpreter (a ``RecursionError`` near 1,000 on Python 3.11, nothing on 3.13), so the limit is
our own: :data:`MAX_DEPTH`, answered as a parse error on every version. The size: DRF reads a
body through Django's ``request.body``, which enforces ``DATA_UPLOAD_MAX_MEMORY_SIZE``, except
the oldest releases we support (3.15.0), which read the request as a stream; the parser checks
the declared length against the same setting first, so every release answers 413 alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
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
        request = (parser_context or {}).get("request")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if request is not None and limit is not None:
            length = request.META.get("CONTENT_LENGTH") or 0
            if str(length).isdigit() and int(length) > limit:
                raise RequestDataTooBig(
                    "Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE."
                )
        try:
            value = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise NestedTooDeep() from exc
        _check_depth(value)
        return value
