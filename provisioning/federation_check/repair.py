"""Repair: a check's findings turned into a run of the usual setup flow against the federation
the check read, its inputs filled from what the check read so that each step ADOPTS the existing
resource (the IdP app by its ID, the instance by its ID, the IAM provider, role and policy by
their names), keeps what works as it is (the relay state, the role's trust and policy), and plans
only the changes that fix the findings. The admin confirms each plan as in a setup (the run
reviews every plan that changes something).

What a repair handles is named per finding (REPAIRED_BY); a finding no step fixes (an instance
that is not SAML, an app disabled in the IdP) is left for the admin, and the page says so. The
steps no finding needs (assignments, Connect users, the sign-in test) are skipped through the
flow's skip mechanism (provisioning/flows.py, REPAIR_SKIPS)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from provisioning.federation_check.result import FederationCheck
from provisioning.flows import CLAIM_PHONE_NUMBERS, REPAIR_SKIPS
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
)

# The run input naming the check a repair run started from (its page links back to it).
REPAIR_OF_CHECK = "repair_of_check"
# The SSO setup flow a repair runs, per IdP. Only Entra for now: the Okta flows are two (role by
# group mapping or downloaded), and which one built a federation is not read by the check.
REPAIR_FLOWS = {"entra": "entra"}

# Each finding a repair fixes, and the step whose plan fixes it. A signing certificate expired or
# expiring is not among them: "Rotate the signing certificate" (the watched federation's page)
# replaces it in the order that refuses no sign-in.
REPAIRED_BY: dict[str, str] = {
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
    "provider_missing": "saml_provider",
    "provider_metadata_unreadable": "saml_provider",
    "provider_certificate_mismatch": "saml_provider",
    "provider_issuer_mismatch": "saml_provider",
    "role_missing": "federation_role",
    "role_trust_refuses": "federation_role",
    "no_federation_permission": "federation_policy",
}
# The findings that the relay state does not lead into the instance: without one, a repair
# keeps the relay state as it is.
RELAY_STATE_FINDINGS = frozenset(
    {"relay_state_missing", "relay_state_not_connect", "relay_state_other_instance"}
)
# The steps of the Entra flow a repair never needs: it changes no assignment, Connect user nor
# phone number, and the re-check (not a sign-in as someone) says whether the repair worked.
SKIPPED_IN_REPAIR = ("entra_assignments", "connect_users", "sign_in_test")

# provisioning/relay_state.py's destinations, by the path a relay state names.
_DESTINATIONS = {path: key for key, path in DESTINATION_PATHS.items()}
_SECONDS_PER_HOUR = 3600


def repair_facts(
    app: dict[str, Any], iam: dict[str, Any], role_arn: str, provider_arn: str
) -> dict[str, Any]:
    """What a repair run starts from, out of what the check read (FederationCheck.read)."""
    role = iam.get("roles", {}).get(role_arn) or {}
    return {
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


def fixable(check: FederationCheck) -> list[str]:
    """The codes of the check's findings a repair fixes, in the check's order."""
    if check.idp not in REPAIR_FLOWS or not check.app_id or not check.instance_id:
        return []
    return [f.code for f in check.findings if f.code in REPAIRED_BY]


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
        "existing_app_id": check.app_id,
        "instance_id": check.instance_id,
        "reply_url": _reply_url_choice(read.get("reply_urls", []), check.region),
        CLAIM_PHONE_NUMBERS: False,
        REPAIR_SKIPS: list(SKIPPED_IN_REPAIR),
    }
    if read.get("provider_arn"):
        inputs["provider_name"] = _name(read["provider_arn"])
    if read.get("role_arn"):
        inputs["role_name"] = _name(read["role_arn"])
    codes = {finding.code for finding in check.findings}
    # What works is kept as it is, whoever wrote it: the role's policy and trust are rewritten
    # only when the check found them refusing. A role that may not federate gets the wizard's
    # own policy attached (created, or found by its default name), never an edit of the role's
    # other policies.
    policies = read.get("role_policies") or []
    if "no_federation_permission" not in codes:
        inputs[KEEP_POLICY_DOCUMENT] = True
        if len(policies) == 1:
            inputs["policy_name"] = _name(policies[0])
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
    source = read.get("session_name_source", "")
    known = {key for key, _label in SESSION_NAME_SOURCES}
    inputs["session_name_source"] = source if source in known else DEFAULT_SESSION_NAME_SOURCE
    duration = str(read.get("session_duration") or "")
    maximum = int(read.get("role_max_session_s") or MAX_SESSION_S)
    if duration.isdigit() and MIN_SESSION_S <= int(duration) <= maximum:
        inputs["session_duration_s"] = int(duration)
    return inputs
