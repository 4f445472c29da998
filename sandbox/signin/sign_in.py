"""Runs AWS's sign-in checks on a posted SAML response, in AWS's order, then the Amazon Connect
federation checks, talking to the sandbox's AWS only through boto3."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from sandbox.signin.policy import NamedPolicy, PolicyRequest, evaluate_policies
from sandbox.signin.refusals import (
    BAD_REQUEST,
    INVALID_SAML_RESPONSE,
    NO_FEDERATION_PERMISSION,
    NOT_AUTHORIZED_TO_ASSUME_ROLE,
    NOT_ONBOARDED,
    SERVICE_UNAVAILABLE,
    Cause,
    SignInRefused,
)
from sandbox.signin.relay_state import ConnectRelayState, parse_relay_state
from sandbox.signin.saml_response import (
    CheckedAssertion,
    IdpMetadata,
    RolePair,
    check_saml_response,
    claimed_role_pair,
    decode_saml_response,
    parse_idp_metadata,
)

FEDERATION_ACTION = "connect:GetFederationToken"
ASSUME_ROLE_ACTION = "sts:AssumeRoleWithSAML"
# The sandbox's own quotas apply to these calls too; botocore's standard retry mode rides out a
# throttled call the way the console would.
_BOTO_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30
)


@dataclass(frozen=True)
class AwsAccess:
    """Where the sandbox's AWS answers and the keys that open it."""

    endpoint_url: str
    region: str
    access_key_id: str
    secret_access_key: str
    ca_bundle: str | bool

    @classmethod
    def from_endpoints(cls, endpoints: Mapping[str, str]) -> AwsAccess:
        return cls(
            endpoint_url=endpoints["aws_endpoint_url"],
            region=endpoints["aws_region"],
            access_key_id=endpoints["aws_access_key_id"],
            secret_access_key=endpoints["aws_secret_access_key"],
            ca_bundle=endpoints["ca_bundle"],
        )


class AwsClients:
    """boto3 clients made once (they are thread-safe after creation; creating them is not)."""

    def __init__(self, access: AwsAccess) -> None:
        self._access = access
        self._session = boto3.session.Session(
            aws_access_key_id=access.access_key_id,
            aws_secret_access_key=access.secret_access_key,
            region_name=access.region,
        )
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def client(self, service: str, region: str | None = None) -> Any:
        key = (service, region or self._access.region)
        with self._lock:
            if key not in self._clients:
                self._clients[key] = self._session.client(
                    service,
                    region_name=key[1],
                    endpoint_url=self._access.endpoint_url,
                    verify=self._access.ca_bundle,
                    config=_BOTO_CONFIG,
                )
            return self._clients[key]


@dataclass(frozen=True)
class SignedIn:
    destination: str
    username: str
    role_arn: str
    provider_arn: str
    instance_id: str
    assumed_role_arn: str


class FirstSignInRoles:
    """Connect binds a user to the role of their first sign-in (PROCEDURE.md section 3); a later
    sign-in through another role gets "Bad Request"."""

    def __init__(self) -> None:
        self._roles: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def bind(self, *, instance_id: str, username: str, role_arn: str) -> str | None:
        """Binds on first sign-in; returns the other role if the user is bound to one."""
        with self._lock:
            bound = self._roles.setdefault((instance_id, username), role_arn)
        return None if bound == role_arn else bound


