"""Repair against the sandbox: a federation the Entra flow built is broken at one link through
the cloud's own API, a check names the finding, and Repair's run (the Entra flow, inputs filled
from the check) plans exactly the fixing change, adopts everything else (the app, provider, role,
policy and instance keep their IDs), applies it once confirmed, and the check after it is
healthy."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import pytest

from provisioning.federation_check.repair import REPAIRED_BY, repairing_steps
from provisioning.federation_check.result import FederationCheck
from provisioning.models import (
    Connection,
    FederationCheckRecord,
    FederationCheckStatus,
    RunStatus,
    SetupRun,
    StepStatus,
)
from provisioning.relay_state import KEEP_RELAY_STATE
from provisioning.saml import SAML_METADATA, parse_idp_metadata
from provisioning.services.federation_checks import federation_check_run
from provisioning.services.federation_repairs import repair_run_create
from provisioning.steps.entra_claims import (
    ROLE_ATTRIBUTE,
    ROLE_SESSION_NAME_ATTRIBUTE,
    SESSION_DURATION_ATTRIBUTE,
)
from provisioning.steps.federation_policy import KEEP_POLICY_DOCUMENT
from provisioning.steps.federation_role import KEEP_TRUST_POLICY
from sandbox import saml_idp
from sandbox.server import Sandbox
from tests.federation_check.hand_made import IDP_CONNECTIONS
from tests.federation_check.test_check_federation import REGION, built  # noqa: F401
from tests.federation_check.test_hand_made_entra import _people, build_by_hand
from tests.flows.entra_runs import cloud_writes, entra_sandbox  # noqa: F401
from tests.flows.user_runs import drive
from tests.sandbox.aws_clients import aws_client

pytestmark = pytest.mark.django_db(transaction=True)


def checked(run: SetupRun) -> FederationCheckRecord:
    """A check of the federation `run` built, read here as the worker would."""
    return checked_instance(run.instance_alias, run.idp)


def checked_instance(alias: str, idp: str = "entra") -> FederationCheckRecord:
    record = FederationCheckRecord.objects.create(
        aws_connection=Connection.objects.get(name="Sandbox AWS"),
        idp_connection=Connection.objects.get(name=IDP_CONNECTIONS[idp]),
        region=REGION,
        instance=alias,
    )
    federation_check_run(check_id=str(record.pk))
    record.refresh_from_db()
    assert record.status == FederationCheckStatus.DONE, record.error
    return record


def findings(record: FederationCheckRecord) -> list[str]:
    return [f"{f['link']}:{f['code']}" for f in record.result["findings"]]


def resource_ids(sandbox: Sandbox, run: SetupRun) -> dict[str, Any]:
    """The IDs of what the federation is made of, read from the clouds now."""
    iam = aws_client(sandbox, "iam")
    role = run.steps.get(key="federation_role").outputs
    app = run.steps.get(key=f"{run.idp}_app").outputs
    return {
        "role_id": iam.get_role(RoleName=role["role_name"])["Role"]["RoleId"],
        "providers": sorted(p["Arn"] for p in iam.list_saml_providers()["SAMLProviderList"]),
        "policy": iam.get_policy(PolicyArn=role["policy_arn"])["Policy"]["PolicyId"],
        "apps": idp_app_ids(sandbox, run.idp),
        "app_id": app["app_id"],
        "instances": sorted(
            i["Id"] for i in aws_client(sandbox, "connect").list_instances()["InstanceSummaryList"]
        ),
    }


def idp_app_ids(sandbox: Sandbox, idp: str) -> list[str]:
    """The IDs of every app the sandbox IdP holds."""
    if idp == "okta":
        return sorted(sandbox.apps["okta"].org.apps)
    return sorted(a["appId"] for a in sandbox.apps["entra"].tenant.applications.values())


def planned_writes(run: SetupRun) -> list[str]:
    """Every change of the run's plans that writes: "step resource_type action details"."""
    writes = []
    for step in run.steps.order_by("position"):
        for change in step.plan.get("changes", []):
            if change["action"] in ("create", "update", "delete"):
                what = change["details"].get("changes") or sorted(change["details"])
                writes.append(f"{step.key} {change['resource_type']} {change['action']} {what}")
    return writes


