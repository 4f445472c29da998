"""Judges what was read of a federation, link by link, with the checks AWS sign-in and Connect
make (provisioning/signin_checks/): each link gets its state and every problem a finding."""

from __future__ import annotations

import datetime as dt
from typing import Any

from provisioning.aws.iam import signin_audiences
from provisioning.federation_check.result import (
    FIXED_ROLE_CLAIM,
    FederationCheck,
    LinkState,
    Severity,
)
from provisioning.saml import parse_idp_metadata
from provisioning.signin_checks.iam_policy import NamedPolicy
from provisioning.signin_checks.refusals import Cause, SignInRefused
from provisioning.signin_checks.relay_state import parse_relay_state
from provisioning.signin_checks.saml_response import (
    AWS_SIGNIN_URN,
    CheckedAssertion,
    RolePair,
    is_aws_signin_url,
)
from provisioning.signin_checks.sign_in_chain import (
    KnownInstance,
    KnownRole,
    federation_decision,
    trust_decision,
)
from provisioning.usernames import check_username

# The gallery app's identifier and AWS's sign-in audience (IAM User Guide, "Configure SAML
# assertions for the authentication response": the Audience is https://signin.aws.amazon.com/saml).
AWS_AUDIENCE = "https://signin.aws.amazon.com/saml"
# The warnings before a signing certificate expires (issue 15: 60, 30 and 7 days); the check
# warns from the first of them.
CERTIFICATE_WARNING_DAYS = 60
SAML_MODES = {"saml", "SAML_2_0"}
# The finding that the role may not call connect:GetFederationToken, and its evidence that the
# federation policy a repair attaches exists and would let the role federate: only its attachment
# is missing (judge_detached_policy; provisioning/federation_check/repair.py, repaired_by).
NO_FEDERATION_PERMISSION = "no_federation_permission"
DETACHED_POLICY = "detached_policy"
# A RoleSessionName to evaluate the federation policy with when nobody is assigned.
SAMPLE_SESSION_NAME = "someone@example.com"
# The Role claim's sources that send role values: the assigned app roles, or the pair typed as
# fixed text: both put "<role ARN>,<provider ARN>" in the assertion.
ENTRA_ROLE_SOURCES = {"assignedroles", FIXED_ROLE_CLAIM}
# How many names a finding lists (the JSON result and the page): the rest are counted.
NAMES_SHOWN = 10


def role_pairs(app: dict[str, Any]) -> list[RolePair]:
    pairs = []
    for value in app.get("role_values", []):
        first, _, second = str(value).partition(",")
        # Either order is accepted (IAM User Guide, "Configure SAML assertions": the Role
        # attribute holds the role ARN and the provider ARN, comma-separated).
        role, provider = (first, second) if ":role/" in first else (second, first)
        pairs.append(RolePair(role_arn=role.strip(), provider_arn=provider.strip()))
    return pairs


def federation_url(region: str, instance_id: str) -> str:
    """The relay state that leads into the instance (Amazon Connect Administrator Guide,
    "Configure SAML with IAM for Amazon Connect": the relay state is
    https://<region>.console.aws.amazon.com/connect/federate/<instance ID>)."""
    return f"https://{region}.console.aws.amazon.com/connect/federate/{instance_id}"


def _names(values: list[str]) -> dict[str, Any]:
    return {"names": ", ".join(values[:NAMES_SHOWN]), "more": max(len(values) - NAMES_SHOWN, 0)}


