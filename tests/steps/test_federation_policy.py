"""federation_policy against the sandbox: its two policy forms, one policy however often apply
runs, a new default version (with the diff shown) when the form changes, IAM's five-version limit
respected, and rollback removing only what the run created."""

from __future__ import annotations

import json
from typing import Any

import pytest

from provisioning.models import Connection
from provisioning.steps.federation_policy import (
    MAX_POLICY_VERSIONS,
    FederationPolicyOutputs,
    FederationPolicyStep,
)
from sandbox.server import AWS_ACCOUNT_ID, Sandbox
from tests.sandbox.aws_clients import aws_client
from tests.steps import aws_step_runs
from tests.steps.aws_step_runs import REGION, unique
from tests.steps.iam_runs import applied_and_verified, iam_run, policies_named, step_context

# The IAM step tests' fixtures (tests/steps/aws_step_runs.py).
aws_connection = aws_step_runs.aws_connection
instance = aws_step_runs.instance
connect = aws_step_runs.connect

STEP = FederationPolicyStep()
KEY = "federation_policy"


@pytest.fixture
def iam(sandbox: Sandbox) -> Any:
    return aws_client(sandbox, "iam")


def _versions(iam: Any, arn: str) -> list[dict[str, Any]]:
    return iam.list_policy_versions(PolicyArn=arn)["Versions"]


def _default_document(iam: Any, arn: str) -> dict[str, Any]:
    default = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    return iam.get_policy_version(PolicyArn=arn, VersionId=default)["PolicyVersion"]["Document"]


def test_it_creates_the_instance_condition_policy_once(
    aws_connection: Connection, instance: dict[str, Any], iam: Any
) -> None:
    run = iam_run(aws_connection, instance)
    name = f"ConnectSSO-{instance['InstanceAlias']}-GetFederationToken"

    plan = STEP.plan(step_context(run, KEY))
    first = STEP.apply(step_context(run, KEY))
    second = STEP.apply(step_context(run, KEY))

    (change,) = plan.changes
    assert (change.action, change.name) == ("create", name)
    assert first == second
    assert first.policy_arn == f"arn:aws:iam::{AWS_ACCOUNT_ID}:policy/{name}"
    assert json.loads(change.details["policy_document"]) == json.loads(first.policy_document)
    (policy,) = policies_named(iam, name)
    assert len(_versions(iam, policy["Arn"])) == 1
    (statement,) = _default_document(iam, policy["Arn"])["Statement"]
    assert statement["Action"] == "connect:GetFederationToken"
    assert statement["Resource"] == "*"
    assert statement["Condition"] == {"StringEquals": {"connect:InstanceId": instance["Id"]}}
    assert STEP.plan(step_context(run, KEY)).changes[0].action == "nothing"
    assert all(finding.ok for finding in STEP.verify(step_context(run, KEY)))


@pytest.mark.parametrize("other_form_first", [False, True], ids=["created", "new_version"])
def test_its_verify_reads_back_the_version_apply_made_default_without_getpolicy(
    aws_connection: Connection, instance: dict[str, Any], iam: Any, other_form_first: bool
) -> None:
    run = iam_run(aws_connection, instance)
    if other_form_first:
        # The policy exists with the other form: apply adds a version and makes it the default.
        STEP.apply(step_context(run, KEY, policy_form="user_resource"))

    ctx, outputs, findings, verify_read = applied_and_verified(STEP, run, KEY)

    assert all(finding.ok for finding in findings), findings
    # The write answered with the ARN and the default version: only the document is read back.
    assert verify_read == ["GetPolicyVersion"]
    assert isinstance(outputs, FederationPolicyOutputs)
    # A default version set since is seen: verify reads whether that version is still it.
    other = STEP.plan(step_context(run, KEY, policy_form="user_resource")).changes[0]
    iam.create_policy_version(
        PolicyArn=outputs.policy_arn,
        PolicyDocument=other.details["policy_document"],
        SetAsDefault=True,
    )
    (finding,) = STEP.verify(ctx)
    assert not finding.ok


