"""The sandbox's Service Quotas report Connect's API rates from the knobs, the same rates its AWS
endpoint enforces, and the endpoint counts the calls it throttles."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from sandbox.aws.service_quotas import UNTHROTTLED_RATE, rate_quota_code
from sandbox.knobs import Knobs
from sandbox.server import Sandbox
from tests.sandbox.aws_clients import aws_client


def _all_quotas(quotas: Any) -> list[dict[str, Any]]:
    pages = quotas.get_paginator("list_service_quotas").paginate(ServiceCode="connect")
    return [quota for page in pages for quota in page["Quotas"]]


def _rate_quotas(quotas: Any) -> dict[str, dict[str, Any]]:
    listed = _all_quotas(quotas)
    return {quota["QuotaName"]: quota for quota in listed if quota["QuotaName"].startswith("Rate")}


def test_it_lists_the_rate_the_knobs_enforce_and_a_rate_nobody_reaches_for_the_rest(
    sandbox: Sandbox, sandbox_knobs: Knobs
) -> None:
    sandbox_knobs.rate_limits_enabled = True
    sandbox_knobs.rate_scale = 3
    sandbox_knobs.rate_limits = {
        "connect:CreateUser": (2, 5),
        "connect:ListUsers": (10, 15),
        "okta:apps": (1, 1),
    }
    quotas = aws_client(sandbox, "service-quotas")

    listed = _rate_quotas(quotas)

    # Every Connect operation has one: the ones the knobs limit at their rate, the rest at a
    # rate nobody reaches (the sandbox doesn't throttle them).
    assert len(listed) > 100
    assert listed["Rate of DescribeUser API requests"]["Value"] == UNTHROTTLED_RATE
    create_user = listed["Rate of CreateUser API requests"]
    assert create_user["Value"] == 6.0
    assert create_user["QuotaCode"] == rate_quota_code("CreateUser")
    assert create_user["Period"] == {"PeriodValue": 1, "PeriodUnit": "SECOND"}
    assert listed["Rate of ListUsers API requests"]["Value"] == 30.0
    one = quotas.get_service_quota(ServiceCode="connect", QuotaCode=rate_quota_code("CreateUser"))
    assert one["Quota"]["QuotaName"] == "Rate of CreateUser API requests"
    assert one["Quota"]["Value"] == 6.0
    # The quotas that were there before are still listed.
    assert "Users per instance" in {quota["QuotaName"] for quota in _all_quotas(quotas)}


def test_it_reports_a_rate_nobody_reaches_when_it_does_not_throttle(
    sandbox: Sandbox, sandbox_knobs: Knobs
) -> None:
    sandbox_knobs.rate_limits_enabled = False
    quotas = aws_client(sandbox, "service-quotas")

    listed = _rate_quotas(quotas)

    assert listed["Rate of CreateUser API requests"]["Value"] == UNTHROTTLED_RATE
    assert listed["Rate of CreateInstance API requests"]["Value"] == UNTHROTTLED_RATE


def test_it_counts_the_calls_it_throttles(sandbox: Sandbox, sandbox_knobs: Knobs) -> None:
    sandbox_knobs.rate_limits_enabled = True
    sandbox_knobs.rate_limits["connect:ListInstances"] = (0.001, 1)
    sandbox_knobs.reset_buckets()
    sandbox_knobs.reset_throttled()
    connect = aws_client(sandbox, "connect")
    connect.list_instances()

    with pytest.raises(ClientError):
        connect.list_instances()

    assert sandbox_knobs.throttled("connect:ListInstances") == 1
    sandbox_knobs.reset_throttled()
    assert sandbox_knobs.throttled("connect:ListInstances") == 0