def _judge_app(check: FederationCheck, app: dict[str, Any], region: str, now: dt.datetime) -> None:
    check.set_link("idp_app", LinkState.OK, app.get("name") or app["app_id"])
    if not app.get("enabled", True):
        check.add("idp_app", "app_disabled", name=app.get("name", ""))
    if app.get("sso_mode") not in SAML_MODES:
        check.add("idp_app", "app_not_saml", mode=app.get("sso_mode") or "-")
    if check.idp == "entra":
        if not any(uri.startswith(AWS_AUDIENCE) for uri in app.get("identifiers", [])):
            check.add(
                "idp_app",
                "identifier_wrong",
                found=", ".join(app.get("identifiers", [])) or "-",
                wanted=AWS_AUDIENCE,
            )
        audiences = signin_audiences(region)
        if not set(app.get("reply_urls", [])) & set(audiences):
            check.add(
                "idp_app",
                "reply_url_wrong",
                found=", ".join(app.get("reply_urls", [])) or "-",
                wanted=audiences[0],
            )
    if check.idp == "okta" and "sign_on_urls" in app:
        _judge_okta_custom_urls(check, app, region)
    metadata = app.get("metadata", {})
    if "error" in metadata:
        check.add("idp_app", "metadata_unreadable", error=metadata["error"])
        return
    not_after = dt.datetime.fromisoformat(metadata["not_after"])
    left = not_after - now
    if left <= dt.timedelta(0):
        check.add("idp_app", "certificate_expired", date=metadata["not_after"][:10])
    elif left <= dt.timedelta(days=CERTIFICATE_WARNING_DAYS):
        check.add(
            "idp_app",
            "certificate_expiring",
            Severity.WARNING,
            date=metadata["not_after"][:10],
            days=left.days,
        )


def _judge_okta_custom_urls(check: FederationCheck, app: dict[str, Any], region: str) -> None:
    """A custom Okta SAML app's single sign-on URL, Recipient and Destination, judged as an Entra
    app's reply URL is (one of AWS sign-in's URLs for the region), and its audience as AWS
    sign-in judges an assertion's (signin_checks: the global or a regional sign-in URL, or
    urn:amazon:webservices). A wrong single sign-on URL is one finding: the Recipient and
    Destination usually follow it (the admin console's "Use this for Recipient URL and
    Destination URL")."""
    audiences = signin_audiences(region)
    urls = app["sign_on_urls"]
    if urls.get("ssoAcsUrl") not in audiences:
        check.add(
            "idp_app",
            "okta_sso_url_wrong",
            found=urls.get("ssoAcsUrl") or "-",
            wanted=audiences[0],
        )
    else:
        # Only a Recipient or Destination the app holds is judged: both are optional in Okta's
        # model, and what Okta writes without them is not documented there.
        wrong = sorted(
            {urls[key] for key in ("recipient", "destination") if urls.get(key)} - set(audiences)
        )
        if wrong:
            check.add(
                "idp_app", "okta_recipient_wrong", found=", ".join(wrong), wanted=audiences[0]
            )
    audience = next(iter(app.get("identifiers", [])), "")
    if not (is_aws_signin_url(audience) or audience == AWS_SIGNIN_URN):
        check.add("idp_app", "okta_audience_wrong", found=audience or "-", wanted=AWS_AUDIENCE)


def _judge_claims(check: FederationCheck, app: dict[str, Any], instance: dict[str, Any]) -> None:
    check.set_link("claims", LinkState.OK, app.get("relay_state") or "-")
    try:
        relay = parse_relay_state(app.get("relay_state", ""))
    except SignInRefused as refused:
        code = (
            "relay_state_missing"
            if refused.cause == Cause.RELAY_STATE_MISSING
            else "relay_state_not_connect"
        )
        check.add(
            "claims",
            code,
            relay_state=app.get("relay_state", ""),
            error=refused.error,
            wanted=federation_url(check.region, instance["instance_id"]),
        )
    else:
        if (relay.instance_id, relay.region) != (instance["instance_id"], check.region):
            check.add(
                "claims",
                "relay_state_other_instance",
                found=f"{relay.instance_id} ({relay.region})",
                wanted=f"{instance['instance_id']} ({check.region})",
            )
    claims = app.get("claims", {})
    if not app.get("role_values"):
        check.add("claims", "no_role_values")
    if check.idp == "entra" and claims.get("role") not in ENTRA_ROLE_SOURCES:
        check.add("claims", "role_claim_wrong", source=claims.get("role") or "-")
    if not claims.get("session_name"):
        check.add("claims", "no_session_name_claim")


