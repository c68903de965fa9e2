"""What the client's two scopes share: the reads any session may make, the body of a user write,
and how an answer becomes JSON.

``ConnectyCubeClient`` sends the application session's token and ``UserClient`` one user's; both
inherit the user and blob reads from here and differ only in ``_call``.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import requests

from .blobs import BlobReads
from .errors import APIError, error_for_status
from .users import UserReads

if TYPE_CHECKING:
    from .api import ConnectyCubeClient

__all__ = ["BaseApi", "json_body", "user_body"]


def user_body(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The ``user`` object of a sign-up or update: unset fields left out, ``custom_data`` as JSON
    text and ``tag_list`` as comma-separated text, the forms ConnectyCube stores."""
    body: dict[str, Any] = {}
    for key, value in fields.items():
        if value is None:
            continue
        if key == "custom_data" and not isinstance(value, str):
            value = jsonlib.dumps(value, separators=(",", ":"))
        elif key == "tag_list" and not isinstance(value, str):
            value = ",".join(str(v) for v in value)
        body[key] = value
    return body


def json_body(response: requests.Response, method: str, path: str) -> dict[str, Any]:
    """The answer's JSON object (a top-level list comes back as ``{"items": [...]}``); an empty
    body is ``{}``, anything unreadable an :class:`~.errors.APIError` naming the call.

    A success status whose body is ``{"errors": ...}`` is a refusal: the real service answers
    some (a refused Custom Identity Provider login) with 200, so it is raised as the typed error
    of its status, keeping the server's words, rather than read as a broken answer."""
    if not response.content or not response.content.strip():
        return {}
    try:
        data = response.json()
    except ValueError as exc:
        raise APIError(
            f"Invalid JSON in the answer to {method} {path}",
            status=response.status_code,
            response=response,
            method=method,
            path=path,
        ) from exc
    if isinstance(data, dict) and "errors" in data:
        raise error_for_status(
            response.status_code, data["errors"], response=response, method=method, path=path
        )
    return data if isinstance(data, dict) else {"items": data}


class BaseApi(UserReads, BlobReads):
    """The calls any session may make (reads); subclasses decide which token is sent."""

    _client: ConnectyCubeClient

    def _call(self, method: str, path: str, **request: Any) -> requests.Response:
        """Send with this scope's token; ``request`` holds ``params``, ``json`` and ``safe`` for
        :meth:`.transport.Transport.request`."""
        raise NotImplementedError

    def _json_call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return json_body(self._call(method, path, **kwargs), method, "/" + path)
