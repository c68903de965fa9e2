"""drf-spectacular's decorators when it is installed, harmless stand-ins when it is not.

The OpenAPI schema is an optional extra (``pip install django-connectycube[openapi]``); the API
itself must work without it, so views import the decorators from here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["HAS_SPECTACULAR", "OpenApiParameter", "OpenApiResponse", "extend_schema"]

F = TypeVar("F")

try:
    from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema

    HAS_SPECTACULAR = True
except ImportError:  # pragma: no cover - exercised only without the extra
    HAS_SPECTACULAR = False

    def extend_schema(*args: Any, **kwargs: Any) -> Callable[[F], F]:  # type: ignore[misc]  # a stand-in taking any arguments
        """No schema generator installed: leave the view as it is."""

        def decorate(view: F) -> F:
            return view

        return decorate

    class OpenApiParameter:  # type: ignore[no-redef]
        """Stand-in accepting drf-spectacular's arguments."""

        QUERY = "query"
        PATH = "path"

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.args, self.kwargs = args, kwargs

    class OpenApiResponse:  # type: ignore[no-redef]
        """Stand-in accepting drf-spectacular's arguments."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.args, self.kwargs = args, kwargs
