"""Reads, through an AWS connection, the AWS half of a federation: the Connect instance (by ID or
alias) and its usernames, every IAM SAML provider with its metadata, and every role whose trust
names one of them, with its policies. Read-only calls, all audited; a refused read names the IAM
action it needs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

from django.utils.translation import gettext_lazy as _

from provisioning.audit import AuditScope
from provisioning.aws.client import aws_client
from provisioning.aws.signin_facts import DEFAULT_MAX_SESSION_DURATION_S, IAM_REGION, role_policies
from provisioning.errors import NotFound
from provisioning.federation_check.result import refused_as
from provisioning.messages import Message
from provisioning.models import Connection

# The IAM actions these reads call, checked up front (provisioning/federation_check/permissions.py)
# and named when AWS refuses one.
AWS_READ_ACTIONS = (
    "sts:GetCallerIdentity",
    "connect:ListInstances",
    "connect:DescribeInstance",
    "connect:ListUsers",
    "iam:ListSAMLProviders",
    "iam:GetSAMLProvider",
    "iam:ListRoles",
    "iam:GetRole",
    "iam:ListAttachedRolePolicies",
    "iam:GetPolicy",
    "iam:GetPolicyVersion",
    "iam:ListRolePolicies",
    "iam:GetRolePolicy",
)


def _document(value: Any) -> dict[str, Any]:
    """A policy document as IAM returns it: botocore decodes it; raw IAM sends URL-encoded JSON."""
    if isinstance(value, dict):
        return value
    try:
        return dict(json.loads(unquote(str(value))))
    except ValueError:
        return {}


def _instance(connect: Any, reference: str) -> dict[str, Any] | None:
    """The instance whose ID or alias is `reference` (aliases are unique per region)."""
    with refused_as("connect_instance", _("Connect instances"), "connect:ListInstances"):
        summaries = [
            item
            for page in connect.get_paginator("list_instances").paginate()
            for item in page.get("InstanceSummaryList", [])
        ]
    summary = next(
        (item for item in summaries if reference in (item.get("Id"), item.get("InstanceAlias"))),
        None,
    )
    if summary is None:
        return None
    try:
        with refused_as("connect_instance", _("the Connect instance"), "connect:DescribeInstance"):
            described = connect.describe_instance(InstanceId=summary["Id"])["Instance"]
    except NotFound:
        return None
    return {
        "instance_id": described["Id"],
        "alias": described.get("InstanceAlias", ""),
        "arn": described["Arn"],
        "status": described.get("InstanceStatus", ""),
        "identity_management_type": described.get("IdentityManagementType", ""),
    }


def _usernames(connect: Any, instance_id: str) -> list[str]:
    with refused_as("connect_users", _("the Connect users"), "connect:ListUsers"):
        return [
            user["Username"]
            for page in connect.get_paginator("list_users").paginate(InstanceId=instance_id)
            for user in page.get("UserSummaryList", [])
        ]


def _providers(iam: Any) -> dict[str, str]:
    with refused_as("saml_provider", _("IAM SAML providers"), "iam:ListSAMLProviders"):
        listed = iam.list_saml_providers().get("SAMLProviderList", [])
    documents = {}
    for provider in listed:
        arn = provider["Arn"]
        with refused_as("saml_provider", arn, "iam:GetSAMLProvider"):
            documents[arn] = str(iam.get_saml_provider(SAMLProviderArn=arn)["SAMLMetadataDocument"])
    return documents


def federated_principals(trust: dict[str, Any]) -> Iterator[str]:
    """The SAML providers a trust policy's statements name as Federated principals."""
    statements = trust.get("Statement", [])
    for statement in [statements] if isinstance(statements, dict) else statements:
        principal = statement.get("Principal") if isinstance(statement, dict) else None
        if not isinstance(principal, dict):
            continue
        federated = principal.get("Federated", [])
        yield from [federated] if isinstance(federated, str) else federated


def _roles(iam: Any, provider_arns: set[str], role_arns: set[str]) -> dict[str, dict[str, Any]]:
    with refused_as("federation_role", _("IAM roles"), "iam:ListRoles"):
        summaries = [
            role
            for page in iam.get_paginator("list_roles").paginate()
            for role in page.get("Roles", [])
        ]
    roles = {}
    for summary in summaries:
        trust = _document(summary.get("AssumeRolePolicyDocument", {}))
        if summary.get("Arn") not in role_arns and not (
            set(federated_principals(trust)) & provider_arns
        ):
            continue
        name = summary["RoleName"]
        with refused_as("federation_role", name, "iam:GetRole"):
            role = iam.get_role(RoleName=name)["Role"]
        with refused_as(
            "federation_role",
            Message(_("the policies of %(role)s"), {"role": name}),
            "iam:GetPolicyVersion",
        ):
            policies = [
                {"name": p["name"], "document": _document(p["document"])}
                for p in role_policies(iam, name)
            ]
        roles[role["Arn"]] = {
            "arn": role["Arn"],
            "name": name,
            "role_id": role["RoleId"],
            "trust_policy": _document(role["AssumeRolePolicyDocument"]),
            "max_session_duration": int(
                role.get("MaxSessionDuration", DEFAULT_MAX_SESSION_DURATION_S)
            ),
            "policies": policies,
        }
    return roles


def read_connect(
    connection: Connection, *, audit: AuditScope, region: str, instance: str
) -> dict[str, Any]:
    """The account, and the Connect instance `instance` (an ID or alias) in `region` with its
    usernames (None: no such instance), as JSON-ready data."""
    sts = aws_client(connection, "sts", region=region, audit=audit)
    with refused_as("connect_instance", _("the AWS account"), "sts:GetCallerIdentity"):
        account = str(sts.get_caller_identity()["Account"])
    connect = aws_client(connection, "connect", region=region, audit=audit)
    found = _instance(connect, instance)
    usernames: list[str] = []
    if found is not None and found["status"] == "ACTIVE":
        usernames = _usernames(connect, found["instance_id"])
    return {"account": account, "region": region, "instance": found, "usernames": usernames}


def read_iam(
    connection: Connection, *, audit: AuditScope, region: str, role_arns: set[str]
) -> dict[str, Any]:
    """Every IAM SAML provider with its metadata, and every role that trusts one of them or that
    the IdP's role claim names (`role_arns`), with trust and policies."""
    iam = aws_client(connection, "iam", region=region or IAM_REGION, audit=audit)
    providers = _providers(iam)
    return {"providers": providers, "roles": _roles(iam, set(providers), role_arns)}


def read_policy(
    connection: Connection, *, audit: AuditScope, region: str, arn: str
) -> dict[str, Any] | None:
    """The managed policy at `arn` as {name, document} (its default version; None when there is
    none): the federation policy a repair would attach, read when the role may not federate."""
    iam = aws_client(connection, "iam", region=region or IAM_REGION, audit=audit)
    with refused_as("federation_role", arn, "iam:GetPolicy"):
        try:
            policy = iam.get_policy(PolicyArn=arn)["Policy"]
        except NotFound:
            return None
    with refused_as("federation_role", arn, "iam:GetPolicyVersion"):
        version = iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])
    return {"name": arn, "document": _document(version["PolicyVersion"]["Document"])}
