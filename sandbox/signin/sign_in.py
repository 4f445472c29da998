"""Runs AWS's sign-in checks on a posted SAML response, in AWS's order, then the Amazon Connect
federation checks, talking to the sandbox's AWS only through boto3."""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from sandbox.aws.cloudtrail import CloudTrail, SignInAttempt
from sandbox.aws.policy_evaluation import Ask, decide
from sandbox.aws.sts_saml import RoleFacts, StsRefusal, check_saml_assertion
from sandbox.signin.posted import Posted, RolePair, read_posted
from sandbox.signin.refusals import (
    BAD_REQUEST,
    INVALID_SAML_RESPONSE,
    NO_FEDERATION_PERMISSION,
    NOT_ONBOARDED,
    SERVICE_UNAVAILABLE,
    Cause,
    SignInRefused,
    sts_page_text,
)
from sandbox.signin.relay_state import read_relay_state

# The sandbox's own quotas apply to these calls too; botocore's standard retry mode rides out a
# throttled call the way the console would.
# The checks STS makes in AssumeRoleWithSAML; a later one is the console's federation into Connect.
_STS_CHECKS = frozenset(
    {
        "form",
        "xml",
        "status",
        "role_attribute",
        "response",
        "saml_provider",
        "signature",
        "issuer",
        "audience",
        "recipient",
        "time_window",
        "role_session_name",
        "role",
        "trust_policy",
        "session_duration",
        "assume_role",
    }
)
# What the sign-in page shows for an Issuer that is not the provider's (IAM User Guide,
# "Troubleshoot SAML federation with IAM", "Issuer not present in specified provider").
ISSUER_NOT_IN_PROVIDER = (
    "Failed to assume role: Issuer not present in specified provider (service: "
    "AWSOpenIdDiscoveryService; status code: 400; error code: AuthSamlInvalidSamlResponseException)"
)
FEDERATION_ACTION = "connect:GetFederationToken"
# What STS answers each refusal with, where the refusal's text does not carry the code (the
# messages are the sandbox STS's own, sandbox/aws/sts_saml.py).
_STS_ERRORS = {
    "saml_provider": ("InvalidIdentityToken", "Specified provider doesn't exist"),
    "signature": ("InvalidIdentityToken", "Response signature invalid"),
    "time_window": ("ExpiredTokenException", "Token expired"),
    "role": ("AccessDenied", "Not authorized to perform sts:AssumeRoleWithSAML"),
    "trust_policy": ("AccessDenied", "Not authorized to perform sts:AssumeRoleWithSAML"),
}
_ERROR_CODE = re.compile(r"^(?P<message>.*?) \(service: .*error code: (?P<code>\w+)\)$")
# Connect's GetFederationToken errors (botocore's connect model, each error shape's own text);
# Connect shows the agent "Bad Request" for a user bound to another role and publishes no code,
# so the sandbox answers it with the model's InvalidRequestException.
_CONNECT_ERRORS = {
    "connect_instance": (
        "ResourceNotFoundException",
        "The specified resource was not found.",
    ),
    "federation_permission": (
        "AccessDeniedException",
        "You do not have sufficient permissions to perform this action.",
    ),
    "connect_user": (
        "UserNotFoundException",
        "No user with the specified credentials was found in the Amazon Connect instance.",
    ),
    "user_binding": ("InvalidRequestException", "The request is not valid."),
}
# Where STS's events go: a regional sign-in endpoint's region, else us-east-1 (IAM user guide,
# "Logging IAM and AWS STS API calls with AWS CloudTrail": requests to the global endpoint are
# logged to US East (N. Virginia)).
_REGIONAL_SIGNIN = re.compile(r"^https://(?P<region>[a-z0-9-]+)\.signin\.aws\.amazon\.com/")
GLOBAL_EVENTS_REGION = "us-east-1"
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
    """Connect binds a user to the role of their first sign-in (what admins see when they set it up
    by hand; no public AWS page found that states it); a later
    sign-in through another role gets "Bad Request"."""

    def __init__(self) -> None:
        self._roles: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def bind(self, *, instance_id: str, username: str, role_arn: str) -> str | None:
        """Binds on first sign-in; returns the other role if the user is bound to one."""
        with self._lock:
            bound = self._roles.setdefault((instance_id, username), role_arn)
        return None if bound == role_arn else bound


