"""okta_role_listing_user against the sandbox: the IAM user, its policy and key made once, the
secret kept out of plans, outputs, audit rows and logs, shown once on its page, Okta's use of the
key seen by verify, and rollback removing all of it."""

from __future__ import annotations

import json
import logging
from typing import Any

import boto3
import pytest
from django.urls import reverse

from provisioning.messages import render
from provisioning.models import AuditEvent, AuditKind, RunStatus, StepRun
from provisioning.steps.okta_role_listing_user import (
    POLICY_NAME,
    USER_PATH,
    OktaRoleListingUser,
    user_name,
)
from sandbox.server import Sandbox
from tests.engine.runs import drive
from tests.sandbox.aws_clients import aws_client
from tests.steps import aws_step_runs, test_federation_role
from tests.steps.aws_step_runs import context, start_run, unique

aws_connection = aws_step_runs.aws_connection
# moto's own server with no sandbox layer (tests/steps/test_federation_role.py).
plain_moto = test_federation_role.plain_moto

STEP = OktaRoleListingUser()
KEY = "okta_role_listing_user"


@pytest.fixture
def iam(sandbox: Sandbox) -> Any:
    return aws_client(sandbox, "iam")


def okta_run(aws_connection: Any) -> Any:
    return start_run(KEY, aws_connection, instance_alias=unique("okta"))


def use_key_as_okta(sandbox: Sandbox, access_key_id: str, secret: str) -> None:
    """What Okta's role download does with the key: iam:ListRoles, iam:ListAccountAliases."""
    endpoints = sandbox.endpoints
    client = boto3.client(
        "iam",
        endpoint_url=endpoints["aws_endpoint_url"],
        region_name=endpoints["aws_region"],
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret,
        verify=endpoints["ca_bundle"],
    )
    client.list_roles()
    client.list_account_aliases()


def test_it_creates_the_user_policy_and_key_once_across_two_applies(
    aws_connection: Any, iam: Any
) -> None:
    run = okta_run(aws_connection)
    name = user_name(context(run, KEY))

    plan = STEP.plan(context(run, KEY))
    first = STEP.apply(context(run, KEY))
    second = STEP.apply(context(run, KEY))

    assert [c.action for c in plan.changes] == ["create", "create", "create"]
    assert first == second
    assert first.user_name == name
    user = iam.get_user(UserName=name)["User"]
    assert user["Path"] == USER_PATH
    keys = iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
    assert [key["AccessKeyId"] for key in keys] == [first.access_key_id]
    policy = iam.get_user_policy(UserName=name, PolicyName=POLICY_NAME)["PolicyDocument"]
    actions = policy["Statement"][0]["Action"]
    assert sorted(actions) == ["iam:ListAccountAliases", "iam:ListRoles"]
    replan = STEP.plan(context(run, KEY))
    assert [c.action for c in replan.changes] == ["adopt", "nothing", "nothing"]


def test_it_keeps_the_secret_out_of_plan_outputs_audit_rows_and_logs(
    aws_connection: Any, caplog: pytest.LogCaptureFixture
) -> None:
    run = okta_run(aws_connection)
    caplog.set_level(logging.DEBUG)

    drive(run)  # the real runner: plan, apply, verify, stored as the page reads them

    step = StepRun.objects.get(run=run, key=KEY)
    assert run.status == RunStatus.SUCCEEDED, run.error
    ((access_key_id, secret),) = step.secrets.items()
    assert len(secret) >= 20
    assert step.outputs["access_key_id"] == access_key_id
    stored = json.dumps([step.plan, step.outputs, step.error, step.inputs, run.inputs])
    assert secret not in stored
    assert secret not in step.secret_ciphertext
    rows = AuditEvent.objects.filter(run=run)
    assert rows.filter(operation="CreateAccessKey").exists()
    audit_text = json.dumps(
        [[r.request, r.response, r.old_value, r.new_value, r.message] for r in rows]
    )
    assert secret not in audit_text
    assert secret not in caplog.text
    # Not used yet: shown on the step, without failing it.
    verify = {render(finding["check"]): finding for finding in step.outputs["verify"]}
    assert verify["Okta has used the key"]["ok"] is False
    assert verify["Okta has used the key"]["blocking"] is False


def test_it_sees_okta_use_the_key(aws_connection: Any, sandbox: Sandbox) -> None:
    run = okta_run(aws_connection)
    STEP.apply(context(run, KEY))
    before = {render(f.check): f for f in STEP.verify(context(run, KEY))}
    ((access_key_id, secret),) = StepRun.objects.get(run=run, key=KEY).secrets.items()

    use_key_as_okta(sandbox, access_key_id, secret)

    after = {render(f.check): f for f in STEP.verify(context(run, KEY))}
    assert before["Okta has used the key"].ok is False
    assert after["Okta has used the key"].ok is True
    assert "last used" in render(after["Okta has used the key"].detail)


