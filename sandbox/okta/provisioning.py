"""The AWS app's Provisioning tab: list the roles Okta offers using the IAM user's access key."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

# The role download is one admin click; a short timeout keeps a dead AWS endpoint from hanging it.
AWS_CONNECT_TIMEOUT_S = 5
AWS_READ_TIMEOUT_S = 30
AWS_MAX_ATTEMPTS = 2
SAML_TRUST_ACTION = "sts:AssumeRoleWithSAML"


class RoleDownloadFailed(Exception):
    """AWS refused the key or could not be reached; Okta shows this as a failed verification."""


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def trusts_saml_provider(policy: Any) -> bool:
    """Whether a role's trust policy lets a SAML provider assume it. IAM returns the document
    URL-encoded; botocore usually decodes it to a dict already."""
    if isinstance(policy, str):
        policy = json.loads(unquote(policy))
    if not isinstance(policy, dict):
        return False
    for statement in _as_list(policy.get("Statement")):
        principal = statement.get("Principal") or {}
        federated = _as_list(principal.get("Federated")) if isinstance(principal, dict) else []
        actions = _as_list(statement.get("Action"))
        if (
            statement.get("Effect") == "Allow"
            and any(":saml-provider/" in str(arn) for arn in federated)
            and SAML_TRUST_ACTION in actions
        ):
            return True
    return False


def download_roles(
    *,
    endpoint_url: str,
    region: str,
    ca_bundle: str,
    access_key_id: str,
    secret_access_key: str,
) -> tuple[dict[str, str], list[str]]:
    """(role name -> role ARN for roles trusting a SAML provider, account aliases), read with
    iam:ListRoles and iam:ListAccountAliases as Okta does; the calls mark the key as used."""
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        verify=ca_bundle,
        config=Config(
            connect_timeout=AWS_CONNECT_TIMEOUT_S,
            read_timeout=AWS_READ_TIMEOUT_S,
            retries={"max_attempts": AWS_MAX_ATTEMPTS, "mode": "standard"},
        ),
    )
    try:
        roles: dict[str, str] = {}
        for page in iam.get_paginator("list_roles").paginate():
            for role in page["Roles"]:
                if trusts_saml_provider(role.get("AssumeRolePolicyDocument")):
                    roles[role["RoleName"]] = role["Arn"]
        aliases = list(iam.list_account_aliases()["AccountAliases"])
    except ClientError as error:
        details = error.response.get("Error", {})
        raise RoleDownloadFailed(
            f"{details.get('Code', 'Error')}: {details.get('Message', '')}".strip()
        ) from error
    except BotoCoreError as error:
        raise RoleDownloadFailed(str(error)) from error
    return roles, aliases
