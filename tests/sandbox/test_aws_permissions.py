"""The sandbox AWS decides each call of an IAM user or an assumed role by its identity policies,
as AWS does: an explicit deny wins, then an allow, otherwise the call is refused."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from sandbox.server import AWS_ACCOUNT_ID, Sandbox
from tests.sandbox.aws_clients import active_instance, aws_client, unique_alias

REGION = "ap-northeast-1"


@pytest.fixture(scope="module")
def iam(sandbox: Sandbox) -> Any:
    return aws_client(sandbox, "iam")


@pytest.fixture(scope="module")
def connect(sandbox: Sandbox) -> Any:
    return aws_client(sandbox, "connect")


@pytest.fixture(scope="module")
def instance(connect: Any) -> dict[str, Any]:
    return active_instance(connect, "permissions")


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(*actions: str, resource: str = "*") -> dict[str, Any]:
    return {"Effect": "Allow", "Action": list(actions), "Resource": resource}


def client_as(sandbox: Sandbox, service: str, credentials: dict[str, str]) -> Any:
    endpoints = sandbox.endpoints
    return boto3.client(
        service,
        endpoint_url=endpoints["aws_endpoint_url"],
        region_name=endpoints["aws_region"],
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials.get("SessionToken"),
        verify=endpoints["ca_bundle"],
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )


def limited_role(iam: Any, sts: Any, *statements: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """A role the sandbox's keys may assume, with `statements` as its only policy: its session's
    ARN and credentials."""
    name = unique_alias("limited")
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
    role_arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"][
        "Arn"
    ]
    iam.put_role_policy(RoleName=name, PolicyName="limited", PolicyDocument=policy(*statements))
    assumed = sts.assume_role(RoleArn=role_arn, RoleSessionName="limited-session")
    return assumed["AssumedRoleUser"]["Arn"], assumed["Credentials"]


def limited_user(iam: Any, *statements: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """An IAM user whose group holds `statements`: its ARN and access key."""
    name = unique_alias("limited-user")
    user_arn = iam.create_user(UserName=name)["User"]["Arn"]
    iam.create_group(GroupName=name)
    iam.add_user_to_group(GroupName=name, UserName=name)
    iam.put_group_policy(GroupName=name, PolicyName="limited", PolicyDocument=policy(*statements))
    return user_arn, iam.create_access_key(UserName=name)["AccessKey"]


def refusal(call: Any, **params: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as refused:
        call(**params)
    return {
        "code": refused.value.response["Error"]["Code"],
        "message": refused.value.response["Error"]["Message"],
        "status": refused.value.response["ResponseMetadata"]["HTTPStatusCode"],
    }


def test_it_keeps_a_role_allowed_two_actions_to_those_two(sandbox: Sandbox, iam: Any) -> None:
    session_arn, credentials = limited_role(
        iam, aws_client(sandbox, "sts"), allow("connect:ListInstances", "iam:GetRole")
    )
    connect = client_as(sandbox, "connect", credentials)
    role_iam = client_as(sandbox, "iam", credentials)
    role_name = session_arn.split("/")[1]

    connect.list_instances()
    assert role_iam.get_role(RoleName=role_name)["Role"]["RoleName"] == role_name

    denied = refusal(
        connect.create_instance,
        IdentityManagementType="SAML",
        InstanceAlias=unique_alias("escalate"),
        InboundCallsEnabled=True,
        OutboundCallsEnabled=True,
    )
    assert denied == {
        "code": "AccessDeniedException",
        "message": f"User: {session_arn} is not authorized to perform: connect:CreateInstance "
        "on resource: * because no identity-based policy allows the connect:CreateInstance "
        "action",
        "status": 403,
    }
    everything = policy(allow("*"))
    denied = refusal(
        role_iam.put_role_policy, RoleName=role_name, PolicyName="all", PolicyDocument=everything
    )
    assert denied["code"] == "AccessDenied"
    assert denied["status"] == 403
    assert denied["message"] == (
        f"User: {session_arn} is not authorized to perform: iam:PutRolePolicy on resource: "
        f"arn:aws:iam::{AWS_ACCOUNT_ID}:role/{role_name} because no identity-based policy "
        "allows the iam:PutRolePolicy action"
    )
    assert refusal(role_iam.create_role, RoleName="escalated", AssumeRolePolicyDocument="{}")[
        "code"
    ] == ("AccessDenied")
    assert refusal(role_iam.create_user, UserName="escalated")["code"] == "AccessDenied"
    assert iam.list_role_policies(RoleName=role_name)["PolicyNames"] == ["limited"]


def test_it_names_the_instance_a_user_may_not_create_users_in(
    sandbox: Sandbox, iam: Any, instance: dict[str, Any]
) -> None:
    user_arn, key = limited_user(
        iam, allow("connect:ListUsers", "connect:DescribeInstance", resource=instance["Arn"])
    )
    connect = client_as(sandbox, "connect", key)

    assert connect.describe_instance(InstanceId=instance["Id"])["Instance"]["Id"] == instance["Id"]
    connect.list_users(InstanceId=instance["Id"])
    denied = refusal(
        connect.create_user,
        InstanceId=instance["Id"],
        Username=unique_alias("agent"),
        PhoneConfig={"PhoneType": "SOFT_PHONE"},
        SecurityProfileIds=["00000000-0000-0000-0000-000000000000"],
        RoutingProfileId="00000000-0000-0000-0000-000000000000",
    )

    assert denied == {
        "code": "AccessDeniedException",
        "message": f"User: {user_arn} is not authorized to perform: connect:CreateUser on "
        f"resource: {instance['Arn']} because no identity-based policy allows the "
        "connect:CreateUser action",
        "status": 403,
    }


def test_it_lets_an_explicit_deny_win_over_an_allow(sandbox: Sandbox, iam: Any) -> None:
    user_arn, key = limited_user(
        iam,
        allow("iam:*"),
        {"Effect": "Deny", "Action": "iam:CreateUser", "Resource": "*"},
    )
    user_iam = client_as(sandbox, "iam", key)

    user_iam.list_roles()
    denied = refusal(user_iam.create_user, UserName="denied-by-name")

    assert denied["message"] == (
        f"User: {user_arn} is not authorized to perform: iam:CreateUser on resource: "
        f"arn:aws:iam::{AWS_ACCOUNT_ID}:user/denied-by-name with an explicit deny in an "
        "identity-based policy"
    )


def test_it_checks_a_service_quotas_call_and_needs_no_right_for_get_caller_identity(
    sandbox: Sandbox, iam: Any
) -> None:
    user_arn, key = limited_user(iam, allow("connect:ListInstances"))

    assert client_as(sandbox, "sts", key).get_caller_identity()["Arn"] == user_arn
    denied = refusal(
        client_as(sandbox, "service-quotas", key).get_service_quota,
        ServiceCode="connect",
        QuotaCode="L-9A46857E",
    )
    assert denied["code"] == "AccessDeniedException"
    assert "servicequotas:GetServiceQuota" in denied["message"]


def test_it_refuses_a_request_signed_with_the_wrong_secret(sandbox: Sandbox, iam: Any) -> None:
    _, key = limited_user(iam, allow("*"))

    denied = refusal(
        client_as(sandbox, "iam", {**key, "SecretAccessKey": "not-the-secret"}).list_roles
    )

    assert (denied["code"], denied["status"]) == ("SignatureDoesNotMatch", 403)


def test_it_leaves_the_sandbox_keys_every_right(connect: Any, iam: Any) -> None:
    name = unique_alias("admin-keys")

    iam.create_role(RoleName=name, AssumeRolePolicyDocument="{}")
    iam.put_role_policy(RoleName=name, PolicyName="all", PolicyDocument=policy(allow("*")))
    connect.list_instances()

    assert iam.list_role_policies(RoleName=name)["PolicyNames"] == ["all"]