def with_another_certificate(held: str) -> str:
    """IdP metadata as `held` (its issuer) but with another signing certificate: what an IAM
    provider holds when the IdP's certificate changed and IAM was not told."""
    return saml_idp.idp_metadata(
        entity_id=parse_idp_metadata(held).entity_id,
        certificate=saml_idp.issue_signing_certificate("CN=An old certificate"),
        sso_url="https://idp.example/sso",
    )


def trusting_another_audience(trust: dict[str, Any]) -> str:
    """The role's trust policy, its SAML:aud changed to a sign-in URL the IdP does not send."""
    other = json.loads(json.dumps(trust))
    for statement in other["Statement"]:
        statement["Condition"] = {
            "StringEquals": {"SAML:aud": "https://ap-northeast-1.signin.aws.amazon.com/saml"}
        }
    return json.dumps(other)


# The steps a repair of an Entra federation skips: none of its findings is about them.
ENTRA_SKIPPED = frozenset(
    {"entra_assignments", "connect_users", "sign_in_test", "phone_prerequisites"}
)


def repaired(
    sandbox: Sandbox,
    setup: SetupRun,
    break_it: Callable[[], Any],
    fixed_by: str,
    skipped: frozenset[str] = ENTRA_SKIPPED,
    renewed: tuple[str, ...] = (),
) -> tuple[list[str], SetupRun, list[str]]:
    """Break, check, repair, re-check: (the findings, the repair run, the re-check's findings).
    The run stops at the step `fixed_by` for the admin to confirm its plan, as a setup does, and
    skips the steps `skipped`. Every resource keeps its ID but those named in `renewed` (what
    the break deleted)."""
    before = resource_ids(sandbox, setup)
    break_it()
    record = checked(setup)
    found = findings(record)
    # The check page names the step the run stops at as the one that fixes the finding.
    steps = repairing_steps(FederationCheck.from_json(record.result))
    assert fixed_by in steps, (found, steps)

    run = drive(repair_run_create(user=None, check_id=record.pk, enqueue=False), confirm=False)
    waiting = run.steps.get(status=StepStatus.PLANNED)
    assert (run.status, waiting.key, waiting.plan["needs_confirmation"]) == (
        RunStatus.WAITING,
        fixed_by,
        True,
    )
    run = drive(run)

    assert run.status == RunStatus.SUCCEEDED, (run.error, list(run.steps.values("key", "error")))
    now = resource_ids(sandbox, setup)
    assert all(now[key] != before[key] for key in renewed), (now, before)
    for key in renewed:
        del now[key], before[key]
    assert now == before
    assert set(run.steps.filter(status=StepStatus.SKIPPED).values_list("key", flat=True)) == skipped
    after = checked(setup)
    return found, run, findings(after)


