"""Phone-number prerequisites in the sandbox: Service Quotas requests and Connect number claims."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sandbox.aws.service_quotas import (
    CONCURRENT_ACTIVE_CALLS_PER_INSTANCE,
    DEFAULT_CONCURRENT_ACTIVE_CALLS_PER_INSTANCE,
    DEFAULT_PHONE_NUMBERS_PER_INSTANCE,
    PHONE_NUMBERS_PER_INSTANCE,
    QuotaReview,
    ServiceQuotas,
)
from sandbox.knobs import Knobs
from sandbox.server import Sandbox
from tests.sandbox.aws_clients import active_instance, aws_client


@pytest.fixture(scope="module")
def connect(sandbox: Sandbox) -> Any:
    return aws_client(sandbox, "connect")


@pytest.fixture(scope="module")
def quotas(sandbox: Sandbox) -> Any:
    return aws_client(sandbox, "service-quotas")


@pytest.fixture
def service_quotas(sandbox: Sandbox) -> Iterator[ServiceQuotas]:
    """The sandbox's Service Quotas state, with its review times put back after the test."""
    state: ServiceQuotas = sandbox.apps["aws"].service_quotas
    saved = state.review
    yield state
    state.review = saved


def _error(raised: pytest.ExceptionInfo[ClientError]) -> str:
    return raised.value.response["Error"]["Code"]


def test_it_moves_a_quota_request_from_pending_to_case_opened_to_approved(
    connect: Any, quotas: Any, service_quotas: ServiceQuotas
) -> None:
    service_quotas.review = QuotaReview(case_opened_after_s=0.3, approved_after_s=0.6)
    instance = active_instance(connect, "quota-timeline")
    requested = quotas.request_service_quota_increase(
        ServiceCode="connect",
        QuotaCode=CONCURRENT_ACTIVE_CALLS_PER_INSTANCE,
        DesiredValue=20,
        ContextId=instance["Arn"],
    )["RequestedQuota"]
    assert requested["Status"] == "PENDING"
    assert requested["QuotaName"] == "Concurrent active calls per instance"

    statuses = [requested["Status"]]
    deadline = time.monotonic() + 5
    while statuses[-1] != "APPROVED" and time.monotonic() < deadline:
        time.sleep(0.1)
        status = quotas.get_requested_service_quota_change(RequestId=requested["Id"])
        statuses.append(status["RequestedQuota"]["Status"])
    assert list(dict.fromkeys(statuses)) == ["PENDING", "CASE_OPENED", "APPROVED"]

    applied = quotas.get_service_quota(
        ServiceCode="connect",
        QuotaCode=CONCURRENT_ACTIVE_CALLS_PER_INSTANCE,
        ContextId=instance["Arn"],
    )["Quota"]
    assert applied["Value"] == 20
    default = quotas.get_aws_default_service_quota(
        ServiceCode="connect", QuotaCode=CONCURRENT_ACTIVE_CALLS_PER_INSTANCE
    )["Quota"]
    assert default["Value"] == 10

    history = quotas.list_requested_service_quota_change_history_by_quota(
        ServiceCode="connect", QuotaCode=CONCURRENT_ACTIVE_CALLS_PER_INSTANCE
    )["RequestedQuotas"]
    assert requested["Id"] in {entry["Id"] for entry in history}
    everything = quotas.list_requested_service_quota_change_history(ServiceCode="connect")
    assert requested["Id"] in {entry["Id"] for entry in everything["RequestedQuotas"]}