def test_it_shows_the_secret_once(aws_connection: Any, admin_client: Any) -> None:
    run = okta_run(aws_connection)
    STEP.apply(context(run, KEY))
    ((access_key_id, secret),) = StepRun.objects.get(run=run, key=KEY).secrets.items()
    url = reverse("step_secret", args=[run.pk, KEY])

    assert admin_client.get(url).status_code == 405
    first = admin_client.post(url)
    second = admin_client.post(url)

    assert first.status_code == 200
    assert secret in first.content.decode()
    assert access_key_id in first.content.decode()
    assert "Enable API integration" in first.content.decode()
    assert "no-store" in first["Cache-Control"]
    assert second.status_code == 200
    assert secret not in second.content.decode()
    assert "can't be shown again" in second.content.decode().replace("&#x27;", "'")
    shown = AuditEvent.objects.filter(run=run, kind=AuditKind.SECRET_REVEALED)
    assert shown.count() == 1
    assert secret not in json.dumps([[r.old_value, r.new_value, r.message] for r in shown])


def test_it_rotates_a_shown_key_once(aws_connection: Any, admin_client: Any, iam: Any) -> None:
    run = okta_run(aws_connection)
    old = STEP.apply(context(run, KEY)).access_key_id
    admin_client.post(reverse("step_secret", args=[run.pk, KEY]))

    new = STEP.apply(context(run, KEY, rotate_key=True)).access_key_id
    again = STEP.apply(context(run, KEY, rotate_key=True)).access_key_id

    assert new != old
    assert again == new
    keys = iam.list_access_keys(UserName=user_name(context(run, KEY)))["AccessKeyMetadata"]
    assert [key["AccessKeyId"] for key in keys] == [new]
    step = StepRun.objects.get(run=run, key=KEY)
    assert list(step.secrets) == [new]
    assert step.secret_revealed_at is None  # the new secret can be shown once


def test_it_replaces_a_key_whose_secret_a_crash_lost(aws_connection: Any, iam: Any) -> None:
    run = okta_run(aws_connection)
    STEP.apply(context(run, KEY))
    name = user_name(context(run, KEY))
    # As if the worker died after CreateAccessKey answered, before the secret was stored.
    orphan = iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]
    (stored,) = StepRun.objects.get(run=run, key=KEY).secrets
    iam.delete_access_key(UserName=name, AccessKeyId=stored)

    outputs = STEP.apply(context(run, KEY))

    keys = [k["AccessKeyId"] for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]]
    assert keys == [outputs.access_key_id]
    assert orphan not in keys
    assert list(StepRun.objects.get(run=run, key=KEY).secrets) == keys


def test_it_rolls_back_the_key_policy_and_user(aws_connection: Any, iam: Any) -> None:
    run = okta_run(aws_connection)
    STEP.apply(context(run, KEY))
    name = user_name(context(run, KEY))

    STEP.rollback(context(run, KEY))
    STEP.rollback(context(run, KEY))

    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_user(UserName=name)


def test_it_leaves_a_user_it_did_not_create(aws_connection: Any, iam: Any) -> None:
    run = okta_run(aws_connection)
    name = user_name(context(run, KEY))
    iam.create_user(UserName=name, Path=USER_PATH)
    existing_key = iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]

    plan = STEP.plan(context(run, KEY))
    outputs = STEP.apply(context(run, KEY))
    STEP.rollback(context(run, KEY))

    assert [c.action for c in plan.changes] == ["adopt", "create", "adopt"]
    assert plan.warnings
    assert outputs.access_key_id == existing_key
    assert iam.get_user(UserName=name)["User"]["UserName"] == name
    keys = [k["AccessKeyId"] for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]]
    assert keys == [existing_key]
    # The policy this run added is gone again.
    assert iam.list_user_policies(UserName=name)["PolicyNames"] == []


def test_it_works_against_plain_moto(plain_moto: dict[str, Any]) -> None:
    endpoints = plain_moto["endpoints"]
    iam = boto3.client(
        "iam",
        endpoint_url=endpoints["aws_endpoint_url"],
        region_name=endpoints["aws_region"],
        aws_access_key_id=endpoints["aws_access_key_id"],
        aws_secret_access_key=endpoints["aws_secret_access_key"],
    )
    run = okta_run(plain_moto["connection"])
    name = user_name(context(run, KEY))

    first = STEP.apply(context(run, KEY))
    assert STEP.apply(context(run, KEY)) == first
    ((access_key_id, secret),) = StepRun.objects.get(run=run, key=KEY).secrets.items()
    unused = {render(f.check): f.ok for f in STEP.verify(context(run, KEY))}
    boto3.client(
        "iam",
        endpoint_url=endpoints["aws_endpoint_url"],
        region_name=endpoints["aws_region"],
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret,
    ).list_roles()
    used = {render(f.check): f.ok for f in STEP.verify(context(run, KEY))}
    STEP.rollback(context(run, KEY))

    assert unused["Okta has used the key"] is False
    assert used["Okta has used the key"] is True
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_user(UserName=name)