def test_repair_of_a_federation_made_by_hand_sets_its_relay_state(
    entra_sandbox: Sandbox,  # noqa: F811
) -> None:
    people = _people(entra_sandbox, "same-email-1", "same-email-2")
    made = build_by_hand(entra_sandbox, people, session_name_source="userprincipalname")
    iam = aws_client(entra_sandbox, "iam")
    role_name = made["role_arn"].rsplit("/", 1)[-1]
    trust = iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"]
    (policy,) = iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
    record = checked_instance(made["alias"])
    assert findings(record) == ["claims:relay_state_missing"]

    run = drive(repair_run_create(user=None, check_id=record.pk, enqueue=False))

    assert run.status == RunStatus.SUCCEEDED, (run.error, list(run.steps.values("key", "error")))
    # Its policy (another Sid than the wizard's) and trust (the global audience only) work:
    # adopted as they are, not rewritten into the wizard's.
    # federation_role records the role it adopted on the instance (its tag), a change planned
    # and confirmed as the relay state's is; nothing else is written.
    assert planned_writes(run) == [
        "federation_role connect_instance_tag create ['instance_arn', 'role_arn']",
        "entra_claims relay_state update []",
    ], planned_writes(run)
    assert cloud_writes(run) == [
        "aws connect TagResource",
        "entra graph PATCH /servicePrincipals/"
        + run.steps.get(key="entra_app").outputs["service_principal_id"],
    ]
    assert run.steps.get(key="federation_policy").plan["changes"][0]["action"] == "adopt"
    assert iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"] == trust
    versions = iam.list_policy_versions(PolicyArn=policy["PolicyArn"])["Versions"]
    assert [v["VersionId"] for v in versions] == ["v1"]
    assert findings(checked_instance(made["alias"])) == []


def test_repair_keeps_a_working_relay_state_made_by_hand_byte_for_byte(
    entra_sandbox: Sandbox,  # noqa: F811
) -> None:
    people = _people(entra_sandbox, "same-email-1", "same-email-2")
    made = build_by_hand(entra_sandbox, people, session_name_source="userprincipalname")
    tenant = entra_sandbox.apps["entra"].tenant
    # Valid, yet not the wizard's form: the destination path is not percent-encoded (the
    # wizard writes ?destination=%2Fagent-app-v2).
    own = (
        f"https://{REGION}.console.aws.amazon.com/connect/federate/{made['instance_id']}"
        "?destination=/agent-app-v2"
    )
    tenant.patch_service_principal(
        made["app_id"], {"samlSingleSignOnSettings": {"relayState": own}}, by_app_id=True
    )
    assert findings(checked_instance(made["alias"])) == []
    tenant.patch_service_principal(
        made["app_id"], {"preferredSingleSignOnMode": "password"}, by_app_id=True
    )
    record = checked_instance(made["alias"])
    assert "idp_app:app_not_saml" in findings(record)

    run = drive(repair_run_create(user=None, check_id=record.pk, enqueue=False))

    assert run.status == RunStatus.SUCCEEDED, (run.error, list(run.steps.values("key", "error")))
    assert planned_writes(run) == [
        "entra_app entra_application update ['preferredSingleSignOnMode']",
        "federation_role connect_instance_tag create ['instance_arn', 'role_arn']",
    ]
    assert cloud_writes(run) == [
        "entra graph PATCH /servicePrincipals/"
        + run.steps.get(key="entra_app").outputs["service_principal_id"],
        "aws connect TagResource",
    ]
    relay = run.steps.get(key="entra_claims")
    assert [c["action"] for c in relay.plan["changes"] if c["resource_type"] == "relay_state"] == [
        "nothing"
    ]
    assert relay.outputs["relay_state"] == own
    sp = tenant.find_service_principal(made["app_id"], by_app_id=True)
    assert sp["samlSingleSignOnSettings"]["relayState"] == own
    assert findings(checked_instance(made["alias"])) == []


