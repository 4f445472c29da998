"""Repair: a check's findings turned into a run of the usual setup flow against the federation
the check read, its inputs filled from what the check read so that each step ADOPTS the existing
resource (the IdP app by its ID, the instance by its ID, the IAM provider, role and policy by
their names), keeps what works as it is (the relay state, the role's trust and policy), and plans
only the changes that fix the findings. The admin confirms each plan as in a setup (the run
reviews every plan that changes something).

What a repair handles is named per IdP and finding (REPAIRED_BY; repaired_by when the check's
evidence names another step, as the page says next to each finding); a finding no step of the
flow fixes (an instance that is not SAML, an app disabled in Entra) is left for the admin, and
the page says so. The steps no finding needs (assignments, Connect users, the sign-in test) are
skipped through the flow's skip mechanism (provisioning/flows.py, REPAIR_SKIPS).

Okta has two setup flows; the AWS Account Federation app's useGroupMapping, as the check read
it, says which one built the federation (repair_flow). A custom SAML app made by hand in Okta is
not repaired: the flows manage only the AWS app (not_repaired_because says so)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from django.utils.translation import gettext_lazy as _

from provisioning.federation_check.judge import DETACHED_POLICY, NO_FEDERATION_PERMISSION
from provisioning.federation_check.result import FederationCheck, Finding
from provisioning.flows import CLAIM_PHONE_NUMBERS, REPAIR_SKIPS, get_flow
from provisioning.okta.aws_app import AWS_APP_NAME
from provisioning.relay_state import (
    CUSTOM_CCP,
    DEFAULT_DESTINATION,
    DESTINATION_PATHS,
    KEEP_RELAY_STATE,
)
from provisioning.steps.entra_app import SIGNIN_GLOBAL
from provisioning.steps.entra_claims import (
    DEFAULT_SESSION_NAME_SOURCE,
    MAX_SESSION_S,
    MIN_SESSION_S,
    SESSION_NAME_SOURCES,
)
from provisioning.steps.federation_policy import KEEP_POLICY_DOCUMENT
from provisioning.steps.federation_role import (
    KEEP_TRUST_POLICY,
    MAX_SESSION_HOURS,
    MIN_SESSION_HOURS,
    FederationRoleStep,
)
from provisioning.steps.okta_app import KEEP_APP_SETTINGS, OKTA_APP_SETTINGS

if TYPE_CHECKING:
    from django.utils.functional import _StrPromise as StrPromise

# The run input naming the check a repair run started from (its page links back to it).
REPAIR_OF_CHECK = "repair_of_check"
# The SSO setup flow a repair runs, per IdP; Okta's is one of OKTA_REPAIR_FLOWS (repair_flow).
REPAIR_FLOWS = {"entra": "entra"}
# Okta's flow by the AWS app's useGroupMapping: the role by group mapping when it is on (the
# step okta_group_mapping turns it on), else the role downloaded from AWS (the app's samlRoles).
OKTA_REPAIR_FLOWS = {True: "okta_group_mapping", False: "okta_role_download"}

# The findings of the AWS half, the same whichever IdP signs in, and the step that fixes each.
_AWS_REPAIRED_BY = {
    "provider_missing": "saml_provider",
    "provider_metadata_unreadable": "saml_provider",
    "provider_certificate_mismatch": "saml_provider",
    "provider_issuer_mismatch": "saml_provider",
    "role_missing": "federation_role",
    "role_trust_refuses": "federation_role",
    # A policy missing or not allowing it: federation_policy makes or rewrites the wizard's
    # (federation_role then attaches it); one that exists, only detached, is federation_role's
    # to attach (repaired_by).
    "no_federation_permission": "federation_policy",
}
# The findings that the relay state does not lead into the instance: without one, a repair
# keeps the relay state as it is.
RELAY_STATE_FINDINGS = frozenset(
    {"relay_state_missing", "relay_state_not_connect", "relay_state_other_instance"}
)
# Each finding a repair fixes, per IdP, and the step whose plan fixes it; a finding whose step
# is not in the flow the repair runs is left for the admin (fixable). A signing certificate
# expired or expiring is not among them: "Rotate the signing certificate" (the watched
# federation's page) replaces it in the order that refuses no sign-in.
REPAIRED_BY: dict[str, dict[str, str]] = {
    "entra": {
        "app_not_saml": "entra_app",
        "identifier_wrong": "entra_app",
        "reply_url_wrong": "entra_app",
        "relay_state_missing": "entra_claims",
        "relay_state_not_connect": "entra_claims",
        "relay_state_other_instance": "entra_claims",
        "no_role_values": "entra_claims",
        "role_claim_wrong": "entra_claims",
        "no_session_name_claim": "entra_claims",
        "session_duration_too_long": "entra_claims",
        **_AWS_REPAIRED_BY,
    },
    # okta_app sets the relay state and the sessionDuration (the role's maximum, when the app
    # asserts more) and activates the app it adopts. No step sets the app's username template
    # (RoleSessionName) nor its sign-on mode. No Role value is not repaired either: its role
    # group (or each person's role, downloaded) needs its people, which only the admin knows
    # (a role group made again empty would send the role to nobody).
    "okta": {
        "app_disabled": "okta_app",
        "relay_state_missing": "okta_app",
        "relay_state_not_connect": "okta_app",
        "relay_state_other_instance": "okta_app",
        "session_duration_too_long": "okta_app",
        **_AWS_REPAIRED_BY,
    },
}
# The steps a repair never needs: it changes no assignment, Connect user nor phone number, and
# the re-check (not a sign-in as someone) says whether the repair worked. Okta's role steps are
# no finding's fix either: the group mapping, the IAM user Okta lists the roles with and its
# manual step stay as they are (a wizard's group mapping would rewrite one made by hand).
SKIPPED_IN_REPAIR: dict[str, tuple[str, ...]] = {
    "entra": ("entra_assignments", "connect_users", "sign_in_test"),
    "okta": (
        "okta_group_mapping",
        "okta_role_listing_user",
        "okta_role_download_confirmed",
        "okta_assignments",
        "connect_users",
        "sign_in_test",
    ),
}
CUSTOM_APP_NOT_REPAIRED = _(
    "Repair can't fix this federation: its app is a custom SAML app made in Okta, and Repair runs "
    "the Okta setup, which manages only Okta's AWS Account Federation app. Fix the findings in "
    "the Okta Admin Console."
)

# What the check read of an Okta app that says which flow repairs it (idp_reads._okta_reading).
OKTA_FACTS: tuple[str, ...] = ("okta_app_name", "use_group_mapping")

# provisioning/relay_state.py's destinations, by the path a relay state names.
_DESTINATIONS = {path: key for key, path in DESTINATION_PATHS.items()}
_SECONDS_PER_HOUR = 3600


def repair_facts(
    app: dict[str, Any], iam: dict[str, Any], role_arn: str, provider_arn: str
) -> dict[str, Any]:
    """What a repair run starts from, out of what the check read (FederationCheck.read)."""
    role = iam.get("roles", {}).get(role_arn) or {}
    okta: dict[str, Any] = {key: app[key] for key in OKTA_FACTS if key in app}
    return {
        **okta,
        "relay_state": str(app.get("relay_state") or ""),
        "reply_urls": list(app.get("reply_urls") or []),
        "session_name_source": str(app.get("claims", {}).get("session_name") or ""),
        "session_duration": str(app.get("claims", {}).get("session_duration") or ""),
        "role_arn": role_arn,
        "provider_arn": provider_arn,
        "role_max_session_s": int(role.get("max_session_duration") or 0),
        # Customer managed policies attached to the role (an AWS managed one is never edited).
        "role_policies": [
            policy["name"]
            for policy in role.get("policies", [])
            if ":policy/" in policy["name"] and ":aws:policy/" not in policy["name"]
        ],
    }


def repair_flow(check: FederationCheck) -> str:
    """The SSO setup flow that repairs the check's federation ("" when none does). An Okta
    check made before the check read the app's kind names none: checking again tells."""
    if check.idp == "okta":
        if check.read.get("okta_app_name") != AWS_APP_NAME:
            return ""
        return OKTA_REPAIR_FLOWS[check.read.get("use_group_mapping") is True]
    return REPAIR_FLOWS.get(check.idp, "")


