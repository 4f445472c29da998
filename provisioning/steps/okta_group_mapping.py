"""Gives the Okta app its role through group mapping: useGroupMapping with a groupFilter and a
roleValuePattern, and an Okta group whose name carries the role and the AWS account, so that
membership of that group is what sends the role (fully automatic, no manual step).

The pattern follows Okta's AWS Account Federation guide ("Connect Okta to multiple AWS instances
by using user groups"): groups named `aws#<label>#<role name>#<account id>`, and the Role value
`arn:<partition>:iam::${accountid}:role/${role},<provider ARN with ${accountid}>`. Unlike the
guide's catch-all filter (`^aws\\#\\S+\\#...`), this app's groupFilter names the instance's
own label: a person in the role groups of two instances then gets, from each instance's app,
only that instance's role paired with that app's identity provider.

Reads outputs okta_app (app_id, created), federation_role (role_arn, role_name, provider_arn)
and preflight (account_id). No inputs. Outputs: group_id, group_name, group_filter,
role_value_pattern, role_value (what Okta will send for members).
Rollback deletes the group if this run created it, and puts the app's previous mapping settings
back when the app was adopted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from django.utils.translation import gettext_lazy as _

from provisioning.context import StepContext
from provisioning.errors import PermanentError
from provisioning.messages import Message
from provisioning.okta import aws_app
from provisioning.okta.rest import okta_call, okta_pages
from provisioning.steps.base import Change, Finding, Plan, Step, StepOutputs, register
from provisioning.steps.federation_role import FederationRoleOutputs
from provisioning.steps.okta_app import OktaAppOutputs
from provisioning.steps.okta_app_provider import existing_app

GROUP_PREFIX = "aws#"
# Okta writes a named group as (?{{name}}...); the role and account are captured from the name.
GROUP_FILTER = r"^aws\#{label}\#(?{{{{role}}}}[\w+=,.@\-]+)\#(?{{{{accountid}}}}\d{{12}})$"
ROLE_ARN = re.compile(r"^arn:(?P<partition>[\w-]+):iam::(?P<account>\d{12}):role/(?P<name>.+)$")
PROVIDER_ARN = re.compile(r"^arn:(?P<partition>[\w-]+):iam::\d{12}:saml-provider/(?P<name>.+)$")
# Okta group names are at most 255 characters (Okta API reference, Group profile).
MAX_GROUP_NAME = 255
MAPPING_SETTINGS = ("useGroupMapping", "groupFilter", "roleValuePattern", "joinAllRoles")


def _role(ctx: StepContext) -> tuple[str, str, str]:
    """(role ARN, provider ARN, account id) from the earlier steps."""
    role = ctx.outputs_of(FederationRoleOutputs)
    role_arn, provider_arn = role.role_arn, role.provider_arn
    match = ROLE_ARN.match(role_arn)
    if match is None or not PROVIDER_ARN.match(provider_arn):
        raise PermanentError(
            Message(
                _("This step needs the role and identity provider of the step federation_role.")
            ),
            code="okta_group_mapping_no_role",
        )
    return role_arn, provider_arn, match["account"]


def _label(ctx: StepContext) -> str:
    return re.sub(r"\s+", "-", ctx.instance_alias or ctx.instance_id)


def group_filter(ctx: StepContext) -> str:
    return GROUP_FILTER.format(label=re.escape(_label(ctx)))


def group_name(ctx: StepContext) -> str:
    role_arn, _provider, account = _role(ctx)
    label = _label(ctx)
    role_name = ROLE_ARN.match(role_arn)["name"]  # type: ignore[index]
    return f"{GROUP_PREFIX}{label}#{role_name}#{account}"[:MAX_GROUP_NAME]


def wanted_settings(ctx: StepContext) -> dict[str, Any]:
    role_arn, provider_arn, _account = _role(ctx)
    role = ROLE_ARN.match(role_arn)
    provider = PROVIDER_ARN.match(provider_arn)
    partition = role["partition"]  # type: ignore[index]
    pattern = (
        f"arn:{partition}:iam::${{accountid}}:role/${{role}},"
        f"arn:{partition}:iam::${{accountid}}:saml-provider/{provider['name']}"  # type: ignore[index]
    )
    return {
        "useGroupMapping": True,
        "groupFilter": group_filter(ctx),
        "roleValuePattern": pattern,
        "joinAllRoles": False,
    }


def find_group(client: Any, name: str) -> dict[str, Any] | None:
    for group in okta_pages(client, "/api/v1/groups", params={"q": name, "limit": 200}):
        if (group.get("profile") or {}).get("name") == name:
            return group
    return None


@dataclass
class OktaGroupMappingOutputs(StepOutputs):
    """The role group whose members sign in, and the app's group-mapping settings."""

    step_key: ClassVar[str] = "okta_group_mapping"

    app_id: str = ""
    group_id: str = ""
    group_name: str = ""
    group_filter: str = ""
    role_value_pattern: str = ""
    role_value: str = ""  # "<role ARN>,<provider ARN>"


