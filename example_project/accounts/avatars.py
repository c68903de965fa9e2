"""What the profile form accepts as an avatar: a real image of a bounded size.

The type is read from the file's first bytes
(:func:`django_connectycube.sync.images.sniff_image_type`), not from its name or the browser's
claimed content type, both of which the uploader controls.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.template.defaultfilters import filesizeformat

from django_connectycube.sync.images import IMAGE_TYPES, SNIFF_BYTES, sniff_image_type

#: The largest avatar accepted (ConnectyCube takes up to 100 MB; an avatar needs far less).
AVATAR_MAX_BYTES = 5 * 1024 * 1024
ACCEPTED = ", ".join(sorted({ext.upper() for ext in IMAGE_TYPES.values()}))


def validate_avatar(upload: UploadedFile) -> None:
    """``ValidationError`` with a message the form shows next to the field."""
    if upload.size is not None and upload.size > AVATAR_MAX_BYTES:
        raise ValidationError(
            "The picture is %(size)s; the limit is %(limit)s.",
            code="avatar_too_large",
            params={
                "size": filesizeformat(upload.size),
                "limit": filesizeformat(AVATAR_MAX_BYTES),
            },
        )
    upload.seek(0)
    head = upload.read(SNIFF_BYTES)
    upload.seek(0)
    if sniff_image_type(head) is None:
        raise ValidationError(
            "This file is not a picture we can show. Upload a %(accepted)s image.",
            code="avatar_not_an_image",
            params={"accepted": ACCEPTED},
        )