@dataclass(frozen=True)
class Built:
    """A federation the Entra flow built, and the clients that break it."""

    sandbox: Sandbox
    run: SetupRun

    @property
    def tenant(self) -> Any:
        return self.sandbox.apps["entra"].tenant

    @property
    def iam(self) -> Any:
        return aws_client(self.sandbox, "iam")

    def output(self, step: str, name: str) -> Any:
        return self.run.steps.get(key=step).outputs[name]

    def patch_app(self, body: dict[str, Any]) -> None:
        self.tenant.patch_application(self.output("entra_app", "app_id"), body, by_app_id=True)

    def claims(self, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
        """The claims mapping policy's ClaimsSchema, changed by `change`, written back."""
        policy_id = self.output("entra_claims", "policy_id")
        document = json.loads(self.tenant.find_claims_mapping_policy(policy_id)["definition"][0])
        schema = document["ClaimsMappingPolicy"]["ClaimsSchema"]
        document["ClaimsMappingPolicy"]["ClaimsSchema"] = change(schema)
        self.tenant.patch_claims_mapping_policy(policy_id, {"definition": [json.dumps(document)]})

    def provider_metadata(self) -> str:
        arn = self.output("saml_provider", "provider_arn")
        return str(self.iam.get_saml_provider(SAMLProviderArn=arn)["SAMLMetadataDocument"])

    def update_provider(self, document: str) -> None:
        self.iam.update_saml_provider(
            SAMLProviderArn=self.output("saml_provider", "provider_arn"),
            SAMLMetadataDocument=document,
        )


def _app_not_saml(federation: Built) -> None:
    federation.tenant.patch_service_principal(
        federation.output("entra_app", "app_id"),
        {"preferredSingleSignOnMode": "password"},
        by_app_id=True,
    )


def _relay_state(federation: Built, relay_state: str) -> None:
    federation.tenant.patch_service_principal(
        federation.output("entra_app", "app_id"),
        {"samlSingleSignOnSettings": {"relayState": relay_state}},
        by_app_id=True,
    )


def _relay_state_other_instance(federation: Built) -> None:
    wanted = federation.output("entra_claims", "relay_state")
    _relay_state(
        federation,
        wanted.replace(federation.run.instance_id, "00000000-0000-4000-8000-000000000000"),
    )


def _identifier_wrong(federation: Built) -> None:
    # An identifier the tenant's identifier URI policy allows (it names the app's own appId).
    federation.patch_app({"identifierUris": [f"api://{federation.output('entra_app', 'app_id')}"]})


def _reply_url_wrong(federation: Built) -> None:
    federation.patch_app({"web": {"redirectUris": ["https://sso.example.com/saml"]}})


def _relay_state_not_connect(federation: Built) -> None:
    # The AWS console itself, not Connect's federate URL: users land in the console.
    _relay_state(federation, f"https://{REGION}.console.aws.amazon.com/")


def _no_role_values(federation: Built) -> None:
    application = federation.tenant.find_application(
        federation.output("entra_app", "app_id"), by_app_id=True
    )
    roles = json.loads(json.dumps(application["appRoles"]))
    for role in roles:
        if role["value"] == federation.output("entra_claims", "role_value"):
            role["isEnabled"] = False
    federation.patch_app({"appRoles": roles})


def _role_claim_wrong(federation: Built) -> None:
    def change(schema: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for entry in schema:
            if entry["SamlClaimType"] == ROLE_ATTRIBUTE:
                entry["ID"] = "department"
        return schema

    federation.claims(change)


def _no_session_name_claim(federation: Built) -> None:
    federation.claims(
        lambda schema: [e for e in schema if e["SamlClaimType"] != ROLE_SESSION_NAME_ATTRIBUTE]
    )


def _session_duration_too_long(federation: Built) -> None:
    name = federation.output("federation_role", "role_name")
    role = federation.iam.get_role(RoleName=name)["Role"]

    def change(schema: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for entry in schema:
            if entry["SamlClaimType"] == SESSION_DURATION_ATTRIBUTE:
                entry["Value"] = str(role["MaxSessionDuration"] + 3600)
        return schema

    federation.claims(change)


def _provider_certificate_mismatch(federation: Built) -> None:
    held = parse_idp_metadata(federation.provider_metadata(), check_dates=False)
    federation.update_provider(
        saml_idp.idp_metadata(
            entity_id=held.entity_id,
            certificate=saml_idp.issue_signing_certificate("CN=An old certificate"),
            sso_url="https://idp.example/sso",
        )
    )


def _provider_missing(federation: Built) -> None:
    provider_arn = federation.output("saml_provider", "provider_arn")
    federation.iam.delete_saml_provider(SAMLProviderArn=provider_arn)


def _provider_issuer_mismatch(federation: Built) -> None:
    held = federation.provider_metadata()
    entity_id = parse_idp_metadata(held, check_dates=False).entity_id
    federation.update_provider(held.replace(entity_id, "https://sts.windows.net/another-tenant/"))


def _provider_metadata_unreadable(federation: Built) -> None:
    # Metadata of two identity providers (a federation's aggregate): IAM takes it (an
    # md:EntitiesDescriptor: sandbox/aws/saml_metadata.py), the check can't tell which one is the
    # IdP's (provisioning/saml.py, saml_metadata_not_one_idp).
    held = re.sub(r"^<\?xml[^>]*\?>\s*", "", federation.provider_metadata())
    entity_id = parse_idp_metadata(held, check_dates=False).entity_id
    other = held.replace(entity_id, "https://sts.windows.net/another-tenant/")
    federation.update_provider(
        f'<md:EntitiesDescriptor xmlns:md="{SAML_METADATA}">{held}{other}</md:EntitiesDescriptor>'
    )


def _role_trust_refuses(federation: Built) -> None:
    name = federation.output("federation_role", "role_name")
    trust = federation.iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]
    for statement in trust["Statement"]:
        statement["Condition"] = {
            "StringEquals": {"SAML:aud": "https://ap-northeast-1.signin.aws.amazon.com/saml"}
        }
    federation.iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))