def _attempt(posted: Posted) -> SignInAttempt:
    """Who is signing in and through what, as the events will name them (read from the response
    before any check: a refused sign-in is logged too)."""
    matched = _REGIONAL_SIGNIN.match(posted.recipient)
    claimed = posted.role_pair
    return SignInAttempt(
        region=matched["region"] if matched else GLOBAL_EVENTS_REGION,
        account_id=claimed.role_arn.split(":")[4] if claimed.role_arn.count(":") >= 5 else "",
        role_arn=claimed.role_arn,
        provider_arn=claimed.provider_arn,
        subject=posted.subject,
        issuer=posted.issuer,
        role_session_name=posted.role_session_name,
    )


def _sts_refused(refused: StsRefusal) -> SignInRefused:
    """STS's refusal as the sign-in page shows it: its own words where AWS passes them through
    (the role, RoleSessionName and duration errors), else the invalid-SAML-response page."""
    if refused.check == "issuer":
        page = ISSUER_NOT_IN_PROVIDER
    elif (
        refused.code in {"AccessDenied", "ValidationError"} or refused.check == "role_session_name"
    ):
        page = sts_page_text(refused.code, refused.message, refused.status)
    else:
        page = INVALID_SAML_RESPONSE
    denied = refused.code == "AccessDenied"
    return SignInRefused(
        cause=Cause.ASSUME_ROLE_DENIED if denied else Cause.INVALID_SAML_RESPONSE,
        check=refused.check,
        detail=refused.detail,
        error=page,
        status=HTTPStatus.FORBIDDEN if denied else HTTPStatus.BAD_REQUEST,
    )


@dataclass(frozen=True)
class _Role:
    facts: RoleFacts
    role_id: str
    policies: tuple[tuple[str, dict[str, Any]], ...]


