"""The project's own error types: what went wrong, whether retrying can help, and what to do."""

from __future__ import annotations

from typing import Any

from django.utils.functional import Promise

from provisioning.messages import Message, joined, render, to_json

# What an error says and what to do: a Message (rendered in the reader's language), a lazy
# translation, several of them joined (messages.joined), or a cloud's own words.
Text = Message | Promise | str | dict[str, Any]


class ProvisioningError(Exception):
    """An error an admin can act on. Client modules map SDK errors to these; nothing else leaks."""

    retryable: bool = False

    def __init__(self, message: Text, *, code: str = "", hint: Text = "") -> None:
        super().__init__(message)
        # As given: stored as a message id and parameters (as_dict), read as text in the
        # active language (message, hint, str()).
        self.given_message = message
        self.given_hint = hint
        self.code = code or type(self).__name__

    @property
    def message(self) -> str:
        return str(render(self.given_message))

    @property
    def hint(self) -> str:
        return str(render(self.given_hint))

    @hint.setter
    def hint(self, hint: Text) -> None:
        self.given_hint = hint

    def __str__(self) -> str:
        return self.message

    def said(self) -> dict[str, Any]:
        """What went wrong and what to do, as one stored message (the hint after the message)."""
        items = [self.given_message, self.given_hint] if self.given_hint else [self.given_message]
        return joined(items, " ")

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": to_json(self.given_message),
            "hint": to_json(self.given_hint),
            "retryable": self.retryable,
        }


class RetryableError(ProvisioningError):
    """Throttling, timeouts, 5xx: the same call may succeed later. `retry_after_s`, when the
    cloud said when to come back (Okta's X-Rate-Limit-Reset, a Retry-After header), is the wait
    the engine uses instead of its own backoff."""

    retryable = True

    def __init__(
        self,
        message: Text,
        *,
        code: str = "",
        hint: Text = "",
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, code=code, hint=hint)
        self.retry_after_s = retry_after_s


class PermanentError(ProvisioningError):
    """Bad input, missing permission, exhausted quota: retrying changes nothing until fixed."""

    retryable = False


class WaitForCloud(Exception):  # noqa: N818 - a signal, not an error
    """Raised by apply() when the cloud is not ready yet (instance creating, Graph object not
    visible). The engine re-enqueues the step after a short countdown instead of sleeping."""

    def __init__(self, reason: Text, *, countdown_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.countdown_s = countdown_s


# Typed errors: what kind of refusal it was, whichever cloud said it. Client modules raise these
# (provisioning/aws/client.py from AWS error codes, provisioning/http_errors.py from HTTP
# statuses); callers that treat a refusal as an answer ("absent", "exists already") catch the
# type, and `code` keeps the cloud's own error code (NoSuchEntity, E0000007, ...).


class InvalidRequest(PermanentError):
    """The cloud refused a value (HTTP 400/422, ValidationException, ParamValidationError)."""


class Unauthenticated(PermanentError):
    """The cloud did not accept the connection's credentials (HTTP 401, InvalidClientTokenId)."""


class AccessDenied(PermanentError):
    """The credentials are good but lack a permission (HTTP 403, AccessDenied)."""


class NotFound(PermanentError):
    """The object asked for does not exist (HTTP 404, NoSuchEntity, ResourceNotFoundException)."""


class Conflict(PermanentError):
    """Something in the way already exists or is in use (HTTP 409, EntityAlreadyExists,
    DeleteConflict)."""


class PreconditionFailed(PermanentError):
    """The object changed since it was read (HTTP 412, an If-Match that no longer matches)."""


class QuotaExceeded(PermanentError):
    """A quota is used up; waiting does not help (ServiceQuotaExceededException)."""


class Throttled(RetryableError):
    """The cloud's rate limit for the API is used up for now (HTTP 429, ThrottlingException)."""


class Unavailable(RetryableError):
    """The cloud could not answer now: a 5xx, a timeout, a connection that failed."""