def _no_federation_permission(federation: Built) -> None:
    federation.iam.detach_role_policy(
        RoleName=federation.output("federation_role", "role_name"),
        PolicyArn=federation.output("federation_role", "policy_arn"),
    )


def _federation_policy_missing(federation: Built) -> None:
    """The role's federation policy detached and deleted: no policy lets it federate."""
    _no_federation_permission(federation)
    federation.iam.delete_policy(PolicyArn=federation.output("federation_role", "policy_arn"))


def _role_missing(federation: Built) -> None:
    name = federation.output("federation_role", "role_name")
    for policy in federation.iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        federation.iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
    federation.iam.delete_role(RoleName=name)


@dataclass(frozen=True)
class Broken:
    """One link broken through the cloud's API, the findings the check names, and what the
    repair plans and writes (each write with {app}, the application's object ID, {sp}, the
    service principal's and {policy}, the claims mapping policy's, filled in). `inputs`: some of
    the repair's inputs (ABSENT: not among them); `renewed`: the IDs the repair may not keep
    (of what the break deleted)."""

    break_it: Callable[[Built], None]
    findings: list[str]
    planned: list[str]
    writes: list[str]
    inputs: dict[str, Any] = field(default_factory=dict)
    renewed: tuple[str, ...] = ()


ABSENT = object()
RELAY_STATE_UPDATE = Broken(
    _relay_state_other_instance,
    ["claims:relay_state_other_instance"],
    ["entra_claims relay_state update []"],
    ["entra graph PATCH /servicePrincipals/{sp}"],
    {KEEP_RELAY_STATE: ABSENT},
)
CLAIMS_POLICY_UPDATE = Broken(
    _role_claim_wrong,
    ["claims:role_claim_wrong"],
    ["entra_claims entra_claims_mapping_policy update ['definition']"],
    ["entra graph PATCH /policies/claimsMappingPolicies/{policy}"],
)
PROVIDER_UPDATE = Broken(
    _provider_certificate_mismatch,
    ["saml_provider:provider_certificate_mismatch"],
    [
        "saml_provider saml_provider update ['certificate_fingerprint', 'certificate_not_after', "
        "'certificate_subject', 'certificate_thumbprint', 'certificates', 'entity_id', "
        "'provider_arn', 'sso_url']"
    ],
    ["aws iam UpdateSAMLProvider"],
)
# Each finding REPAIRED_BY["entra"] names, grouped by the step whose plan fixes it (where the
# repair run stops for the admin's confirmation): one federation is built per group, then broken,
# checked, repaired and re-checked once per finding, in turn.
BROKEN = {
    "entra_app": [
        Broken(
            _app_not_saml,
            ["idp_app:app_not_saml"],
            ["entra_app entra_application update ['preferredSingleSignOnMode']"],
            ["entra graph PATCH /servicePrincipals/{sp}"],
        ),
        Broken(
            _identifier_wrong,
            ["idp_app:identifier_wrong"],
            ["entra_app entra_application update ['identifierUris']"],
            ["entra graph PATCH /applications/{app}"],
        ),
        Broken(
            _reply_url_wrong,
            ["idp_app:reply_url_wrong"],
            ["entra_app entra_application update ['web.redirectUris']"],
            ["entra graph PATCH /applications/{app}"],
        ),
    ],
    "entra_claims": [
        RELAY_STATE_UPDATE,
        replace(
            RELAY_STATE_UPDATE,
            break_it=partial(_relay_state, relay_state=""),
            findings=["claims:relay_state_missing"],
        ),
        replace(
            RELAY_STATE_UPDATE,
            break_it=_relay_state_not_connect,
            findings=["claims:relay_state_not_connect"],
        ),
        Broken(
            _no_role_values,
            ["claims:no_role_values"],
            ["entra_claims entra_app_role update ['allowedMemberTypes', 'on']"],
            ["entra graph PATCH /applications/{app}"],
        ),
        CLAIMS_POLICY_UPDATE,
        replace(
            CLAIMS_POLICY_UPDATE,
            break_it=_no_session_name_claim,
            findings=["claims:no_session_name_claim"],
        ),
        replace(
            CLAIMS_POLICY_UPDATE,
            break_it=_session_duration_too_long,
            findings=["claims:session_duration_too_long"],
        ),
    ],
    "saml_provider": [
        PROVIDER_UPDATE,
        replace(
            PROVIDER_UPDATE,
            break_it=_provider_issuer_mismatch,
            findings=["saml_provider:provider_issuer_mismatch"],
        ),
        replace(
            PROVIDER_UPDATE,
            break_it=_provider_metadata_unreadable,
            findings=["saml_provider:provider_metadata_unreadable"],
        ),
        Broken(
            _provider_missing,
            ["saml_provider:provider_missing"],
            [
                "saml_provider saml_provider create ['certificate_fingerprint', "
                "'certificate_not_after', 'certificate_subject', 'certificate_thumbprint', "
                "'certificates', 'entity_id', 'sso_url']"
            ],
            ["aws iam CreateSAMLProvider"],
        ),
    ],
    "federation_policy": [
        Broken(
            _federation_policy_missing,
            ["federation_role:no_federation_permission"],
            [
                "federation_policy iam_policy create ['policy_arn', 'policy_document']",
                "federation_role iam_role update ['attach_policy']",
            ],
            ["aws iam CreatePolicy", "aws iam AttachRolePolicy"],
            # No policy lets the role federate: the wizard's is made again (its name, a new ID)
            # and attached.
            {KEEP_POLICY_DOCUMENT: ABSENT, KEEP_TRUST_POLICY: True},
            renewed=("policy",),
        ),
    ],
    "federation_role": [
        Broken(
            _role_trust_refuses,
            ["federation_role:role_trust_refuses"],
            ["federation_role iam_role update ['trust']"],
            ["aws iam UpdateAssumeRolePolicy"],
            # The trust was the finding: rewritten; the policy works: kept as it is.
            {KEEP_TRUST_POLICY: ABSENT, KEEP_POLICY_DOCUMENT: True},
        ),
        Broken(
            _no_federation_permission,
            ["federation_role:no_federation_permission"],
            ["federation_role iam_role update ['attach_policy']"],
            ["aws iam AttachRolePolicy"],
            # The role's policy is there, only detached: attached again as it is.
            {KEEP_POLICY_DOCUMENT: True, KEEP_TRUST_POLICY: True},
        ),
        Broken(
            _role_missing,
            ["federation_role:role_missing"],
            [
                "federation_role iam_role create "
                "['max_session_duration_s', 'policy_arn', 'trust_policy']"
            ],
            ["aws iam CreateRole", "aws iam AttachRolePolicy"],
            {KEEP_TRUST_POLICY: ABSENT},
            renewed=("role_id",),
        ),
    ],
}


