"""Masks secrets in anything the wizard stores or logs: audit summaries, step plans and outputs,
error messages, log lines and tracebacks.

A secret is found two ways: a value under a secret-looking key (passwords, tokens, private keys,
Authorization headers), and any connection secret this process has decrypted
(`register_secret_values`), wherever it appears in a text.

The logging configuration imports this module before Django's apps are ready, so it imports no
models.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import logging
import re
import threading
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "***"
# Key names (lowercase, with "_", "-", "." and spaces removed) containing one of these hold a
# secret: passwords, client secrets, API/session tokens, SAML responses, private keys, AWS
# SecretAccessKey, Authorization/Cookie headers.
SECRET_KEY_PARTS = (
    "password",
    "passwd",
    "secret",
    "token",
    "samlresponse",
    "samlassertion",
    "privatekey",
    "authorization",
    "apikey",
    "cookie",
    "clientassertion",
)
# Keys that contain "token" but hold no secret: AWS idempotency/pagination tokens, the thumbprint
# of an Entra signing certificate. Admins need these to follow what happened.
NOT_SECRET_KEYS = frozenset(
    {
        "clienttoken",
        "nexttoken",
        "paginationtoken",
        "continuationtoken",
        "idempotencytoken",
        "preferredtokensigningkeythumbprint",
        "tokentype",
    }
)
# "Bearer eyJ...", "SSWS 00ab...", "Basic dXNlcjpw...": credentials in a header value or a message.
AUTH_SCHEME_PATTERN = re.compile(r"(?i)\b(bearer|ssws|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
# Registered secrets shorter than this are masked only where a whole value equals them: replacing
# every "abc" inside longer texts would mangle the log without protecting anything.
MIN_SECRET_SUBSTRING_CHARS = 6
# Audit rows stay readable and small: longer texts are cut (after redaction) to this length.
MAX_TEXT_CHARS = 4000
# Nesting deeper than this is summarised instead of walked (SDK objects can be recursive).
MAX_DEPTH = 12

_secret_values: set[str] = set()
_secret_lock = threading.Lock()


def register_secret_values(values: Iterable[Any]) -> None:
    """Mask these values wherever they appear in audit rows and log lines of this process.

    Client modules call this with `connection.secrets.values()` each time they decrypt them.
    """
    cleaned = {value for value in values if isinstance(value, str) and value.strip()}
    if cleaned:
        with _secret_lock:
            _secret_values.update(cleaned)


def _registered_secrets() -> list[str]:
    with _secret_lock:
        # Longest first, so a secret that contains another is masked whole.
        return sorted(_secret_values, key=len, reverse=True)


# Cached: the same few hundred keys (the SDKs' field names) come by on every audit row.
@functools.lru_cache(maxsize=4096)
def _is_secret_key(key: str) -> bool:
    normalized = re.sub(r"[\s_.\-]", "", key).lower()
    if normalized in NOT_SECRET_KEYS:
        return False
    return any(part in normalized for part in SECRET_KEY_PARTS)


def redact_text(text: str, secrets: list[str] | None = None) -> str:
    """`text` with registered secrets and credentials after an auth scheme replaced by "***"."""
    if secrets is None:
        secrets = _registered_secrets()
    for secret in secrets:
        if text == secret:
            return REDACTED
        if len(secret) >= MIN_SECRET_SUBSTRING_CHARS and secret in text:
            text = text.replace(secret, REDACTED)
    return AUTH_SCHEME_PATTERN.sub(lambda match: f"{match.group(1)} {REDACTED}", text)


def truncate_text(text: str) -> str:
    if len(text) <= MAX_TEXT_CHARS:
        return text
    return f"{text[:MAX_TEXT_CHARS]}… ({len(text) - MAX_TEXT_CHARS} more characters)"


def _redact(value: Any, secrets: list[str], depth: int, truncate: bool) -> Any:
    if depth > MAX_DEPTH:
        return f"<{type(value).__name__} nested too deep>"
    if isinstance(value, Mapping):
        return {
            str(key): (
                REDACTED
                if _is_secret_key(str(key)) and item not in (None, "")
                else _redact(item, secrets, depth + 1, truncate)
            )
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact(item, secrets, depth + 1, truncate) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        text = redact_text(value, secrets)
        return truncate_text(text) if truncate else text
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    return truncate_text(redact_text(repr(value), secrets))


def redact(value: Any, *, truncate: bool = True) -> Any:
    """A JSON-safe copy of `value` with every secret replaced by "***".

    Audit summaries are truncated; step plans and outputs are not (truncate=False), because later
    steps read them: IdP metadata handed to saml_provider is often longer than an audit summary.
    """
    return _redact(value, _registered_secrets(), 0, truncate)


class RedactSecretsFilter(logging.Filter):
    """Masks registered secrets and auth-scheme credentials in log messages and tracebacks."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = _registered_secrets()
        message = record.getMessage()
        masked = redact_text(message, secrets)
        if masked != message:
            record.msg = masked
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text, secrets)
        return True
