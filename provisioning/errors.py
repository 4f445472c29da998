"""The project's own error types: what went wrong, whether retrying can help, and what to do."""

from __future__ import annotations

from typing import Any


class ProvisioningError(Exception):
    """An error an admin can act on. Client modules map SDK errors to these; nothing else leaks."""

    retryable: bool = False

    def __init__(self, message: str, *, code: str = "", hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code or type(self).__name__
        self.hint = hint

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
            "retryable": self.retryable,
        }


class RetryableError(ProvisioningError):
    """Throttling, timeouts, 5xx: the same call may succeed later. `retry_after_s`, when the
    cloud said when to come back (Okta's X-Rate-Limit-Reset, a Retry-After header), is the wait
    the engine uses instead of its own backoff."""

    retryable = True

    def __init__(
        self, message: str, *, code: str = "", hint: str = "", retry_after_s: float | None = None
    ) -> None:
        super().__init__(message, code=code, hint=hint)
        self.retry_after_s = retry_after_s


class PermanentError(ProvisioningError):
    """Bad input, missing permission, exhausted quota: retrying changes nothing until fixed."""

    retryable = False


class WaitForCloud(Exception):  # noqa: N818 - a signal, not an error
    """Raised by apply() when the cloud is not ready yet (instance creating, Graph object not
    visible). The engine re-enqueues the step after a short countdown instead of sleeping."""

    def __init__(self, reason: str, *, countdown_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.countdown_s = countdown_s
