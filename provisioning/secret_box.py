"""Encrypts and decrypts connection secrets with Fernet keys from the environment (newest first)."""

from __future__ import annotations

import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class SecretUnreadable(Exception):
    """A stored secret can't be decrypted with any configured key (a key was dropped too early)."""


def _box() -> MultiFernet:
    keys = settings.WIZARD_ENCRYPTION_KEYS
    if not keys:
        raise ImproperlyConfigured(
            "WIZARD_ENCRYPTION_KEYS is empty: set it to one or more Fernet keys, newest first "
            "(`make run` generates one in var/local.env)."
        )
    return MultiFernet([Fernet(key.encode()) for key in keys])


def encrypt_json(values: dict[str, str]) -> str:
    return _box().encrypt(json.dumps(values, sort_keys=True).encode()).decode()


def decrypt_json(token: str) -> dict[str, str]:
    try:
        return json.loads(_box().decrypt(token.encode()))
    except InvalidToken as exc:
        raise SecretUnreadable(
            "A stored secret can't be decrypted with the configured WIZARD_ENCRYPTION_KEYS. "
            "Put the old key back after the new one and run `manage.py rotate_encryption_keys`."
        ) from exc


def rotate(token: str) -> str:
    """Re-encrypt with the newest key; older keys can be removed once every token is rotated."""
    return _box().rotate(token.encode()).decode()
