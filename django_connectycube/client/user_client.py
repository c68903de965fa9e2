"""``UserClient``: calls made with one user's session token.

``client.as_user(token_or_session)`` returns one. It makes the same reads as the application
scope, plus the writes only a user may do: update or delete self, blobs, avatar. A 401 raises
:class:`~.errors.AuthenticationError`; renewing a user's session is the caller's job, never this
client's (the application session is the only one the client renews).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import requests

from .redaction import forget_secret, register_secret
from .scopes import BaseApi, user_body
from .types import Blob, Session, User

if TYPE_CHECKING:
    from .api import ConnectyCubeClient

__all__ = ["UserClient"]


class UserClient(BaseApi):
    """Calls made with one user's session token; see the module docstring."""

    def __init__(
        self, client: ConnectyCubeClient, token: str, *, user_id: int | None = None
    ) -> None:
        if not token:
            raise ValueError("A user session token is required.")
        self._client = client
        self._token = token
        self.user_id = user_id
        register_secret(token)

    def __repr__(self) -> str:
        return f"<UserClient user_id={self.user_id} token=[redacted]>"

    @property
    def token(self) -> str:
        """The session token this view sends."""
        return self._token

    def _call(self, method: str, path: str, **request: Any) -> requests.Response:
        return self._client.transport.request(
            method, path, headers={"CB-Token": self._token}, **request
        )

    def _own_id(self, user_id: int | None) -> int:
        if user_id is not None:
            return int(user_id)
        if self.user_id is None:
            session = self.get_session()
            if session.user_id is None:
                raise ValueError("This token is an application session; it has no user.")
            self.user_id = session.user_id
        return int(self.user_id)

    # ---- session ---------------------------------------------------------------------------

    def get_session(self) -> Session:
        """This token's session (``GET /session``)."""
        response = self._call("GET", "session")
        return self._client._session_from(response, "GET", "/session")

    def destroy_session(self) -> None:
        """Destroy this session (``DELETE /session``)."""
        self._call("DELETE", "session")
        forget_secret(self._token)

    # ---- users -----------------------------------------------------------------------------

    def update_user(
        self,
        user_id: int | None = None,
        fields: Mapping[str, Any] | None = None,
        /,
        **changes: Any,
    ) -> User:
        """Update the session's own user (``PUT /users/{id}``) with ``fields`` and/or keywords.

        Changing ``password`` requires ``old_password``. ``custom_data`` may be a dict (sent as
        JSON text) and ``tag_list`` a list.
        """
        merged = {**(fields or {}), **changes}
        if merged.get("password") and not merged.get("old_password"):
            raise ValueError("Changing the password requires old_password.")
        target = self._own_id(user_id)
        body = {"user": user_body(merged)}
        return User.from_api(self._json_call("PUT", f"users/{target}", json=body))

    def delete_self(self) -> None:
        """Delete the session's own user (``DELETE /users/{id}``)."""
        self._call("DELETE", f"users/{self._own_id(None)}")

    # ---- blobs -----------------------------------------------------------------------------

    def create_blob(self, name: str, content_type: str, *, public: bool = False) -> Blob:
        """Step 1 of an upload: declare the blob and get its upload access (``POST /blobs``)."""
        body = {"blob": {"content_type": content_type, "name": name, "public": public}}
        return Blob.from_api(self._json_call("POST", "blobs", json=body, safe=False))

    def upload_blob_content(self, blob: Blob, content: bytes, *, name: str | None = None) -> None:
        """Step 2: POST the bytes to the storage URL from ``blob.access.params`` (expects 201)."""
        if blob.access is None or not blob.access.params:
            raise ValueError("This blob has no upload access; create it with create_blob().")
        parts = urlsplit(blob.access.params)
        target = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        form = parse_qsl(parts.query, keep_blank_values=True)
        content_type = blob.content_type or "application/octet-stream"
        files = {"file": (name or blob.name or "file", content, content_type)}
        # No CB-Token here: the storage may be a third party (S3). Overwriting is idempotent.
        self._client.transport.request("POST", target, data=form, files=files, safe=True)

    def complete_blob(self, blob_id: int, size: int) -> None:
        """Step 3: mark the upload complete with its size (``PUT /blobs/{id}/complete``)."""
        self._call("PUT", f"blobs/{int(blob_id)}/complete", json={"blob": {"size": int(size)}})

    def delete_blob(self, blob_id: int) -> None:
        """Delete a blob."""
        self._call("DELETE", f"blobs/{int(blob_id)}")

    def upload_file(
        self,
        fileobj: IO[bytes] | bytes,
        name: str,
        content_type: str,
        public: bool = False,
    ) -> Blob:
        """Create, upload and complete a blob in one call; returns the completed blob."""
        content = fileobj if isinstance(fileobj, (bytes, bytearray)) else fileobj.read()
        if isinstance(content, str):
            content = content.encode("utf-8")
        content = bytes(content)
        blob = self.create_blob(name, content_type, public=public)
        self.upload_blob_content(blob, content, name=name)
        self.complete_blob(blob.id, len(content))
        return Blob(
            id=blob.id,
            uid=blob.uid,
            content_type=blob.content_type,
            name=blob.name,
            size=len(content),
            public=blob.public,
            blob_status="complete",
            set_completed_at=blob.set_completed_at,
            created_at=blob.created_at,
            updated_at=blob.updated_at,
            access=None,
            raw=blob.raw,
        )

    def set_avatar(
        self,
        fileobj: IO[bytes] | bytes,
        name: str,
        content_type: str,
        *,
        user_id: int | None = None,
        public: bool = False,
        custom_data: Mapping[str, Any] | None = None,
    ) -> User:
        """Upload an avatar and set ``avatar`` and ``custom_data.avatar_uid`` on the user.

        Other keys of ``custom_data`` are kept: pass the current ``custom_data`` to save the
        extra ``GET /users/{id}`` that otherwise reads it.
        """
        target = self._own_id(user_id)
        blob = self.upload_file(fileobj, name, content_type, public=public)
        current = (
            dict(custom_data)
            if custom_data is not None
            else (self.get_user(target).custom_data_json)
        )
        current["avatar_uid"] = blob.uid
        return self.update_user(target, avatar=blob.uid, custom_data=current)

    def private_url(self, uid: str) -> str:
        """The URL of a private blob readable with this session's token."""
        return self.blob_private_url(uid, self._token)
