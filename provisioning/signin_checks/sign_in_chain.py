"""Runs every check AWS sign-in and Amazon Connect make on one posted SAML response, in AWS's
order, against what AWS knows, and returns each check with its result."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from django.utils.translation import gettext_noop
from lxml import etree

from provisioning.messages import Message
from provisioning.signin_checks.iam_policy import NamedPolicy, PolicyRequest, evaluate_policies
from provisioning.signin_checks.refusals import (
    BAD_REQUEST,
    INVALID_SAML_RESPONSE,
    NO_FEDERATION_PERMISSION,
    NOT_AUTHORIZED_TO_ASSUME_ROLE,
    NOT_ONBOARDED,
    SESSION_DURATION_TOO_LONG,
    Cause,
    SignInRefused,
)
from provisioning.signin_checks.relay_state import ConnectRelayState, parse_relay_state
from provisioning.signin_checks.saml_response import (
    CheckedAssertion,
    IdpMetadata,
    RolePair,
    assertion_audience,
    assertion_issuer,
    assertion_of,
    assertion_recipient,
    assertion_role_session_name,
    attribute_values,
    check_validity_window,
    choose_role_pair,
    parse_idp_metadata,
    parse_saml_response,
    refusal_reason,
    role_pairs,
    verify_signed_assertion,
)

FEDERATION_ACTION = "connect:GetFederationToken"
ASSUME_ROLE_ACTION = "sts:AssumeRoleWithSAML"
SESSION_DURATION_ATTRIBUTE = "https://aws.amazon.com/SAML/Attributes/SessionDuration"
# IAM User Guide, "Configure SAML assertions for the authentication response": SessionDuration
# "can range from 900 seconds (15 minutes) to 43200 seconds (12 hours)"; the STS API reference
# (AssumeRoleWithSAML, DurationSeconds) adds that a value above the role's maximum session
# duration makes the call fail.
MIN_SESSION_DURATION_S = 900
MAX_SESSION_DURATION_S = 43200
_DIGITS = re.compile(r"\d{1,6}")
# What a check found: a Message (rendered in the reader's language) or plain values (a claim's
# name and value).
Detail = Message | str

# The checks, in the order AWS makes them: STS first (the response, its signature, the assertion,
# the role), then the console's federation into Connect (relay state, instance, permission, user).
CHECK_ORDER = (
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
    "relay_state",
    "connect_instance",
    "federation_permission",
    "connect_user",
)


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_CHECKED = "not_checked"


@dataclass(frozen=True)
class CheckResult:
    """One check: its key (CHECK_ORDER), outcome, exactly what was found, and the words AWS shows
    the agent when it fails."""

    key: str
    outcome: Outcome
    detail: Detail
    error: str = ""
    cause: str = ""


@dataclass(frozen=True)
class KnownRole:
    """An IAM role as IAM holds it; `policies` None when its permissions were not read."""

    arn: str
    role_id: str
    trust_policy: Mapping[str, Any]
    max_session_duration: int
    policies: tuple[NamedPolicy, ...] | None = None


@dataclass(frozen=True)
class KnownInstance:
    """A Connect instance as Connect describes it, and its users' usernames (None: not read)."""

    instance_id: str
    region: str
    arn: str
    status: str
    identity_management_type: str
    usernames: frozenset[str] | None = None


@dataclass(frozen=True)
class WhatAwsKnows:
    """What AWS holds that a sign-in is checked against. Missing pieces leave their checks
    "not checked" rather than guessed.

    `provider_metadata`: IAM SAML provider ARN -> the metadata document IAM holds (None: IAM was
    not read; then `pasted_metadata`, the IdP's metadata as the admin supplies it, stands in).
    `roles`: role ARN -> the role (a missing ARN means no such role; None: IAM was not read).
    `instance`: the Connect instance the sign-in goes to (None: not read); `instance_id` and
    `region` are where the admin expects the sign-in to land.
    """

    now: dt.datetime
    provider_metadata: Mapping[str, str] | None = None
    pasted_metadata: str = ""
    roles: Mapping[str, KnownRole] | None = None
    instance: KnownInstance | None = None
    instance_id: str = ""
    region: str = ""


@dataclass
class SignInChain:
    """The checks made so far and what they established."""

    checks: list[CheckResult] = field(default_factory=list)
    assertion: CheckedAssertion | None = None

    @property
    def first_failure(self) -> CheckResult | None:
        return next((c for c in self.checks if c.outcome == Outcome.FAILED), None)

    @property
    def signs_in(self) -> bool:
        return all(c.outcome != Outcome.FAILED for c in self.checks) and any(
            c.key == "connect_user" and c.outcome == Outcome.PASSED for c in self.checks
        )