@dataclass(frozen=True)
class _Instance:
    arn: str
    alias: str
    status: str
    identity_management_type: str
    usernames: frozenset[str]


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
    """signin.aws.amazon.com/saml followed by the console's federation into Amazon Connect.

    It reads what AWS holds (the provider's metadata, the role and its policies, the instance and
    its users) through boto3 and decides as AWS does, in AWS's order, with the sandbox's own
    code: STS's checks (sandbox/aws/sts_saml.py, the same function the sandbox's STS runs),
    the relay state, the instance, the federation permission (the sandbox's own policy
    evaluation) and the user; then STS issues the session through boto3. It shares nothing with
    the wizard's inspector, so the two can disagree, and a test shows which one is wrong."""

    def __init__(
        self,
        access: AwsAccess,
        *,
        first_sign_in_roles: FirstSignInRoles | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        cloudtrail: CloudTrail | None = None,
    ) -> None:
        self._clients = AwsClients(access)
        self._first_sign_in_roles = first_sign_in_roles or FirstSignInRoles()
        self._clock = clock
        self._cloudtrail = cloudtrail

    def sign_in(self, *, saml_response: str, relay_state: str, chosen_role: str = "") -> SignedIn:
        # Which provider's keys check the signature comes from the response's own claim, as at
        # AWS; every check after the signature reads only the signed assertion.
        posted = read_posted(saml_response, chosen_role)
        attempt = _attempt(posted)
        try:
            signed_in = self._sign_in(posted, "".join(saml_response.split()), relay_state)
        except SignInRefused as refusal:
            self._record_refusal(attempt, refusal, relay_state)
            raise
        self._record_events(attempt, relay_state, assumed_role_arn=signed_in.assumed_role_arn)
        return signed_in

    def _record_refusal(self, attempt: SignInAttempt, refusal: SignInRefused, relay: str) -> None:
        """The events AWS would have logged for this refusal: STS's failed call, or STS's
        success and Connect's failed GetFederationToken. A relay state that leaves the user in
        the console makes no Connect call at all; the sandbox being unreachable, no event."""
        if self._cloudtrail is None or refusal.check == "aws":
            return
        if refusal.check in _STS_CHECKS:
            error = _STS_ERRORS.get(refusal.check)
            matched = _ERROR_CODE.match(refusal.error)
            if error is None:
                error = (
                    (matched["code"], matched["message"])
                    if matched
                    else ("InvalidIdentityToken", refusal.error)
                )
            self._cloudtrail.assume_role_with_saml(attempt, error=error)
            return
        self._record_events(attempt, relay, connect_error=_CONNECT_ERRORS.get(refusal.check))

    def _record_events(
        self,
        attempt: SignInAttempt,
        relay_state: str,
        *,
        assumed_role_arn: str = "",
        connect_error: tuple[str, str] | None = None,
    ) -> None:
        if self._cloudtrail is None:
            return
        role_name = attempt.role_arn.rsplit("/", 1)[-1]
        assumed_role_arn = assumed_role_arn or (
            f"arn:aws:sts::{attempt.account_id}:assumed-role/{role_name}/"
            f"{attempt.role_session_name}"
        )
        self._cloudtrail.assume_role_with_saml(attempt, assumed_role_arn=assumed_role_arn)
        try:
            relay = read_relay_state(relay_state)
        except SignInRefused:
            return
        self._cloudtrail.get_federation_token(
            attempt,
            instance_id=relay.instance_id,
            region=relay.region,
            assumed_role_arn=assumed_role_arn,
            error=connect_error,
        )

    def _sign_in(self, posted: Posted, saml_response: str, relay_state: str) -> SignedIn:
        pair = posted.role_pair
        role = self._role(pair.role_arn)
        try:
            claims = check_saml_assertion(
                saml_response=saml_response,
                role_arn=pair.role_arn,
                principal_arn=pair.provider_arn,
                provider_metadata=self._provider_metadata(pair.provider_arn),
                role=None if role is None else role.facts,
                now=self._clock(),
            )
        except StsRefusal as refused:
            raise _sts_refused(refused) from refused
        relay = read_relay_state(relay_state)
        instance = self._connect_instance(relay.instance_id, relay.region)
        if role is None:  # STS refused a missing role above; this keeps the types honest
            raise _instance_unavailable("the role vanished during the sign-in")
        self._check_federation_permission(
            role, instance, relay.instance_id, relay.region, claims.role_session_name
        )
        username = claims.role_session_name
        _check_connect_user(instance, relay.instance_id, username)
        assumed_role_arn = self._assume_role(pair, saml_response)
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
            destination=relay.page(instance.alias),
            username=username,
            role_arn=pair.role_arn,
            provider_arn=pair.provider_arn,
            instance_id=relay.instance_id,
            assumed_role_arn=assumed_role_arn,
        )

    def _check_federation_permission(
        self, role: _Role, instance: _Instance, instance_id: str, region: str, session: str
    ) -> None:
        """The console calls Connect's GetFederationToken as the assumed role, whose user id is
        RoleId:RoleSessionName (IAM User Guide, "IAM identifiers", unique IDs; `${aws:userid}`).
        The resource is the instance's user `…/user/${aws:userid}` and connect:InstanceId is a
        condition key of the action (Amazon Connect Administrator Guide, "Configure SAML with
        IAM", the policy it gives; Service Authorization Reference for Amazon Connect)."""
        user_id = f"{role.role_id}:{session}"
        resource = f"{instance.arn}/user/{user_id}"
        decision = decide(
            role.policies,
            Ask(
                action=FEDERATION_ACTION,
                resource=resource,
                keys={
                    "aws:userid": user_id,
                    "aws:PrincipalArn": role.facts.arn,
                    "aws:PrincipalType": "AssumedRole",
                    "aws:RequestedRegion": region,
                    "connect:InstanceId": instance_id,
                },
            ),
        )
        if not decision.allowed:
            raise SignInRefused(
                cause=Cause.NO_FEDERATION_PERMISSION,
                check="federation_permission",
                detail=(
                    f"role {role.facts.arn} may not do {FEDERATION_ACTION} on {resource}: "
                    f"{decision.why}"
                ),
                error=NO_FEDERATION_PERMISSION,
                status=HTTPStatus.FORBIDDEN,
            )

    def _provider_metadata(self, provider_arn: str) -> str | None:
        iam = self._clients.client("iam")
        try:
            document = iam.get_saml_provider(SAMLProviderArn=provider_arn)["SAMLMetadataDocument"]
        except ClientError as exc:
            if _error_code(exc) not in {"NoSuchEntity", "InvalidInput"}:
                raise _aws_unavailable("iam.get_saml_provider", exc) from exc
            return None
        except BotoCoreError as exc:
            raise _aws_unavailable("iam.get_saml_provider", exc) from exc
        return str(document)

    def _role(self, role_arn: str) -> _Role | None:
        """The role named in the Role attribute, with its policies; None if there is none."""
        iam = self._clients.client("iam")
        try:
            role = iam.get_role(RoleName=role_arn.rsplit("/", 1)[-1])["Role"]
        except ClientError as exc:
            if _error_code(exc) not in {"NoSuchEntity", "ValidationError"}:
                raise _aws_unavailable("iam.get_role", exc) from exc
            return None
        except BotoCoreError as exc:
            raise _aws_unavailable("iam.get_role", exc) from exc
        if role["Arn"] != role_arn:
            return None
        try:
            policies = tuple(self._role_policies(role["RoleName"]))
        except (ClientError, BotoCoreError) as exc:
            raise _aws_unavailable("reading the role's policies", exc) from exc
        return _Role(
            facts=RoleFacts(
                arn=role["Arn"],
                trust_policy=dict(role["AssumeRolePolicyDocument"]),
                max_session_duration_s=int(role.get("MaxSessionDuration", 3600)),
            ),
            role_id=role["RoleId"],
            policies=policies,
        )

    def _assume_role(self, pair: RolePair, saml_response: str) -> str:
        """STS AssumeRoleWithSAML; returns the assumed-role ARN."""
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
                    error=sts_page_text(code, _error_message(exc), HTTPStatus.FORBIDDEN),
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
        return str(result["AssumedRoleUser"]["Arn"])

    def _connect_instance(self, instance_id: str, region: str) -> _Instance:
        """The instance the relay state names, ACTIVE and SAML, with its users' usernames."""
        connect = self._clients.client("connect", region)
        try:
            instance = connect.describe_instance(InstanceId=instance_id)["Instance"]
        except ClientError as exc:
            if _error_code(exc) not in {"ResourceNotFoundException", "InvalidParameterException"}:
                raise _aws_unavailable("connect.describe_instance", exc) from exc
            raise _instance_unavailable(f"no Connect instance {instance_id} in {region}") from exc
        except BotoCoreError as exc:
            raise _aws_unavailable("connect.describe_instance", exc) from exc
        status = str(instance.get("InstanceStatus", ""))
        identity = str(instance.get("IdentityManagementType", ""))
        if status != "ACTIVE":
            raise _instance_unavailable(f"Connect instance {instance_id} is {status}, not ACTIVE")
        if identity != "SAML":
            raise _instance_unavailable(
                f"Connect instance {instance_id} manages identities as {identity}, not SAML"
            )
        usernames: set[str] = set()
        try:
            for page in connect.get_paginator("list_users").paginate(InstanceId=instance_id):
                usernames.update(user["Username"] for user in page["UserSummaryList"])
        except (ClientError, BotoCoreError) as exc:
            raise _aws_unavailable("connect.list_users", exc) from exc
        return _Instance(
            arn=instance["Arn"],
            alias=str(instance.get("InstanceAlias", "")),
            status=status,
            identity_management_type=identity,
            usernames=frozenset(usernames),
        )

    def _role_policies(self, role_name: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """The role's attached managed policies (default version) and inline policies."""
        iam = self._clients.client("iam")
        for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=role_name):
            for attached in page["AttachedPolicies"]:
                policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
                version = iam.get_policy_version(
                    PolicyArn=attached["PolicyArn"], VersionId=policy["DefaultVersionId"]
                )["PolicyVersion"]
                yield attached["PolicyArn"], dict(version["Document"])
        for page in iam.get_paginator("list_role_policies").paginate(RoleName=role_name):
            for name in page["PolicyNames"]:
                inline = iam.get_role_policy(RoleName=role_name, PolicyName=name)
                yield f"inline policy {name}", dict(inline["PolicyDocument"])


def _instance_unavailable(problem: str) -> SignInRefused:
    return SignInRefused(
        cause=Cause.INSTANCE_UNAVAILABLE,
        check="connect_instance",
        detail=f"{problem}; check the instance id and region in the relay state",
        error=BAD_REQUEST,
    )


def _check_connect_user(instance: _Instance, instance_id: str, username: str) -> None:
    """Connect signs in the user whose Username is the RoleSessionName, case-sensitively."""
    if username in instance.usernames:
        return
    near = sorted(name for name in instance.usernames if name.lower() == username.lower())
    hint = f"; user {near[0]!r} differs only in case (usernames are case-sensitive)" if near else ""
    raise SignInRefused(
        cause=Cause.NOT_ONBOARDED,
        check="connect_user",
        detail=(
            f"no user in Connect instance {instance_id} has the username {username!r} (the "
            f"RoleSessionName){hint}"
        ),
        error=NOT_ONBOARDED,
        status=HTTPStatus.FORBIDDEN,
    )


def _error_message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", ""))
