"""phone_prerequisites against the sandbox: the document checklist in the plan and the admin's
confirmation whatever the quotas allow, quota requests filed once and tracked without waiting,
numbers claimed once after approval (waiting out the asynchronous claim), and rollback releasing
exactly those numbers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from provisioning.errors import PermanentError, WaitForCloud
from provisioning.messages import render
from provisioning.steps.phone_prerequisites import (
    CONCURRENT_CALLS_QUOTA,
    PHONE_NUMBERS_QUOTA,
    PhonePrerequisites,
    PhonePrerequisitesForm,
    PhonePrerequisitesOutputs,
)
from sandbox.knobs import Knobs
from sandbox.server import Sandbox
from tests.sandbox.aws_clients import aws_client
from tests.steps import aws_step_runs
from tests.steps.aws_step_runs import context, start_run

# The AWS step tests' fixtures (tests/steps/aws_step_runs.py).
aws_connection = aws_step_runs.aws_connection
instance = aws_step_runs.instance
connect = aws_step_runs.connect

STEP = PhonePrerequisites()
KEY = "phone_prerequisites"
# More numbers than Connect's default quota (5 per instance) and more calls than its default (10).
WANTED = {
    "did_numbers": 4,
    "toll_free_numbers": 2,
    "concurrent_calls": 20,
    "documents_confirmed": True,
}
# How long a test waits for the sandbox's asynchronous claims (its knob is short in tests).
CLAIM_WAIT_S = 10.0


@pytest.fixture
def quotas(sandbox: Sandbox) -> Iterator[Any]:
    """The sandbox's Service Quotas, reviewing nothing by itself: the test approves."""
    service_quotas = sandbox.apps["aws"].service_quotas
    saved = (service_quotas.review.case_opened_after_s, service_quotas.review.approved_after_s)
    service_quotas.review.case_opened_after_s = service_quotas.review.approved_after_s = 1e9
    yield service_quotas
    service_quotas.review.case_opened_after_s, service_quotas.review.approved_after_s = saved


def requests_for(sandbox: Sandbox, code: str, arn: str) -> list[dict[str, Any]]:
    history = aws_client(
        sandbox, "service-quotas"
    ).list_requested_service_quota_change_history_by_quota(ServiceCode="connect", QuotaCode=code)[
        "RequestedQuotas"
    ]
    return [r for r in history if r.get("QuotaContext", {}).get("ContextId") == arn]


def numbers_of(connect: Any, arn: str) -> list[str]:
    listed = connect.list_phone_numbers_v2(TargetArn=arn)["ListPhoneNumbersSummaryList"]
    return sorted(summary["PhoneNumber"] for summary in listed)


def phone_run(connection: Any, target: dict[str, Any], **inputs: Any) -> Any:
    return start_run(KEY, connection, instance_id=target["Id"], inputs={**WANTED, **inputs})


def apply_until_claimed(run: Any) -> PhonePrerequisitesOutputs:
    """Apply as the engine does: again after each WaitForCloud, until the claims settle."""
    deadline = time.monotonic() + CLAIM_WAIT_S
    while True:
        try:
            return STEP.apply(context(run, KEY))
        except WaitForCloud:
            assert time.monotonic() < deadline, "the claims never settled"
            time.sleep(0.1)


def test_it_asks_for_its_inputs_and_shows_the_document_checklist(
    aws_connection: Any, instance: dict[str, Any], quotas: Any
) -> None:
    empty = start_run(KEY, aws_connection, instance_id=instance["Id"])
    assert STEP.plan(context(empty, KEY)).needs_input

    plan = STEP.plan(context(phone_run(aws_connection, instance), KEY))

    checklist = next(c for c in plan.changes if c.resource_type == "document_checklist")
    items = checklist.details["items"]
    assert all(item["en"] and item["ja"] for item in items)
    assert any("Tokyo" in item["en"] and "東京" in item["ja"] for item in items)
    requests = {
        c.details["quota_code"]: c.action
        for c in plan.changes
        if c.resource_type == "service_quota_request"
    }
    assert requests == {PHONE_NUMBERS_QUOTA: "create", CONCURRENT_CALLS_QUOTA: "create"}
    assert any("withdrawn" in warning for warning in map(render, plan.warnings))


def test_it_files_each_request_once_and_finishes_without_waiting(
    aws_connection: Any, instance: dict[str, Any], quotas: Any, sandbox: Sandbox, connect: Any
) -> None:
    run = phone_run(aws_connection, instance)

    first = STEP.apply(context(run, KEY))
    second = STEP.apply(context(run, KEY))

    assert first.waiting_for_aws_support is True
    assert first.phone_numbers == []
    assert [r["request_id"] for r in first.quota_requests] == [
        r["request_id"] for r in second.quota_requests
    ]
    phone_requests = requests_for(sandbox, PHONE_NUMBERS_QUOTA, instance["Arn"])
    assert [r["DesiredValue"] for r in phone_requests] == [6]
    assert [
        r["DesiredValue"] for r in requests_for(sandbox, CONCURRENT_CALLS_QUOTA, instance["Arn"])
    ] == [20]
    findings = {render(f.check): f for f in STEP.verify(context(run, KEY))}
    waiting = findings["Quota “Phone numbers per instance” is at least 6"]
    assert (waiting.ok, waiting.blocking) == (False, False)
    assert "PENDING" in render(waiting.detail)
    assert numbers_of(connect, instance["Arn"]) == []