def _judge_providers(
    check: FederationCheck, app: dict[str, Any], iam: dict[str, Any], pairs: list[RolePair]
) -> None:
    providers = sorted({pair.provider_arn for pair in pairs})
    if not providers:
        return
    check.set_link(
        "saml_provider", LinkState.OK, ", ".join(p.rsplit("/", 1)[-1] for p in providers)
    )
    idp = app.get("metadata", {})
    for arn in providers:
        document = iam["providers"].get(arn)
        if document is None:
            check.add("saml_provider", "provider_missing", provider=arn)
            continue
        try:
            held = parse_idp_metadata(document, check_dates=False)
        except Exception as error:  # noqa: BLE001 - whatever IAM holds, the finding says it
            # The reason as text, as idp_app's metadata_unreadable keeps it: the check is stored
            # as JSON, which an exception is not.
            check.add(
                "saml_provider", "provider_metadata_unreadable", provider=arn, error=str(error)
            )
            continue
        if "error" in idp:
            continue
        if not held.fingerprints & set(idp["fingerprints"]):
            check.add(
                "saml_provider",
                "provider_certificate_mismatch",
                provider=arn,
                held=", ".join(sorted(held.fingerprints))[:64],
                current=idp["fingerprints"][0][:64],
            )
        if held.entity_id != idp["entity_id"]:
            check.add(
                "saml_provider",
                "provider_issuer_mismatch",
                provider=arn,
                held=held.entity_id,
                current=idp["entity_id"],
            )


def known_role(role: dict[str, Any]) -> KnownRole:
    return KnownRole(
        arn=role["arn"],
        role_id=role["role_id"],
        trust_policy=role["trust_policy"],
        max_session_duration=role["max_session_duration"],
        policies=tuple(
            NamedPolicy(name=p["name"], document=p["document"]) for p in role["policies"]
        ),
    )


def _known_instance(check: FederationCheck, instance: dict[str, Any]) -> KnownInstance:
    return KnownInstance(
        instance_id=instance["instance_id"],
        region=check.region,
        arn=instance["arn"],
        status=instance["status"],
        identity_management_type=instance["identity_management_type"],
    )


def _session_name(app: dict[str, Any]) -> str:
    """The RoleSessionName to evaluate the federation policy with: the first person's."""
    people = app.get("people", [])
    return str(people[0]["session_name"]) if people else SAMPLE_SESSION_NAME


def judge_detached_policy(
    check: FederationCheck,
    *,
    app: dict[str, Any],
    connect: dict[str, Any],
    iam: dict[str, Any],
    policy: dict[str, Any] | None,
) -> None:
    """Names `policy` (the federation policy a repair attaches, as read_policy read it) in each
    no_federation_permission finding whose role it would let federate, attached: the policy
    exists and is only detached from the role (DETACHED_POLICY)."""
    if policy is None:
        return
    instance = _known_instance(check, connect["instance"])
    for finding in check.findings:
        role = iam["roles"].get(finding.params.get("role", ""))
        if finding.code != NO_FEDERATION_PERMISSION or role is None:
            continue
        if any(held["name"] == policy["name"] for held in role["policies"]):
            continue
        attached = known_role({**role, "policies": [*role["policies"], policy]})
        if federation_decision(attached, instance, _session_name(app)) is None:
            finding.params[DETACHED_POLICY] = policy["name"]


