"""The sandbox's CloudTrail: a sign-in through the sandbox's AWS sign-in endpoint leaves the
events AWS logs for it, and boto3's LookupEvents finds them, late by the delivery delay, two
lookups a second at most."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from sandbox.saml_idp import issue_signing_certificate
from tests.contract.wire_check import check_exchanges
from tests.sandbox import test_signin_endpoint as signin
from tests.sandbox.aws_clients import aws_client
from tests.sandbox.test_signin_endpoint import (
    _agent,
    _new_username,
    _post,
    _relay_state,
    _saml_response,
)

# The sign-in endpoint's tests' federation: an IdP, a Connect instance and roles in the sandbox.
idp_certificate = signin.idp_certificate
federation = signin.federation


def _events(sandbox: Any, name: str, since: dt.datetime, region: str = "") -> list[dict[str, Any]]:
    cloudtrail = aws_client(sandbox, "cloudtrail")
    if region:
        cloudtrail = _regional(sandbox, region)
    events = cloudtrail.lookup_events(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": name}],
        StartTime=since,
    )["Events"]
    return events


def _regional(sandbox: Any, region: str) -> Any:
    endpoints = sandbox.endpoints
    return boto3.client(
        "cloudtrail",
        endpoint_url=endpoints["aws_endpoint_url"],
        region_name=region,
        aws_access_key_id=endpoints["aws_access_key_id"],
        aws_secret_access_key=endpoints["aws_secret_access_key"],
        verify=endpoints["ca_bundle"],
    )


def _record(event: dict[str, Any]) -> dict[str, Any]:
    return json.loads(event["CloudTrailEvent"])


def _mine(events: list[dict[str, Any]], session_name: str) -> list[dict[str, Any]]:
    return [e for e in events if session_name in e["CloudTrailEvent"]]


def test_it_logs_a_sign_in_as_sts_and_connect_events(sandbox, federation, idp_certificate) -> None:
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    username = _agent(sandbox, federation, _new_username())
    reply = _post(
        sandbox,
        _saml_response(federation, idp_certificate, session_name=username),
        _relay_state(federation),
    )
    assert reply.json()["ok"] is True

    # The global sign-in endpoint's STS events are logged in us-east-1.
    assumed = _mine(_events(sandbox, "AssumeRoleWithSAML", since, "us-east-1"), username)
    token = _mine(_events(sandbox, "GetFederationToken", since), username)

    assert len(assumed) == 1 and len(token) == 1
    sts_record = _record(assumed[0])
    assert assumed[0]["EventSource"] == "sts.amazonaws.com"
    assert assumed[0]["Username"] == username
    assert {r["ResourceName"] for r in assumed[0]["Resources"]} == {
        federation.role_arns["instance_id_form"],
        federation.provider_arn,
    }
    assert sts_record["userIdentity"]["type"] == "SAMLUser"
    assert sts_record["requestParameters"]["roleSessionName"] == username
    assert "errorCode" not in sts_record
    connect_record = _record(token[0])
    assert token[0]["EventSource"] == "connect.amazonaws.com"
    assert token[0]["Username"] == username
    assert connect_record["requestParameters"] == {"InstanceId": federation.instance_id}
    assert connect_record["userIdentity"]["arn"].endswith(f"/{username}")
    assert "errorCode" not in connect_record


def test_it_logs_connects_refusal_of_a_user_it_does_not_know(
    sandbox, federation, idp_certificate
) -> None:
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    username = _new_username()
    _post(
        sandbox,
        _saml_response(federation, idp_certificate, session_name=username),
        _relay_state(federation),
    )

    token = _mine(_events(sandbox, "GetFederationToken", since), username)

    assert [_record(e)["errorCode"] for e in token] == ["UserNotFoundException"]
    assumed = _mine(_events(sandbox, "AssumeRoleWithSAML", since, "us-east-1"), username)
    assert "errorCode" not in _record(assumed[0])


def test_it_logs_sts_refusing_a_response_signed_by_another_key(sandbox, federation) -> None:
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    username = _agent(sandbox, federation, _new_username())
    stranger = issue_signing_certificate("CN=Someone else")
    _post(
        sandbox,
        _saml_response(federation, stranger, session_name=username),
        _relay_state(federation),
    )

    assumed = _mine(_events(sandbox, "AssumeRoleWithSAML", since, "us-east-1"), username)

    record = _record(assumed[0])
    assert (record["errorCode"], record["errorMessage"]) == (
        "InvalidIdentityToken",
        "Response signature invalid",
    )
    assert _mine(_events(sandbox, "GetFederationToken", since), username) == []


def test_it_keeps_an_event_out_of_lookups_until_it_is_delivered(
    sandbox, sandbox_knobs, federation, idp_certificate
) -> None:
    sandbox_knobs.cloudtrail_delivery_delay_s = 1.0
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    username = _agent(sandbox, federation, _new_username())
    _post(
        sandbox,
        _saml_response(federation, idp_certificate, session_name=username),
        _relay_state(federation),
    )

    assert _mine(_events(sandbox, "GetFederationToken", since), username) == []
    time.sleep(1.1)
    assert len(_mine(_events(sandbox, "GetFederationToken", since), username)) == 1


def test_it_pages_with_a_token_bound_to_the_same_parameters(
    sandbox, federation, idp_certificate
) -> None:
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    for _ in range(2):
        username = _agent(sandbox, federation, _new_username())
        _post(
            sandbox,
            _saml_response(federation, idp_certificate, session_name=username),
            _relay_state(federation),
        )
    cloudtrail = aws_client(sandbox, "cloudtrail")
    lookup = {
        "LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "GetFederationToken"}]
    }

    first = cloudtrail.lookup_events(StartTime=since, MaxResults=1, **lookup)
    second = cloudtrail.lookup_events(
        StartTime=since, MaxResults=1, NextToken=first["NextToken"], **lookup
    )

    assert first["Events"][0]["EventTime"] >= second["Events"][0]["EventTime"]
    assert first["Events"][0]["EventId"] != second["Events"][0]["EventId"]
    with pytest.raises(ClientError) as refused:
        cloudtrail.lookup_events(MaxResults=1, NextToken=first["NextToken"])
    assert refused.value.response["Error"]["Code"] == "InvalidNextTokenException"


def test_it_takes_one_lookup_attribute_only(sandbox) -> None:
    cloudtrail = aws_client(sandbox, "cloudtrail")

    with pytest.raises(ClientError) as refused:
        cloudtrail.lookup_events(
            LookupAttributes=[
                {"AttributeKey": "EventName", "AttributeValue": "AssumeRoleWithSAML"},
                {"AttributeKey": "Username", "AttributeValue": "someone"},
            ]
        )

    assert refused.value.response["Error"]["Code"] == "InvalidLookupAttributesException"


def test_it_throttles_lookups_past_two_a_second(sandbox, sandbox_knobs) -> None:
    sandbox_knobs.rate_limits_enabled = True
    sandbox_knobs.reset_buckets()
    cloudtrail = aws_client(sandbox, "cloudtrail")
    codes = []
    for _ in range(5):
        try:
            cloudtrail.lookup_events(MaxResults=1)
            codes.append("ok")
        except ClientError as error:
            codes.append(error.response["Error"]["Code"])

    assert codes[:2] == ["ok", "ok"]
    assert "ThrottlingException" in codes[2:]


def test_its_answers_and_errors_match_botocores_model(sandbox, federation, idp_certificate) -> None:
    username = _agent(sandbox, federation, _new_username())
    _post(
        sandbox,
        _saml_response(federation, idp_certificate, session_name=username),
        _relay_state(federation),
    )
    cloudtrail = aws_client(sandbox, "cloudtrail")
    sandbox.wire_log.start()
    try:
        cloudtrail.lookup_events(
            LookupAttributes=[{"AttributeKey": "Username", "AttributeValue": username}]
        )
        with pytest.raises(ClientError):
            cloudtrail.lookup_events(NextToken="not-a-token")
    finally:
        exchanges = sandbox.wire_log.stop()

    report = check_exchanges(exchanges)
    assert [e.operation for e in exchanges] == ["cloudtrail:LookupEvents"] * 2
    assert report.violations == [], report.describe()