@register
class OktaGroupMapping(Step):
    key = "okta_group_mapping"
    title = _("Okta role by group mapping")
    description = _(
        "Members of one Okta group get the Connect role: the app maps the group's name (which "
        "carries the role and the AWS account) to the role. No manual step in Okta."
    )

    def plan(self, ctx: StepContext) -> Plan:
        client = ctx.okta()
        app = existing_app(ctx, client)
        name = group_name(ctx)
        group = find_group(client, name)
        changed = aws_app.differences(app, wanted_settings(ctx))
        return Plan(
            changes=[
                Change(
                    "adopt" if group is not None else "create",
                    "okta_group",
                    name,
                    details={"id": group["id"]} if group else {},
                ),
                Change(
                    "update" if changed else "nothing",
                    "okta_app_group_mapping",
                    app["id"],
                    details=wanted_settings(ctx),
                    diff="\n".join(f"{k}: {old!r} → {new!r}" for k, (old, new) in changed.items()),
                ),
            ]
        )

    def apply(self, ctx: StepContext) -> OktaGroupMappingOutputs:
        client = ctx.okta()
        app = existing_app(ctx, client)
        name = group_name(ctx)
        group = find_group(client, name)
        if group is None:
            group = okta_call(
                client,
                "POST",
                "/api/v1/groups",
                {
                    "profile": {
                        "name": name,
                        "description": str(
                            _("Members sign in to Amazon Connect %(instance)s (connect-sso-wizard)")
                        )
                        % {"instance": ctx.instance_alias or ctx.instance_id},
                    }
                },
            )
            ctx.record_created("okta_group", group["id"], name=name)
        wanted = wanted_settings(ctx)
        if aws_app.differences(app, wanted):
            if not ctx.outputs_of(OktaAppOutputs).created:
                previous = {key: aws_app.app_settings(app).get(key) for key in MAPPING_SETTINGS}
                ctx.record_created(
                    "okta_app_setting", "group_mapping", app_id=app["id"], previous=previous
                )
            aws_app.replace_app(client, app, app_settings_update=wanted)
        role_arn, provider_arn, _account = _role(ctx)
        return OktaGroupMappingOutputs(
            app_id=app["id"],
            group_id=group["id"],
            group_name=name,
            group_filter=wanted["groupFilter"],
            role_value_pattern=wanted["roleValuePattern"],
            role_value=f"{role_arn},{provider_arn}",
        )

    def verify(self, ctx: StepContext) -> list[Finding]:
        client = ctx.okta()
        app = existing_app(ctx, client)
        name = group_name(ctx)
        changed = aws_app.differences(app, wanted_settings(ctx))
        return [
            Finding(
                check=Message(_("The role group exists")),
                ok=find_group(client, name) is not None,
                detail=name,
                fix=Message(_("Retry the step.")),
            ),
            Finding(
                check=Message(_("The Okta app maps the group to the role")),
                ok=not changed,
                detail=", ".join(sorted(changed))
                or "useGroupMapping, groupFilter, roleValuePattern",
                fix=Message(_("Retry the step; it sets the mapping again.")),
            ),
        ]

    def rollback(self, ctx: StepContext) -> None:
        client = ctx.okta()
        for record in ctx.created_of("okta_app_setting"):
            app = aws_app.get_app(client, record.details["app_id"])
            if app is not None:
                aws_app.replace_app(client, app, app_settings_update=record.details["previous"])
        for record in ctx.created_of("okta_group"):
            try:
                okta_call(client, "DELETE", f"/api/v1/groups/{record.identifier}")
            except PermanentError as error:
                if error.code != aws_app.NOT_FOUND:
                    raise
