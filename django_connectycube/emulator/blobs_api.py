"""Storage routes: create, the multipart upload, complete, read, download, delete.

The upload goes to the emulator itself (``/_storage``), standing in for S3: the form carries a
policy and signature that the emulator made, so only the uploads it authorized are accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode

from .base import NO_SESSION, NOT_FOUND, TOKEN_REQUIRED, EmulatorBase
from .dates import http_date, iso
from .models import Blob
from .routes import UPLOAD_PATH
from .transport import Request, Response
from .wire import (
    BLANK,
    MAX_UPLOAD_BODY,
    ApiError,
    coerce_bool,
    coerce_int,
    header_params,
    parse_multipart,
    require_mapping,
)

__all__ = ["BlobHandlers"]

MAX_BLOB_NAME = 100


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

    def _blob_fields(self, data: Mapping[str, Any], *, partial: bool) -> dict[str, str]:
        """``content_type`` and ``name`` (1-100 characters [D storage.md]), checked."""
        errors: dict[str, list[str]] = {}
        fields: dict[str, str] = {}
        for name in ("content_type", "name"):
            if partial and name not in data:
                continue
            value = data.get(name)
            if value in (None, ""):
                errors[name] = [BLANK]
            elif not isinstance(value, str):
                errors[name] = ["must be a string"]
            elif name == "name" and len(value) > MAX_BLOB_NAME:
                errors[name] = [f"is too long (maximum is {MAX_BLOB_NAME} characters)"]
            else:
                fields[name] = value
        if errors:
            raise ApiError(422, errors)
        return fields

    def _write_access(self, request: Request, blob: Blob) -> dict[str, Any]:
        """The ``blob_object_access`` of an upload: the storage URL and its form fields."""
        assert blob.upload_expires is not None
        policy, signature = self._upload_policy(blob)
        now = self.store.now()
        query = urlencode(
            [
                ("Content-Type", blob.content_type),
                # An HTTP date, as S3's form field is [D storage.md]; "expires" below is ISO.
                ("Expires", http_date(blob.upload_expires)),
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
        return {
            "id": blob.id,
            "blob_id": blob.id,
            "expires": iso(blob.upload_expires),
            "object_access_type": "Write",
            "params": f"{request.base_url}{UPLOAD_PATH}?{query}",
        }

    def handle_create_blob(self, request: Request) -> Response:
        owner = self._current_user(request)
        data = require_mapping(request.params.get("blob"), "blob")
        fields = self._blob_fields(data, partial=False)
        public = (
            coerce_bool(data.get("public", False), "public")
            if data.get("public") is not None
            else False
        )
        blob = self.store.create_blob(owner, fields["content_type"], fields["name"], public)
        body = blob.to_json()
        body["blob_object_access"] = self._write_access(request, blob)
        return Response(201, {"blob": body})

    def handle_update_blob(self, request: Request, id: str) -> Response:
        """``PUT /blobs/{id}`` (deprecated [D]): rename, retype, or ``new=1`` to upload again.

        With ``new=1`` the answer carries a fresh upload form and the blob is no longer complete
        until ``complete`` is called again [I].
        """
        owner = self._current_user(request)
        data = require_mapping(request.params.get("blob"), "blob")
        fields = self._blob_fields(data, partial=True)
        renew = data.get("new") is not None and coerce_bool(data["new"], "new")
        with self.store.lock:
            blob = self._owned_blob(id, owner.id)
            self.store.update_blob(blob, renew=renew, **fields)
            body = blob.to_json()
            if renew:
                body["blob_object_access"] = self._write_access(request, blob)
        return Response(200, {"blob": body})

    def _owned_blob(self, ref: str, owner_id: int) -> Blob:
        blob = self._blob(ref)
        if blob.owner_id != owner_id:
            raise ApiError(403, ["Forbidden. The blob belongs to another user."])
        return blob

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
                raise ApiError.field("file", BLANK, status=400)
            if len(upload.data) > 100 * 1024 * 1024:
                raise ApiError(413, ["File too large (limit is 100 MB)"])
            self.store.store_upload(blob, upload.data)
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
        """Mark the upload complete with the size the client declares.

        Lenient like the real service is assumed to be [I]: a size that differs from the upload
        is stored as declared, not refused; only a blob with nothing uploaded is refused [I].
        """
        owner = self._current_user(request)
        params = request.params
        nested = require_mapping(params.get("blob"), "blob")
        raw_size = nested.get("size", params.get("size"))
        with self.store.lock:
            blob = self._owned_blob(id, owner.id)
            if blob.data is None:
                raise ApiError(422, {"base": ["The file has not been uploaded yet"]})
            size = (
                len(blob.data)
                if raw_size in (None, "")
                else coerce_int(raw_size, "size", minimum=0)
            )
            self.store.complete_blob(blob, size)
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

    @staticmethod
    def _missing_session(request: Request) -> ApiError:
        return ApiError(401, NO_SESSION if request.token_given else TOKEN_REQUIRED)

    def _check_readable(self, request: Request, blob: Blob) -> None:
        if not blob.completed or blob.data is None:
            raise ApiError(404, NOT_FOUND)
        if not blob.public and request.session is None:
            raise self._missing_session(request)

    def handle_blob_download(self, request: Request, uid: str) -> Response:
        with self.store.lock:
            blob = self._blob(uid)
            self._check_readable(request, blob)
        return Response(301, headers=[("Location", self._download_url(request, blob))])

    def handle_get_blob(self, request: Request, id: str) -> Response:
        """``/blobs/{id}`` is the blob's JSON; ``/blobs/{uid}`` (no ``.json``) is the file."""
        if (id.isdigit() or request.json_suffix) and request.session is None:
            raise self._missing_session(request)
        with self.store.lock:
            blob = self._blob(id)
            if id.isdigit() or request.json_suffix:
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
            self.store.delete_blob(self._owned_blob(id, owner.id))
        return Response(200)
