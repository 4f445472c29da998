"""The ways an AWS sign-in into Amazon Connect is refused, with the words AWS shows for each."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from http import HTTPStatus

from provisioning.messages import Message

# The texts AWS shows. Sources: IAM User Guide, "Troubleshoot SAML federation with IAM"; Amazon
# Connect Administrator Guide, "Troubleshoot SAML with Amazon Connect"; what admins see when they
# set it up by hand.
INVALID_SAML_RESPONSE = "Your request included an invalid SAML response. To logout, click here."
ROLE_SESSION_NAME_REQUIRED = (
    "RoleSessionName is required in AuthnResponse (service: AWSSecurityTokenService; "
    "status code: 400; error code: InvalidIdentityToken)"
)
ROLE_SESSION_NAME_PATTERN = (
    "RoleSessionName in AuthnResponse must match [a-zA-Z_0-9+=,.@-]{2,64} (service: "
    "AWSSecurityTokenService; status code: 400; error code: InvalidIdentityToken)"
)
ISSUER_NOT_IN_PROVIDER = (
    "Failed to assume role: Issuer not present in specified provider (service: "
    "AWSOpenIdDiscoveryService; status code: 400; error code: AuthSamlInvalidSamlResponseException)"
)
NOT_AUTHORIZED_TO_ASSUME_ROLE = (
    "Not authorized to perform sts:AssumeRoleWithSAML (service: AWSSecurityTokenService; "
    "status code: 403; error code: AccessDenied)"
)
# STS's ValidationError when the asked-for session outlasts the role's MaxSessionDuration (STS API
# reference, AssumeRoleWithSAML, DurationSeconds: "If you specify a value higher than this
# setting, the operation fails").
SESSION_DURATION_TOO_LONG = (
    "The requested DurationSeconds exceeds the MaxSessionDuration set for this role. (service: "
    "AWSSecurityTokenService; status code: 400; error code: ValidationError)"
)
NOT_ONBOARDED = (
    "Access Denied. Your account has been authenticated, but has not been onboarded to this "
    "application."
)
NO_FEDERATION_PERMISSION = "Access denied, contact your AWS account administrator"
BAD_REQUEST = "Bad Request"
RELAY_STATE_MISSING = "relay state missing: you are in the AWS console, not Amazon Connect"
RELAY_STATE_NOT_CONNECT = (
    "relay state is not a Connect federation URL: you are not in Amazon Connect"
)
SERVICE_UNAVAILABLE = "The sandbox's AWS could not be reached"


class Cause(StrEnum):
    """What the admin has to fix; the wizard keys its advice on these."""

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
    """One failed check. `error` is what AWS would show; `check` names the check that failed and
    `detail` says exactly what was wrong, for the wizard to explain the fix."""

    cause: Cause
    check: str
    # What was wrong, a Message (rendered in the reader's language) or plain words; `error` stays
    # in English, as AWS shows it.
    detail: Message | str
    error: str
    status: HTTPStatus = HTTPStatus.BAD_REQUEST

    def __str__(self) -> str:
        return f"{self.cause}: {self.detail}"