def _aws_unavailable(operation: str, exc: Exception) -> SignInRefused:
    return SignInRefused(
        cause=Cause.AWS_UNAVAILABLE,
        check="aws",
        detail=f"{operation} failed: {exc}",
        error=SERVICE_UNAVAILABLE,
        status=HTTPStatus.BAD_GATEWAY,
    )


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class AwsSignIn:
    """signin.aws.amazon.com/saml followed by the console's federation into Amazon Connect."""

    def __init__(
        self,
        access: AwsAccess,
        *,
        first_sign_in_roles: FirstSignInRoles | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._clients = AwsClients(access)
        self._first_sign_in_roles = first_sign_in_roles or FirstSignInRoles()
        self._clock = clock

    def sign_in(self, *, saml_response: str, relay_state: str, chosen_role: str = "") -> SignedIn:
        xml = decode_saml_response(saml_response)
        # Which provider's keys check the signature comes from the response's own claim, as at
        # AWS; every check after the signature reads only the signed assertion.
        claimed = claimed_role_pair(xml, chosen_role)
        metadata = self._provider_metadata(claimed.provider_arn)
        assertion = check_saml_response(
            xml, metadata, claimed=claimed, chosen_role_arn=chosen_role, now=self._clock()
        )
        pair = assertion.role_pair
        role = self._trusting_role(assertion)
        assumed_role_id, assumed_role_arn = self._assume_role(pair, saml_response)
        relay = parse_relay_state(relay_state)
        instance = self._connect_instance(relay)
        self._check_federation_permission(role, relay, instance["Arn"], assumed_role_id)
        username = self._connect_username(relay, assertion.role_session_name)
        bound_role = self._first_sign_in_roles.bind(
            instance_id=relay.instance_id, username=username, role_arn=pair.role_arn
        )
        if bound_role is not None:
            raise SignInRefused(
                cause=Cause.BAD_REQUEST_OTHER_ROLE,
                check="user_binding",
                detail=(
                    f"Connect user {username!r} first signed in through role {bound_role}; this "
                    f"sign-in came through {pair.role_arn}. Keep one federation role per instance."
                ),
                error=BAD_REQUEST,
            )
        return SignedIn(
            destination=relay.connect_url(instance["InstanceAlias"]),
            username=username,
            role_arn=pair.role_arn,
            provider_arn=pair.provider_arn,
            instance_id=relay.instance_id,
            assumed_role_arn=assumed_role_arn,
        )

    def _provider_metadata(self, provider_arn: str) -> IdpMetadata:
        iam = self._clients.client("iam")
        try:
            document = iam.get_saml_provider(SAMLProviderArn=provider_arn)["SAMLMetadataDocument"]
        except ClientError as exc:
            if _error_code(exc) not in {"NoSuchEntity", "InvalidInput"}:
                raise _aws_unavailable("iam.get_saml_provider", exc) from exc
            raise SignInRefused(
                cause=Cause.INVALID_SAML_RESPONSE,
                check="saml_provider",
                detail=f"IAM SAML provider {provider_arn} of the Role attribute does not exist",
                error=INVALID_SAML_RESPONSE,
            ) from exc
        except BotoCoreError as exc:
            raise _aws_unavailable("iam.get_saml_provider", exc) from exc
        try:
            return parse_idp_metadata(document)
        except ValueError as exc:
            raise SignInRefused(
                cause=Cause.INVALID_SAML_RESPONSE,
                check="saml_provider",
                detail=f"IAM SAML provider {provider_arn} holds unreadable metadata: {exc}",
                error=INVALID_SAML_RESPONSE,
            ) from exc

    def _trusting_role(self, assertion: CheckedAssertion) -> dict[str, Any]:
        """The role, if its trust policy lets this provider's users assume it from this
        endpoint (SAML:aud is the Recipient the assertion was posted to)."""
        role_arn = assertion.role_pair.role_arn
        iam = self._clients.client("iam")
        try:
            role = iam.get_role(RoleName=role_arn.rsplit("/", 1)[-1])["Role"]
        except ClientError as exc:
            if _error_code(exc) != "NoSuchEntity":
                raise _aws_unavailable("iam.get_role", exc) from exc
            role = None
        except BotoCoreError as exc:
            raise _aws_unavailable("iam.get_role", exc) from exc
        if role is None or role["Arn"] != role_arn:
            raise SignInRefused(
                cause=Cause.ASSUME_ROLE_DENIED,
                check="role",
                detail=f"role {role_arn} of the Role attribute does not exist (case-sensitive)",
                error=NOT_AUTHORIZED_TO_ASSUME_ROLE,
                status=HTTPStatus.FORBIDDEN,
            )
        decision = evaluate_policies(
            [
                NamedPolicy(
                    name=f"trust policy of {role['RoleName']}",
                    document=role["AssumeRolePolicyDocument"],
                )
            ],
            PolicyRequest(
                action=ASSUME_ROLE_ACTION,
                principal=("Federated", assertion.role_pair.provider_arn),
                context={
                    "SAML:aud": assertion.recipient,
                    "SAML:iss": assertion.issuer,
                    "SAML:sub": assertion.role_session_name,
                },
            ),
        )
        if not decision.allowed:
            raise SignInRefused(
                cause=Cause.ASSUME_ROLE_DENIED,
                check="trust_policy",
                detail=(
                    f"the trust policy of {role_arn} does not let Federated "
                    f"{assertion.role_pair.provider_arn} do {ASSUME_ROLE_ACTION} with SAML:aud "
                    f"{assertion.recipient}: {decision.explanation}"
                ),
                error=NOT_AUTHORIZED_TO_ASSUME_ROLE,
                status=HTTPStatus.FORBIDDEN,
            )
        return role

    def _assume_role(self, pair: RolePair, saml_response: str) -> tuple[str, str]:
        """STS AssumeRoleWithSAML; returns (AssumedRoleId, assumed-role ARN)."""
        sts = self._clients.client("sts")
        try:
            result = sts.assume_role_with_saml(
                RoleArn=pair.role_arn, PrincipalArn=pair.provider_arn, SAMLAssertion=saml_response
            )
        except ClientError as exc:
            code = _error_code(exc)
            if code == "AccessDenied":
                raise SignInRefused(
                    cause=Cause.ASSUME_ROLE_DENIED,
                    check="assume_role",
                    detail=f"STS refused AssumeRoleWithSAML: {exc}",
                    error=NOT_AUTHORIZED_TO_ASSUME_ROLE,
                    status=HTTPStatus.FORBIDDEN,
                ) from exc
            if code in {"InvalidIdentityToken", "IDPRejectedClaim", "ExpiredTokenException"}:
                raise SignInRefused(
                    cause=Cause.INVALID_SAML_RESPONSE,
                    check="assume_role",
                    detail=f"STS refused the assertion: {exc}",
                    error=INVALID_SAML_RESPONSE,
                ) from exc
            raise _aws_unavailable("sts.assume_role_with_saml", exc) from exc
        except BotoCoreError as exc:
            raise _aws_unavailable("sts.assume_role_with_saml", exc) from exc
        user = result["AssumedRoleUser"]
        return user["AssumedRoleId"], user["Arn"]

    def _connect_instance(self, relay: ConnectRelayState) -> dict[str, Any]:
        connect = self._clients.client("connect", relay.region)
        try:
            instance = connect.describe_instance(InstanceId=relay.instance_id)["Instance"]
        except ClientError as exc:
            if _error_code(exc) not in {"ResourceNotFoundException", "InvalidParameterException"}:
                raise _aws_unavailable("connect.describe_instance", exc) from exc
            instance = None
        except BotoCoreError as exc:
            raise _aws_unavailable("connect.describe_instance", exc) from exc
        if instance is None:
            problem = f"no Connect instance {relay.instance_id} in {relay.region}"
        elif instance.get("InstanceStatus") != "ACTIVE":
            status = instance.get("InstanceStatus")
            problem = f"Connect instance {relay.instance_id} is {status}, not ACTIVE"
        elif instance.get("IdentityManagementType") != "SAML":
            problem = (
                f"Connect instance {relay.instance_id} manages identities as "
                f"{instance.get('IdentityManagementType')}, not SAML"
            )
        else:
            return instance
        raise SignInRefused(
            cause=Cause.INSTANCE_UNAVAILABLE,
            check="connect_instance",
            detail=f"{problem}; check the instance id and region in the relay state",
            error=BAD_REQUEST,
        )

    def _role_policies(self, role_name: str) -> Iterator[NamedPolicy]:
        """The role's attached managed policies (default version) and inline policies."""
        iam = self._clients.client("iam")
        for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=role_name):
            for attached in page["AttachedPolicies"]:
                policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
                version = iam.get_policy_version(
                    PolicyArn=attached["PolicyArn"], VersionId=policy["DefaultVersionId"]
                )["PolicyVersion"]
                yield NamedPolicy(name=attached["PolicyArn"], document=version["Document"])
        for page in iam.get_paginator("list_role_policies").paginate(RoleName=role_name):
            for name in page["PolicyNames"]:
                inline = iam.get_role_policy(RoleName=role_name, PolicyName=name)
                yield NamedPolicy(name=f"inline policy {name}", document=inline["PolicyDocument"])

    def _check_federation_permission(
        self,
        role: dict[str, Any],
        relay: ConnectRelayState,
        instance_arn: str,
        assumed_role_id: str,
    ) -> None:
        try:
            policies = list(self._role_policies(role["RoleName"]))
        except (ClientError, BotoCoreError) as exc:
            raise _aws_unavailable("reading the role's policies", exc) from exc
        resource = f"{instance_arn}/user/{assumed_role_id}"
        decision = evaluate_policies(
            policies,
            PolicyRequest(
                action=FEDERATION_ACTION,
                resource=resource,
                context={
                    "aws:userid": assumed_role_id,
                    "aws:PrincipalArn": role["Arn"],
                    "aws:PrincipalType": "AssumedRole",
                    "aws:RequestedRegion": relay.region,
                    "connect:InstanceId": relay.instance_id,
                },
            ),
        )
        if decision.allowed:
            return
        skipped = f" (ignored: {'; '.join(decision.skipped)})" if decision.skipped else ""
        raise SignInRefused(
            cause=Cause.NO_FEDERATION_PERMISSION,
            check="federation_permission",
            detail=(
                f"role {role['Arn']} may not do {FEDERATION_ACTION} on {resource}: "
                f'{decision.explanation}{skipped}. Attach a policy allowing it on "*" with '
                f"StringEquals connect:InstanceId = {relay.instance_id}, or on "
                f"{instance_arn}/user/${{aws:userid}}"
            ),
            error=NO_FEDERATION_PERMISSION,
            status=HTTPStatus.FORBIDDEN,
        )

    def _connect_username(self, relay: ConnectRelayState, role_session_name: str) -> str:
        """The Connect user whose Username is the RoleSessionName, compared case-sensitively."""
        connect = self._clients.client("connect", relay.region)
        usernames: list[str] = []
        try:
            for page in connect.get_paginator("list_users").paginate(InstanceId=relay.instance_id):
                usernames.extend(user["Username"] for user in page["UserSummaryList"])
        except (ClientError, BotoCoreError) as exc:
            raise _aws_unavailable("connect.list_users", exc) from exc
        if role_session_name in usernames:
            return role_session_name
        near = [name for name in usernames if name.lower() == role_session_name.lower()]
        hint = (
            f"; user {near[0]!r} differs only in case (usernames are case-sensitive)"
            if near
            else ""
        )
        raise SignInRefused(
            cause=Cause.NOT_ONBOARDED,
            check="connect_user",
            detail=(
                f"no user in Connect instance {relay.instance_id} has the username "
                f"{role_session_name!r} (the RoleSessionName){hint}"
            ),
            error=NOT_ONBOARDED,
            status=HTTPStatus.FORBIDDEN,
        )
