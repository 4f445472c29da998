"""The preflight step against the sandbox: who the credentials are, whether Connect is offered in
the region, and exactly which of the flow's actions a limited identity lacks."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from provisioning.connections.sandbox_registration import register_sandbox_connections
from provisioning.errors import PermanentError
from provisioning.flows import Flow, register_flow
from provisioning.messages import render, to_json
from provisioning.models import AuditEvent, AuditKind, Cloud, Connection, SetupRun
from provisioning.steps.preflight import (
    ACTIONS_BY_STEP,
    Preflight,
    PreflightForm,
    PreflightOutputs,
    _Checks,
    flow_actions_for,
    principal_for,
)
from sandbox.server import AWS_ACCOUNT_ID, Sandbox
from tests.sandbox.aws_clients import aws_client, unique_alias
from tests.steps.aws_step_runs import context, start_run

FLOW = "test_preflight_flow"
register_flow(Flow(key=FLOW, idp="entra", title="Test setup: preflight", step_keys=("preflight",)))
# The AWS steps of an SSO setup: what a limited identity is checked against by default.
SETUP_STEPS = (
    "preflight",
    "connect_instance",
    "saml_provider",
    "federation_policy",
    "federation_role",
)
SETUP_FLOW = "test_preflight_setup_flow"
register_flow(
    Flow(
        key=SETUP_FLOW, idp="entra", title="Test setup: preflight of a setup", step_keys=SETUP_STEPS
    )
)
# The only calls a preflight may make: the connection's sign-in (AssumeRole) and reads (the
# policy simulation is one).
READ_PREFIXES = ("AssumeRole", "Get", "List", "Describe", "Simulate")

# What the limited identities may do: enough to run the preflight and read Connect instances.
ALLOWED = [
    "sts:GetCallerIdentity",
    "iam:GetRole",
    "connect:ListInstances",
    "connect:DescribeInstance",
]
FLOW_ACTIONS = [
    "connect:CreateInstance",
    "connect:DescribeInstance",
    "connect:ListInstances",
    "iam:CreateSAMLProvider",
]


@pytest.fixture
def sandbox_mode(sandbox: Sandbox, settings: Any) -> Sandbox:
    settings.WIZARD_MODE = "sandbox"
    settings.SANDBOX_FILE = sandbox.state_dir / "sandbox.json"
    return sandbox


@pytest.fixture
def iam(sandbox: Sandbox) -> Any:
    return aws_client(sandbox, "iam")


def _policy(actions: list[str]) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
        }
    )


def _limited_role(iam: Any, actions: list[str], path: str = "/") -> str:
    """A role the sandbox's keys may assume, allowed `actions` only; returns its ARN."""
    name = unique_alias("preflight")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{AWS_ACCOUNT_ID}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(RoleName=name, PolicyName="limited", PolicyDocument=_policy(actions))
    return role["Role"]["Arn"]


def _assume_role_connection(role_arn: str) -> Connection:
    """A sandbox connection that signs in as `role_arn` (the base keys are the sandbox's)."""
    return Connection.objects.create(
        cloud=Cloud.AWS,
        name=f"limited {role_arn.rsplit('/', 1)[1]}",
        is_sandbox=True,
        config={"method": "assume_role", "role_arn": role_arn},
    )


def _sandbox_connection(sandbox_mode: Sandbox) -> Connection:
    registered = register_sandbox_connections(sandbox_file=sandbox_mode.state_dir / "sandbox.json")
    return next(connection for connection in registered if connection.cloud == Cloud.AWS)


@pytest.mark.django_db
def test_it_lists_exactly_the_actions_a_limited_role_lacks(sandbox_mode: Sandbox, iam: Any) -> None:
    role_arn = _limited_role(iam, [*ALLOWED, "iam:SimulatePrincipalPolicy"], path="/team/")
    run = start_run("preflight", _assume_role_connection(role_arn), flow_key=FLOW)
    ctx = context(run, "preflight", flow_actions=FLOW_ACTIONS)

    with pytest.raises(PermanentError) as planned:
        Preflight().plan(ctx)
    with pytest.raises(PermanentError) as applied:
        Preflight().apply(ctx)

    for refusal in (planned.value, applied.value):
        assert refusal.code == "preflight_missing_permissions"
        # The session's ARN has no path; the role's full ARN, found by name, is what was checked.
        assert refusal.message == (
            f"{role_arn} lacks 2 permissions this setup needs: "
            "connect:CreateInstance, iam:CreateSAMLProvider."
        )


