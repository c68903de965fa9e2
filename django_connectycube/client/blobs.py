"""Blob reads any session may make: a blob by id or uid, and the URLs a blob is served at.

A mixin of both client scopes, like :mod:`.users`; uploads and deletes stay with the user
client, since ConnectyCube ties a blob to the user who created it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .errors import APIError
from .types import Blob

if TYPE_CHECKING:
    from .api import ConnectyCubeClient

__all__ = ["BlobReads"]


class BlobReads:
    """Mixin of the client's two scopes: blob reads."""

    _client: ConnectyCubeClient

    def _json_call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError

    def get_blob(self, blob_id: int) -> Blob:
        """The blob with this id."""
        return Blob.from_api(self._json_call("GET", f"blobs/{int(blob_id)}"))

    def get_blob_by_uid(self, uid: str) -> Blob:
        """The blob with this uid (``GET /blobs/{uid}/object``): what a user's ``avatar`` holds,
        when a call such as ``delete_blob`` needs the blob's id."""
        return Blob.from_api(self._json_call("GET", f"blobs/{quote(uid, safe='')}/object"))

    def get_blob_download_url(self, uid: str) -> str:
        """A download URL for a completed blob (``GET /blobs/{uid}/object?download_url=1``)."""
        path = f"blobs/{quote(uid, safe='')}/object"
        data = self._json_call("GET", path, params={"download_url": 1})
        blob = data.get("blob", data)
        access = blob.get("blob_object_access") or {}
        url = access.get("download_url") or blob.get("download_url")
        if not url:
            raise APIError(f"No download_url in the answer to GET /{path}", method="GET", path=path)
        return str(url)

    def blob_public_url(self, uid: str) -> str:
        """The URL of a public blob (no token needed)."""
        return f"{self._client.api_url}/blobs/{quote(uid, safe='')}"

    def blob_private_url(self, uid: str, token: str) -> str:
        """The URL of a private blob, readable with ``token`` (a user's, never the app's)."""
        return f"{self.blob_public_url(uid)}?token={quote(token, safe='')}"
