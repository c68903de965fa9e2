"""Storage routes: create, the multipart upload, complete, read, download, delete.

The upload goes to the emulator itself (``/_storage``), standing in for S3: the form carries a
policy and signature that the emulator made, so only the uploads it authorized are accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta
from urllib.parse import quote, urlencode

from .base import NO_SESSION, NOT_FOUND, EmulatorBase
from .routes import UPLOAD_PATH
from .store import Blob
from .transport import Request, Response
from .wire import (
    MAX_UPLOAD_BODY,
    ApiError,
    coerce_bool,
    coerce_int,
    header_params,
    iso,
    parse_multipart,
    require_mapping,
)

__all__ = ["BlobHandlers"]


class BlobHandlers(EmulatorBase):
    """Handlers of ``/blobs`` and the storage upload."""

    def _blob(self, ref: str) -> Blob:
        blob = self.store.blobs.get(int(ref)) if ref.isdigit() else self.store.blobs_by_uid.get(ref)
        if blob is None:
            raise ApiError(404, NOT_FOUND)
        return blob

    def _upload_policy(self, blob: Blob) -> tuple[str, str]:
        assert blob.upload_expires is not None
        policy = (
            base64.urlsafe_b64encode(
                json.dumps({"expiration": iso(blob.upload_expires), "key": blob.uid}).encode()
            )
            .decode()
            .rstrip("=")
        )
        signature = hmac.new(self.auth_secret.encode(), policy.encode(), hashlib.sha256).hexdigest()
        return policy, signature

    def handle_create_blob(self, request: Request) -> Response:
        owner = self._current_user(request)
        data = require_mapping(request.params.get("blob"), "blob")
        errors: dict[str, list[str]] = {}
        for name in ("content_type", "name"):
            if data.get(name) in (None, ""):
                errors[name] = ["can't be blank"]
            elif not isinstance(data[name], str):
                errors[name] = ["must be a string"]
        if errors:
            raise ApiError(422, errors)
        public = (
            coerce_bool(data.get("public", False), "public")
            if data.get("public") is not None
            else False
        )
        blob = self.store.create_blob(owner, data["content_type"], data["name"], public)
        policy, signature = self._upload_policy(blob)
        now = self.store.now()
        query = urlencode(
            [
                ("Content-Type", blob.content_type),
                ("Expires", iso(blob.upload_expires) or ""),
                ("acl", "public-read" if blob.public else "authenticated-read"),
                ("key", blob.uid),
                ("policy", policy),
                ("success_action_status", "201"),
                ("x-amz-algorithm", "AWS4-HMAC-SHA256"),
                ("x-amz-credential", f"EMULATOR/{now:%Y%m%d}/local/s3/aws4_request"),
                ("x-amz-date", f"{now:%Y%m%dT%H%M%SZ}"),
                ("x-amz-signature", signature),
            ],
            quote_via=quote,  # %20, never "+": the JS SDK decodes with decodeURIComponent
        )
        body = blob.to_json()
        body["blob_object_access"] = {
            "id": blob.id,
            "blob_id": blob.id,
            "expires": iso(blob.upload_expires),
            "object_access_type": "Write",
            "params": f"{request.base_url}{UPLOAD_PATH}?{query}",
        }
        return Response(201, {"blob": body})

    def handle_list_blobs(self, request: Request) -> Response:
        owner = self._current_user(request)
        params = request.params
        page = coerce_int(params.get("page", 1) or 1, "page", minimum=1)
        per_page = min(coerce_int(params.get("per_page", 10) or 10, "per_page", minimum=1), 100)
        with self.store.lock:
            mine = [b for b in self.store.blobs.values() if b.owner_id == owner.id]
        start = (page - 1) * per_page
        return Response(
            200,
            {
                "current_page": page,
                "per_page": per_page,
                "total_entries": len(mine),
                "items": [{"blob": b.to_json()} for b in mine[start : start + per_page]],
            },
        )

    def handle_upload(self, request: Request) -> Response:
        content_type, options = header_params(request.environ.get("CONTENT_TYPE", ""))
        if content_type != "multipart/form-data":
            raise ApiError(400, ["The upload must be multipart/form-data"])
        body = request.read_body(MAX_UPLOAD_BODY)
        fields, files = parse_multipart(body, options.get("boundary", ""))
        key = fields.get("key", "")
        with self.store.lock:
            blob = self.store.blobs_by_uid.get(key)
            if blob is None:
                raise ApiError(404, NOT_FOUND)
            policy, signature = self._upload_policy(blob)
            if fields.get("policy") != policy or not hmac.compare_digest(
                fields.get("x-amz-signature", ""), signature
            ):
                raise ApiError(403, ["Upload policy or signature does not match"])
            if blob.upload_expires is None or self.store.now() > blob.upload_expires:
                raise ApiError(403, ["Upload policy has expired"])
            upload = files.get("file")
            if upload is None:
                raise ApiError.field("file", "can't be blank", status=400)
            if len(upload.data) > 100 * 1024 * 1024:
                raise ApiError(413, ["File too large (limit is 100 MB)"])
            blob.data = upload.data
            blob.updated_at = self.store.now()
        status_text = fields.get("success_action_status", "201")
        status = int(status_text) if status_text in ("200", "201", "204") else 201
        etag = hashlib.md5(upload.data).hexdigest()  # noqa: S324 (S3's ETag, not security)
        location = f"{request.base_url}/blobs/{blob.uid}"
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<PostResponse><Location>{location}</Location><Bucket>emulator</Bucket>"
            f'<Key>{blob.uid}</Key><ETag>"{etag}"</ETag></PostResponse>'
        ).encode()
        if status == 204:
            return Response(204, raw=b"", content_type="application/xml")
        return Response(
            status, raw=xml, content_type="application/xml", headers=[("ETag", f'"{etag}"')]
        )

    def handle_complete_blob(self, request: Request, id: str) -> Response:
        owner = self._current_user(request)
        params = request.params
        nested = require_mapping(params.get("blob"), "blob")
        raw_size = nested.get("size", params.get("size"))
        with self.store.lock:
            blob = self._blob(id)
            if blob.owner_id != owner.id:
                raise ApiError(403, ["Forbidden. The blob belongs to another user."])
            if blob.data is None:
                raise ApiError(422, {"base": ["The file has not been uploaded yet"]})
            size = (
                len(blob.data)
                if raw_size in (None, "")
                else coerce_int(raw_size, "size", minimum=0)
            )
            if size != len(blob.data):
                raise ApiError.field(
                    "size", f"does not match the uploaded file ({len(blob.data)} bytes)"
                )
            now = self.store.now()
            blob.size = size
            blob.blob_status = "complete"
            blob.set_completed_at = now
            blob.updated_at = now
        return Response(200)

    def _download_url(self, request: Request, blob: Blob) -> str:
        url = f"{request.base_url}/blobs/{blob.uid}"
        if not blob.public and request.session is not None:
            url += f"?token={request.session.token}"
        return url

    def handle_blob_object(self, request: Request, uid: str) -> Response:
        with self.store.lock:
            blob = self._blob(uid)
            body = blob.to_json()
        url = self._download_url(request, blob)
        body["blob_object_access"] = {
            "id": blob.id,
            "blob_id": blob.id,
            "expires": iso(self.store.now() + timedelta(hours=1)),
            "object_access_type": "Read",
            "params": url,
            "download_url": url,
        }
        return Response(200, {"blob": body})

    def _check_readable(self, request: Request, blob: Blob) -> None:
        if not blob.completed or blob.data is None:
            raise ApiError(404, NOT_FOUND)
        if not blob.public and request.session is None:
            raise ApiError(401, NO_SESSION)

    def handle_blob_download(self, request: Request, uid: str) -> Response:
        with self.store.lock:
            blob = self._blob(uid)
            self._check_readable(request, blob)
        return Response(301, headers=[("Location", self._download_url(request, blob))])

    def handle_get_blob(self, request: Request, id: str) -> Response:
        """``/blobs/{id}`` is the blob's JSON; ``/blobs/{uid}`` (no ``.json``) is the file."""
        with self.store.lock:
            blob = self._blob(id)
            if id.isdigit() or request.json_suffix:
                if request.session is None:
                    raise ApiError(401, NO_SESSION)
                return Response(200, {"blob": blob.to_json()})
            self._check_readable(request, blob)
            data = blob.data or b""
            content_type = blob.content_type
        return Response(
            200,
            raw=data,
            content_type=content_type,
            headers=[("Content-Disposition", f'inline; filename="{quote(blob.name)}"')],
        )

    def handle_delete_blob(self, request: Request, id: str) -> Response:
        owner = self._current_user(request)
        with self.store.lock:
            blob = self._blob(id)
            if blob.owner_id != owner.id:
                raise ApiError(403, ["Forbidden. The blob belongs to another user."])
            self.store.delete_blob(blob)
        return Response(200)
