"""What an avatar file really is, read from its first bytes rather than its name.

A file's name says what its uploader called it: ``cat.png`` may hold a JPEG, or a PDF. The
upload to ConnectyCube declares a content type that browsers later trust when they show the
blob, so it comes from the content. Only raster formats every current browser shows are
recognised; SVG is deliberately not among them (a script inside it runs when opened directly).
Stdlib only: a handful of fixed signatures does not need a dependency.
"""

from __future__ import annotations

from typing import IO

__all__ = ["IMAGE_TYPES", "SNIFF_BYTES", "content_type_of", "sniff_image_type"]

#: Bytes read from the start of a file to recognise it.
SNIFF_BYTES = 32
#: Content types :func:`sniff_image_type` can answer, with the usual file extension.
IMAGE_TYPES = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/bmp": "bmp",
    "image/avif": "avif",
}
OCTET_STREAM = "application/octet-stream"


def sniff_image_type(head: bytes) -> str | None:
    """The image content type of a file starting with ``head``, or ``None`` for anything else."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"BM") and len(head) >= 14:
        return "image/bmp"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return "image/avif"
    return None


def content_type_of(fileobj: IO[bytes]) -> str:
    """The sniffed image type of an open file (``application/octet-stream`` when it is not one).

    Reads the first bytes and seeks back, so the caller reads the whole file as before.
    """
    position = fileobj.tell()
    head = fileobj.read(SNIFF_BYTES)
    fileobj.seek(position)
    return sniff_image_type(head) or OCTET_STREAM
