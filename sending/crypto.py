"""Encryption at rest for secrets such as SMTP passwords.

MultiFernet over FIELD_ENCRYPTION_KEYS: the first key encrypts, every key
decrypts, so a new key can be put in front and `rotate_encryption_keys` run.
"""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed


class DecryptionError(Exception):
    """A stored secret cannot be read with the configured keys."""


@lru_cache(maxsize=1)
def _multi_fernet() -> MultiFernet:
    keys = settings.FIELD_ENCRYPTION_KEYS
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is empty.")
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS must be comma-separated Fernet keys "
            "(make one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
        ) from exc


def _reset_cache(*, setting: str, **kwargs: object) -> None:
    if setting == "FIELD_ENCRYPTION_KEYS":
        _multi_fernet.cache_clear()


setting_changed.connect(_reset_cache)


def encrypt(plaintext: str) -> str:
    return _multi_fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _multi_fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError(
            "A stored secret cannot be decrypted with FIELD_ENCRYPTION_KEYS: the key it was encrypted with is missing."
        ) from exc


def rotate(token: str) -> str:
    """Re-encrypt a token with the newest key."""
    try:
        return _multi_fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError("Cannot rotate: no configured key decrypts this secret.") from exc