def _judge_roles(
    check: FederationCheck,
    app: dict[str, Any],
    iam: dict[str, Any],
    instance: dict[str, Any],
    pairs: list[RolePair],
) -> None:
    if not pairs:
        return
    check.set_link(
        "federation_role", LinkState.OK, ", ".join(p.role_arn.rsplit("/", 1)[-1] for p in pairs)
    )
    known_instance = _known_instance(check, instance)
    recipient = next(
        (url for url in app.get("reply_urls", []) if url in signin_audiences(check.region)),
        AWS_AUDIENCE,
    )
    session_name = _session_name(app)
    duration = str(app.get("claims", {}).get("session_duration") or "")
    for pair in pairs:
        found = iam["roles"].get(pair.role_arn)
        if found is None:
            check.add("federation_role", "role_missing", role=pair.role_arn)
            continue
        role = known_role(found)
        assertion = CheckedAssertion(
            issuer=app.get("metadata", {}).get("entity_id", ""),
            audience=AWS_AUDIENCE,
            recipient=recipient,
            role_pair=pair,
            role_session_name=session_name,
        )
        refused = trust_decision(role, assertion)
        if refused is not None:
            check.add(
                "federation_role",
                "role_trust_refuses",
                role=pair.role_arn,
                provider=pair.provider_arn,
                audience=recipient,
                error=refused.error,
            )
        refused = federation_decision(role, known_instance, session_name)
        if refused is not None:
            check.add(
                "federation_role",
                NO_FEDERATION_PERMISSION,
                role=pair.role_arn,
                instance=instance["instance_id"],
                error=refused.error,
            )
        if duration.isdigit() and int(duration) > role.max_session_duration:
            check.add(
                "claims",
                "session_duration_too_long",
                role=pair.role_arn,
                duration=int(duration),
                maximum=role.max_session_duration,
            )


def _judge_instance(check: FederationCheck, instance: dict[str, Any]) -> None:
    check.set_link("connect_instance", LinkState.OK, instance["alias"] or instance["instance_id"])
    if instance["status"] != "ACTIVE":
        check.add("connect_instance", "instance_not_active", status=instance["status"])
    if instance["identity_management_type"] != "SAML":
        check.add(
            "connect_instance", "instance_not_saml", kind=instance["identity_management_type"]
        )


def _judge_users(check: FederationCheck, app: dict[str, Any], usernames: list[str]) -> None:
    people = app.get("people", [])
    check.set_link("connect_users", LinkState.OK, f"{len(usernames)} / {len(people)}")
    if not people:
        check.add("connect_users", "nobody_assigned", Severity.WARNING)
        return
    existing = set(usernames)
    lowered = {name.lower(): name for name in usernames}
    invalid: list[str] = []
    case_only: list[str] = []
    missing: list[str] = []
    # People whose Connect user is named after their login (UPN) while the app sends another
    # attribute: one finding naming the attribute says more than "no user" plus "nobody signs
    # in as" for the same people.
    named_by_login: list[str] = []
    for person in people:
        sent = person["session_name"]
        if sent not in existing and person["login"] != sent and person["login"] in existing:
            named_by_login.append(person["login"])
        elif not sent or check_username(sent):
            invalid.append(f"{person['login']} ({sent or '-'})")
        elif sent not in existing:
            (case_only if sent.lower() in lowered else missing).append(sent)
    if named_by_login:
        check.add(
            "connect_users",
            "session_name_from_other_attribute",
            source=app.get("claims", {}).get("session_name") or "-",
            **_names(named_by_login),
        )
    if invalid:
        check.add("connect_users", "session_name_invalid", **_names(invalid))
    if case_only:
        check.add("connect_users", "username_case_differs", **_names(case_only))
    if missing:
        check.add("connect_users", "person_without_user", **_names(missing))
    sent_names = {person["session_name"] for person in people} | set(named_by_login)
    nobody = sorted(name for name in usernames if name not in sent_names)
    if nobody:
        check.add("connect_users", "user_nobody_signs_in_as", Severity.WARNING, **_names(nobody))


def judge(
    check: FederationCheck,
    *,
    app: dict[str, Any],
    connect: dict[str, Any],
    iam: dict[str, Any],
    now: dt.datetime,
) -> None:
    """Every link of the federation of `app` into the instance `connect` read."""
    instance = connect["instance"]
    pairs = role_pairs(app)
    _judge_app(check, app, check.region, now)
    _judge_claims(check, app, instance)
    _judge_providers(check, app, iam, pairs)
    _judge_roles(check, app, iam, instance, pairs)
    _judge_instance(check, instance)
    _judge_users(check, app, connect["usernames"])
