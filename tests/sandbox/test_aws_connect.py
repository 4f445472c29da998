"""The sandbox's Amazon Connect, driven only through real boto3 clients."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sandbox.aws.connect import ConnectCall
from sandbox.aws.service_quotas import DEFAULT_USERS_PER_INSTANCE
from sandbox.server import AWS_ACCOUNT_ID, Sandbox
from tests.sandbox.aws_clients import (
    active_instance,
    aws_client,
    default_profiles,
    unique_alias,
    wait_until_active,
)


@pytest.fixture(scope="module")
def connect(sandbox: Sandbox) -> Any:
    return aws_client(sandbox, "connect")


@pytest.fixture(scope="module")
def saml_instance(connect: Any) -> dict[str, Any]:
    return active_instance(connect, "users")


def _error(raised: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = raised.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def _create_user(connect: Any, instance_id: str, username: str, **extra: Any) -> dict[str, Any]:
    security, routing = default_profiles(connect, instance_id)
    return connect.create_user(
        InstanceId=instance_id,
        Username=username,
        IdentityInfo={"FirstName": "Hanako", "LastName": "Yamada"},
        PhoneConfig={"PhoneType": "SOFT_PHONE"},
        SecurityProfileIds=[security["Agent"]],
        RoutingProfileId=routing,
        **extra,
    )


def test_it_creates_an_instance_that_becomes_active_after_the_delay(
    sandbox_knobs: Any, connect: Any
) -> None:
    # Long enough that create and the first describe land inside it on a loaded machine.
    sandbox_knobs.instance_creation_delay_s = 2.0
    alias = unique_alias("lifecycle")
    started = time.monotonic()
    created = connect.create_instance(
        IdentityManagementType="SAML",
        InstanceAlias=alias,
        InboundCallsEnabled=True,
        OutboundCallsEnabled=False,
    )

    first = connect.describe_instance(InstanceId=created["Id"])["Instance"]
    assert first["InstanceStatus"] == "CREATION_IN_PROGRESS"
    assert first["IdentityManagementType"] == "SAML"
    assert first["InstanceAlias"] == alias
    assert first["Arn"] == created["Arn"]
    # Other tests share the sandbox: the instance may be on any page of the listing.
    listed = {
        summary["Id"]
        for page in connect.get_paginator("list_instances").paginate()
        for summary in page["InstanceSummaryList"]
    }
    assert created["Id"] in listed

    assert wait_until_active(connect, created["Id"])["InstanceStatus"] == "ACTIVE"
    assert time.monotonic() - started >= 2.0


def test_it_refuses_user_calls_while_the_instance_is_being_created(
    sandbox_knobs: Any, connect: Any
) -> None:
    sandbox_knobs.instance_creation_delay_s = 30
    created = connect.create_instance(
        IdentityManagementType="SAML",
        InstanceAlias=unique_alias("creating"),
        InboundCallsEnabled=True,
        OutboundCallsEnabled=True,
    )
    with pytest.raises(ClientError) as raised:
        connect.list_users(InstanceId=created["Id"])
    assert _error(raised) == ("InvalidRequestException", 400)
    assert "CREATION_IN_PROGRESS" in str(raised.value)


def test_it_keeps_instance_aliases_unique_per_region(connect: Any) -> None:
    alias = unique_alias("taken")
    connect.create_instance(
        IdentityManagementType="SAML",
        InstanceAlias=alias,
        InboundCallsEnabled=True,
        OutboundCallsEnabled=True,
    )
    with pytest.raises(ClientError) as raised:
        connect.create_instance(
            IdentityManagementType="CONNECT_MANAGED",
            InstanceAlias=alias.upper(),
            InboundCallsEnabled=True,
            OutboundCallsEnabled=True,
        )
    assert _error(raised) == ("InvalidRequestException", 400)
    assert "alias is already used" in str(raised.value)


@pytest.mark.parametrize(
    "alias", ["d-1234567890", "-leading", "trailing-", "under_score", "x" * 46]
)
def test_it_refuses_aliases_outside_connects_pattern(connect: Any, alias: str) -> None:
    with pytest.raises(ClientError) as raised:
        connect.create_instance(
            IdentityManagementType="SAML",
            InstanceAlias=alias,
            InboundCallsEnabled=True,
            OutboundCallsEnabled=True,
        )
    assert _error(raised) == ("InvalidRequestException", 400)


def test_it_returns_the_same_instance_for_a_repeated_client_token(connect: Any) -> None:
    token = unique_alias("token")
    arguments = {
        "IdentityManagementType": "SAML",
        "InstanceAlias": unique_alias("idempotent"),
        "InboundCallsEnabled": True,
        "OutboundCallsEnabled": True,
        "ClientToken": token,
    }
    first = connect.create_instance(**arguments)
    again = connect.create_instance(**arguments)
    assert (again["Id"], again["Arn"]) == (first["Id"], first["Arn"])


def test_it_deletes_an_instance(connect: Any) -> None:
    instance = active_instance(connect, "deleted")
    connect.delete_instance(InstanceId=instance["Id"])
    with pytest.raises(ClientError) as raised:
        connect.describe_instance(InstanceId=instance["Id"])
    assert _error(raised)[0] == "ResourceNotFoundException"


def test_it_gives_a_new_instance_the_default_profiles(
    connect: Any, saml_instance: dict[str, Any]
) -> None:
    security, routing_id = default_profiles(connect, saml_instance["Id"])
    assert set(security) == {"Admin", "Agent", "CallCenterManager", "QualityAnalyst"}
    assert all(profile_id for profile_id in security.values())

    routing = connect.describe_routing_profile(
        InstanceId=saml_instance["Id"], RoutingProfileId=routing_id
    )["RoutingProfile"]
    assert routing["Name"] == "Basic Routing Profile"
    assert routing["RoutingProfileArn"].startswith(saml_instance["Arn"] + "/routing-profile/")
    assert routing["IsDefault"] is True

    admin = connect.describe_security_profile(
        InstanceId=saml_instance["Id"], SecurityProfileId=security["Admin"]
    )["SecurityProfile"]
    assert admin["SecurityProfileName"] == "Admin"
    assert admin["Arn"].startswith(saml_instance["Arn"] + "/security-profile/")

    found = connect.search_security_profiles(
        InstanceId=saml_instance["Id"],
        SearchCriteria={
            "StringCondition": {
                "FieldName": "SecurityProfileName",
                "Value": "Agent",
                "ComparisonType": "EXACT",
            }
        },
    )["SecurityProfiles"]
    assert [profile["Id"] for profile in found] == [security["Agent"]]


def test_it_creates_describes_updates_and_deletes_a_user(
    connect: Any, saml_instance: dict[str, Any]
) -> None:
    instance_id = saml_instance["Id"]
    security, routing = default_profiles(connect, instance_id)
    created = _create_user(connect, instance_id, "taro.suzuki@example.com")
    assert created["UserArn"] == f"{saml_instance['Arn']}/agent/{created['UserId']}"

    connect.update_user_identity_info(
        InstanceId=instance_id,
        UserId=created["UserId"],
        IdentityInfo={"FirstName": "Taro", "LastName": "Suzuki", "Email": "taro@example.com"},
    )
    connect.update_user_security_profiles(
        InstanceId=instance_id,
        UserId=created["UserId"],
        SecurityProfileIds=[security["Admin"], security["Agent"]],
    )
    connect.update_user_routing_profile(
        InstanceId=instance_id, UserId=created["UserId"], RoutingProfileId=routing
    )
    connect.update_user_phone_config(
        InstanceId=instance_id,
        UserId=created["UserId"],
        PhoneConfig={"PhoneType": "DESK_PHONE", "DeskPhoneNumber": "+81355500000"},
    )

    user = connect.describe_user(InstanceId=instance_id, UserId=created["UserId"])["User"]
    assert user["Username"] == "taro.suzuki@example.com"
    assert user["IdentityInfo"]["Email"] == "taro@example.com"
    assert user["SecurityProfileIds"] == [security["Admin"], security["Agent"]]
    assert user["RoutingProfileId"] == routing
    assert user["PhoneConfig"]["PhoneType"] == "DESK_PHONE"

    connect.delete_user(InstanceId=instance_id, UserId=created["UserId"])
    with pytest.raises(ClientError) as raised:
        connect.describe_user(InstanceId=instance_id, UserId=created["UserId"])
    assert _error(raised) == ("ResourceNotFoundException", 404)


def test_it_refuses_a_password_on_a_saml_instance(
    connect: Any, saml_instance: dict[str, Any]
) -> None:
    with pytest.raises(ClientError) as raised:
        _create_user(connect, saml_instance["Id"], "with-password", Password="Secret-pass1")
    assert _error(raised) == ("InvalidParameterException", 400)
    assert "Password" in str(raised.value) and "SAML" in str(raised.value)


def test_it_refuses_a_duplicate_username(connect: Any, saml_instance: dict[str, Any]) -> None:
    _create_user(connect, saml_instance["Id"], "duplicate.user")
    with pytest.raises(ClientError) as raised:
        _create_user(connect, saml_instance["Id"], "duplicate.user")
    assert _error(raised) == ("DuplicateResourceException", 409)


@pytest.mark.parametrize(
    "username",
    ["has space", "user@example", "two@@example.com", "slash/name", "ü-umlaut", "x" * 65],
)
def test_it_refuses_usernames_outside_connects_rules(
    connect: Any, saml_instance: dict[str, Any], username: str
) -> None:
    with pytest.raises(ClientError) as raised:
        _create_user(connect, saml_instance["Id"], username)
    assert _error(raised) == ("InvalidParameterException", 400)


def test_it_accepts_a_64_character_username_on_saml_but_not_21_elsewhere(
    connect: Any, saml_instance: dict[str, Any]
) -> None:
    _create_user(connect, saml_instance["Id"], "a" * 64)
    managed = active_instance(connect, "managed", identity="CONNECT_MANAGED")
    with pytest.raises(ClientError) as raised:
        _create_user(connect, managed["Id"], "b" * 21, Password="Secret-pass1")
    assert _error(raised) == ("InvalidParameterException", 400)
    _create_user(connect, managed["Id"], "b" * 20, Password="Secret-pass1")


def test_it_pages_list_users_and_searches_by_username(connect: Any) -> None:
    instance = active_instance(connect, "paging")
    names = [f"agent{number:02d}" for number in range(7)]
    for name in names:
        _create_user(connect, instance["Id"], name)

    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        kwargs = {"NextToken": token} if token else {}
        page = connect.list_users(InstanceId=instance["Id"], MaxResults=3, **kwargs)
        seen += [summary["Username"] for summary in page["UserSummaryList"]]
        pages += 1
        token = page.get("NextToken")
        if not token:
            break
    assert (seen, pages) == (names, 3)

    exact = connect.search_users(
        InstanceId=instance["Id"],
        SearchCriteria={
            "StringCondition": {
                "FieldName": "Username",
                "Value": "agent03",
                "ComparisonType": "EXACT",
            }
        },
    )
    assert [user["Username"] for user in exact["Users"]] == ["agent03"]
    assert exact["Users"][0]["IdentityInfo"] == {"FirstName": "Hanako", "LastName": "Yamada"}

    everyone = connect.search_users(InstanceId=instance["Arn"], MaxResults=5)
    assert everyone["ApproximateTotalCount"] == 7
    rest = connect.search_users(InstanceId=instance["Id"], NextToken=everyone["NextToken"])
    assert [user["Username"] for user in everyone["Users"] + rest["Users"]] == names


def test_it_refuses_the_user_past_the_users_per_instance_quota(
    sandbox: Sandbox, connect: Any
) -> None:
    instance = active_instance(connect, "full")
    security, routing = default_profiles(connect, instance["Id"])
    # The first 500 go through the sandbox's own CreateUser handler in-process: over HTTPS each
    # call pays a TLS handshake (the server closes every connection), about 10 s for 500.
    for number in range(DEFAULT_USERS_PER_INSTANCE):
        sandbox.apps["aws"].connect.call(
            ConnectCall(
                "CreateUser",
                sandbox.endpoints["aws_region"],
                AWS_ACCOUNT_ID,
                {
                    "InstanceId": instance["Id"],
                    "Username": f"agent{number:03d}",
                    "SecurityProfileIds": [security["Agent"]],
                    "RoutingProfileId": routing,
                },
            )
        )
    assert len(
        connect.list_users(InstanceId=instance["Id"], MaxResults=1000)["UserSummaryList"]
    ) == (DEFAULT_USERS_PER_INSTANCE)
    with pytest.raises(ClientError) as raised:
        _create_user(connect, instance["Id"], "one-too-many")
    assert _error(raised) == ("LimitExceededException", 429)
    assert "L-9A46857E" in str(raised.value)


def test_it_throttles_past_the_knob_rate_and_standard_retries_get_through(
    sandbox: Sandbox, sandbox_knobs: Any, connect: Any, saml_instance: dict[str, Any]
) -> None:
    sandbox_knobs.rate_limits_enabled = True
    sandbox_knobs.rate_limits["connect:ListRoutingProfiles"] = (5, 1)
    sandbox_knobs.reset_buckets()

    connect.list_routing_profiles(InstanceId=saml_instance["Id"])
    with pytest.raises(ClientError) as raised:
        connect.list_routing_profiles(InstanceId=saml_instance["Id"])
    assert _error(raised) == ("ThrottlingException", 429)

    retrying = aws_client(sandbox, "connect", attempts=6)
    response = retrying.list_routing_profiles(InstanceId=saml_instance["Id"])
    assert response["ResponseMetadata"]["RetryAttempts"] >= 1
    assert response["RoutingProfileSummaryList"]


def test_it_injects_retryable_server_errors_and_latency(
    sandbox_knobs: Any, connect: Any, saml_instance: dict[str, Any]
) -> None:
    sandbox_knobs.error_rates["connect:ListSecurityProfiles"] = 1.0
    with pytest.raises(ClientError) as raised:
        connect.list_security_profiles(InstanceId=saml_instance["Id"])
    assert _error(raised) == ("InternalServiceException", 500)

    sandbox_knobs.latency_s["connect:ListRoutingProfiles"] = 0.2
    started = time.monotonic()
    connect.list_routing_profiles(InstanceId=saml_instance["Id"])
    assert time.monotonic() - started >= 0.2
