"""How the sandbox's AWS sign-in refuses, with the words AWS shows for each, and what its JSON
verdict names as the cause (the wizard keys its advice on these strings).

The texts are AWS's. Sources: IAM User Guide, "Troubleshoot SAML federation with IAM" (the
invalid SAML response page, "RoleSessionName is required in AuthnResponse", "Not authorized to
perform sts:AssumeRoleWithSAML", "Issuer not present in specified provider"); the STS API
reference for AssumeRoleWithSAML (the DurationSeconds ValidationError); the Amazon Connect
Administrator Guide, "Troubleshoot SAML with Amazon Connect" (the "not been onboarded" page,
"Access denied, contact your AWS account administrator", "Bad Request").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from http import HTTPStatus

INVALID_SAML_RESPONSE = "Your request included an invalid SAML response. To logout, click here."
NOT_ONBOARDED = (
    "Access Denied. Your account has been authenticated, but has not been onboarded to this "
    "application."
)
NO_FEDERATION_PERMISSION = "Access denied, contact your AWS account administrator"
BAD_REQUEST = "Bad Request"
# Not AWS's words: with no Connect relay state AWS simply opens the console; these say so.
RELAY_STATE_MISSING = "relay state missing: you are in the AWS console, not Amazon Connect"
RELAY_STATE_NOT_CONNECT = (
    "relay state is not a Connect federation URL: you are not in Amazon Connect"
)
SERVICE_UNAVAILABLE = "The sandbox's AWS could not be reached"
# Without a usable relay state the sign-in itself succeeds: AWS opens the console, with 200.
SIGNED_IN_TO_CONSOLE = HTTPStatus.OK


def sts_page_text(code: str, message: str, status: int) -> str:
    """How the sign-in page words an STS error: its message and where it came from."""
    return (
        f"{message} (service: AWSSecurityTokenService; status code: {status}; error code: {code})"
    )


class Cause(StrEnum):
    """What the admin has to fix."""

    INVALID_SAML_RESPONSE = "invalid_saml_response"
    ASSUME_ROLE_DENIED = "assume_role_denied"
    RELAY_STATE_MISSING = "relay_state_missing"
    RELAY_STATE_INVALID = "relay_state_invalid"
    INSTANCE_UNAVAILABLE = "instance_unavailable"
    NOT_ONBOARDED = "not_onboarded"
    NO_FEDERATION_PERMISSION = "no_federation_permission"
    BAD_REQUEST_OTHER_ROLE = "bad_request_other_role"
    AWS_UNAVAILABLE = "aws_unavailable"


@dataclass
class SignInRefused(Exception):
    """One failed check: `error` is what AWS shows, `check` which check failed, `detail`
    exactly what was wrong."""

    cause: Cause
    check: str
    detail: str
    error: str
    status: HTTPStatus = HTTPStatus.BAD_REQUEST

    def __str__(self) -> str:
        return f"{self.cause}: {self.detail}"