def trust_decision(role: KnownRole, assertion: CheckedAssertion) -> SignInRefused | None:
    """Whether the role's trust policy lets the assertion's provider assume it from the endpoint
    the assertion was posted to (SAML:aud is the Recipient)."""
    decision = evaluate_policies(
        [NamedPolicy(name="trust policy", document=role.trust_policy)],
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
    if decision.allowed:
        return None
    return SignInRefused(
        cause=Cause.ASSUME_ROLE_DENIED,
        check="trust_policy",
        detail=(
            Message(
                gettext_noop(
                    "the trust policy of %(role)s does not let Federated %(provider)s do "
                    "%(action)s with SAML:aud %(recipient)s: %(explanation)s"
                ),
                {
                    "role": role.arn,
                    "provider": assertion.role_pair.provider_arn,
                    "action": ASSUME_ROLE_ACTION,
                    "recipient": assertion.recipient,
                    "explanation": decision.explanation,
                },
            )
        ),
        error=NOT_AUTHORIZED_TO_ASSUME_ROLE,
    )


def federation_decision(
    role: KnownRole, instance: KnownInstance, role_session_name: str
) -> SignInRefused | None:
    """Whether the role's policies allow connect:GetFederationToken for this session's user on
    the instance. The assumed role's user id is RoleId:RoleSessionName (IAM User Guide, "IAM
    identifiers", unique IDs), which `${aws:userid}` in a policy resource resolves to."""
    user_id = f"{role.role_id}:{role_session_name}"
    resource = f"{instance.arn}/user/{user_id}"
    decision = evaluate_policies(
        list(role.policies or ()),
        PolicyRequest(
            action=FEDERATION_ACTION,
            resource=resource,
            context={
                "aws:userid": user_id,
                "aws:PrincipalArn": role.arn,
                "aws:PrincipalType": "AssumedRole",
                "aws:RequestedRegion": instance.region,
                "connect:InstanceId": instance.instance_id,
            },
        ),
    )
    if decision.allowed:
        return None
    skipped = (
        Message(gettext_noop(" (ignored: %(skipped)s)"), {"skipped": "; ".join(decision.skipped)})
        if decision.skipped
        else ""
    )
    return SignInRefused(
        cause=Cause.NO_FEDERATION_PERMISSION,
        check="federation_permission",
        detail=(
            Message(
                gettext_noop(
                    "role %(role)s may not do %(action)s on %(resource)s: "
                    '%(explanation)s%(skipped)s. Attach a policy allowing it on "*" with '
                    "StringEquals connect:InstanceId = %(instance)s, or on %(user_resource)s"
                ),
                {
                    "role": role.arn,
                    "action": FEDERATION_ACTION,
                    "resource": resource,
                    "explanation": decision.explanation,
                    "skipped": skipped,
                    "instance": instance.instance_id,
                    "user_resource": f"{instance.arn}/user/${{aws:userid}}",
                },
            )
        ),
        error=NO_FEDERATION_PERMISSION,
    )


def _session_duration(assertion: etree._Element, role: KnownRole | None) -> Detail:
    values = attribute_values(assertion, SESSION_DURATION_ATTRIBUTE)
    if not values:
        return Message(
            gettext_noop("no SessionDuration attribute: the console session lasts one hour")
        )
    if not _DIGITS.fullmatch(values[0]):
        raise _refused(
            "session_duration",
            Message(
                gettext_noop("SessionDuration %(value)s is not whole seconds"),
                {"value": repr(values[0])},
            ),
        )
    seconds = int(values[0])
    if not MIN_SESSION_DURATION_S <= seconds <= MAX_SESSION_DURATION_S:
        raise _refused(
            "session_duration",
            Message(
                gettext_noop("SessionDuration %(seconds)d is outside %(min)d-%(max)d seconds"),
                {"seconds": seconds, "min": MIN_SESSION_DURATION_S, "max": MAX_SESSION_DURATION_S},
            ),
        )
    if role is not None and seconds > role.max_session_duration:
        raise _refused(
            "session_duration",
            Message(
                gettext_noop(
                    "SessionDuration %(seconds)d is above the role's maximum session duration "
                    "%(max)d"
                ),
                {"seconds": seconds, "max": role.max_session_duration},
            ),
            error=SESSION_DURATION_TOO_LONG,
        )
    return Message(gettext_noop("SessionDuration %(seconds)d seconds"), {"seconds": seconds})


def _refused(check: str, detail: Detail, error: str = INVALID_SAML_RESPONSE) -> SignInRefused:
    return SignInRefused(cause=Cause.INVALID_SAML_RESPONSE, check=check, detail=detail, error=error)


def _connect_user(instance: KnownInstance, role_session_name: str) -> Detail:
    usernames = instance.usernames or frozenset()
    if role_session_name in usernames:
        return Message(
            gettext_noop("Connect user %(username)s exists"), {"username": repr(role_session_name)}
        )
    near = sorted(name for name in usernames if name.lower() == role_session_name.lower())
    hint = (
        Message(
            gettext_noop("; user %(username)s differs only in case (usernames are case-sensitive)"),
            {"username": repr(near[0])},
        )
        if near
        else ""
    )
    raise SignInRefused(
        cause=Cause.NOT_ONBOARDED,
        check="connect_user",
        detail=(
            Message(
                gettext_noop(
                    "no user in Connect instance %(instance)s has the username %(username)s (the "
                    "RoleSessionName)%(hint)s"
                ),
                {
                    "instance": instance.instance_id,
                    "username": repr(role_session_name),
                    "hint": hint,
                },
            )
        ),
        error=NOT_ONBOARDED,
    )


def _instance(knows: WhatAwsKnows, relay: ConnectRelayState) -> Detail:
    instance = knows.instance
    if instance is None or instance.status == "":
        problem = Message(
            gettext_noop("no Connect instance %(instance)s in %(region)s"),
            {"instance": relay.instance_id, "region": relay.region},
        )
    elif instance.status != "ACTIVE":
        problem = Message(
            gettext_noop("Connect instance %(instance)s is %(status)s, not ACTIVE"),
            {"instance": relay.instance_id, "status": instance.status},
        )
    elif instance.identity_management_type != "SAML":
        problem = Message(
            gettext_noop("Connect instance %(instance)s manages identities as %(type)s, not SAML"),
            {"instance": relay.instance_id, "type": instance.identity_management_type},
        )
    else:
        return Message(
            gettext_noop("Connect instance %(instance)s in %(region)s is ACTIVE, SAML"),
            {"instance": instance.instance_id, "region": instance.region},
        )
    raise SignInRefused(
        cause=Cause.INSTANCE_UNAVAILABLE,
        check="connect_instance",
        detail=Message(
            gettext_noop("%(problem)s; check the instance id and region in the relay state"),
            {"problem": problem},
        ),
        error=BAD_REQUEST,
    )


def _relay_state(relay_state: str, knows: WhatAwsKnows) -> ConnectRelayState:
    relay = parse_relay_state(relay_state)
    expected = (knows.instance_id, knows.region)
    if knows.instance_id and (relay.instance_id, relay.region) != (
        knows.instance_id,
        knows.region or relay.region,
    ):
        raise SignInRefused(
            cause=Cause.RELAY_STATE_INVALID,
            check="relay_state",
            detail=(
                Message(
                    gettext_noop(
                        "the relay state goes to instance %(instance)s in %(region)s, not "
                        "%(expected)s in %(expected_region)s"
                    ),
                    {
                        "instance": relay.instance_id,
                        "region": relay.region,
                        "expected": expected[0],
                        "expected_region": expected[1] or relay.region,
                    },
                )
            ),
            error=BAD_REQUEST,
        )
    return relay


class _Chain:
    """Records checks in order; a failed check's dependants are "not checked"."""

    def __init__(self) -> None:
        self.result = SignInChain()

    def run(self, key: str, check: Callable[[], Detail]) -> bool:
        try:
            detail = check()
        except SignInRefused as refusal:
            self.result.checks.append(
                CheckResult(
                    key=key,
                    outcome=Outcome.FAILED,
                    detail=refusal.detail,
                    error=refusal.error,
                    cause=str(refusal.cause),
                )
            )
            return False
        self.result.checks.append(CheckResult(key=key, outcome=Outcome.PASSED, detail=detail))
        return True

    def skip(self, key: str, detail: Detail) -> None:
        self.result.checks.append(CheckResult(key=key, outcome=Outcome.NOT_CHECKED, detail=detail))

    def skip_rest(self, detail: Detail) -> SignInChain:
        done = {check.key for check in self.result.checks}
        for key in CHECK_ORDER:
            if key not in done:
                self.skip(key, detail)
        return self.result


def _provider_metadata(knows: WhatAwsKnows, provider_arn: str) -> tuple[IdpMetadata, Message]:
    if knows.provider_metadata is None:
        if not knows.pasted_metadata:
            raise _refused(
                "saml_provider",
                Message(
                    gettext_noop("IAM was not read and no IdP metadata was given for %(provider)s"),
                    {"provider": provider_arn},
                ),
            )
        source = Message(gettext_noop("the IdP metadata given"))
        document = knows.pasted_metadata
    elif provider_arn not in knows.provider_metadata:
        raise _refused(
            "saml_provider",
            Message(
                gettext_noop("IAM SAML provider %(provider)s of the Role attribute does not exist"),
                {"provider": provider_arn},
            ),
        )
    else:
        source = Message(gettext_noop("IAM SAML provider %(provider)s"), {"provider": provider_arn})
        document = knows.provider_metadata[provider_arn]
    try:
        metadata = parse_idp_metadata(document)
    except ValueError as exc:
        raise _refused(
            "saml_provider",
            Message(
                gettext_noop("%(source)s holds unreadable metadata: %(reason)s"),
                {"source": source, "reason": refusal_reason(exc)},
            ),
        ) from exc
    return metadata, source


def check_sign_in(
    xml: bytes, relay_state: str, knows: WhatAwsKnows, *, chosen_role_arn: str = ""
) -> SignInChain:
    """Every check, in AWS's order. After a failed check the chain goes on where the later checks
    don't depend on it, so the admin sees everything that is wrong, not only the first link."""
    chain = _Chain()
    holder: dict[str, Any] = {}

    def response() -> Detail:
        parsed = parse_saml_response(xml)
        holder["assertion"] = assertion_of(parsed)
        holder["pair"] = choose_role_pair(role_pairs(holder["assertion"]), chosen_role_arn)
        holder["destination"] = parsed.get("Destination")
        return Message(
            gettext_noop("one assertion; the Role attribute names %(provider)s"),
            {"provider": holder["pair"].provider_arn},
        )

    if not chain.run("response", response):
        return chain.skip_rest(Message(gettext_noop("the response could not be read")))
    claimed: RolePair = holder["pair"]

    def provider() -> Detail:
        holder["metadata"], source = _provider_metadata(knows, claimed.provider_arn)
        count = len(holder["metadata"].signing_certificates)
        return Message.counted(
            gettext_noop("%(source)s: %(count)d signing certificate"),
            gettext_noop("%(source)s: %(count)d signing certificates"),
            count,
            {"source": source, "count": count},
        )

    def signature() -> Detail:
        signed = verify_signed_assertion(xml, holder["metadata"])
        pair = choose_role_pair(role_pairs(signed), chosen_role_arn)
        if pair != claimed:
            raise _refused(
                "signature",
                Message(
                    gettext_noop(
                        "the Role attribute outside the signed assertion is not the signed one"
                    )
                ),
            )
        holder["assertion"] = signed
        return Message(
            gettext_noop("the assertion is signed by one of the provider's certificates")
        )

    signed = chain.run("saml_provider", provider) and chain.run("signature", signature)
    if "metadata" not in holder:
        chain.skip(
            "signature", Message(gettext_noop("no signing certificates to check it against"))
        )
    assertion_element: etree._Element = holder["assertion"]
    # Past a failed signature the checks read the unsigned assertion: AWS would stop there, but
    # the admin learns what else is wrong.
    found: dict[str, str] = {}

    def stage(key: str, check: Callable[[], str], shown: Callable[[str], Detail]) -> None:
        def run() -> Detail:
            found[key] = check()
            return shown(found[key])

        chain.run(key, run)

    if "metadata" in holder:
        metadata: IdpMetadata = holder["metadata"]
        stage("issuer", lambda: assertion_issuer(assertion_element, metadata), "Issuer {}".format)
    else:
        chain.skip(
            "issuer", Message(gettext_noop("no provider metadata to compare the Issuer with"))
        )
    stage("audience", lambda: assertion_audience(assertion_element), "Audience {}".format)
    stage(
        "recipient",
        lambda: assertion_recipient(assertion_element, holder["destination"]),
        "Recipient {}".format,
    )
    stage(
        "time_window",
        lambda: check_validity_window(assertion_element, knows.now),
        lambda expiry: Message(
            gettext_noop("valid at %(now)s, until %(expiry)s"),
            {"now": knows.now.isoformat(timespec="seconds"), "expiry": expiry},
        ),
    )
    stage(
        "role_session_name",
        lambda: assertion_role_session_name(assertion_element),
        "RoleSessionName {!r}".format,
    )
    # The later checks need the recipient (SAML:aud) and the RoleSessionName; one failed check
    # before them (an audience, a time window) doesn't hide what they would say.
    assertion = (
        CheckedAssertion(
            issuer=found.get("issuer", ""),
            audience=found.get("audience", ""),
            recipient=found["recipient"],
            role_pair=claimed,
            role_session_name=found["role_session_name"],
        )
        if {"recipient", "role_session_name"} <= found.keys()
        else None
    )
    chain.result.assertion = assertion if signed and chain.result.first_failure is None else None
    if knows.roles is None:
        chain.skip(
            "role",
            Message(gettext_noop("IAM was not read: give an AWS connection to check the role")),
        )
        chain.skip("trust_policy", Message(gettext_noop("IAM was not read")))
        role = None
    else:
        role = knows.roles.get(claimed.role_arn)

        def role_exists() -> Detail:
            if role is None:
                raise SignInRefused(
                    cause=Cause.ASSUME_ROLE_DENIED,
                    check="role",
                    detail=Message(
                        gettext_noop(
                            "role %(role)s of the Role attribute does not exist (case-sensitive)"
                        ),
                        {"role": claimed.role_arn},
                    ),
                    error=NOT_AUTHORIZED_TO_ASSUME_ROLE,
                )
            return Message(gettext_noop("role %(role)s exists"), {"role": role.arn})

        if chain.run("role", role_exists) and role is not None:
            if assertion is None:
                chain.skip(
                    "trust_policy", Message(gettext_noop("the assertion's recipient is not known"))
                )
            else:
                trusted = assertion

                def trust() -> Detail:
                    refusal = trust_decision(role, trusted)
                    if refusal is not None:
                        raise refusal
                    return Message(
                        gettext_noop("trusts %(provider)s for %(recipient)s"),
                        {"provider": claimed.provider_arn, "recipient": trusted.recipient},
                    )

                chain.run("trust_policy", trust)
        else:
            chain.skip("trust_policy", Message(gettext_noop("no role to read the trust policy of")))
    chain.run("session_duration", lambda: _session_duration(assertion_element, role))
    relay_holder: dict[str, ConnectRelayState] = {}

    def relay() -> Detail:
        relay_holder["relay"] = _relay_state(relay_state, knows)
        found = relay_holder["relay"]
        return Message(
            gettext_noop("instance %(instance)s in %(region)s, page %(page)s"),
            {"instance": found.instance_id, "region": found.region, "page": found.destination},
        )

    if not chain.run("relay_state", relay):
        return chain.skip_rest(Message(gettext_noop("the relay state names no Connect instance")))
    if knows.instance is None:
        return chain.skip_rest(
            Message(gettext_noop("Connect was not read: give an AWS connection"))
        )
    if not chain.run("connect_instance", lambda: _instance(knows, relay_holder["relay"])):
        return chain.skip_rest(Message(gettext_noop("no usable Connect instance")))
    instance = knows.instance
    if role is None or role.policies is None:
        chain.skip(
            "federation_permission", Message(gettext_noop("the role's policies were not read"))
        )
    else:
        known_role = role
        session_name = assertion.role_session_name if assertion else ""

        def permission() -> Detail:
            refusal = federation_decision(known_role, instance, session_name)
            if refusal is not None:
                raise refusal
            return Message(
                gettext_noop("%(role)s may do %(action)s on the instance"),
                {"role": known_role.arn, "action": FEDERATION_ACTION},
            )

        chain.run("federation_permission", permission)
    if assertion is None:
        return chain.skip_rest("the RoleSessionName is not known")
    session = assertion.role_session_name
    chain.run("connect_user", lambda: _connect_user(instance, session))
    return chain.skip_rest("")


def what_aws_knows(
    facts: dict[str, Any] | None,
    *,
    now: dt.datetime,
    pasted_metadata: str = "",
    instance_id: str = "",
    region: str = "",
) -> WhatAwsKnows:
    """The checks' view of AWS from provisioning/aws/signin_facts.py's data (None: AWS was not
    read, the pasted metadata stands in for IAM)."""
    if facts is None:
        return WhatAwsKnows(
            now=now, pasted_metadata=pasted_metadata, instance_id=instance_id, region=region
        )
    instance = facts.get("instance")
    return WhatAwsKnows(
        now=now,
        provider_metadata=dict(facts["provider_metadata"]),
        roles={
            arn: KnownRole(
                arn=role["arn"],
                role_id=role["role_id"],
                trust_policy=role["trust_policy"],
                max_session_duration=role["max_session_duration"],
                policies=tuple(
                    NamedPolicy(name=p["name"], document=p["document"]) for p in role["policies"]
                ),
            )
            for arn, role in facts["roles"].items()
        },
        instance=None
        if instance is None
        else KnownInstance(
            instance_id=instance["instance_id"],
            region=instance["region"],
            arn=instance["arn"],
            status=instance["status"],
            identity_management_type=instance["identity_management_type"],
            usernames=frozenset(instance["usernames"]),
        ),
        instance_id=instance_id,
        region=region,
    )
