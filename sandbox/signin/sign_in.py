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

from provisioning.signin_checks.iam_policy import NamedPolicy
from provisioning.signin_checks.posted_sign_in import assertion_facts
from provisioning.signin_checks.refusals import (
    BAD_REQUEST,
    INVALID_SAML_RESPONSE,
    NOT_AUTHORIZED_TO_ASSUME_ROLE,
    SERVICE_UNAVAILABLE,
    Cause,
    SignInRefused,
)
from provisioning.signin_checks.relay_state import SIGNED_IN_TO_CONSOLE, parse_relay_state
from provisioning.signin_checks.saml_response import (
    RolePair,
    claimed_role_pair,
    decode_saml_response,
)
from provisioning.signin_checks.sign_in_chain import (
    CHECK_ORDER,
    KnownInstance,
    KnownRole,
    WhatAwsKnows,
    check_sign_in,
)
from sandbox.aws.cloudtrail import CloudTrail, SignInAttempt

# What AWS answers each refusal with: STS's 403 for an assumption it denies, Connect's 403 for
# a user or permission it refuses, the console's 200 when the relay state leaves the user there.
_STATUSES = {
    Cause.ASSUME_ROLE_DENIED: HTTPStatus.FORBIDDEN,
    Cause.NOT_ONBOARDED: HTTPStatus.FORBIDDEN,
    Cause.NO_FEDERATION_PERMISSION: HTTPStatus.FORBIDDEN,
    Cause.RELAY_STATE_MISSING: SIGNED_IN_TO_CONSOLE,
    Cause.RELAY_STATE_INVALID: SIGNED_IN_TO_CONSOLE,
}
# The sandbox's own quotas apply to these calls too; botocore's standard retry mode rides out a
# throttled call the way the console would.
# The checks STS makes in AssumeRoleWithSAML; a later one is the console's federation into Connect.
_STS_CHECKS = frozenset(CHECK_ORDER[: CHECK_ORDER.index("relay_state")]) | {"assume_role"}
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


