"""federation_role against the sandbox (and the three IAM steps against plain moto): one role
trusted for SAML with the policy attached however often apply runs or its worker is killed, the
admin's confirmation before a trust change or a second role for the instance, and rollback
removing exactly what the run created."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.utils import translation
from moto.server import ThreadedMotoServer

from provisioning.connections.sandbox_registration import register_sandbox_connections
from provisioning.messages import render
from provisioning.models import Cloud, Connection, RunStatus, StepRun
from provisioning.runs import admin_moves
from provisioning.steps.federation_role import (
    BAD_REQUEST_WARNING,
    FEDERATION_ROLE_TAG,
    FederationRoleStep,
)
from sandbox.server import AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, Sandbox
from tests.engine.runs import RUN_TIMEOUT_S, wait_for, wait_until_at_rest
from tests.engine_doubles import paused_path
from tests.sandbox.aws_clients import aws_client, unique_alias
from tests.steps import aws_step_runs
from tests.steps.aws_step_runs import REGION, unique
from tests.steps.iam_flow import PAUSING_ROLE_STEP, metadata
from tests.steps.iam_runs import (
    apply_all,
    iam_run,
    policies_named,
    providers_named,
    roles_named,
    roll_back_all,
    step_context,
)
from tests.worker_process import WorkerProcess

# The IAM step tests' fixtures (tests/steps/aws_step_runs.py).
aws_connection = aws_step_runs.aws_connection
instance = aws_step_runs.instance
connect = aws_step_runs.connect

STEP = FederationRoleStep()
KEY = "federation_role"
ENTITY_ID = "https://idp.example.test/federation-role-tests"


@pytest.fixture
def iam(sandbox: Sandbox) -> Any:
    return aws_client(sandbox, "iam")


def _instance_role_tag(connect: Any, instance: dict[str, Any]) -> str:
    tags = connect.list_tags_for_resource(resourceArn=instance["Arn"])["tags"]
    return tags.get(FEDERATION_ROLE_TAG, "")


def _attached(iam: Any, role: str) -> list[str]:
    return [
        p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    ]


def test_it_creates_one_role_trusted_for_saml_however_often_the_steps_run(
    aws_connection: Connection, instance: dict[str, Any], iam: Any, connect: Any
) -> None:
    document = metadata(ENTITY_ID)
    run = iam_run(aws_connection, instance, metadata_xml=document)
    name = f"ConnectSSO-{instance['InstanceAlias']}"

    first = apply_all(run)
    again = iam_run(aws_connection, instance, metadata_xml=document)
    plan = STEP.plan(step_context(again, KEY, first))
    second = apply_all(again)

    role = first[KEY]
    provider = first["saml_provider"]["provider_arn"]
    assert role["role_value"] == f"{role['role_arn']},{provider}"
    assert role["max_session_duration_s"] == 3600
    assert plan.changes[0].action == "nothing"
    assert not plan.needs_confirmation
    assert second == first
    (held,) = roles_named(iam, name)
    trust = iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Federated": provider}
    assert statement["Action"] == "sts:AssumeRoleWithSAML"
    assert statement["Condition"]["StringEquals"]["SAML:aud"] == [
        "https://signin.aws.amazon.com/saml",
        f"https://{REGION}.signin.aws.amazon.com/saml",
    ]
    assert _attached(iam, name) == [first["federation_policy"]["policy_arn"]]
    assert len(providers_named(iam, name)) == 1
    assert len(policies_named(iam, f"{name}-GetFederationToken")) == 1
    assert _instance_role_tag(connect, instance) == held["Arn"]


def test_it_asks_for_confirmation_before_changing_the_trust_of_an_existing_role(
    aws_connection: Connection, instance: dict[str, Any], iam: Any
) -> None:
    run = iam_run(aws_connection, instance, metadata_xml=metadata(ENTITY_ID))
    outputs = apply_all(run)
    later = iam_run(aws_connection, instance)
    other_provider = {
        **outputs,
        "saml_provider": {"provider_arn": outputs["saml_provider"]["provider_arn"] + "-2"},
    }

    plan = STEP.plan(step_context(later, KEY, other_provider))
    unchanged = STEP.plan(step_context(later, KEY, outputs))

    (change,) = plan.changes
    assert change.action == "update"
    assert change.details["changes"] == ["trust"]
    changed = [line for line in change.diff.splitlines() if '"Federated"' in line]
    assert [line[0] for line in changed] == ["-", "+"]
    assert changed[1].endswith('-2"')
    assert plan.needs_confirmation
    assert "Bad Request" in render(plan.warnings[0])
    assert str(BAD_REQUEST_WARNING) in render(plan.warnings[0])
    assert not unchanged.needs_confirmation


def test_it_asks_for_confirmation_before_giving_the_instance_a_second_role(
    aws_connection: Connection, instance: dict[str, Any], connect: Any
) -> None:
    run = iam_run(aws_connection, instance, metadata_xml=metadata(ENTITY_ID))
    outputs = apply_all(run)
    second = iam_run(aws_connection, instance, role_name=unique("SecondRole"))

    plan = STEP.plan(step_context(second, KEY, outputs))
    role = STEP.apply(step_context(second, KEY, outputs))

    assert plan.changes[0].action == "create"
    assert plan.needs_confirmation
    assert outputs[KEY]["role_arn"] in render(plan.warnings[0])
    # The instance's tag, planned with the ARN the new role gets, is what apply writes.
    tag = plan.changes[1]
    assert (tag.action, tag.resource_type, tag.details) == (
        "update",
        "connect_instance_tag",
        {"instance_arn": instance["Arn"], "role_arn": role.role_arn},
    )
    assert tag.diff == f"{FEDERATION_ROLE_TAG}: {outputs[KEY]['role_arn']} → {role.role_arn}"
    assert _instance_role_tag(connect, instance) == role.role_arn


def test_it_plans_the_instance_tag_it_writes_and_neither_once_the_tag_is_there(
    aws_connection: Connection, instance: dict[str, Any], connect: Any
) -> None:
    outputs = apply_all(iam_run(aws_connection, instance, metadata_xml=metadata(ENTITY_ID)))
    role_arn = outputs[KEY]["role_arn"]
    # An instance whose role the wizard did not record (a federation made by hand).
    connect.untag_resource(resourceArn=instance["Arn"], tagKeys=[FEDERATION_ROLE_TAG])
    adopting = iam_run(aws_connection, instance)

    untagged = STEP.plan(step_context(adopting, KEY, outputs))
    STEP.apply(step_context(adopting, KEY, outputs))
    tagged = STEP.plan(step_context(adopting, KEY, outputs))

    assert [(c.action, c.resource_type) for c in untagged.changes] == [
        ("nothing", "iam_role"),
        ("create", "connect_instance_tag"),
    ]
    assert untagged.changes[1].details == {"instance_arn": instance["Arn"], "role_arn": role_arn}
    assert not untagged.is_noop and not untagged.needs_confirmation
    assert _instance_role_tag(connect, instance) == role_arn
    assert [c.action for c in tagged.changes] == ["nothing"]


def test_it_updates_the_session_duration_and_reattaches_the_policy(
    aws_connection: Connection, instance: dict[str, Any], iam: Any
) -> None:
    run = iam_run(aws_connection, instance, metadata_xml=metadata(ENTITY_ID))
    outputs = apply_all(run)
    name = outputs[KEY]["role_name"]
    iam.detach_role_policy(RoleName=name, PolicyArn=outputs["federation_policy"]["policy_arn"])

    findings = STEP.verify(step_context(run, KEY, outputs))
    plan = STEP.plan(step_context(run, KEY, outputs, session_duration_hours=8))
    STEP.apply(step_context(run, KEY, outputs, session_duration_hours=8))

    assert [f.ok for f in findings] == [True, True, False]
    detached = findings[2].to_json()
    with translation.override("ja"):
        assert render(detached["check"]) == "フェデレーション ポリシーがロールにアタッチされている"
        assert render(detached["fix"]) == "ステップを再試行してアタッチしてください。"
    assert plan.changes[0].details["changes"] == ["max_session_duration", "attach_policy"]
    assert not plan.needs_confirmation
    assert iam.get_role(RoleName=name)["Role"]["MaxSessionDuration"] == 8 * 3600
    assert _attached(iam, name) == [outputs["federation_policy"]["policy_arn"]]


def test_it_rolls_back_what_the_run_created_and_leaves_an_adopted_role(
    aws_connection: Connection, instance: dict[str, Any], iam: Any, connect: Any
) -> None:
    run = iam_run(aws_connection, instance, metadata_xml=metadata(ENTITY_ID))
    outputs = apply_all(run)
    adopted = unique("AdoptedRole")
    trust = iam.get_role(RoleName=outputs[KEY]["role_name"])["Role"]["AssumeRolePolicyDocument"]
    iam.create_role(RoleName=adopted, AssumeRolePolicyDocument=json.dumps(trust))
    adopting = iam_run(aws_connection, instance, role_name=adopted)
    adopting_ctx = step_context(adopting, KEY, outputs)
    STEP.apply(adopting_ctx)

    STEP.rollback(step_context(adopting, KEY, outputs))

    # The adopted role stays, without the attachment this run made; the instance's tag goes back.
    assert _attached(iam, adopted) == []
    assert roles_named(iam, adopted)
    assert _instance_role_tag(connect, instance) == outputs[KEY]["role_arn"]

    roll_back_all(run, outputs)
    roll_back_all(run, outputs)

    name = outputs[KEY]["role_name"]
    assert roles_named(iam, name) == []
    assert policies_named(iam, f"{name}-GetFederationToken") == []
    assert providers_named(iam, name) == []
    assert _instance_role_tag(connect, instance) == ""
    assert roles_named(iam, adopted)


@pytest.mark.worker
def test_it_converges_after_its_worker_is_killed_right_after_creating_the_role(
    celery_worker: WorkerProcess,
    aws_connection: Connection,
    instance: dict[str, Any],
    iam: Any,
    connect: Any,
) -> None:
    run = admin_moves.run_create(
        user=None,
        flow_key="test_iam_federation_pausing",
        region=REGION,
        instance_id=instance["Id"],
        instance_alias=instance["InstanceAlias"],
        aws_connection_id=aws_connection.pk,
        inputs={"metadata_xml": metadata(ENTITY_ID), "pause_s": 60},
    )
    name = f"ConnectSSO-{instance['InstanceAlias']}"
    paused = paused_path(run.pk, PAUSING_ROLE_STEP)
    wait_for(paused.exists, RUN_TIMEOUT_S, "CreateRole to have answered")
    victim = int(paused.read_text())
    assert victim in celery_worker.pool_pids()
    assert len(roles_named(iam, name)) == 1
    assert _attached(iam, name) == []

    os.kill(victim, signal.SIGKILL)
    wait_until_at_rest(run, celery_worker)

    assert run.status == RunStatus.SUCCEEDED, run.error
    step = StepRun.objects.get(run=run, key=PAUSING_ROLE_STEP)
    assert step.attempts == 3  # plan, apply, and the take-over after the kill
    assert len(roles_named(iam, name)) == 1
    assert len(_attached(iam, name)) == 1
    assert {entry["resource_type"] for entry in step.created_resources} == {
        "iam_role",
        "iam_role_policy_attachment",
        "connect_instance_tag",
    }
    assert step.outputs["role_arn"] == _instance_role_tag(connect, instance)

    admin_moves.run_rollback(user=None, run_id=run.pk)
    wait_until_at_rest(run, celery_worker)

    assert run.status == RunStatus.ROLLED_BACK, run.error
    assert roles_named(iam, name) == []
    assert policies_named(iam, f"{name}-GetFederationToken") == []
    assert providers_named(iam, name) == []


# Plain moto: no sandbox layer --------------------------------------------------------------


@pytest.fixture
def plain_moto(tmp_path: Path, settings: Any, db: None) -> Iterator[dict[str, Any]]:
    """moto's own server over http on loopback, and a sandbox connection whose endpoints file
    points at it: the steps' calls reach moto with no sandbox extension in between."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoints = {
        "aws_endpoint_url": f"http://{host}:{port}",
        "aws_region": REGION,
        "aws_access_key_id": AWS_ACCESS_KEY_ID,
        "aws_secret_access_key": AWS_SECRET_ACCESS_KEY,
        "ca_bundle": None,
        "entra_tenant_id": "",
        "entra_client_id": "",
        "entra_client_secret": "",
        "okta_org_url": "",
        "okta_token": "",
    }
    sandbox_file = tmp_path / "plain-moto.json"
    sandbox_file.write_text(json.dumps(endpoints))
    settings.WIZARD_MODE = "sandbox"
    settings.SANDBOX_FILE = sandbox_file
    connection = next(
        c for c in register_sandbox_connections(sandbox_file=sandbox_file) if c.cloud == Cloud.AWS
    )
    try:
        yield {"endpoints": endpoints, "connection": connection}
    finally:
        server.stop()


