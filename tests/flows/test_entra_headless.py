"""`manage.py setup_sso examples/entra-sandbox.toml` runs the whole Entra flow against the sandbox,
and running it again changes nothing in any cloud."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from provisioning.flows import get_flow
from provisioning.models import AuditEvent, AuditKind, RunStatus
from sandbox.knobs import Knobs
from sandbox.server import Sandbox
from tests.flows.entra_runs import cloud_writes, entra_sandbox, plan_file, setup_sso  # noqa: F401
from tests.flows.run_page import labels_left_in_english


def test_it_runs_the_entra_flow_headless_and_a_second_run_changes_nothing(
    entra_sandbox: Sandbox,  # noqa: F811
    sandbox_knobs: Knobs,
    tmp_path: Path,
) -> None:
    # New Graph objects stay invisible longer than the engine's re-enqueue countdown, so a step
    # comes back while what it created still answers 404 (sandbox/BEHAVIOURS.md, replication).
    sandbox_knobs.graph_visibility_delay_s = 1.5 * settings.WIZARD_WAIT_COUNTDOWN_S
    path = plan_file(tmp_path)

    first, first_output = setup_sso(path)
    assert first.status == RunStatus.SUCCEEDED, first_output
    steps = {step.key: step for step in first.steps.all()}
    (result,) = steps["sign_in_test"].outputs["results"]
    assert result["ok"] and result["destination"].endswith("/ccp-v2"), result
    # The sandbox serves Entra's metadata with a byte-order mark; what the wizard keeps has none.
    assert steps["entra_app"].outputs["metadata_xml"].startswith("<?xml")
    # The new claims policy 404s until it replicates; waiting for it made no second one.
    name = f"Claims for {steps['entra_app'].outputs['display_name']}"
    tenant = entra_sandbox.apps["entra"].tenant
    policies = [p for p in tenant.claims_mapping_policies.values() if p["displayName"] == name]
    assert len(policies) == 1, policies
    assert cloud_writes(first), "the first run made the setup"
    # Every value the run page shows has a label in Japanese (the cloud's own field names aside).
    assert labels_left_in_english(first) == []

    second, second_output = setup_sso(path)
    assert second.status == RunStatus.SUCCEEDED, second_output
    flow = get_flow("entra")
    for key in flow.step_keys:
        if key in flow.optional_steps:
            # The plan file claims no phone numbers: the step is skipped, and says so.
            assert f"  {key}: Skipped: this setup claims no phone" in second_output
            continue
        assert f"  {key}: nothing to do" in second_output, (key, second_output)
    assert cloud_writes(second) == []


def test_it_signs_in_once_per_run_and_verifies_assignments_without_rereading_the_directory(
    entra_sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
) -> None:
    run, output = setup_sso(plan_file(tmp_path))

    assert run.status == RunStatus.SUCCEEDED, output
    finished = AuditEvent.objects.filter(run=run, kind=AuditKind.CALL_FINISHED)
    # The preflight's plan signs in afresh; every later step of the run reuses that token.
    sign_ins = finished.filter(service="login", operation__endswith="/token")
    assert list(sign_ins.values_list("step_key", flat=True)) == ["entra_preflight"]
    # entra_assignments reads the group in plan only: the apply that follows at once uses what
    # the plan resolved, and verify checks what apply was handed.
    group_reads = finished.filter(step_key="entra_assignments", operation="GET /groups")
    assert group_reads.count() == 1


def test_each_apply_uses_what_its_plan_just_read_and_each_step_keeps_every_state_row(
    entra_sandbox: Sandbox,  # noqa: F811
    sandbox_knobs: Knobs,
    tmp_path: Path,
) -> None:
    # No step waits for the cloud (a retry after a wait reads afresh, as it must).
    sandbox_knobs.instance_creation_delay_s = 0
    sandbox_knobs.graph_visibility_delay_s = 0
    with CaptureQueriesContext(connection) as statements:
        run, output = setup_sso(plan_file(tmp_path))

    assert run.status == RunStatus.SUCCEEDED, output
    # The runner reads the run with its connections, and every phase of the step it advances
    # takes them from there: no step reads a connection of its own (setup_sso reads each once
    # by name, and the new run checks each once).
    connection_reads = [
        query["sql"]
        for query in statements.captured_queries
        if re.match(r'SELECT .* FROM "wizard_connection"', query["sql"])
    ]
    assert len(connection_reads) == 4, connection_reads
    finished = AuditEvent.objects.filter(run=run, kind=AuditKind.CALL_FINISHED)

    def reads(step_key: str, operation: str) -> int:
        return finished.filter(step_key=step_key, operation__regex=operation).count()

    # Each look-before-create is made once, by the plan (the apply that follows at once uses
    # it); a second read is verify's read-back after apply's writes.
    assert reads("preflight", r"^GetCallerIdentity$") == 1
    # One listing, however many pages the session's sandbox has by now (a page after the first
    # carries NextToken).
    listings = AuditEvent.objects.filter(
        run=run, kind=AuditKind.CALL_STARTED, step_key="connect_instance", operation="ListInstances"
    )
    assert [call.request for call in listings if "NextToken" not in call.request] != []
    assert len([call for call in listings if "NextToken" not in call.request]) == 1
    # Described once after the create: verify checks that reading.
    assert reads("connect_instance", r"^DescribeInstance$") == 1
    # Verify reads the provider by the ARN apply's create answered, not IAM's list again.
    assert reads("saml_provider", r"^ListSAMLProviders$") == 1  # plan
    assert reads("saml_provider", r"^GetSAMLProvider$") == 1  # verify
    # CreatePolicy answered with the default version: verify reads that version's document.
    assert reads("federation_policy", r"^GetPolicy$") == 1  # plan
    assert reads("federation_policy", r"^GetPolicyVersion$") == 1  # verify
    assert reads("federation_role", r"^GetRole$") == 2  # plan, verify
    # The instance's tag, by the ARN connect_instance's outputs give (no DescribeInstance).
    assert reads("federation_role", r"^ListTagsForResource$") == 1  # plan
    assert reads("federation_role", r"^DescribeInstance$") == 0
    # connect_users' plan reads the instance once for the change set and the form's choices;
    # verify's search finds everyone just created, so ListUsers is not asked as well.
    assert (
        reads("connect_users", r"^(DescribeInstance|ListSecurityProfiles|ListRoutingProfiles)$")
        == 3
    )
    assert reads("connect_users", r"^SearchUsers$") == 2  # plan, verify
    assert reads("connect_users", r"^ListUsers$") == 0
    # Instantiate answers with the new app and service principal: apply works on those, and
    # reads both once after its writes (verify checks that reading).
    assert reads("entra_app", r"^GET /applications/[^/?]+$") == 1
    assert reads("entra_app", r"^GET /servicePrincipals\(appId=") == 0
    assert reads("entra_app", r"^GET /servicePrincipals/[^/]+$") == 1
    assert reads("entra_claims", r"^GET /applications/[^/]+$") == 2  # plan, verify
    # Plan, and apply's wait for the new app role to show on it (verify checks that reading).
    assert reads("entra_claims", r"^GET /servicePrincipals/[^/]+$") == 2
    assert reads("entra_claims", r"^GET /servicePrincipals/[^/]+/claimsMappingPolicies$") == 2
    # No attempt of this run made a policy before this one: no scan for one it lost.
    assert reads("entra_claims", r"^GET /policies/claimsMappingPolicies$") == 0
    assert reads("entra_assignments", r"^GET /servicePrincipals/[^/]+/appRoleAssignedTo$") == 2
    # Planned and taken on to apply in one move, each step still says both, in order.
    moves = AuditEvent.objects.filter(run=run, kind=AuditKind.STEP_STATE).order_by("pk")
    for key in ("preflight", "connect_instance", "federation_role", "entra_claims"):
        statuses = [move.new_value["status"] for move in moves.filter(step_key=key)]
        assert statuses == ["planning", "planned", "applying", "succeeded"], (key, statuses)
