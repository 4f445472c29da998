"""Every operation the sandbox serves beyond moto answers in exactly the shape botocore's model
gives its output: boto3 parses it, and no member is unknown or of the wrong type."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.validate import ParamValidator

from sandbox.aws.service_quotas import (
    CONCURRENT_ACTIVE_CALLS_PER_INSTANCE,
    PHONE_NUMBERS_PER_INSTANCE,
    USERS_PER_INSTANCE,
    QuotaReview,
)
from sandbox.server import Sandbox
from tests.sandbox.aws_clients import active_instance, aws_client, default_profiles, unique_alias


@dataclass
class World:
    """One instance with a user, a claimed number and an open quota request to point calls at."""

    sandbox: Sandbox
    connect: Any
    quotas: Any
    instance: dict[str, Any]
    security: dict[str, str]
    routing_id: str
    user_id: str
    number_id: str
    request_id: str

    def new_user(self) -> str:
        return self.connect.create_user(
            InstanceId=self.instance["Id"],
            Username=unique_alias("shape"),
            PhoneConfig={"PhoneType": "SOFT_PHONE"},
            SecurityProfileIds=[self.security["Agent"]],
            RoutingProfileId=self.routing_id,
        )["UserId"]

    def free_number(self) -> str:
        return self.connect.search_available_phone_numbers(
            TargetArn=self.instance["Arn"], PhoneNumberCountryCode="JP", PhoneNumberType="DID"
        )["AvailableNumbersList"][0]["PhoneNumber"]

    def new_number(self) -> str:
        return self.connect.claim_phone_number(
            TargetArn=self.instance["Arn"], PhoneNumber=self.free_number()
        )["PhoneNumberId"]


@pytest.fixture(scope="module")
def world(sandbox: Sandbox) -> World:
    connect = aws_client(sandbox, "connect")
    quotas = aws_client(sandbox, "service-quotas")
    service_quotas = sandbox.apps["aws"].service_quotas
    instance = active_instance(connect, "shapes")
    security, routing_id = default_profiles(connect, instance["Id"])
    approved = quotas.request_service_quota_increase(
        ServiceCode="connect",
        QuotaCode=PHONE_NUMBERS_PER_INSTANCE,
        DesiredValue=10,
        ContextId=instance["Arn"],
    )["RequestedQuota"]["Id"]
    service_quotas.set_status(approved, "APPROVED")
    saved_review = service_quotas.review
    service_quotas.review = QuotaReview(case_opened_after_s=3600, approved_after_s=7200)
    open_request = quotas.request_service_quota_increase(
        ServiceCode="connect",
        QuotaCode=USERS_PER_INSTANCE,
        DesiredValue=600,
        ContextId=instance["Arn"],
    )["RequestedQuota"]["Id"]
    service_quotas.set_status(open_request, "CASE_OPENED")
    service_quotas.review = saved_review
    world = World(sandbox, connect, quotas, instance, security, routing_id, "", "", open_request)
    world.user_id = world.new_user()
    world.number_id = world.new_number()
    return world


Call = Callable[[World], dict[str, Any]]

CONNECT_CALLS: dict[str, Call] = {
    "CreateInstance": lambda w: {
        "IdentityManagementType": "SAML",
        "InstanceAlias": unique_alias("shape"),
        "InboundCallsEnabled": True,
        "OutboundCallsEnabled": True,
        "ClientToken": unique_alias("token"),
    },
    "DeleteInstance": lambda w: {"InstanceId": active_instance(w.connect, "gone")["Id"]},
    "DescribeInstance": lambda w: {"InstanceId": w.instance["Id"]},
    "ListInstances": lambda w: {},
    "CreateUser": lambda w: {
        "InstanceId": w.instance["Id"],
        "Username": unique_alias("created"),
        "IdentityInfo": {"FirstName": "Ichiro", "LastName": "Sato", "Email": "i@example.com"},
        "PhoneConfig": {"PhoneType": "SOFT_PHONE", "AutoAccept": True},
        "SecurityProfileIds": [w.security["Agent"]],
        "RoutingProfileId": w.routing_id,
        "Tags": {"owner": "wizard"},
    },
    "DescribeUser": lambda w: {"InstanceId": w.instance["Id"], "UserId": w.user_id},
    "ListUsers": lambda w: {"InstanceId": w.instance["Id"], "MaxResults": 1},
    "SearchUsers": lambda w: {
        "InstanceId": w.instance["Id"],
        "SearchCriteria": {
            "OrConditions": [
                {
                    "StringCondition": {
                        "FieldName": "Username",
                        "Value": "shape",
                        "ComparisonType": "STARTS_WITH",
                    }
                },
                {"StringCondition": {"FieldName": "resourceId", "Value": w.user_id}},
            ]
        },
        "MaxResults": 1,
    },
    "UpdateUserIdentityInfo": lambda w: {
        "InstanceId": w.instance["Id"],
        "UserId": w.user_id,
        "IdentityInfo": {"FirstName": "Jiro", "LastName": "Sato"},
    },
    "UpdateUserSecurityProfiles": lambda w: {
        "InstanceId": w.instance["Id"],
        "UserId": w.user_id,
        "SecurityProfileIds": [w.security["Admin"]],
    },
    "UpdateUserRoutingProfile": lambda w: {
        "InstanceId": w.instance["Id"],
        "UserId": w.user_id,
        "RoutingProfileId": w.routing_id,
    },
    "UpdateUserPhoneConfig": lambda w: {
        "InstanceId": w.instance["Id"],
        "UserId": w.user_id,
        "PhoneConfig": {"PhoneType": "SOFT_PHONE", "AfterContactWorkTimeLimit": 30},
    },
    "DeleteUser": lambda w: {"InstanceId": w.instance["Id"], "UserId": w.new_user()},
    "ListSecurityProfiles": lambda w: {"InstanceId": w.instance["Id"], "MaxResults": 2},
    "DescribeSecurityProfile": lambda w: {
        "InstanceId": w.instance["Id"],
        "SecurityProfileId": w.security["QualityAnalyst"],
    },
    "SearchSecurityProfiles": lambda w: {"InstanceId": w.instance["Id"], "MaxResults": 2},
    "ListRoutingProfiles": lambda w: {"InstanceId": w.instance["Id"]},
    "DescribeRoutingProfile": lambda w: {
        "InstanceId": w.instance["Id"],
        "RoutingProfileId": w.routing_id,
    },
    "SearchAvailablePhoneNumbers": lambda w: {
        "TargetArn": w.instance["Arn"],
        "PhoneNumberCountryCode": "JP",
        "PhoneNumberType": "TOLL_FREE",
        "PhoneNumberPrefix": "+81120",
        "MaxResults": 2,
    },
    "ClaimPhoneNumber": lambda w: {
        "TargetArn": w.instance["Arn"],
        "PhoneNumber": w.free_number(),
        "PhoneNumberDescription": "Tokyo support line",
        "ClientToken": unique_alias("claim"),
    },
    "ListPhoneNumbersV2": lambda w: {
        "TargetArn": w.instance["Arn"],
        "PhoneNumberCountryCodes": ["JP"],
        "PhoneNumberTypes": ["DID"],
        "MaxResults": 1,
    },
    "DescribePhoneNumber": lambda w: {"PhoneNumberId": w.number_id},
    "ReleasePhoneNumber": lambda w: {"PhoneNumberId": w.new_number()},
}

QUOTA_CALLS: dict[str, Call] = {
    "RequestServiceQuotaIncrease": lambda w: {
        "ServiceCode": "connect",
        "QuotaCode": CONCURRENT_ACTIVE_CALLS_PER_INSTANCE,
        "DesiredValue": 50,
        "ContextId": active_instance(w.connect, "quota-shape")["Arn"],
    },
    "GetRequestedServiceQuotaChange": lambda w: {"RequestId": w.request_id},
    "ListRequestedServiceQuotaChangeHistory": lambda w: {"ServiceCode": "connect"},
    "ListRequestedServiceQuotaChangeHistoryByQuota": lambda w: {
        "ServiceCode": "connect",
        "QuotaCode": USERS_PER_INSTANCE,
        "Status": "CASE_OPENED",
    },
    "GetServiceQuota": lambda w: {
        "ServiceCode": "connect",
        "QuotaCode": PHONE_NUMBERS_PER_INSTANCE,
        "ContextId": w.instance["Arn"],
    },
    "GetAWSDefaultServiceQuota": lambda w: {
        "ServiceCode": "connect",
        "QuotaCode": PHONE_NUMBERS_PER_INSTANCE,
    },
    "ListServiceQuotas": lambda w: {"ServiceCode": "connect", "MaxResults": 2},
    "ListAWSDefaultServiceQuotas": lambda w: {"ServiceCode": "connect"},
}

CASES = [("connect", name, call) for name, call in CONNECT_CALLS.items()] + [
    ("service-quotas", name, call) for name, call in QUOTA_CALLS.items()
]


def test_it_covers_every_connect_operation_the_sandbox_serves(sandbox: Sandbox) -> None:
    assert sandbox.apps["aws"].connect.operations <= set(CONNECT_CALLS)


@pytest.mark.parametrize(("service", "operation", "call"), CASES, ids=[c[1] for c in CASES])
def test_it_answers_in_the_shape_of_botocores_model(
    world: World, service: str, operation: str, call: Call
) -> None:
    client = world.connect if service == "connect" else world.quotas
    operation_model = client.meta.service_model.operation_model(operation)
    method_name = next(
        name for name, api in client.meta.method_to_api_mapping.items() if api == operation
    )
    method = getattr(client, method_name)

    response = method(**call(world))

    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    response.pop("ResponseMetadata")
    if operation_model.output_shape is None:
        assert response == {}
        return
    report = ParamValidator().validate(response, operation_model.output_shape)
    assert not report.has_errors(), report.generate_report()
    assert response, f"{operation} returned nothing"