@pytest.mark.django_db
def test_it_reports_the_identity_region_and_checked_actions_when_nothing_is_missing(
    sandbox_mode: Sandbox, iam: Any
) -> None:
    role_arn = _limited_role(iam, [*ALLOWED, "iam:SimulatePrincipalPolicy", "iam:*", "connect:*"])
    run = start_run("preflight", _assume_role_connection(role_arn), flow_key=FLOW)
    ctx = context(run, "preflight", flow_actions="connect:CreateInstance\niam:CreateSAMLProvider")

    plan = Preflight().plan(ctx)
    applied = Preflight().apply(ctx)
    # Typed, and stored under the keys runs stored before it was.
    outputs = applied.to_json()

    assert PreflightOutputs.from_json(outputs) == applied
    role_name = role_arn.rsplit("/", 1)[1]
    assert outputs["caller_arn"].startswith(
        f"arn:aws:sts::{AWS_ACCOUNT_ID}:assumed-role/{role_name}/"
    )
    assert outputs == {
        "account_id": AWS_ACCOUNT_ID,
        "caller_arn": outputs["caller_arn"],
        "principal_arn": role_arn,
        "region": "ap-northeast-1",
        "partition": "aws",
        "connect_available": True,
        "permission_check": "simulated",
        "checked_actions": 2,
        "unchecked_actions": 0,
        "missing_actions": [],
        "warnings": [],
    }
    assert plan.is_noop
    assert [change.resource_type for change in plan.changes] == [
        "aws_identity",
        "connect_region",
        "iam_permissions",
    ]


@pytest.mark.django_db
def test_it_proves_what_it_can_by_reads_and_says_the_check_is_partial(
    sandbox_mode: Sandbox, iam: Any
) -> None:
    role_arn = _limited_role(iam, ALLOWED)
    run = start_run("preflight", _assume_role_connection(role_arn), flow_key=FLOW)
    ctx = context(run, "preflight", flow_actions=FLOW_ACTIONS)

    plan = Preflight().plan(ctx)
    outputs = Preflight().apply(ctx).to_json()

    # ListInstances and DescribeInstance answered; CreateInstance and CreateSAMLProvider have no
    # harmless read: they are counted as unchecked, never as "checked, nothing missing".
    assert (outputs["permission_check"], outputs["checked_actions"]) == ("partial", 2)
    assert (outputs["unchecked_actions"], outputs["missing_actions"]) == (2, [])
    [stored] = outputs["warnings"]
    assert to_json(stored) == to_json(plan.warnings[0])
    warning = render(stored)
    assert warning.startswith(f"Partial check: {role_arn} may not call iam:SimulatePrincipalPolicy")
    assert "2 of the 4 actions were proved by harmless reads; the other 2 were not" in warning
    _assert_only_reads(run)


def _assert_only_reads(run: SetupRun) -> None:
    operations = set(
        AuditEvent.objects.filter(run=run, kind=AuditKind.CALL_STARTED).values_list(
            "operation", flat=True
        )
    )
    assert operations, "the preflight made no audited call"
    assert all(operation.startswith(READ_PREFIXES) for operation in operations), operations


def _stopped_preflight(role_arn: str) -> tuple[PermanentError, SetupRun]:
    """Plan and apply of a setup's preflight as `role_arn`: both must stop with the same error."""
    run = start_run("preflight", _assume_role_connection(role_arn), flow_key=SETUP_FLOW)
    ctx = context(run, "preflight")
    with pytest.raises(PermanentError) as planned:
        Preflight().plan(ctx)
    with pytest.raises(PermanentError) as applied:
        Preflight().apply(ctx)
    assert planned.value.message == applied.value.message
    assert planned.value.code == "preflight_missing_permissions"
    return planned.value, run


@pytest.mark.django_db
def test_it_stops_an_identity_that_may_not_simulate_with_what_reads_proved_missing(
    sandbox_mode: Sandbox, iam: Any
) -> None:
    role_arn = _limited_role(iam, ["connect:DescribeInstance", "iam:GetPolicy"])

    refusal, run = _stopped_preflight(role_arn)

    # sts:GetCallerIdentity needs no permission: never listed, though no policy allows it.
    assert refusal.message.startswith(
        f"{role_arn} lacks 5 permissions this setup needs: connect:ListInstances, "
        "iam:GetRole, iam:GetSAMLProvider, iam:ListAttachedRolePolicies, iam:ListSAMLProviders. "
        "This is a partial check: "
    )
    assert "could not check the other actions (" in refusal.message
    assert "(s)" not in refusal.message
    _assert_only_reads(run)


@pytest.mark.django_db
def test_it_stops_an_identity_missing_connect_rights_before_any_change(
    sandbox: Sandbox, sandbox_mode: Sandbox, iam: Any
) -> None:
    role_arn = _limited_role(iam, ["iam:*", "connect:ListInstances", "connect:DescribeInstance"])

    refusal, run = _stopped_preflight(role_arn)

    assert refusal.message == (
        f"{role_arn} lacks 3 permissions this setup needs: connect:CreateInstance, "
        "connect:DeleteInstance, connect:TagResource."
    )
    _assert_only_reads(run)
    # The sandbox agrees: the role's own session is refused what the preflight named.
    session = aws_client(sandbox, "sts").assume_role(RoleArn=role_arn, RoleSessionName="check")
    credentials = session["Credentials"]
    connect = boto3.client(
        "connect",
        endpoint_url=sandbox.endpoints["aws_endpoint_url"],
        region_name=sandbox.endpoints["aws_region"],
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        verify=sandbox.endpoints["ca_bundle"],
    )
    with pytest.raises(ClientError) as refused:
        connect.create_instance(
            IdentityManagementType="SAML",
            InstanceAlias=unique_alias("refused"),
            InboundCallsEnabled=True,
            OutboundCallsEnabled=True,
        )
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"


