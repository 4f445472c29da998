"""Repair against the sandbox: a federation the Entra flow built is broken at one link through
the cloud's own API, a check names the finding, and Repair's run (the Entra flow, inputs filled
from the check) plans exactly the fixing change, adopts everything else (the app, provider, role,
policy and instance keep their IDs), applies it once confirmed, and the check after it is
healthy."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from provisioning.models import (
    Connection,
    FederationCheckRecord,
    FederationCheckStatus,
    RunStatus,
    SetupRun,
    StepStatus,
)
from provisioning.saml import parse_idp_metadata
from provisioning.services.federation_checks import federation_check_run
from provisioning.services.federation_repairs import repair_run_create
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
) -> tuple[list[str], SetupRun, list[str]]:
    """Break, check, repair, re-check: (the findings, the repair run, the re-check's findings).
    The run stops at the step `fixed_by` for the admin to confirm its plan, as a setup does, and
    skips the steps `skipped`."""
    before = resource_ids(sandbox, setup)
    break_it()
    record = checked(setup)
    found = findings(record)

    run = drive(repair_run_create(user=None, check_id=record.pk, enqueue=False), confirm=False)
    waiting = run.steps.get(status=StepStatus.PLANNED)
    assert (run.status, waiting.key, waiting.plan["needs_confirmation"]) == (
        RunStatus.WAITING,
        fixed_by,
        True,
    )
    run = drive(run)

    assert run.status == RunStatus.SUCCEEDED, (run.error, list(run.steps.values("key", "error")))
    assert resource_ids(sandbox, setup) == before
    assert set(run.steps.filter(status=StepStatus.SKIPPED).values_list("key", flat=True)) == skipped
    after = checked(setup)
    return found, run, findings(after)


def test_repair_sets_the_relay_state_back_and_changes_nothing_else(
    built: SetupRun,  # noqa: F811
    entra_sandbox: Sandbox,  # noqa: F811
) -> None:
    app_id = built.steps.get(key="entra_app").outputs["app_id"]
    wanted = built.steps.get(key="entra_claims").outputs["relay_state"]
    other = wanted.replace(built.instance_id, "00000000-0000-4000-8000-000000000000")
    tenant = entra_sandbox.apps["entra"].tenant

    found, run, after = repaired(
        entra_sandbox,
        built,
        lambda: tenant.patch_service_principal(
            app_id, {"samlSingleSignOnSettings": {"relayState": other}}, by_app_id=True
        ),
        "entra_claims",
    )

    assert found == ["claims:relay_state_other_instance"]
    assert planned_writes(run) == ["entra_claims relay_state update []"]
    sp_id = built.steps.get(key="entra_app").outputs["service_principal_id"]
    assert cloud_writes(run) == [f"entra graph PATCH /servicePrincipals/{sp_id}"]
    assert after == []
    sp = tenant.find_service_principal(app_id, by_app_id=True)
    assert sp["samlSingleSignOnSettings"]["relayState"] == wanted


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


def test_repair_puts_the_idps_certificate_back_into_iam(
    built: SetupRun,  # noqa: F811
    entra_sandbox: Sandbox,  # noqa: F811
) -> None:
    repairs_a_certificate_iam_holds_no_longer(entra_sandbox, built)


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
    # The role's permission was the finding: its policy is not kept as it is.
    assert "keep_policy_document" not in run.inputs
    return run


def test_repair_attaches_the_federation_policy_detached_from_the_role(
    built: SetupRun,  # noqa: F811
    entra_sandbox: Sandbox,  # noqa: F811
) -> None:
    repairs_a_detached_federation_policy(entra_sandbox, built)


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
    assert planned_writes(run) == ["entra_claims relay_state update []"], planned_writes(run)
    assert run.steps.get(key="federation_policy").plan["changes"][0]["action"] == "adopt"
    assert iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"] == trust
    versions = iam.list_policy_versions(PolicyArn=policy["PolicyArn"])["Versions"]
    assert [v["VersionId"] for v in versions] == ["v1"]
    assert findings(checked_instance(made["alias"])) == []


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


def test_repair_restores_the_trust_of_a_role_that_refuses_the_sign_in(
    built: SetupRun,  # noqa: F811
    entra_sandbox: Sandbox,  # noqa: F811
) -> None:
    repairs_a_trust_for_another_audience(entra_sandbox, built)


def test_repair_switches_the_app_back_to_saml(
    built: SetupRun,  # noqa: F811
    entra_sandbox: Sandbox,  # noqa: F811
) -> None:
    app_id = built.steps.get(key="entra_app").outputs["app_id"]
    tenant = entra_sandbox.apps["entra"].tenant

    found, run, after = repaired(
        entra_sandbox,
        built,
        lambda: tenant.patch_service_principal(
            app_id, {"preferredSingleSignOnMode": "password"}, by_app_id=True
        ),
        "entra_app",
    )

    assert "idp_app:app_not_saml" in found
    assert planned_writes(run) == [
        "entra_app entra_application update ['preferredSingleSignOnMode']"
    ]
    assert after == []
    sp = tenant.find_service_principal(app_id, by_app_id=True)
    assert sp["preferredSingleSignOnMode"] == "saml"


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


def test_repair_registers_the_iam_provider_deleted_under_its_own_name(
    built: SetupRun,  # noqa: F811
    entra_sandbox: Sandbox,  # noqa: F811
) -> None:
    repairs_a_deleted_iam_provider(entra_sandbox, built)
