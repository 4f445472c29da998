"""The baseline an admin would write: a single-threaded boto3 loop creating Connect users.

Against the sandbox with Connect CreateUser limited to R requests/s (default 20, burst 5: the
real 2/s scaled by 10), with boto3's standard retry mode. bench/bulk_users.py
runs it and records it beside the wizard's own bulk creation, with the same keys.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from sandbox.knobs import Knobs
from sandbox.server import Sandbox

# Issue 7: N = 2000 users, quota R = 20 requests/s with a burst of 5.
USERS = int(os.environ.get("BENCH_USERS", "2000"))
QUOTA_RPS = float(os.environ.get("BENCH_QUOTA_RPS", "20"))
QUOTA_BURST = 5
USERS_PER_INSTANCE_QUOTA = "L-9A46857E"


def _client(endpoints: dict[str, str], service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoints["aws_endpoint_url"],
        region_name=endpoints["aws_region"],
        aws_access_key_id=endpoints["aws_access_key_id"],
        aws_secret_access_key=endpoints["aws_secret_access_key"],
        verify=endpoints["ca_bundle"],
        config=Config(retries={"mode": "standard", "max_attempts": 10}),
    )


def run() -> dict[str, Any]:
    knobs = Knobs(instance_creation_delay_s=0)
    knobs.rate_limits = {"connect:CreateUser": (QUOTA_RPS, QUOTA_BURST)}
    with tempfile.TemporaryDirectory() as state_dir:
        sandbox = Sandbox(state_dir=Path(state_dir), knobs=knobs)
        endpoints = sandbox.start()
        try:
            return _measure(sandbox, endpoints)
        finally:
            sandbox.stop()


def instance_with_room(sandbox: Sandbox) -> str:
    """A new SAML instance whose Users per instance quota holds N users: the increase an admin
    requests, approved at once by the sandbox's hook. Its id."""
    connect = _client(sandbox.endpoints, "connect")
    quotas = _client(sandbox.endpoints, "service-quotas")
    instance = connect.create_instance(
        IdentityManagementType="SAML",
        InstanceAlias=f"bench-{uuid.uuid4().hex[:8]}",
        InboundCallsEnabled=True,
        OutboundCallsEnabled=True,
    )
    current = quotas.get_service_quota(
        ServiceCode="connect", QuotaCode=USERS_PER_INSTANCE_QUOTA, ContextId=instance["Arn"]
    )["Quota"]["Value"]
    if current < USERS:
        request = quotas.request_service_quota_increase(
            ServiceCode="connect",
            QuotaCode=USERS_PER_INSTANCE_QUOTA,
            DesiredValue=USERS,
            ContextId=instance["Arn"],
        )
        sandbox.apps["aws"].service_quotas.set_status(request["RequestedQuota"]["Id"], "APPROVED")
    return str(instance["Id"])


def _measure(sandbox: Sandbox, endpoints: dict[str, str]) -> dict[str, Any]:
    connect = _client(endpoints, "connect")
    instance_id = instance_with_room(sandbox)
    profiles = connect.list_security_profiles(InstanceId=instance_id)["SecurityProfileSummaryList"]
    agent = next(profile["Id"] for profile in profiles if profile["Name"] == "Agent")
    routing = connect.list_routing_profiles(InstanceId=instance_id)["RoutingProfileSummaryList"]

    failed = 0
    started = time.monotonic()
    for n in range(USERS):
        try:
            connect.create_user(
                InstanceId=instance_id,
                Username=f"agent{n:05d}@example.com",
                IdentityInfo={"FirstName": "Agent", "LastName": f"{n:05d}"},
                PhoneConfig={"PhoneType": "SOFT_PHONE"},
                SecurityProfileIds=[agent],
                RoutingProfileId=routing[0]["Id"],
            )
        except ClientError:
            failed += 1
    wall_s = time.monotonic() - started

    usernames: list[str] = []
    for page in connect.get_paginator("list_users").paginate(InstanceId=instance_id):
        usernames.extend(user["Username"] for user in page["UserSummaryList"])
    created = len(usernames)
    achieved_rps = created / wall_s
    return {
        "n": USERS,
        "quota_rps": QUOTA_RPS,
        "achieved_rps": round(achieved_rps, 2),
        "utilisation": round(achieved_rps / QUOTA_RPS, 3),
        "failed": failed,
        "duplicates": created - len(set(usernames)),
        "created": created,
        "wall_s": round(wall_s, 1),
    }
