"""The API's JSON parser: DRF's, with nesting too deep to decode refused as a parse error.

DRF's parser catches the ``ValueError`` of malformed JSON but not the ``RecursionError`` that
:mod:`json` raises for an array or object nested past the interpreter's recursion limit, so a few
kilobytes of brackets were a 500. The size of the body is not checked here: DRF reads a JSON or
form body through Django's ``request.body``, which enforces ``DATA_UPLOAD_MAX_MEMORY_SIZE``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework import parsers

from django_connectycube.api.errors import NestedTooDeep

__all__ = ["JSONParser"]


class JSONParser(parsers.JSONParser):
    def parse(
        self,
        stream: IO[bytes],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise NestedTooDeep() from exc
