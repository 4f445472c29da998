"""Checks one federation: the permissions first, then the Connect instance, IAM and the IdP app
(given, or found by its relay state or role claim pointing at the instance), then judges each
link. Reads only; every call goes through the audited clients."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils.translation import gettext_lazy as _

from provisioning.audit import AuditScope
from provisioning.federation_check.aws_reads import read_connect, read_iam, read_policy
from provisioning.federation_check.idp_reads import read_idp
from provisioning.federation_check.judge import (
    NO_FEDERATION_PERMISSION,
    judge,
    judge_detached_policy,
    known_role,
    role_pairs,
)
from provisioning.federation_check.permissions import (
    missing_aws_actions,
    missing_entra_permissions,
    needed_permissions,
)
from provisioning.federation_check.repair import repair_facts
from provisioning.federation_check.result import CouldNotRead, FederationCheck, Severity
from provisioning.messages import Message
from provisioning.models import Cloud, Connection
from provisioning.signin_checks.sign_in_chain import KnownInstance, federation_decision
from provisioning.steps.federation_policy import default_policy_arn

# A RoleSessionName to ask "may this role federate into the instance at all" with.
PROBE_SESSION_NAME = "federation-check"


def _roles_granting(iam: dict[str, Any], instance: dict[str, Any], region: str) -> set[str]:
    """The roles whose policies allow connect:GetFederationToken on the instance."""
    known = KnownInstance(
        instance_id=instance["instance_id"],
        region=region,
        arn=instance["arn"],
        status=instance["status"],
        identity_management_type=instance["identity_management_type"],
    )
    granting = set()
    for arn, role in iam["roles"].items():
        candidate = known_role(role)
        if federation_decision(candidate, known, PROBE_SESSION_NAME) is None:
            granting.add(arn)
    return granting


def _permissions_missing(
    check: FederationCheck, aws: Connection, idp: Connection, audit: AuditScope
) -> bool:
    for action in missing_aws_actions(aws, audit=audit, region=check.region):
        check.could_not_read(
            "connect_instance",
            aws.name,
            action,
            Message(
                _("%(connection)s may not call %(action)s"),
                {"connection": aws.name, "action": action},
            ),
        )
    if idp.cloud == Cloud.ENTRA:
        for permission in missing_entra_permissions(idp, audit=audit):
            check.could_not_read(
                "idp_app",
                idp.name,
                permission,
                Message(
                    _("%(connection)s lacks Microsoft Graph %(permission)s"),
                    {"connection": idp.name, "permission": permission},
                ),
            )
    return bool(check.unreadable)


def check_federation(
    *,
    aws_connection: Connection,
    region: str,
    instance: str,
    idp_connection: Connection,
    app_id: str = "",
    audit: AuditScope,
    now: dt.datetime | None = None,
) -> FederationCheck:
    check = FederationCheck(
        aws_connection=aws_connection.name,
        region=region,
        instance=instance,
        idp_connection=idp_connection.name,
        idp=idp_connection.cloud,
        app_id=app_id,
        permissions=needed_permissions(idp_connection.cloud),
    )
    now = now or dt.datetime.now(dt.UTC)
    try:
        if _permissions_missing(check, aws_connection, idp_connection, audit):
            return check
        connect = read_connect(aws_connection, audit=audit, region=region, instance=instance)
        found = connect["instance"]
        if found is None:
            check.add("connect_instance", "instance_not_found", instance=instance, region=region)
            return check
        check.instance_id = found["instance_id"]
        check.instance_alias = found.get("alias") or ""
        iam = read_iam(aws_connection, audit=audit, region=region, role_arns=set())
        granting = _roles_granting(iam, found, region)

        def points_at(relay_state: str, role_values: list[str]) -> bool:
            return found["instance_id"] in relay_state or any(
                role in value for value in role_values for role in granting
            )

        apps = read_idp(idp_connection, audit=audit, app_id=app_id, points_at=points_at)
        check.apps_found = [{"app_id": app["app_id"], "name": app["name"]} for app in apps]
        if not apps:
            check.add(
                "idp_app",
                "app_not_found" if app_id else "no_app_points_here",
                app_id=app_id,
                instance=found["instance_id"],
            )
            return check
        app = apps[0]
        check.app_id = app["app_id"]
        claimed = {pair.role_arn for pair in role_pairs(app)}
        if claimed - set(iam["roles"]):
            iam = read_iam(aws_connection, audit=audit, region=region, role_arns=claimed)
        judge(check, app=app, connect=connect, iam=iam, now=now)
        if any(finding.code == NO_FEDERATION_PERMISSION for finding in check.findings):
            # Whether the policy a repair attaches is there, only detached: which step fixes it.
            label = check.instance_alias or check.instance_id
            arn = default_policy_arn(label, connect["account"], region)
            policy = read_policy(aws_connection, audit=audit, region=region, arn=arn)
            judge_detached_policy(check, app=app, connect=connect, iam=iam, policy=policy)
        pairs = role_pairs(app)
        check.read = repair_facts(
            app,
            iam,
            role_arn=pairs[0].role_arn if pairs else "",
            provider_arn=pairs[0].provider_arn if pairs else "",
        )
        if len(apps) > 1:
            check.add(
                "idp_app",
                "several_apps",
                Severity.WARNING,
                names=", ".join(f"{a['name']} ({a['app_id']})" for a in apps[1:]),
            )
    except CouldNotRead as refused:
        check.could_not_read(refused.link, refused.what, refused.permission, refused.message)
    return check
