"""The Custom Identity Provider's verification endpoint (``AUTH_MODE = "cidp"``).

ConnectyCube calls it server to server with the token our login sent it; what the token proves
and what ConnectyCube is told is :mod:`django_connectycube.sync.cidp`'s business, this is only the
HTTP side. A plain Django view, not DRF: ConnectyCube sends no cookie and no authentication, and
its answer mapping expects these exact bodies (``{"uid", …}`` or 422 ``{"error": "..."}``).
"""

from __future__ import annotations

from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, JsonResponse, UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from django_connectycube.api.errors import input_refusal
from django_connectycube.api.parsers import load_json
from django_connectycube.errors import Refused
from django_connectycube.sync import cidp

__all__ = ["ALLOWED_METHODS", "verify"]

ALLOWED_METHODS = ("GET", "POST")

#: What reading a malformed request raises (too many fields or bytes, a broken multipart body):
#: answered here as JSON, where Django would answer its HTML error page.
_UNREADABLE = (SuspiciousOperation, MultiPartParserError, UnreadablePostError)


def _token_from(request: HttpRequest) -> str | None:
    token = request.GET.get("token") or request.POST.get("token")
    if token:
        return token
    if request.method == "POST" and request.content_type == "application/json":
        try:
            body = load_json(request.body.decode("utf-8") or "{}")
        except (UnicodeDecodeError, ValueError):
            return None
        value = body.get("token") if isinstance(body, dict) else None
        return value if isinstance(value, str) and value else None
    return None


def _refuse(message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=422)


def _is_text(token: str) -> bool:
    """Whether the token is encodable text (a JSON ``\\ud800`` escape makes a string that is not,
    which signing and hashing cannot take)."""
    try:
        token.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@csrf_exempt  # called server-to-server by ConnectyCube, with no cookie
@never_cache
@sensitive_post_parameters("token")
@sensitive_variables("token")
def verify(request: HttpRequest) -> JsonResponse:
    """The verification endpoint ConnectyCube calls with the token our login sent it."""
    if request.method not in ALLOWED_METHODS:
        response = JsonResponse(
            {"detail": f"Method {request.method} not allowed.", "code": "method_not_allowed"},
            status=405,
        )
        response["Allow"] = ", ".join(ALLOWED_METHODS)
        return response
    try:
        token = _token_from(request)
    except Exception as exc:
        refused = input_refusal(exc)
        if refused is not None:
            detail, code, status = refused
            return JsonResponse({"detail": detail, "code": code}, status=status)
        if isinstance(exc, _UNREADABLE):
            return JsonResponse({"error": "malformed request"}, status=400)
        raise
    if not token:
        return _refuse("token is required")
    if not _is_text(token):
        return _refuse("invalid or expired token")
    try:
        return JsonResponse(cidp.answer(token))
    except Refused as exc:
        return _refuse(str(exc))