def test_it_refuses_a_second_open_request_and_a_value_that_is_not_an_increase(
    connect: Any, quotas: Any, service_quotas: ServiceQuotas
) -> None:
    service_quotas.review = QuotaReview(case_opened_after_s=60, approved_after_s=120)
    instance = active_instance(connect, "quota-open")
    arguments = {
        "ServiceCode": "connect",
        "QuotaCode": PHONE_NUMBERS_PER_INSTANCE,
        "ContextId": instance["Arn"],
    }
    quotas.request_service_quota_increase(DesiredValue=6, **arguments)
    with pytest.raises(ClientError) as raised:
        quotas.request_service_quota_increase(DesiredValue=7, **arguments)
    assert _error(raised) == "ResourceAlreadyExistsException"
    with pytest.raises(ClientError) as raised:
        quotas.request_service_quota_increase(
            ServiceCode="connect", QuotaCode=CONCURRENT_ACTIVE_CALLS_PER_INSTANCE, DesiredValue=1
        )
    assert _error(raised) == "IllegalArgumentException"
    with pytest.raises(ClientError) as raised:
        quotas.request_service_quota_increase(
            ServiceCode="connect", QuotaCode="L-00000000", DesiredValue=1
        )
    assert _error(raised) == "NoSuchResourceException"


def test_it_starts_at_connects_documented_default_quotas(connect: Any, quotas: Any) -> None:
    instance = active_instance(connect, "defaults")
    for code, default in (
        (PHONE_NUMBERS_PER_INSTANCE, DEFAULT_PHONE_NUMBERS_PER_INSTANCE),
        (CONCURRENT_ACTIVE_CALLS_PER_INSTANCE, DEFAULT_CONCURRENT_ACTIVE_CALLS_PER_INSTANCE),
    ):
        applied = quotas.get_service_quota(
            ServiceCode="connect", QuotaCode=code, ContextId=instance["Arn"]
        )["Quota"]
        aws_default = quotas.get_aws_default_service_quota(ServiceCode="connect", QuotaCode=code)
        assert applied["Value"] == aws_default["Quota"]["Value"] == default
    assert (DEFAULT_PHONE_NUMBERS_PER_INSTANCE, DEFAULT_CONCURRENT_ACTIVE_CALLS_PER_INSTANCE) == (
        5,
        10,
    )


