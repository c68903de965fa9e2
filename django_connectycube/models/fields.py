"""An encrypted text field for session tokens (Fernet, with key rotation through MultiFernet).

Tokens must be sent back to ConnectyCube, so they are encrypted rather than hashed. The first key
of ``CONNECTYCUBE["TOKEN_KEYS"]`` encrypts; every key decrypts, so a new key can be put first while
old rows stay readable until ``connectycube_rotate_keys`` re-encrypts them. Without
``TOKEN_KEYS``, keys are derived from ``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS``, which makes
Django's own key rotation carry over.
"""

from __future__ import annotations

import base64
import binascii
import logging
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.core.signals import setting_changed
from django.db import models

from django_connectycube.conf import ConfigurationError, app_settings

logger = logging.getLogger("django_connectycube")

__all__ = ["EncryptedTextField", "decrypt", "encrypt", "multifernet", "rotate"]

_HKDF_INFO = b"django-connectycube session token key"


def _fernet_for(key: str | bytes) -> Fernet:
    """A Fernet from a ready Fernet key, or from any other secret through HKDF-SHA256."""
    raw = key.encode("utf-8") if isinstance(key, str) else key
    try:
        if len(base64.urlsafe_b64decode(raw)) == 32:
            return Fernet(raw)
    except (binascii.Error, ValueError):
        pass
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(raw)
    return Fernet(base64.urlsafe_b64encode(derived))


@lru_cache(maxsize=1)
def multifernet() -> MultiFernet:
    """The configured keys, newest first."""
    from django.conf import settings

    keys = app_settings.TOKEN_KEYS
    if keys is None:
        keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    if isinstance(keys, str | bytes) or not keys:
        raise ConfigurationError(
            'CONNECTYCUBE["TOKEN_KEYS"] must be a non-empty list of keys, newest first '
            "(generate one with cryptography.fernet.Fernet.generate_key())."
        )
    return MultiFernet([_fernet_for(k) for k in keys])


def _reset_keys(*, setting: str, **kwargs: Any) -> None:
    if setting in ("CONNECTYCUBE", "SECRET_KEY", "SECRET_KEY_FALLBACKS"):
        multifernet.cache_clear()


setting_changed.connect(_reset_keys, dispatch_uid="django_connectycube.models.fields.reset_keys")


def encrypt(value: str) -> str:
    return multifernet().encrypt(value.encode("utf-8")).decode("ascii")


def decrypt(value: str) -> str:
    """Decrypt with any configured key; raises ``InvalidToken`` if none fits."""
    return multifernet().decrypt(value.encode("ascii")).decode("utf-8")


def rotate(value: str) -> str:
    """Re-encrypt a stored value under the newest key."""
    return multifernet().rotate(value.encode("ascii")).decode("ascii")


class EncryptedTextField(models.TextField):
    """Stores text encrypted; reads give plaintext, or ``None`` if no configured key fits.

    Values are not searchable (encryption is randomised), so the field refuses to be indexed.
    """

    description = "Text encrypted at rest (Fernet)"

    #: Serialized values (``dumpdata``) carry this prefix and stay encrypted; ``loaddata`` and
    #: forms decrypt them again through :meth:`to_python`.
    serialized_prefix = "fernet:"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("db_index") or kwargs.get("unique"):
            raise TypeError("EncryptedTextField cannot be indexed or unique.")
        super().__init__(*args, **kwargs)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(str(value))

    def value_to_string(self, obj: models.Model) -> str:
        value = self.value_from_object(obj)
        if value is None or value == "":
            return value or ""
        return self.serialized_prefix + encrypt(str(value))

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and value.startswith(self.serialized_prefix):
            return self._decrypt_or_none(value[len(self.serialized_prefix) :])
        return super().to_python(value)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> str | None:
        if value is None or value == "":
            return value
        return self._decrypt_or_none(value)

    @staticmethod
    def _decrypt_or_none(value: str) -> str | None:
        try:
            return decrypt(value)
        except InvalidToken:
            logger.warning(
                "A stored token could not be decrypted with any configured key; it is treated "
                "as missing. Keep old keys in CONNECTYCUBE['TOKEN_KEYS'] until rotation is done."
            )
            return None
