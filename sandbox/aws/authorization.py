"""Decides each signed call to the sandbox AWS as its IAM user or assumed role, with moto's own
access control: the SigV4 signature checked with the key's secret, then the identity policies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moto.core.exceptions import AccessDeniedError, SignatureDoesNotMatchError
from moto.iam.access_control import (
    CreateAccessKeyFailure,
    IAMPolicy,
    IAMRequest,
    PermissionResult,
    create_access_key,
)
from moto.iam.exceptions import NoSuchEntity, NotFoundException
from moto.iam.models import Group, IAMBackend, Role, User, iam_backends
from werkzeug.datastructures import EnvironHeaders

from sandbox.aws.wire import ApiError, AwsRequest

# Each protocol's refusals as the services name them: Connect's model gives AccessDeniedException
# HTTP 403, Service Quotas' model names AccessDeniedException without a status (the json
# protocol's 400), IAM and STS answer AccessDenied (403). An unknown token and a bad signature are
# the common errors of the query protocol (moto's InvalidClientTokenIdError and
# SignatureDoesNotMatchError) and of the JSON protocols (UnrecognizedClientException,
# InvalidSignatureException, as botocore's own error-code lists for those protocols name them).
ACCESS_DENIED = {
    "rest-json": ("AccessDeniedException", 403),
    "json": ("AccessDeniedException", 400),
    "query": ("AccessDenied", 403),
}
INVALID_TOKEN = {
    "rest-json": "UnrecognizedClientException",
    "json": "UnrecognizedClientException",
    "query": "InvalidClientTokenId",
}
BAD_SIGNATURE = {
    "rest-json": "InvalidSignatureException",
    "json": "InvalidSignatureException",
    "query": "SignatureDoesNotMatch",
}
INVALID_TOKEN_MESSAGE = "The security token included in the request is invalid."  # noqa: S105
BAD_SIGNATURE_MESSAGE = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)

# The IAM resource an operation acts on, by the parameter that names it (Service Authorization
# Reference for IAM: role, user, group, policy and saml-provider ARNs); the first one present wins,
# so AttachRolePolicy acts on the role, not on the policy it attaches, and AddUserToGroup on the
# group, not on the user.
IAM_NAMED_RESOURCES = (("RoleName", "role"), ("GroupName", "group"), ("UserName", "user"))
IAM_ARN_PARAMETERS = ("PolicySourceArn", "PolicyArn", "SAMLProviderArn", "RoleArn")


def decide(policies: list[Any], action: str, resource: str) -> PermissionResult:
    """AWS's evaluation of identity policies: an explicit deny wins, then any allow; otherwise
    the action is implicitly denied (NEUTRAL)."""
    permitted = False
    for policy in policies:
        result = IAMPolicy(policy).is_action_permitted(action, resource)
        if result == PermissionResult.DENIED:
            return PermissionResult.DENIED
        permitted = permitted or result == PermissionResult.PERMITTED
    return PermissionResult.PERMITTED if permitted else PermissionResult.NEUTRAL


class IamAccount:
    """The sandbox account's IAM, as moto keeps it."""

    def __init__(self, *, account_id: str, partition: str) -> None:
        self.account_id = account_id
        self.partition = partition

    @property
    def backend(self) -> IAMBackend:
        return iam_backends[self.account_id][self.partition]