def test_it_claims_the_numbers_once_after_approval_and_releases_them_on_rollback(
    aws_connection: Any, instance: dict[str, Any], quotas: Any, sandbox: Sandbox, connect: Any
) -> None:
    run = phone_run(aws_connection, instance)
    STEP.apply(context(run, KEY))
    for code in (PHONE_NUMBERS_QUOTA, CONCURRENT_CALLS_QUOTA):
        (request,) = requests_for(sandbox, code, instance["Arn"])
        quotas.set_status(request["Id"], "APPROVED")

    claimed = apply_until_claimed(run)
    again = STEP.apply(context(run, KEY))

    assert claimed.waiting_for_aws_support is False
    assert claimed.phone_numbers == again.phone_numbers
    numbers = numbers_of(connect, instance["Arn"])
    assert len(numbers) == 6
    assert sum(n.startswith("+813") for n in numbers) == 4
    assert sum(n.startswith("+81120") for n in numbers) == 2
    assert all(f.ok for f in STEP.verify(context(run, KEY)))
    # Nothing new was filed once approved.
    assert len(requests_for(sandbox, PHONE_NUMBERS_QUOTA, instance["Arn"])) == 1

    STEP.rollback(context(run, KEY))
    STEP.rollback(context(run, KEY))

    assert numbers_of(connect, instance["Arn"]) == []


def test_it_adopts_a_number_a_crashed_attempt_claimed(
    aws_connection: Any, instance: dict[str, Any], quotas: Any, sandbox: Sandbox, connect: Any
) -> None:
    run = phone_run(
        aws_connection, instance, did_numbers=6, toll_free_numbers=0, concurrent_calls=0
    )
    STEP.apply(context(run, KEY))
    (request,) = requests_for(sandbox, PHONE_NUMBERS_QUOTA, instance["Arn"])
    quotas.set_status(request["Id"], "APPROVED")
    # As if the worker died after ClaimPhoneNumber answered, before the run recorded it.
    orphan = connect.claim_phone_number(
        TargetArn=instance["Arn"],
        PhoneNumber="+81355500049",
        PhoneNumberDescription=f"connect-sso-wizard run {run.pk} DID 0",
    )["PhoneNumberId"]

    outputs = apply_until_claimed(run)

    assert len(numbers_of(connect, instance["Arn"])) == 6
    assert outputs.phone_numbers[0]["phone_number_id"] == orphan
    STEP.rollback(context(run, KEY))
    assert numbers_of(connect, instance["Arn"]) == []


def test_it_claims_within_the_default_quota_only_once_the_documents_are_confirmed(
    aws_connection: Any, instance: dict[str, Any], quotas: Any, sandbox: Sandbox, connect: Any
) -> None:
    few = {"did_numbers": 2, "toll_free_numbers": 1, "concurrent_calls": 0}
    unconfirmed = phone_run(aws_connection, instance, **few, documents_confirmed=False)

    waiting = STEP.plan(context(unconfirmed, KEY))
    with pytest.raises(PermanentError) as refused:
        STEP.apply(context(unconfirmed, KEY))
    form = PhonePrerequisitesForm(data=few)

    assert waiting.needs_input
    assert [c.resource_type for c in waiting.changes] == ["document_checklist"]
    assert refused.value.code == "phone_documents_unconfirmed"
    assert not form.is_valid() and "documents_confirmed" in form.errors
    assert numbers_of(connect, instance["Arn"]) == []

    run = phone_run(aws_connection, instance, **few, documents_confirmed=True)
    plan = STEP.plan(context(run, KEY))
    outputs = apply_until_claimed(run)

    assert not plan.needs_input
    (quota,) = [c for c in plan.changes if c.resource_type == "service_quota_request"]
    # Connect's default of 5 numbers per instance, as Service Quotas reports it: nothing to file.
    assert (quota.action, quota.details["current_value"]) == ("nothing", 5)
    assert outputs.waiting_for_aws_support is False
    assert len(numbers_of(connect, instance["Arn"])) == 3
    assert requests_for(sandbox, PHONE_NUMBERS_QUOTA, instance["Arn"]) == []


def test_it_waits_while_a_claim_is_in_progress_without_claiming_twice(
    aws_connection: Any,
    instance: dict[str, Any],
    quotas: Any,
    sandbox_knobs: Knobs,
    connect: Any,
) -> None:
    sandbox_knobs.phone_number_claim_delay_s = 1.0
    run = phone_run(aws_connection, instance, did_numbers=1, toll_free_numbers=0)

    with pytest.raises(WaitForCloud) as waiting:
        STEP.apply(context(run, KEY))
    with pytest.raises(WaitForCloud):
        STEP.apply(context(run, KEY))
    (number,) = numbers_of(connect, instance["Arn"])
    assert number in str(waiting.value.reason)

    outputs = apply_until_claimed(run)

    assert [n["phone_number"] for n in outputs.phone_numbers] == [number]
    assert numbers_of(connect, instance["Arn"]) == [number]


def test_it_fails_with_aws_message_when_a_claim_fails(
    aws_connection: Any, instance: dict[str, Any], quotas: Any, sandbox: Sandbox, connect: Any
) -> None:
    reason = "The target has reached its limit of claimed phone numbers."
    sandbox.apps["aws"].connect.fail_next_claim(reason)
    run = phone_run(aws_connection, instance, did_numbers=1, toll_free_numbers=0)

    with pytest.raises(PermanentError) as failed:
        apply_until_claimed(run)

    assert failed.value.code == "phone_number_claim_failed"
    assert reason in failed.value.message
    STEP.rollback(context(run, KEY))
    assert numbers_of(connect, instance["Arn"]) == []