@pytest.mark.django_db
def test_it_stops_an_identity_missing_iam_rights_before_any_change(
    sandbox_mode: Sandbox, iam: Any
) -> None:
    role_arn = _limited_role(
        iam, ["connect:*", "iam:SimulatePrincipalPolicy", "iam:Get*", "iam:List*"]
    )

    refusal, run = _stopped_preflight(role_arn)

    writes = sorted(
        action
        for action in flow_actions_for(SETUP_STEPS)
        if action.startswith("iam:")
        and not action.startswith(("iam:Get", "iam:List", "iam:Simulate"))
    )
    assert "iam:CreateRole" in writes
    assert refusal.message == (
        f"{role_arn} lacks {len(writes)} permissions this setup needs: {', '.join(writes)}."
    )
    _assert_only_reads(run)


@pytest.mark.django_db
def test_it_simulates_an_iam_user_with_its_group_policies(sandbox_mode: Sandbox, iam: Any) -> None:
    name = unique_alias("preflight-user")
    user_arn = iam.create_user(UserName=name)["User"]["Arn"]
    iam.create_group(GroupName=name)
    iam.add_user_to_group(GroupName=name, UserName=name)
    iam.put_group_policy(GroupName=name, PolicyName="read", PolicyDocument=_policy(ALLOWED))
    iam.put_user_policy(
        UserName=name, PolicyName="saml", PolicyDocument=_policy(["iam:CreateSAMLProvider"])
    )
    iam.create_access_key(UserName=name)
    run = start_run("preflight", _sandbox_connection(sandbox_mode), flow_key=FLOW)

    missing = _Checks()._missing(context(run, "preflight"), user_arn, FLOW_ACTIONS)

    assert principal_for(user_arn) == ("user", user_arn)
    assert missing == ["connect:CreateInstance"]


@pytest.mark.django_db
def test_it_checks_every_aws_action_of_the_flow_by_default(sandbox_mode: Sandbox) -> None:
    run = start_run("preflight", _sandbox_connection(sandbox_mode), flow_key=FLOW)

    outputs = Preflight().apply(context(run, "preflight")).to_json()

    # The sandbox's own keys are no IAM user or role: nothing to simulate, and it says so.
    assert outputs["caller_arn"] == f"arn:aws:sts::{AWS_ACCOUNT_ID}:user/moto"
    assert outputs["principal_arn"] == ""
    assert "were not checked" in render(outputs["warnings"][0])
    assert flow_actions_for(("preflight", "connect_instance", "test_marker_one")) == sorted(
        {*ACTIONS_BY_STEP["preflight"], *ACTIONS_BY_STEP["connect_instance"]}
    )


@pytest.mark.parametrize(
    ("region", "words"),
    [
        ("eu-north-1", "Amazon Connect is not offered in eu-north-1."),
        ("mars-east-1", "“mars-east-1” is not an AWS region the wizard knows."),
    ],
)
@pytest.mark.django_db
def test_it_stops_in_a_region_without_connect_before_any_call(
    sandbox_mode: Sandbox, region: str, words: str
) -> None:
    run = start_run("preflight", _sandbox_connection(sandbox_mode), flow_key=FLOW)
    ctx = context(run, "preflight")
    ctx.region = region

    with pytest.raises(PermanentError) as refused:
        Preflight().plan(ctx)

    assert refused.value.message == words
    assert "ap-northeast-1" in refused.value.hint


@pytest.mark.parametrize(
    ("arn", "expected"),
    [
        (
            "arn:aws:sts::123456789012:assumed-role/Admin/alice",
            ("assumed-role", "arn:aws:iam::123456789012:role/Admin"),
        ),
        (
            "arn:aws-cn:iam::123456789012:role/x/y",
            ("role", "arn:aws-cn:iam::123456789012:role/x/y"),
        ),
        ("arn:aws:iam::123456789012:root", ("root", "")),
        ("arn:aws:sts::123456789012:federated-user/bob", ("federated-user", "")),
    ],
)
def test_it_maps_each_kind_of_caller_to_what_can_be_simulated(
    arn: str, expected: tuple[str, str]
) -> None:
    assert principal_for(arn) == expected


def test_it_refuses_text_that_is_not_an_iam_action() -> None:
    form = PreflightForm(data={"flow_actions": "connect:CreateInstance, CreateRole"})

    assert not form.is_valid()
    assert "These are not IAM actions: CreateRole." in str(form.errors)
    valid = PreflightForm(data={"flow_actions": "iam:CreateRole\nconnect:CreateInstance"})
    assert valid.is_valid()
    assert valid.cleaned_data["flow_actions"] == ["connect:CreateInstance", "iam:CreateRole"]