def repaired_by(idp: str, finding: Finding) -> str:
    """The step of a repair whose plan fixes the finding ("" when none does): REPAIRED_BY's,
    but federation_role's for a role that may not federate only because the policy a repair
    attaches is detached from it (the check's evidence, DETACHED_POLICY)."""
    if finding.code == NO_FEDERATION_PERMISSION and finding.params.get(DETACHED_POLICY):
        return FederationRoleStep.key
    return REPAIRED_BY.get(idp, {}).get(finding.code, "")


def fixable(check: FederationCheck) -> list[str]:
    """The codes of the check's findings a repair fixes, in the check's order."""
    steps = repairing_steps(check)
    return [finding.code for finding, step in zip(check.findings, steps, strict=True) if step]


def repairing_steps(check: FederationCheck) -> list[str]:
    """For each of the check's findings, in its order, the step of the repair that fixes it
    ("" when the repair does not)."""
    flow_key = repair_flow(check)
    if not flow_key or not check.app_id or not check.instance_id:
        return ["" for _finding in check.findings]
    flow_steps = get_flow(flow_key).step_keys
    steps = (repaired_by(check.idp, finding) for finding in check.findings)
    return [step if step in flow_steps else "" for step in steps]


def not_repaired_because(check: FederationCheck) -> str | StrPromise:
    """Why Repair is not offered for a federation with findings ("" when there is nothing to
    say: it is offered, or nothing is wrong)."""
    kind = check.read.get("okta_app_name")
    if check.findings and check.app_id and check.idp == "okta" and kind and kind != AWS_APP_NAME:
        return CUSTOM_APP_NOT_REPAIRED
    return ""