def _wait_for_status(connect: Any, number_id: str, wanted: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        described = connect.describe_phone_number(PhoneNumberId=number_id)
        status = described["ClaimedPhoneNumberSummary"]["PhoneNumberStatus"]
        if status["Status"] == wanted or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def test_it_claims_japanese_numbers_only_up_to_the_quota(
    connect: Any, quotas: Any, service_quotas: ServiceQuotas
) -> None:
    service_quotas.review = QuotaReview(case_opened_after_s=60, approved_after_s=120)
    instance = active_instance(connect, "numbers")
    tokyo = connect.search_available_phone_numbers(
        TargetArn=instance["Arn"],
        PhoneNumberCountryCode="JP",
        PhoneNumberType="DID",
        PhoneNumberPrefix="+813",
        MaxResults=DEFAULT_PHONE_NUMBERS_PER_INSTANCE + 1,
    )["AvailableNumbersList"]
    assert len(tokyo) == DEFAULT_PHONE_NUMBERS_PER_INSTANCE + 1
    assert all(entry["PhoneNumber"].startswith("+813") for entry in tokyo)
    free_dial = connect.search_available_phone_numbers(
        InstanceId=instance["Id"], PhoneNumberCountryCode="JP", PhoneNumberType="TOLL_FREE"
    )["AvailableNumbersList"]
    assert free_dial and all(entry["PhoneNumber"].startswith("+81120") for entry in free_dial)

    first = connect.claim_phone_number(
        TargetArn=instance["Arn"], PhoneNumber=tokyo[0]["PhoneNumber"], ClientToken="claim-1"
    )
    again = connect.claim_phone_number(
        TargetArn=instance["Arn"], PhoneNumber=tokyo[0]["PhoneNumber"], ClientToken="claim-1"
    )
    assert again["PhoneNumberId"] == first["PhoneNumberId"]
    connect.claim_phone_number(TargetArn=instance["Arn"], PhoneNumber=free_dial[0]["PhoneNumber"])
    for entry in tokyo[1 : DEFAULT_PHONE_NUMBERS_PER_INSTANCE - 1]:
        connect.claim_phone_number(TargetArn=instance["Arn"], PhoneNumber=entry["PhoneNumber"])
    with pytest.raises(ClientError) as raised:
        connect.claim_phone_number(TargetArn=instance["Arn"], PhoneNumber=tokyo[-1]["PhoneNumber"])
    assert _error(raised) == "LimitExceededException"
    assert PHONE_NUMBERS_PER_INSTANCE in str(raised.value)

    listed = connect.list_phone_numbers_v2(TargetArn=instance["Arn"])["ListPhoneNumbersSummaryList"]
    assert len(listed) == DEFAULT_PHONE_NUMBERS_PER_INSTANCE
    assert tokyo[0]["PhoneNumber"] in {entry["PhoneNumber"] for entry in listed}
    assert _wait_for_status(connect, first["PhoneNumberId"], "CLAIMED") == {"Status": "CLAIMED"}
    described = connect.describe_phone_number(PhoneNumberId=first["PhoneNumberId"])
    assert described["ClaimedPhoneNumberSummary"]["PhoneNumberCountryCode"] == "JP"

    still_available = connect.search_available_phone_numbers(
        TargetArn=instance["Arn"], PhoneNumberCountryCode="JP", PhoneNumberType="DID"
    )["AvailableNumbersList"]
    assert tokyo[0]["PhoneNumber"] not in {entry["PhoneNumber"] for entry in still_available}

    requested = quotas.request_service_quota_increase(
        ServiceCode="connect",
        QuotaCode=PHONE_NUMBERS_PER_INSTANCE,
        DesiredValue=DEFAULT_PHONE_NUMBERS_PER_INSTANCE + 1,
        ContextId=instance["Arn"],
    )["RequestedQuota"]
    service_quotas.set_status(requested["Id"], "APPROVED")
    connect.claim_phone_number(TargetArn=instance["Arn"], PhoneNumber=tokyo[-1]["PhoneNumber"])

    connect.release_phone_number(PhoneNumberId=first["PhoneNumberId"])
    remaining = connect.list_phone_numbers_v2(InstanceId=instance["Id"])
    assert len(remaining["ListPhoneNumbersSummaryList"]) == DEFAULT_PHONE_NUMBERS_PER_INSTANCE


def test_it_claims_asynchronously_by_default_then_claimed_or_failed(
    connect: Any, sandbox: Sandbox, sandbox_knobs: Knobs
) -> None:
    assert Knobs().phone_number_claim_delay_s > 0
    sandbox_knobs.phone_number_claim_delay_s = 0.5
    instance = active_instance(connect, "async-claim")
    available = connect.search_available_phone_numbers(
        TargetArn=instance["Arn"], PhoneNumberCountryCode="JP", PhoneNumberType="DID"
    )["AvailableNumbersList"]

    claimed = connect.claim_phone_number(
        TargetArn=instance["Arn"], PhoneNumber=available[0]["PhoneNumber"]
    )
    status = connect.describe_phone_number(PhoneNumberId=claimed["PhoneNumberId"])[
        "ClaimedPhoneNumberSummary"
    ]["PhoneNumberStatus"]
    assert status["Status"] == "IN_PROGRESS"
    assert _wait_for_status(connect, claimed["PhoneNumberId"], "CLAIMED")["Status"] == "CLAIMED"

    reason = "The target has reached its limit of claimed phone numbers."
    sandbox.apps["aws"].connect.fail_next_claim(reason)
    failing = connect.claim_phone_number(
        TargetArn=instance["Arn"], PhoneNumber=available[1]["PhoneNumber"]
    )
    assert _wait_for_status(connect, failing["PhoneNumberId"], "FAILED") == {
        "Status": "FAILED",
        "Message": reason,
    }


def test_it_refuses_a_number_that_is_not_available(connect: Any) -> None:
    instance = active_instance(connect, "unavailable")
    with pytest.raises(ClientError) as raised:
        connect.claim_phone_number(TargetArn=instance["Arn"], PhoneNumber="+15555550100")
    assert _error(raised) == "InvalidParameterException"
    assert "not available" in str(raised.value)


def test_it_leaves_other_services_quotas_to_moto(quotas: Any) -> None:
    vpc = quotas.get_service_quota(ServiceCode="vpc", QuotaCode="L-F678F1CE")["Quota"]
    assert vpc["QuotaName"] == "VPCs per Region"
