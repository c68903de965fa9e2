"""How the API words a failure: always ``{"detail": ..., "code": ...}`` with a stable code,
for unknown paths under its prefix too."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.urls import Resolver404, resolve
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import ParseError
from rest_framework.response import Response

__all__ = [
    "CONFLICT",
    "NOT_FOUND_URL_NAME",
    "UNAVAILABLE",
    "NestedTooDeep",
    "error_response",
    "input_refusal",
    "not_found",
]

#: The code of every 503: ConnectyCube is slow, down or rate limiting.
UNAVAILABLE = "connectycube_unavailable"
CONFLICT = "connectycube_conflict"


def error_response(detail: Any, code: str, status_code: int, **headers: str) -> Response:
    """An error answer; header names use ``_`` for ``-`` (``Retry_After="5"``)."""
    response = Response({"detail": str(detail), "code": code}, status=status_code)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


class NestedTooDeep(ParseError):
    """JSON nested deeper than any body of the API (:data:`.parsers.MAX_DEPTH`)."""

    default_detail = _("JSON parse error - nested too deeply.")


def input_refusal(exc: BaseException) -> tuple[str, str, int] | None:
    """``(detail, code, status)`` for input past a limit, ``None`` for any other exception.

    The limits are Django's own (``DATA_UPLOAD_MAX_MEMORY_SIZE``,
    ``DATA_UPLOAD_MAX_NUMBER_FIELDS``, ``DATA_UPLOAD_MAX_NUMBER_FILES``), which Django's handler
    would answer with its HTML page (the debug page under ``DEBUG``) and an ERROR log: a client's
    mistake, answered here as one. Every view of the API, DRF or not, words them through this.
    """
    if isinstance(exc, RequestDataTooBig):
        return str(_("The request body is too large.")), "request_too_large", 413
    if isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        return str(_("The request has too many fields.")), "too_many_fields", 400
    if isinstance(exc, NestedTooDeep):
        return str(exc.detail), "parse_error", 400
    return None


#: URL name of the catch-all that answers every unknown path under the API's prefix.
NOT_FOUND_URL_NAME = "not-found"


@csrf_exempt  # a JSON 404 for a POST too, not the CSRF middleware's HTML 403
def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Unknown paths under the API's prefix: a JSON 404 like every other API error.

    Being the last pattern, it also keeps Django's ``APPEND_SLASH`` redirect from happening, so
    it does that itself for reads: ``GET users`` still goes to ``users/``.
    """
    slashed = request.path_info + "/"
    if not request.path_info.endswith("/") and _resolves_to_a_view(slashed, request):
        if settings.APPEND_SLASH and request.method in ("GET", "HEAD"):
            return HttpResponsePermanentRedirect(request.get_full_path(force_append_slash=True))
        detail = f"Not found. API paths end with a slash: {request.path + '/'}"
    else:
        detail = "Not found."
    return JsonResponse({"detail": detail, "code": "not_found"}, status=404)


def _resolves_to_a_view(path: str, request: HttpRequest) -> bool:
    try:
        match = resolve(path, getattr(request, "urlconf", None))
    except Resolver404:
        return False
    return match.url_name != NOT_FOUND_URL_NAME