def _skipped(check: FederationCheck) -> list[str]:
    """SKIPPED_IN_REPAIR's steps of the flow the repair runs."""
    flow_steps = get_flow(repair_flow(check)).step_keys
    return [key for key in SKIPPED_IN_REPAIR[check.idp] if key in flow_steps]


def _reply_url_choice(reply_urls: list[str], region: str) -> str:
    regional = f"https://{region}.signin.aws.amazon.com/saml"
    has_global, has_regional = SIGNIN_GLOBAL in reply_urls, regional in reply_urls
    if has_global and has_regional:
        return "both"
    return "regional" if has_regional else "global"


def _destination(relay_state: str) -> dict[str, str]:
    """entra_claims' `destination` answers that keep where the relay state leads users now
    (the default, the CCP, when it names no destination)."""
    target = (parse_qs(urlsplit(relay_state).query).get("destination") or [""])[0]
    if target in _DESTINATIONS:
        return {"destination": _DESTINATIONS[target]}
    if target.startswith("https://"):
        return {"destination": CUSTOM_CCP, "custom_ccp_url": target}
    return {"destination": DEFAULT_DESTINATION}


def _name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1] if arn else ""


def repair_inputs(check: FederationCheck) -> dict[str, Any]:
    """The run's inputs: every resource named so the steps adopt it, and every setting as it is
    now, so the plans change only what the findings are about."""
    read = check.read
    inputs: dict[str, Any] = {
        "instance_id": check.instance_id,
        CLAIM_PHONE_NUMBERS: False,
        REPAIR_SKIPS: _skipped(check),
        **(_okta_app_inputs(check) if check.idp == "okta" else _entra_app_inputs(check)),
    }
    if read.get("provider_arn"):
        inputs["provider_name"] = _name(read["provider_arn"])
    if read.get("role_arn"):
        inputs["role_name"] = _name(read["role_arn"])
    codes = {finding.code for finding in check.findings}
    # What works is kept as it is, whoever wrote it: the role's policy and trust are rewritten
    # only when the check found them refusing. A role that may not federate gets the wizard's
    # own policy attached (created, or found by its default name), never an edit of the role's
    # other policies; a policy that lets the role federate, only detached from it (the check's
    # evidence), is attached as it is.
    policies = read.get("role_policies") or []
    detached = [
        str(finding.params[DETACHED_POLICY])
        for finding in check.findings
        if finding.code == NO_FEDERATION_PERMISSION and finding.params.get(DETACHED_POLICY)
    ]
    if NO_FEDERATION_PERMISSION not in codes:
        inputs[KEEP_POLICY_DOCUMENT] = True
        if len(policies) == 1:
            inputs["policy_name"] = _name(policies[0])
    elif detached:
        inputs[KEEP_POLICY_DOCUMENT] = True
        inputs["policy_name"] = _name(detached[0])
    if not codes & {"role_trust_refuses", "role_missing"}:
        inputs[KEEP_TRUST_POLICY] = True
    # A relay state that leads into the instance is kept byte for byte, whatever its form; one
    # that doesn't is written anew, to where it led users (its destination), if it named one.
    if codes & RELAY_STATE_FINDINGS:
        inputs.update(_destination(read.get("relay_state", "")))
    else:
        inputs[KEEP_RELAY_STATE] = True
    hours = int(read.get("role_max_session_s") or 0) // _SECONDS_PER_HOUR
    if MIN_SESSION_HOURS <= hours <= MAX_SESSION_HOURS:
        inputs["session_duration_hours"] = hours
    return inputs


def _entra_app_inputs(check: FederationCheck) -> dict[str, Any]:
    """entra_app adopts the app by its appId; entra_claims keeps its reply URLs and the source
    of RoleSessionName."""
    read = check.read
    source = read.get("session_name_source", "")
    known = {key for key, _label in SESSION_NAME_SOURCES}
    inputs: dict[str, Any] = {
        "existing_app_id": check.app_id,
        "reply_url": _reply_url_choice(read.get("reply_urls", []), check.region),
        "session_name_source": source if source in known else DEFAULT_SESSION_NAME_SOURCE,
    }
    duration = str(read.get("session_duration") or "")
    maximum = int(read.get("role_max_session_s") or MAX_SESSION_S)
    if duration.isdigit() and MIN_SESSION_S <= int(duration) <= maximum:
        inputs["session_duration_s"] = int(duration)
    return inputs


def _okta_app_inputs(check: FederationCheck) -> dict[str, Any]:
    """okta_app adopts the AWS app by its ID and keeps the AWS settings it holds; the session
    it asserts only when the role allows less (it then takes the role's maximum,
    session_duration_hours)."""
    codes = {finding.code for finding in check.findings}
    kept = [
        name
        for name in OKTA_APP_SETTINGS
        if name != "sessionDuration" or "session_duration_too_long" not in codes
    ]
    return {"app_id": check.app_id, KEEP_APP_SETTINGS: kept}