def test_the_iam_steps_apply_verify_and_roll_back_against_plain_moto(
    plain_moto: dict[str, Any],
) -> None:
    endpoints = plain_moto["endpoints"]
    clients = {
        service: boto3.client(
            service,
            endpoint_url=endpoints["aws_endpoint_url"],
            region_name=REGION,
            aws_access_key_id=endpoints["aws_access_key_id"],
            aws_secret_access_key=endpoints["aws_secret_access_key"],
        )
        for service in ("iam", "connect")
    }
    created = clients["connect"].create_instance(
        IdentityManagementType="SAML",
        InstanceAlias=unique_alias("plain-moto"),
        InboundCallsEnabled=True,
        OutboundCallsEnabled=True,
    )
    moto_instance = clients["connect"].describe_instance(InstanceId=created["Id"])["Instance"]
    run = iam_run(plain_moto["connection"], moto_instance, metadata_xml=metadata(ENTITY_ID))
    name = f"ConnectSSO-{moto_instance['InstanceAlias']}"

    outputs = apply_all(run)
    assert apply_all(run) == outputs

    iam = clients["iam"]
    assert len(providers_named(iam, name)) == 1
    assert len(roles_named(iam, name)) == 1
    assert _attached(iam, name) == [outputs["federation_policy"]["policy_arn"]]
    assert _instance_role_tag(clients["connect"], moto_instance) == outputs[KEY]["role_arn"]

    roll_back_all(run, outputs)

    assert providers_named(iam, name) == []
    assert roles_named(iam, name) == []
    assert policies_named(iam, f"{name}-GetFederationToken") == []
    assert _instance_role_tag(clients["connect"], moto_instance) == ""


def test_a_repair_keeps_the_trust_of_an_existing_role_it_found_working(
    aws_connection: Connection, instance: dict[str, Any], iam: Any
) -> None:
    run = iam_run(aws_connection, instance, metadata_xml=metadata(ENTITY_ID))
    outputs = apply_all(run)
    role_name = outputs["federation_role"]["role_name"]
    before = iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"]
    other_provider = {
        **outputs,
        "saml_provider": {"provider_arn": outputs["saml_provider"]["provider_arn"] + "-2"},
    }
    repair = iam_run(aws_connection, instance, keep_trust_policy=True)

    plan = STEP.plan(step_context(repair, KEY, other_provider))
    STEP.apply(step_context(repair, KEY, other_provider))
    found = STEP.verify(step_context(repair, KEY, other_provider))

    (change,) = plan.changes
    assert (change.action, change.details["changes"], plan.needs_confirmation) == (
        "nothing",
        [],
        False,
    )
    assert iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"] == before
    assert all(finding.ok for finding in found)
