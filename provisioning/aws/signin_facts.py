"""Reads, through an AWS connection, what AWS knows about one sign-in (the IAM SAML provider's
metadata, the role with its trust and policies, the Connect instance and the user) as plain data
the sign-in checks take."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from provisioning.audit import AuditScope
from provisioning.aws.client import aws_client
from provisioning.errors import PermanentError
from provisioning.models import Connection

# IAM's default MaxSessionDuration (IAM API reference, CreateRole: "the default value of one hour
# is applied"), for a role description that leaves it out.
DEFAULT_MAX_SESSION_DURATION_S = 3600
# IAM and Connect are global and regional: IAM is read through us-east-1 unless a region is given.
IAM_REGION = "us-east-1"


def _provider(iam: Any, provider_arn: str) -> dict[str, str]:
    try:
        document = iam.get_saml_provider(SAMLProviderArn=provider_arn)["SAMLMetadataDocument"]
    except PermanentError as error:
        if error.code in {"NoSuchEntity", "InvalidInput"}:
            return {}
        raise
    return {provider_arn: str(document)}


def role_policies(iam: Any, role_name: str) -> Iterator[dict[str, Any]]:
    """Every policy of a role, attached and inline, as {name, document} (the federation check
    reads them too: provisioning/federation_check/aws_reads.py)."""
    for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=role_name):
        for attached in page["AttachedPolicies"]:
            policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
            version = iam.get_policy_version(
                PolicyArn=attached["PolicyArn"], VersionId=policy["DefaultVersionId"]
            )["PolicyVersion"]
            yield {"name": attached["PolicyArn"], "document": version["Document"]}
    for page in iam.get_paginator("list_role_policies").paginate(RoleName=role_name):
        for name in page["PolicyNames"]:
            inline = iam.get_role_policy(RoleName=role_name, PolicyName=name)
            yield {"name": f"inline policy {name}", "document": inline["PolicyDocument"]}


def _role(iam: Any, role_arn: str) -> dict[str, Any]:
    try:
        role = iam.get_role(RoleName=role_arn.rsplit("/", 1)[-1])["Role"]
    except PermanentError as error:
        if error.code == "NoSuchEntity":
            return {}
        raise
    if role["Arn"] != role_arn:
        return {}
    return {
        role_arn: {
            "arn": role["Arn"],
            "role_id": role["RoleId"],
            "trust_policy": role["AssumeRolePolicyDocument"],
            "max_session_duration": int(
                role.get("MaxSessionDuration", DEFAULT_MAX_SESSION_DURATION_S)
            ),
            "policies": list(role_policies(iam, role["RoleName"])),
        }
    }


def _instance(connect: Any, instance_id: str, region: str, username: str) -> dict[str, Any]:
    try:
        instance = connect.describe_instance(InstanceId=instance_id)["Instance"]
    except PermanentError as error:
        if error.code not in {"ResourceNotFoundException", "InvalidParameterException"}:
            raise
        instance = {}
    # Only the users whose name matches the RoleSessionName ignoring case are kept: enough to
    # say "exists" or "differs only in case", without copying the instance's user list.
    wanted = username.lower()
    usernames: list[str] = []
    if instance.get("InstanceStatus") == "ACTIVE":
        for page in connect.get_paginator("list_users").paginate(InstanceId=instance_id):
            usernames.extend(
                user["Username"]
                for user in page["UserSummaryList"]
                if user["Username"].lower() == wanted
            )
    return {
        "instance_id": instance_id,
        "region": region,
        "arn": instance.get("Arn", ""),
        "status": instance.get("InstanceStatus", ""),
        "identity_management_type": instance.get("IdentityManagementType", ""),
        "usernames": usernames,
    }


def read_signin_facts(
    connection: Connection,
    *,
    audit: AuditScope,
    provider_arn: str,
    role_arn: str,
    instance_id: str,
    region: str,
    role_session_name: str,
) -> dict[str, Any]:
    """What IAM and Connect hold for this sign-in, as JSON-ready data (`what_aws_knows` in
    provisioning/signin_checks/sign_in_chain.py reads it back). Read-only calls, all audited."""
    iam = aws_client(connection, "iam", region=region or IAM_REGION, audit=audit)
    facts: dict[str, Any] = {
        "provider_metadata": _provider(iam, provider_arn),
        "roles": _role(iam, role_arn),
        "instance": None,
    }
    if instance_id and region:
        connect = aws_client(connection, "connect", region=region, audit=audit)
        facts["instance"] = _instance(connect, instance_id, region, role_session_name)
    return facts