def _federation_state(federation: Built) -> dict[str, Any]:
    """What sign-in reads of the federation, from the clouds now."""
    tenant, iam = federation.tenant, federation.iam
    app_id = federation.output("entra_app", "app_id")
    application = tenant.find_application(app_id, by_app_id=True)
    sp = tenant.find_service_principal(app_id, by_app_id=True)
    policy = tenant.find_claims_mapping_policy(federation.output("entra_claims", "policy_id"))
    metadata = parse_idp_metadata(federation.provider_metadata(), check_dates=False)
    role_name = federation.output("federation_role", "role_name")
    role = iam.get_role(RoleName=role_name)["Role"]
    attached = iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
    return {
        "identifiers": application["identifierUris"],
        "reply_urls": application["web"]["redirectUris"],
        "app_roles": [(r["value"], r["isEnabled"]) for r in application["appRoles"]],
        "relay_state": sp["samlSingleSignOnSettings"]["relayState"],
        "claims": json.loads(policy["definition"][0]),
        "provider": (metadata.entity_id, sorted(metadata.fingerprints)),
        "role": (
            role["AssumeRolePolicyDocument"],
            role["MaxSessionDuration"],
            [p["PolicyArn"] for p in attached],
        ),
    }


def test_every_finding_repair_promises_to_fix_is_broken_and_repaired_here() -> None:
    tested = {code.split(":")[1] for group in BROKEN.values() for b in group for code in b.findings}
    assert tested == set(REPAIRED_BY["entra"])


