"""The connect_instance step against the sandbox: validation before any call, create and wait,
adopt by alias or ID, refuse a non-SAML instance, creation failure, rollback, and a worker killed
between CreateInstance and recording it."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from provisioning.aws.client import map_aws_error
from provisioning.connections.sandbox_registration import register_sandbox_connections
from provisioning.context import CreatedResource
from provisioning.errors import PermanentError, WaitForCloud
from provisioning.messages import render
from provisioning.models import (
    AuditEvent,
    AuditKind,
    Cloud,
    Connection,
    RunStatus,
    SetupRun,
    StepStatus,
)
from provisioning.runs import admin_moves, runner
from provisioning.steps.connect_instance import (
    RUN_TAG,
    ConnectInstance,
    ConnectInstanceForm,
    Wanted,
    alias_problem,
    explain_create_error,
)
from sandbox.knobs import Knobs
from sandbox.server import Sandbox
from tests import engine_doubles
from tests.engine.runs import RUN_TIMEOUT_S, calls, drive, wait_for, wait_until_at_rest
from tests.sandbox.aws_clients import active_instance, aws_client, unique_alias
from tests.steps import connect_instance_doubles
from tests.steps.aws_step_runs import REGION, context, start_run
from tests.worker_process import WorkerProcess

FLOW = "test_connect_instance_flow"
PAUSING_FLOW = "test_connect_instance_pausing_flow"
STEP = "connect_instance"
# Read-only calls: adopting a non-SAML instance must make nothing but these (ListServiceQuotas: the
# shared rate limiter reading Connect's API rates, once per process and cache period).
READ_OPERATIONS = {"ListInstances", "DescribeInstance", "ListServiceQuotas"}


@pytest.fixture(autouse=True)
def fast_waits(settings: Any) -> None:
    settings.WIZARD_WAIT_COUNTDOWN_S = 0.05
    settings.WIZARD_RETRY_BACKOFF_S = 0.05


@pytest.fixture
def aws(sandbox: Sandbox, settings: Any, db: None) -> Connection:
    """The sandbox AWS connection, in sandbox mode."""
    settings.WIZARD_MODE = "sandbox"
    settings.SANDBOX_FILE = sandbox.state_dir / "sandbox.json"
    registered = register_sandbox_connections(sandbox_file=settings.SANDBOX_FILE)
    return next(connection for connection in registered if connection.cloud == Cloud.AWS)


@pytest.fixture
def connect(sandbox: Sandbox) -> Any:
    return aws_client(sandbox, "connect")


def _run(aws: Connection, flow_key: str = FLOW, **inputs: Any) -> SetupRun:
    return start_run(STEP, aws, inputs=inputs, flow_key=flow_key)


def _instances_with_alias(connect: Any, alias: str) -> list[dict[str, Any]]:
    pages = connect.get_paginator("list_instances").paginate()
    return [
        summary
        for page in pages
        for summary in page["InstanceSummaryList"]
        if (summary.get("InstanceAlias") or "").lower() == alias.lower()
    ]


def _exists(connect: Any, instance_id: str) -> bool:
    try:
        connect.describe_instance(InstanceId=instance_id)
    except ClientError as error:
        assert error.response["Error"]["Code"] == "ResourceNotFoundException"
        return False
    return True


def _advance_until_waiting(run: SetupRun) -> str:
    """Advance the run until connect_instance waits for the cloud; return its reason."""
    for _ in range(20):
        runner.advance(run.pk)
        step = run.steps.get(key__in=[STEP, "test_connect_instance_pausing"])
        if step.outputs.get("waiting_for"):
            return str(render(step.outputs["waiting_for"]))
    raise AssertionError("the step never waited")


@pytest.mark.parametrize(
    ("alias", "words"),
    [
        ("", "Type an alias"),
        ("a" * 46, "has 46 characters; an alias has at most 45. Try “" + "a" * 45 + "”"),
        ("d-sales", "can't start with “d-”"),
        ("Sales Team_JP", "Try “Sales-Team-JP”"),
        ("-sales", "Try “sales”"),
    ],
)
def test_it_says_what_to_type_instead_of_an_alias_aws_would_refuse(alias: str, words: str) -> None:
    assert words in alias_problem(alias)
    form = ConnectInstanceForm(data={"instance_alias": alias})
    assert not form.is_valid()


def test_it_accepts_an_alias_aws_accepts_and_an_instance_arn() -> None:
    assert alias_problem("sales-jp-01") == ""
    arn = (
        "arn:aws:connect:ap-northeast-1:123456789012:instance/0b8e2a4c-1111-4a2b-9c3d-123456789abc"
    )
    form = ConnectInstanceForm(data={"instance_id": arn, "inbound_calls_enabled": "on"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["instance_id"] == arn.rsplit("/", 1)[1]
    assert form.cleaned_data["outbound_calls_enabled"] is False


def test_it_refuses_an_invalid_alias_before_any_call(aws: Connection) -> None:
    run = _run(aws, instance_alias="d-sales")

    drive(run)

    # The engine checks the answers with the step's form and asks for a better one.
    step = run.steps.get(key=STEP)
    assert run.status == RunStatus.WAITING
    assert step.plan["needs_input"] is True
    assert step.error["code"] == "step_input_invalid"
    assert step.error["message"].startswith("“Instance alias”: ")
    assert "can't start with “d-”" in step.error["message"]
    assert calls(run) == []


def test_it_creates_an_instance_waits_until_active_and_later_steps_see_it(
    aws: Connection, connect: Any, sandbox_knobs: Knobs
) -> None:
    sandbox_knobs.instance_creation_delay_s = 1.0
    alias = unique_alias("create")
    run = _run(aws, instance_alias=alias, outbound_calls_enabled=False)

    reason = _advance_until_waiting(run)
    drive(run)

    assert "is creating the instance" in reason and " s so far" in reason, reason
    assert run.status == RunStatus.SUCCEEDED, run.error
    outputs = run.steps.get(key=STEP).outputs
    [summary] = _instances_with_alias(connect, alias)
    assert outputs["instance_id"] == summary["Id"]
    assert outputs["instance_alias"] == alias
    assert outputs["identity_management_type"] == "SAML"
    assert outputs["access_url"] == f"https://{alias}.my.connect.aws"
    assert outputs["adopted"] is False
    assert [finding["ok"] for finding in outputs["verify"]] == [True, True]
    instance = connect.describe_instance(InstanceId=summary["Id"])["Instance"]
    assert instance["Tags"] == {RUN_TAG: str(run.pk)}
    assert (instance["InboundCallsEnabled"], instance["OutboundCallsEnabled"]) == (True, False)
    assert (run.instance_id, run.instance_alias) == (summary["Id"], alias)
    assert run.steps.get(key="test_reads_run_instance").outputs["instance_id"] == summary["Id"]
    change = AuditEvent.objects.get(run=run, kind=AuditKind.RUN_STATE, step_key=STEP)
    assert change.new_value == {"instance_id": summary["Id"], "instance_alias": alias}
    assert len(calls(run, "CreateInstance")) == 2  # one call: its started and finished rows


def test_it_converges_on_one_instance_when_applied_again_or_after_losing_its_record(
    aws: Connection, connect: Any
) -> None:
    alias = unique_alias("twice")
    run = _run(aws, instance_alias=alias)
    drive(run)
    assert run.status == RunStatus.SUCCEEDED, run.error
    first = run.steps.get(key=STEP).outputs["instance_id"]

    again = ConnectInstance().apply(context(run, STEP))
    # A crash between CreateInstance and record_created: the record is gone, the tag is not.
    forgetful = context(run, STEP)
    forgetful.created_resources = []
    forgetful.instance_id = ""
    after_crash = ConnectInstance().apply(forgetful)

    assert again.instance_id == after_crash.instance_id == first
    assert after_crash.adopted is False
    assert forgetful.created_of("connect_instance") == [
        CreatedResource("connect_instance", first, {"alias": alias})
    ]
    assert len(_instances_with_alias(connect, alias)) == 1
    assert len(calls(run, "CreateInstance")) == 2


def test_it_adopts_a_saml_instance_by_alias_and_by_id(aws: Connection, connect: Any) -> None:
    existing = active_instance(connect, "adopt")
    by_alias = _run(aws, instance_alias=existing["InstanceAlias"].upper())
    by_id = _run(aws, instance_id=existing["Arn"])

    drive(by_alias)
    drive(by_id)
    # A typed alias that names an existing instance waits for the admin, saying so; an ID is
    # the admin's explicit choice of an instance and goes ahead.
    asking = by_alias.steps.get(key=STEP)
    assert by_alias.status == RunStatus.WAITING
    assert asking.plan["needs_confirmation"] is True
    assert "already exists" in render(asking.plan["warnings"][0])
    assert by_id.steps.get(key=STEP).plan["needs_confirmation"] is False
    admin_moves.step_confirm(user=None, run_id=by_alias.pk, step_key=STEP, enqueue=False)
    drive(by_alias)

    for run in (by_alias, by_id):
        assert run.status == RunStatus.SUCCEEDED, run.error
        step = run.steps.get(key=STEP)
        assert step.plan["changes"][0]["action"] == "adopt"
        assert step.outputs["instance_id"] == existing["Id"]
        assert step.outputs["instance_alias"] == existing["InstanceAlias"]
        assert step.outputs["adopted"] is True
        assert step.created_resources == []
        assert run.instance_id == existing["Id"]
        assert calls(run, "CreateInstance") == []


def test_it_stops_before_anything_changes_when_the_instance_is_not_saml(
    aws: Connection, connect: Any
) -> None:
    existing = active_instance(connect, "managed", identity="CONNECT_MANAGED")
    run = _run(aws, instance_alias=existing["InstanceAlias"])

    drive(run)

    assert run.status == RunStatus.FAILED
    assert run.error["step"] == STEP
    assert "CONNECT_MANAGED" in render(run.error["message"])
    assert "can't be changed after it is created" in render(run.error["message"])
    assert "Create a new instance" in render(run.error["hint"])
    assert run.steps.get(key="test_reads_run_instance").status == StepStatus.PENDING
    assert run.instance_id == ""
    assert {row.operation for row in calls(run)} <= READ_OPERATIONS
    assert not AuditEvent.objects.filter(run=run, kind=AuditKind.RUN_STATE, step_key=STEP)


def test_it_shows_the_status_reason_when_creation_fails(
    aws: Connection, connect: Any, sandbox: Sandbox, sandbox_knobs: Knobs
) -> None:
    sandbox_knobs.instance_creation_delay_s = 1.0
    run = _run(aws, instance_alias=unique_alias("fails"))
    _advance_until_waiting(run)
    [created] = run.steps.get(key=STEP).created_resources
    # The sandbox's test hook: this instance ends CREATION_FAILED instead of ACTIVE.
    reason = "The service-linked role could not be created."
    sandbox.apps["aws"].connect._instances[created["identifier"]].failure_reason = reason

    drive(run)

    assert run.status == RunStatus.FAILED
    assert run.error["code"] == "connect_instance_creation_failed"
    assert reason in render(run.error["message"])
    assert "Roll back" in render(run.error["hint"])


def test_it_rolls_back_only_the_instance_the_run_created(aws: Connection, connect: Any) -> None:
    adopted = active_instance(connect, "keep")
    creating = _run(aws, instance_alias=unique_alias("gone"))
    adopting = _run(aws, instance_alias=adopted["InstanceAlias"])
    drive(creating)
    drive(adopting)
    admin_moves.step_confirm(user=None, run_id=adopting.pk, step_key=STEP, enqueue=False)
    drive(adopting)
    created_id = creating.steps.get(key=STEP).outputs["instance_id"]

    for run in (creating, adopting):
        admin_moves.run_rollback(user=None, run_id=run.pk, enqueue=False)
        drive(run)
        assert run.status == RunStatus.ROLLED_BACK, run.error

    assert not _exists(connect, created_id)
    assert _exists(connect, adopted["Id"])
    assert creating.instance_id == ""
    assert adopting.instance_id == adopted["Id"]
    assert [row.operation for row in calls(adopting, "DeleteInstance")] == []


def test_it_explains_a_taken_alias(aws: Connection, connect: Any) -> None:
    taken = active_instance(connect, "taken")["InstanceAlias"]
    run = _run(aws, instance_alias=unique_alias("other"))
    ctx = context(run, STEP)

    with pytest.raises(PermanentError) as refused:
        # Past the lookup, as when the alias belongs to another account: only AWS knows.
        ConnectInstance()._create(ctx, ctx.aws("connect"), Wanted(taken, "", True, True))

    assert refused.value.code == "connect_instance_alias_taken"
    assert f"https://{taken}.my.connect.aws" in refused.value.message
    assert "must be unique across AWS" in refused.value.message
    assert "Type another alias" in refused.value.hint
    assert ctx.created_resources == []


@pytest.mark.parametrize(
    ("aws_message", "words", "hint_words"),
    [
        ("Too many instances.", "Amazon Connect instances per account", "Service Quotas"),
        (
            "There has been an excessive number of attempts at creating or deleting instances.",
            "100 instance creations and deletions per 30 days",
            "can't be raised",
        ),
    ],
)
def test_it_names_the_quota_create_instance_ran_into(
    aws_message: str, words: str, hint_words: str
) -> None:
    error = ClientError(
        {
            "Error": {"Code": "ServiceQuotaExceededException", "Message": aws_message},
            "ResponseMetadata": {"HTTPStatusCode": 402},
        },
        "CreateInstance",
    )

    explained = explain_create_error(map_aws_error(error), "sales")

    assert words in explained.message
    assert hint_words in explained.hint


def test_it_waits_instead_of_failing_while_an_adopted_instance_is_still_creating(
    aws: Connection, connect: Any, sandbox_knobs: Knobs
) -> None:
    # Long enough to outlast the setup on a loaded machine; nothing waits for it to end.
    sandbox_knobs.instance_creation_delay_s = 120.0
    created = connect.create_instance(
        IdentityManagementType="SAML",
        InstanceAlias=unique_alias("young"),
        InboundCallsEnabled=True,
        OutboundCallsEnabled=True,
    )
    run = _run(aws, instance_id=created["Id"])

    with pytest.raises(WaitForCloud) as waiting:
        ConnectInstance().apply(context(run, STEP))

    assert "so far" in str(waiting.value.reason)


@pytest.mark.worker
def test_it_converges_on_one_instance_after_the_worker_is_killed_between_create_and_record(
    celery_worker: WorkerProcess, aws: Connection, connect: Any
) -> None:
    alias = unique_alias("killed")
    run = admin_moves.run_create(
        user=None,
        flow_key=PAUSING_FLOW,
        region=REGION,
        aws_connection_id=aws.pk,
        inputs={"instance_alias": alias, "pause_after_create_s": 60},
    )
    runner_step = connect_instance_doubles.PausingConnectInstance.key
    paused = engine_doubles.paused_path(run.pk, runner_step)
    wait_for(paused.exists, RUN_TIMEOUT_S, "the step to pause after CreateInstance")
    victim = int(paused.read_text())
    assert victim in celery_worker.pool_pids()
    assert run.steps.get(key=runner_step).created_resources == []

    os.kill(victim, signal.SIGKILL)
    wait_until_at_rest(run, celery_worker)

    assert run.status == RunStatus.SUCCEEDED, run.error
    [summary] = _instances_with_alias(connect, alias)
    step = run.steps.get(key=runner_step)
    assert step.created_resources == [
        {"resource_type": "connect_instance", "identifier": summary["Id"], "alias": alias}
    ]
    assert step.outputs["adopted"] is False
    assert run.instance_id == summary["Id"]
    assert run.steps.get(key="test_reads_run_instance").outputs["instance_id"] == summary["Id"]
    # The killed attempt's CreateInstance has a started row and no finished one.
    started = [row for row in calls(run, "CreateInstance") if row.kind == AuditKind.CALL_STARTED]
    assert len(started) == 1