class Authorizer(IamAccount):
    """Holds every signed call of an IAM user's access key or an assumed role's session to the
    identity's policies (attached, inline and, for a user, its groups').

    A key that belongs to no IAM user and no STS session (the sandbox's own keys, and any other
    made-up key) acts as the account's administrator, as it did before the sandbox checked
    anything: the sandbox can't check a signature it has no secret for.
    """

    def check(self, request: AwsRequest, operation: str, params: dict[str, Any]) -> None:
        """Raise the service's own refusal unless the caller may call `operation` on the
        resource `params` name."""
        protocol = request.protocol or "query"
        if "authorization" not in request.headers:
            return
        headers = EnvironHeaders(request.environ)
        try:
            caller = create_access_key(
                self.account_id, self.partition, request.access_key_id, dict(headers)
            )
        except CreateAccessKeyFailure as failure:
            if failure.reason == "InvalidId":
                return
            raise ApiError(INVALID_TOKEN[protocol], INVALID_TOKEN_MESSAGE, 403) from None
        query = request.environ.get("QUERY_STRING", "")
        checked = IAMRequest(
            account_id=self.account_id,
            method=request.method,
            path=f"{request.raw_path}?{query}" if query else request.raw_path,
            data=request.form() if protocol == "query" else {},
            body=request.body,
            headers=dict(headers),
            action=operation,
        )
        try:
            checked.check_signature()
        except SignatureDoesNotMatchError:
            raise ApiError(BAD_SIGNATURE[protocol], BAD_SIGNATURE_MESSAGE, 403) from None
        action = f"{request.service}:{operation}"
        resource = self.resource(request, operation, params)
        try:
            checked.check_action_permitted(resource)
        except AccessDeniedError:
            code, status = ACCESS_DENIED[protocol]
            raise ApiError(
                code, denial_message(caller.arn, action, resource, caller), status
            ) from None

    def resource(self, request: AwsRequest, operation: str, params: dict[str, Any]) -> str:
        """The ARN the call acts on, as the Service Authorization Reference defines it for the
        action, or "*" for actions that support no resource-level permissions."""
        region = request.region or ""
        if request.service == "connect":
            return connect_resource(
                params, partition=self.partition, region=region, account=self.account_id
            )
        if (
            request.service == "servicequotas"
            and params.get("ServiceCode")
            and params.get("QuotaCode")
        ):
            # Service Authorization Reference for Service Quotas, resource type "quota".
            return (
                f"arn:{self.partition}:servicequotas:{region}:{self.account_id}:"
                f"{params['ServiceCode']}/{params['QuotaCode']}"
            )
        if request.service in ("iam", "sts"):
            return self._iam_resource(operation, params)
        return "*"

    def _iam_resource(self, operation: str, form: dict[str, Any]) -> str:
        prefix = f"arn:{self.partition}:iam::{self.account_id}"
        for parameter, kind in IAM_NAMED_RESOURCES:
            name = form.get(parameter)
            if name:
                return (
                    self._existing_arn(kind, name)
                    or f"{prefix}:{kind}{form.get('Path', '/')}{name}"
                )
        for parameter in IAM_ARN_PARAMETERS:
            if form.get(parameter):
                return str(form[parameter])
        if operation == "CreatePolicy" and form.get("PolicyName"):
            return f"{prefix}:policy{form.get('Path', '/')}{form['PolicyName']}"
        if operation == "CreateSAMLProvider" and form.get("Name"):
            return f"{prefix}:saml-provider/{form['Name']}"
        return "*"

    def _existing_arn(self, kind: str, name: str) -> str:
        """An existing role's, user's or group's ARN, path included (AWS evaluates the resource
        as it is, and a request names it only by name)."""
        lookups: dict[str, Callable[[str], Role | User | Group]] = {
            "role": self.backend.get_role,
            "user": self.backend.get_user,
            "group": self.backend.get_group,
        }
        try:
            return str(lookups[kind](name).arn)
        except (NotFoundException, NoSuchEntity):
            return ""


def connect_resource(params: dict[str, Any], *, partition: str, region: str, account: str) -> str:
    """The Amazon Connect resource of a call (Service Authorization Reference for Amazon Connect:
    instance `instance/<id>`, user `instance/<id>/agent/<id>`, phone number `phone-number/<id>`);
    "*" for CreateInstance and ListInstances, which act on no resource."""
    base = f"arn:{partition}:connect:{region}:{account}"
    if params.get("PhoneNumberId"):
        return f"{base}:phone-number/{params['PhoneNumberId']}"
    for parameter in ("resourceArn", "TargetArn"):
        if params.get(parameter):
            return str(params[parameter])
    instance_id = str(params.get("InstanceId") or "")
    if not instance_id:
        return "*"
    # Connect takes an instance's ID or its ARN wherever it takes InstanceId.
    instance_arn = (
        instance_id if instance_id.startswith("arn:") else f"{base}:instance/{instance_id}"
    )
    if params.get("UserId"):
        return f"{instance_arn}/agent/{params['UserId']}"
    return instance_arn


def denial_message(who: str, action: str, resource: str, caller: Any) -> str:
    """AWS's access-denied message: who, the action, the resource, and which kind of deny."""
    denied = f"User: {who} is not authorized to perform: {action} on resource: {resource}"
    decision = decide(caller.collect_policies(), action, resource)
    if decision == PermissionResult.DENIED:
        return f"{denied} with an explicit deny in an identity-based policy"
    if decision == PermissionResult.NEUTRAL:
        return f"{denied} because no identity-based policy allows the {action} action"
    # The identity may; the role's trust policy (sts:AssumeRole) refused.
    return denied