def test_it_shows_the_diff_and_adds_a_default_version_for_the_other_form(
    aws_connection: Connection, instance: dict[str, Any], iam: Any
) -> None:
    run = iam_run(aws_connection, instance, policy_name=unique("FormSwitch"))
    arn = STEP.apply(step_context(run, KEY)).policy_arn

    plan = STEP.plan(step_context(run, KEY, policy_form="user_resource"))
    STEP.apply(step_context(run, KEY, policy_form="user_resource"))

    (change,) = plan.changes
    assert change.action == "update"
    assert '-      "Condition": {' in change.diff
    user_arn = (
        f"arn:aws:connect:{REGION}:{AWS_ACCOUNT_ID}:instance/{instance['Id']}/user/${{aws:userid}}"
    )
    assert f'+      "Resource": "{user_arn}"' in change.diff
    assert len(_versions(iam, arn)) == 2
    assert _default_document(iam, arn)["Statement"][0]["Resource"] == user_arn
    assert all(f.ok for f in STEP.verify(step_context(run, KEY, policy_form="user_resource")))
    assert not all(f.ok for f in STEP.verify(step_context(run, KEY)))


def test_it_makes_room_when_the_policy_has_five_versions(
    aws_connection: Connection, instance: dict[str, Any], iam: Any
) -> None:
    run = iam_run(aws_connection, instance, policy_name=unique("Versions"))
    arn = STEP.apply(step_context(run, KEY)).policy_arn
    for number in range(MAX_POLICY_VERSIONS - 1):
        document = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": f"Old{number}",
                    "Effect": "Deny",
                    "Action": "connect:GetFederationToken",
                    "Resource": "*",
                }
            ],
        }
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(document))
    before = {version["VersionId"] for version in _versions(iam, arn)}

    STEP.apply(step_context(run, KEY, policy_form="user_resource"))

    after = {version["VersionId"] for version in _versions(iam, arn)}
    assert len(after) == MAX_POLICY_VERSIONS
    # The oldest non-default version (v2; v1 was the default) made room for the new one.
    assert before - after == {"v2"}
    assert all(f.ok for f in STEP.verify(step_context(run, KEY, policy_form="user_resource")))


def test_it_rolls_back_its_policy_and_only_its_versions_of_an_adopted_one(
    aws_connection: Connection, instance: dict[str, Any], iam: Any
) -> None:
    adopted_name = unique("AdoptedPolicy")
    original = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "connect:DescribeInstance", "Resource": "*"}],
    }
    adopted_arn = iam.create_policy(PolicyName=adopted_name, PolicyDocument=json.dumps(original))[
        "Policy"
    ]["Arn"]
    adopting = iam_run(aws_connection, instance, policy_name=adopted_name)
    creating = iam_run(aws_connection, instance, policy_name=unique("CreatedPolicy"))
    STEP.apply(step_context(adopting, KEY))
    created_arn = STEP.apply(step_context(creating, KEY)).policy_arn

    STEP.rollback(step_context(adopting, KEY))
    STEP.rollback(step_context(creating, KEY))
    STEP.rollback(step_context(creating, KEY))

    assert [version["VersionId"] for version in _versions(iam, adopted_arn)] == ["v1"]
    assert _default_document(iam, adopted_arn) == original
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_policy(PolicyArn=created_arn)


def test_a_repair_adopts_a_policy_written_by_hand_without_rewriting_it(
    aws_connection: Connection, instance: dict[str, Any], iam: Any
) -> None:
    name = unique("HandMadeFederation")
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ByHand", "Effect": "Allow", "Action": "connect:GetFederationToken",
             "Resource": "*"},
            {"Sid": "More", "Effect": "Allow", "Action": "connect:DescribeUser", "Resource": "*"},
        ],
    }  # fmt: skip
    arn = iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(document))["Policy"]["Arn"]
    setup = iam_run(aws_connection, instance, policy_name=name)
    repair = iam_run(aws_connection, instance, policy_name=name, keep_policy_document=True)

    rewrites = STEP.plan(step_context(setup, KEY))
    plan = STEP.plan(step_context(repair, KEY))
    outputs = STEP.apply(step_context(repair, KEY))
    found = STEP.verify(step_context(repair, KEY))

    assert [change.action for change in rewrites.changes] == ["update"]
    assert [(change.action, change.details) for change in plan.changes] == [
        ("adopt", {"policy_arn": arn})
    ]
    assert [version["VersionId"] for version in _versions(iam, arn)] == ["v1"]
    assert json.loads(outputs.policy_document) == document
    assert all(finding.ok for finding in found)
