"""Which project error an HTTP status is, and how long the service asked to wait: the one table
the Graph and Okta clients (and AWS, for Retry-After) share; each client only words it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from provisioning.errors import (
    AccessDenied,
    Conflict,
    InvalidRequest,
    NotFound,
    PermanentError,
    PreconditionFailed,
    ProvisioningError,
    RetryableError,
    Text,
    Throttled,
    Unauthenticated,
    Unavailable,
)

# RFC 9110 section 15 (status codes): 401 no valid credentials, 403 understood but refused, 409
# conflicts with the target's current state, 412 a precondition (If-Match) no longer holds, 422
# (section 15.5.21) a well-formed request whose content can't be processed; RFC 6585 section 4:
# 429 too many requests. Graph (Microsoft Graph error responses) and Okta (Okta error codes) use
# them with these meanings.
STATUS_ERRORS: dict[int, type[ProvisioningError]] = {
    400: InvalidRequest,
    401: Unauthenticated,
    403: AccessDenied,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    422: InvalidRequest,
    429: Throttled,
}


def error_class(
    status: int, *, code: str = "", by_code: Mapping[str, type[ProvisioningError]] | None = None
) -> type[ProvisioningError]:
    """The project error for an HTTP answer: a retryable status (429, 5xx) first, whatever the
    body says; then the service's own error code when `by_code` knows it (Okta's E0000007 is a
    NotFound whatever its status); then the status."""
    by_status = STATUS_ERRORS.get(status) or (Unavailable if status >= 500 else PermanentError)
    if issubclass(by_status, RetryableError):
        return by_status
    return (by_code or {}).get(code) or by_status


def http_error(
    kind: type[ProvisioningError],
    message: Text,
    *,
    code: str,
    hint: Text = "",
    retry_after_s: float | None = None,
) -> ProvisioningError:
    """An error of `kind`; a retryable one carries the wait the service asked for."""
    if issubclass(kind, RetryableError):
        return kind(message, code=code, hint=hint, retry_after_s=retry_after_s)
    return kind(message, code=code, hint=hint)


def retry_after_s(
    headers: Mapping[str, Any] | None, *, now: dt.datetime | None = None
) -> float | None:
    """The seconds a Retry-After header asks for, None when absent or unreadable. RFC 9110 section
    10.2.3: delay-seconds or an HTTP-date (Graph sends seconds: Microsoft Graph throttling
    guidance; AWS sends it on some throttling answers)."""
    value = _header(headers, "retry-after").strip()
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max((when - (now or dt.datetime.now(dt.UTC))).total_seconds(), 0.0)


def _header(headers: Mapping[str, Any] | None, name: str) -> str:
    """A header's value whatever the case of its name (kiota's and aiohttp's header maps differ
    in whether they fold case; botocore's HTTPHeaders are lower-cased)."""
    if not headers:
        return ""
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if str(k).lower() == name), "")
    if isinstance(value, list | tuple | set):
        value = next(iter(value), "")
    return str(value or "")
