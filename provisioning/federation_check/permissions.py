"""The permissions a federation check needs, per cloud, and the check of them before anything is
read: AWS by iam:SimulatePrincipalPolicy for the connection's identity, Entra by the Graph
application permissions in the wizard's token. Okta's are an admin role's and are not listed in
its tokens: a refused Okta read names the permission instead."""

from __future__ import annotations

from provisioning.audit import AuditScope
from provisioning.aws.client import ACCESS_DENIED_CODES, NOT_FOUND_CODES, aws_client
from provisioning.entra.client import graph_client, token_permissions
from provisioning.errors import PermanentError
from provisioning.federation_check.aws_reads import AWS_READ_ACTIONS
from provisioning.federation_check.idp_reads import ENTRA_READ_PERMISSIONS, OKTA_READ_PERMISSIONS
from provisioning.models import Cloud, Connection
from provisioning.steps.preflight import NO_PERMISSION_ACTIONS, principal_for

SIMULATE_ACTION = "iam:SimulatePrincipalPolicy"


def needed_permissions(idp_cloud: str) -> dict[str, list[str]]:
    """What the check needs, as the admin grants it: IAM actions, and the IdP's permissions."""
    idp = list(ENTRA_READ_PERMISSIONS) if idp_cloud == Cloud.ENTRA else list(OKTA_READ_PERMISSIONS)
    return {"aws": [*AWS_READ_ACTIONS, f"{SIMULATE_ACTION} (optional)"], idp_cloud: idp}


def missing_aws_actions(connection: Connection, *, audit: AuditScope, region: str) -> list[str]:
    """The read actions the connection's identity may not call; [] also when it may not simulate
    (then a refused read names its action)."""
    caller = aws_client(connection, "sts", region=region, audit=audit).get_caller_identity()
    kind, principal_arn = principal_for(caller["Arn"])
    if not principal_arn:
        return []
    iam = aws_client(connection, "iam", region=region, audit=audit)
    if kind == "assumed-role":
        try:
            principal_arn = iam.get_role(RoleName=principal_arn.rsplit("/", 1)[1])["Role"]["Arn"]
        except PermanentError as error:
            if error.code not in ACCESS_DENIED_CODES:
                raise
    actions = [action for action in AWS_READ_ACTIONS if action not in NO_PERMISSION_ACTIONS]
    decisions: dict[str, str] = {}
    try:
        pages = iam.get_paginator("simulate_principal_policy")
        for page in pages.paginate(PolicySourceArn=principal_arn, ActionNames=actions):
            for result in page["EvaluationResults"]:
                decisions[result["EvalActionName"]] = result["EvalDecision"]
    except PermanentError as error:
        if error.code in ACCESS_DENIED_CODES or error.code in NOT_FOUND_CODES:
            return []
        raise
    return [action for action in actions if decisions.get(action) != "allowed"]


def missing_entra_permissions(connection: Connection, *, audit: AuditScope) -> list[str]:
    # A new token: one kept from before would still carry permissions revoked since.
    granted = set(token_permissions(graph_client(connection, audit=audit, fresh_sign_in=True)))
    return [name for name, covering in ENTRA_READ_PERMISSIONS.items() if not granted & covering]