@pytest.mark.parametrize("fixed_by", list(BROKEN))
def test_repair_fixes_each_finding_it_promises_to(
    fixed_by: str,
    built: SetupRun,  # noqa: F811
    entra_sandbox: Sandbox,  # noqa: F811
) -> None:
    federation = Built(entra_sandbox, built)
    before = _federation_state(federation)
    ids = {
        "app": federation.output("entra_app", "app_object_id"),
        "sp": federation.output("entra_app", "service_principal_id"),
        "policy": federation.output("entra_claims", "policy_id"),
    }
    for broken in BROKEN[fixed_by]:
        found, run, after = repaired(
            entra_sandbox,
            built,
            partial(broken.break_it, federation),
            fixed_by,
            renewed=broken.renewed,
        )

        assert found == broken.findings, broken
        # What works is kept as it is: the relay state, unless a finding is about it.
        inputs = {KEEP_RELAY_STATE: True, **broken.inputs}
        assert {key: run.inputs.get(key, ABSENT) for key in inputs} == inputs, broken
        assert planned_writes(run) == broken.planned, broken
        assert cloud_writes(run) == [w.format(**ids) for w in broken.writes], broken
        assert after == [], broken
        # Put back as the setup made it, not merely healthy.
        assert _federation_state(federation) == before, broken


# The AWS half of a repair, the same for each IdP: test_repair_okta.py runs these on Okta
# federations (the table above covers Entra's).


def repairs_a_certificate_iam_holds_no_longer(
    sandbox: Sandbox, setup: SetupRun, skipped: frozenset[str] = ENTRA_SKIPPED
) -> SetupRun:
    """The IAM provider given an old certificate is repaired: the IdP's is put back, nothing
    else written. Returns the repair run (for each IdP's tests: the AWS half is the same)."""
    provider_arn = setup.steps.get(key="saml_provider").outputs["provider_arn"]
    iam = aws_client(sandbox, "iam")
    held = iam.get_saml_provider(SAMLProviderArn=provider_arn)["SAMLMetadataDocument"]
    old = with_another_certificate(held)

    found, run, after = repaired(
        sandbox,
        setup,
        lambda: iam.update_saml_provider(SAMLProviderArn=provider_arn, SAMLMetadataDocument=old),
        "saml_provider",
        skipped,
    )

    assert found == ["saml_provider:provider_certificate_mismatch"]
    assert [w.split(" [")[0] for w in planned_writes(run)] == ["saml_provider saml_provider update"]
    assert cloud_writes(run) == ["aws iam UpdateSAMLProvider"]
    assert after == []
    now = iam.get_saml_provider(SAMLProviderArn=provider_arn)["SAMLMetadataDocument"]
    assert (
        parse_idp_metadata(now, check_dates=False).fingerprints
        == parse_idp_metadata(held, check_dates=False).fingerprints
    )
    return run


