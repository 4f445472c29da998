"""Real boto3 clients pointed at the sandbox's AWS endpoint, and a ready Connect instance."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import boto3
from botocore.config import Config

from sandbox.server import Sandbox

# Long enough for the sandbox's creation delay in tests (0.5 s) several times over.
ACTIVE_TIMEOUT_S = 10.0


def aws_client(sandbox: Sandbox, service: str, *, attempts: int = 1) -> Any:
    """A boto3 client as the wizard builds one; one attempt unless a test wants retries (botocore's
    `max_attempts` counts retries only, `total_max_attempts` the first try too)."""
    endpoints = sandbox.endpoints
    return boto3.client(
        service,
        endpoint_url=endpoints["aws_endpoint_url"],
        region_name=endpoints["aws_region"],
        aws_access_key_id=endpoints["aws_access_key_id"],
        aws_secret_access_key=endpoints["aws_secret_access_key"],
        verify=endpoints["ca_bundle"],
        config=Config(retries={"mode": "standard", "total_max_attempts": attempts}),
    )


def unique_alias(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def wait_until_active(connect: Any, instance_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + ACTIVE_TIMEOUT_S
    while True:
        instance = connect.describe_instance(InstanceId=instance_id)["Instance"]
        if instance["InstanceStatus"] == "ACTIVE" or time.monotonic() > deadline:
            return instance
        time.sleep(0.05)


def active_instance(connect: Any, prefix: str, identity: str = "SAML") -> dict[str, Any]:
    created = connect.create_instance(
        IdentityManagementType=identity,
        InstanceAlias=unique_alias(prefix),
        InboundCallsEnabled=True,
        OutboundCallsEnabled=True,
    )
    instance = wait_until_active(connect, created["Id"])
    assert instance["InstanceStatus"] == "ACTIVE"
    return instance


def default_profiles(connect: Any, instance_id: str) -> tuple[dict[str, str], str]:
    """Security profile ids by name, and the Basic Routing Profile's id."""
    profiles = connect.list_security_profiles(InstanceId=instance_id)["SecurityProfileSummaryList"]
    routing = connect.list_routing_profiles(InstanceId=instance_id)["RoutingProfileSummaryList"]
    return {profile["Name"]: profile["Id"] for profile in profiles}, routing[0]["Id"]


def saml_trust_policy(provider_arn: str, audience: str) -> str:
    """A role trust policy letting SAML sign-ins through `provider_arn` for `audience` assume it,
    as the federation role step writes one (IAM User Guide, "Create a role for SAML 2.0")."""
    statement = {
        "Effect": "Allow",
        "Principal": {"Federated": provider_arn},
        "Action": "sts:AssumeRoleWithSAML",
        "Condition": {"StringEquals": {"SAML:aud": audience}},
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})