def _attempt(xml: bytes, claimed: RolePair) -> SignInAttempt:
    """Who is signing in and through what, as the events will name them (read from the response
    before any check: a refused sign-in is logged too)."""
    facts = assertion_facts(xml)
    names = [values for name, values in facts.attributes if name.endswith("/RoleSessionName")]
    matched = _REGIONAL_SIGNIN.match(facts.recipient)
    return SignInAttempt(
        region=matched["region"] if matched else GLOBAL_EVENTS_REGION,
        account_id=claimed.role_arn.split(":")[4] if claimed.role_arn.count(":") >= 5 else "",
        role_arn=claimed.role_arn,
        provider_arn=claimed.provider_arn,
        subject=facts.name_id,
        issuer=facts.issuer,
        role_session_name=names[0][0] if names and names[0] else "",
    )


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

    It reads what AWS holds (the provider's metadata, the role, its policies, the instance and its
    users) through boto3, then lets the product's own sign-in checks
    (provisioning/signin_checks, the same code the wizard's inspector runs) decide, so the sandbox
    and the inspector can never disagree about what AWS accepts."""

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
        xml = decode_saml_response(saml_response)
        # Which provider's keys check the signature comes from the response's own claim, as at
        # AWS; every check after the signature reads only the signed assertion.
        claimed = claimed_role_pair(xml, chosen_role)
        attempt = _attempt(xml, claimed)
        try:
            signed_in = self._sign_in(xml, claimed, saml_response, relay_state, chosen_role)
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
            relay = parse_relay_state(relay_state)
        except SignInRefused:
            return
        self._cloudtrail.get_federation_token(
            attempt,
            instance_id=relay.instance_id,
            region=relay.region,
            assumed_role_arn=assumed_role_arn,
            error=connect_error,
        )

    def _sign_in(
        self,
        xml: bytes,
        claimed: RolePair,
        saml_response: str,
        relay_state: str,
        chosen_role: str,
    ) -> SignedIn:
        instance, instance_alias = self._connect_instance(relay_state)
        knows = WhatAwsKnows(
            now=self._clock(),
            provider_metadata=self._provider_metadata(claimed.provider_arn),
            roles=self._roles(claimed.role_arn),
            instance=instance,
        )
        chain = check_sign_in(xml, relay_state, knows, chosen_role_arn=chosen_role)
        failed = chain.first_failure
        if failed is not None:
            raise SignInRefused(
                cause=Cause(failed.cause),
                check=failed.key,
                detail=failed.detail,
                error=failed.error,
                status=_STATUSES.get(Cause(failed.cause), HTTPStatus.BAD_REQUEST),
            )
        assertion = chain.assertion
        if assertion is None or knows.instance is None:
            raise SignInRefused(
                cause=Cause.INVALID_SAML_RESPONSE,
                check="response",
                detail="the response could not be checked",
                error=INVALID_SAML_RESPONSE,
            )
        pair = assertion.role_pair
        assumed_role_arn = self._assume_role(pair, saml_response)
        relay = parse_relay_state(relay_state)
        username = assertion.role_session_name
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
            destination=relay.connect_url(instance_alias),
            username=username,
            role_arn=pair.role_arn,
            provider_arn=pair.provider_arn,
            instance_id=relay.instance_id,
            assumed_role_arn=assumed_role_arn,
        )

    def _provider_metadata(self, provider_arn: str) -> dict[str, str]:
        iam = self._clients.client("iam")
        try:
            document = iam.get_saml_provider(SAMLProviderArn=provider_arn)["SAMLMetadataDocument"]
        except ClientError as exc:
            if _error_code(exc) not in {"NoSuchEntity", "InvalidInput"}:
                raise _aws_unavailable("iam.get_saml_provider", exc) from exc
            return {}
        except BotoCoreError as exc:
            raise _aws_unavailable("iam.get_saml_provider", exc) from exc
        return {provider_arn: document}

    def _roles(self, role_arn: str) -> dict[str, KnownRole]:
        """The role named in the Role attribute, with its policies; empty if there is none."""
        iam = self._clients.client("iam")
        try:
            role = iam.get_role(RoleName=role_arn.rsplit("/", 1)[-1])["Role"]
        except ClientError as exc:
            if _error_code(exc) != "NoSuchEntity":
                raise _aws_unavailable("iam.get_role", exc) from exc
            return {}
        except BotoCoreError as exc:
            raise _aws_unavailable("iam.get_role", exc) from exc
        if role["Arn"] != role_arn:
            return {}
        try:
            policies = tuple(self._role_policies(role["RoleName"]))
        except (ClientError, BotoCoreError) as exc:
            raise _aws_unavailable("reading the role's policies", exc) from exc
        return {
            role_arn: KnownRole(
                arn=role["Arn"],
                role_id=role["RoleId"],
                trust_policy=role["AssumeRolePolicyDocument"],
                max_session_duration=int(role.get("MaxSessionDuration", 3600)),
                policies=policies,
            )
        }

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
        return str(result["AssumedRoleUser"]["Arn"])

    def _connect_instance(self, relay_state: str) -> tuple[KnownInstance | None, str]:
        """The instance the relay state names, with its users, and its alias; None if the relay
        state names none (the shared checks then refuse the relay state)."""
        try:
            relay = parse_relay_state(relay_state)
        except SignInRefused:
            return None, ""
        connect = self._clients.client("connect", relay.region)
        try:
            instance = connect.describe_instance(InstanceId=relay.instance_id)["Instance"]
        except ClientError as exc:
            if _error_code(exc) not in {"ResourceNotFoundException", "InvalidParameterException"}:
                raise _aws_unavailable("connect.describe_instance", exc) from exc
            return (
                KnownInstance(
                    instance_id=relay.instance_id,
                    region=relay.region,
                    arn="",
                    status="",
                    identity_management_type="",
                ),
                "",
            )
        except BotoCoreError as exc:
            raise _aws_unavailable("connect.describe_instance", exc) from exc
        usernames: set[str] = set()
        if instance.get("InstanceStatus") == "ACTIVE":
            try:
                for page in connect.get_paginator("list_users").paginate(
                    InstanceId=relay.instance_id
                ):
                    usernames.update(user["Username"] for user in page["UserSummaryList"])
            except (ClientError, BotoCoreError) as exc:
                raise _aws_unavailable("connect.list_users", exc) from exc
        known = KnownInstance(
            instance_id=relay.instance_id,
            region=relay.region,
            arn=instance["Arn"],
            status=str(instance.get("InstanceStatus", "")),
            identity_management_type=str(instance.get("IdentityManagementType", "")),
            usernames=frozenset(usernames),
        )
        return known, str(instance.get("InstanceAlias", ""))

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