def repairs_a_detached_federation_policy(
    sandbox: Sandbox, setup: SetupRun, skipped: frozenset[str] = ENTRA_SKIPPED
) -> SetupRun:
    """The federation policy detached from the role is attached again, and only that."""
    role = setup.steps.get(key="federation_role").outputs
    iam = aws_client(sandbox, "iam")

    found, run, after = repaired(
        sandbox,
        setup,
        lambda: iam.detach_role_policy(RoleName=role["role_name"], PolicyArn=role["policy_arn"]),
        "federation_role",
        skipped,
    )

    assert found == ["federation_role:no_federation_permission"]
    assert planned_writes(run) == ["federation_role iam_role update ['attach_policy']"]
    assert cloud_writes(run) == ["aws iam AttachRolePolicy"]
    assert after == []
    attached = iam.list_attached_role_policies(RoleName=role["role_name"])["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [role["policy_arn"]]
    assert run.inputs["role_name"] == role["role_name"]
    # The policy that lets the role federate was only detached: it is attached as it is.
    assert run.inputs["keep_policy_document"] is True
    assert run.inputs["policy_name"] == role["policy_arn"].rsplit("/", 1)[-1]
    return run


def repairs_a_trust_for_another_audience(
    sandbox: Sandbox, setup: SetupRun, skipped: frozenset[str] = ENTRA_SKIPPED
) -> SetupRun:
    """The role's trust, changed to another sign-in audience, is written again (its policy kept)."""
    role = setup.steps.get(key="federation_role").outputs
    iam = aws_client(sandbox, "iam")
    trust = iam.get_role(RoleName=role["role_name"])["Role"]["AssumeRolePolicyDocument"]

    found, run, after = repaired(
        sandbox,
        setup,
        lambda: iam.update_assume_role_policy(
            RoleName=role["role_name"], PolicyDocument=trusting_another_audience(trust)
        ),
        "federation_role",
        skipped,
    )

    assert found == ["federation_role:role_trust_refuses"]
    assert planned_writes(run) == ["federation_role iam_role update ['trust']"]
    assert cloud_writes(run) == ["aws iam UpdateAssumeRolePolicy"]
    assert "keep_trust_policy" not in run.inputs and run.inputs["keep_policy_document"] is True
    assert after == []
    return run


def repairs_a_deleted_iam_provider(
    sandbox: Sandbox, setup: SetupRun, skipped: frozenset[str] = ENTRA_SKIPPED
) -> SetupRun:
    """The IAM provider deleted is registered again under its own name (the same ARN)."""
    provider_arn = setup.steps.get(key="saml_provider").outputs["provider_arn"]
    iam = aws_client(sandbox, "iam")

    found, run, after = repaired(
        sandbox,
        setup,
        lambda: iam.delete_saml_provider(SAMLProviderArn=provider_arn),
        "saml_provider",
        skipped,
    )

    assert "saml_provider:provider_missing" in found
    assert [w.split(" [")[0] for w in planned_writes(run)] == ["saml_provider saml_provider create"]
    assert cloud_writes(run) == ["aws iam CreateSAMLProvider"]
    assert after == []
    assert iam.get_saml_provider(SAMLProviderArn=provider_arn)["SAMLMetadataDocument"]
    return run
