"""Checks the Okta connection before anything changes: the org URL is an Okta org, the
credentials work, and the admin behind them holds a role that may do what the flow does.

Reads nothing from earlier steps and takes no inputs. With an API token it reads
GET /api/v1/users/me and GET /api/v1/users/{id}/roles; with an OAuth service app it checks the
connection's granted scopes instead (a service app has no "me").
Outputs: org_url, admin_login, admin_roles (role types), checked (what each need was met by).
A missing role or scope stops the step with a PermanentError listing each one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from provisioning.context import StepContext
from provisioning.errors import PermanentError
from provisioning.messages import Message, joined
from provisioning.models import SetupRun
from provisioning.okta.client import DEFAULT_SCOPES
from provisioning.okta.rest import okta_call
from provisioning.steps.base import Change, Finding, Plan, Step, StepOutputs, register

# What the flow does in Okta, and the standard admin roles that may do it (Okta Help, "Standard
# administrator roles and permissions": Super and Org Administrators may do all of it, the
# Application Administrator manages apps and their assignments, the Group Administrator
# (USER_ADMIN) and Group Membership Administrator manage groups and read their people). Each need
# is a message id: the error names it in the reader's language.
NEEDS: dict[str, tuple[str, ...]] = {
    gettext_noop("manage the AWS app and its assignments"): (
        "SUPER_ADMIN",
        "ORG_ADMIN",
        "APP_ADMIN",
    ),
    gettext_noop("read people and groups"): (
        "SUPER_ADMIN",
        "ORG_ADMIN",
        "APP_ADMIN",
        "USER_ADMIN",
        "GROUP_MEMBERSHIP_ADMIN",
        "READ_ONLY_ADMIN",
    ),
}
# Only group mapping creates a group and changes its members.
GROUP_NEED = gettext_noop("create the role group and add its members")
GROUP_ROLES = ("SUPER_ADMIN", "ORG_ADMIN", "USER_ADMIN", "GROUP_MEMBERSHIP_ADMIN")
# The OAuth 2.0 scopes a service app needs for the same work (Okta API reference, "OAuth 2.0
# scopes for Okta management APIs").
SCOPES = ("okta.apps.manage", "okta.users.read", "okta.groups.read")
GROUP_SCOPE = "okta.groups.manage"
READ_SUFFIX = ".read"
MANAGE_SUFFIX = ".manage"
GROUP_MAPPING_STEP = "okta_group_mapping"


def _flow_step_keys(ctx: StepContext) -> list[str]:
    from provisioning.flows import FLOWS

    flow_key = SetupRun.objects.filter(pk=ctx.run_id).values_list("flow_key", flat=True).first()
    flow = FLOWS.get(flow_key or "")
    return list(flow.step_keys) if flow else []


def _needs(ctx: StepContext) -> dict[str, tuple[str, ...]]:
    needs = dict(NEEDS)
    if GROUP_MAPPING_STEP in _flow_step_keys(ctx):
        needs[GROUP_NEED] = GROUP_ROLES
    return needs


def _connection(ctx: StepContext) -> Any:
    return ctx.idp_connection()


def _check_token(ctx: StepContext, client: Any) -> dict[str, Any]:
    me = okta_call(client, "GET", "/api/v1/users/me")
    roles = okta_call(client, "GET", f"/api/v1/users/{me['id']}/roles") or []
    held = sorted({str(role.get("type")) for role in roles if role.get("status") == "ACTIVE"})
    checked: dict[str, str] = {}
    missing: list[Message] = []
    for need, allowed in _needs(ctx).items():
        found = next((role for role in allowed if role in held), "")
        if found:
            checked[need] = found
        else:
            missing.append(
                Message(
                    _("%(need)s (one of %(roles)s)"),
                    {"need": Message(need), "roles": ", ".join(allowed)},
                )
            )
    login = str((me.get("profile") or {}).get("login", ""))
    if missing:
        raise PermanentError(
            Message(
                _(
                    "The Okta admin %(login)s can't do everything the setup needs: %(missing)s. "
                    "Roles held: %(held)s."
                ),
                {
                    "login": login,
                    "missing": joined(missing, "; "),
                    "held": ", ".join(held) or Message(_("none")),
                },
            ),
            code="okta_preflight_missing_roles",
            hint=Message(
                _(
                    "In the Okta Admin Console (Security › Administrators), give this admin one "
                    "of the roles listed, or create the API token as a Super Administrator."
                )
            ),
        )
    return {"admin_login": login, "admin_roles": held, "checked": checked}


def _scope_covered(scope: str, granted: set[str]) -> bool:
    """Okta's scopes form a hierarchy: "the manage scopes can do everything that the read scopes
    do" (Okta, "Implement OAuth for Okta", Scopes and supported endpoints)."""
    return scope in granted or (
        scope.endswith(READ_SUFFIX) and scope.removesuffix(READ_SUFFIX) + MANAGE_SUFFIX in granted
    )


def _check_scopes(ctx: StepContext, connection: Any) -> dict[str, Any]:
    granted = set(str(connection.config.get("scopes") or DEFAULT_SCOPES).split())
    wanted = list(SCOPES) + ([GROUP_SCOPE] if GROUP_MAPPING_STEP in _flow_step_keys(ctx) else [])
    missing = [scope for scope in wanted if not _scope_covered(scope, granted)]
    if missing:
        raise PermanentError(
            Message(
                _("The Okta service app's connection lacks the scopes %(scopes)s."),
                {"scopes": ", ".join(missing)},
            ),
            code="okta_preflight_missing_scopes",
            hint=Message(
                _(
                    "Grant them to the service app (Okta API Scopes tab) and add them to the "
                    "connection's scopes."
                )
            ),
        )
    return {
        "admin_login": str(connection.config.get("client_id", "")),
        "admin_roles": [],
        "checked": {scope: "granted" for scope in wanted},
    }


@dataclass
class OktaPreflightOutputs(StepOutputs):
    """Who the wizard acts as in Okta and what it checked it may do."""

    step_key: ClassVar[str] = "okta_preflight"

    org_url: str = ""
    # The admin's login (API token) or the service app's client ID (private key).
    admin_login: str = ""
    admin_roles: list[str] = field(default_factory=list)
    # Per need (token) or scope (private key): the role or "granted" that covers it.
    checked: dict[str, str] = field(default_factory=dict)


@register
class OktaPreflight(Step):
    key = "okta_preflight"
    title = _("Okta connection check")
    description = _(
        "Checks that the Okta connection works and that its admin may create the AWS app, "
        "read people and groups, and assign them."
    )

    def _checks(self, ctx: StepContext) -> OktaPreflightOutputs:
        client = ctx.okta()  # validates the org URL before any call
        connection = _connection(ctx)
        if connection.config.get("method") == "private_key":
            found = _check_scopes(ctx, connection)
            # The token request itself proves the key works.
            okta_call(client, "GET", "/api/v1/apps", params={"limit": 1})
        else:
            found = _check_token(ctx, client)
        return OktaPreflightOutputs(org_url=client.get_config()["client"]["orgUrl"], **found)

    def plan(self, ctx: StepContext) -> Plan:
        found = self._checks(ctx)
        return Plan(
            changes=[
                Change(
                    "nothing",
                    "okta_admin",
                    found.admin_login,
                    details={"roles": found.admin_roles, "checked": found.checked},
                )
            ]
        )

    def apply(self, ctx: StepContext) -> OktaPreflightOutputs:
        return self._checks(ctx)

    def verify(self, ctx: StepContext) -> list[Finding]:
        # Its plan and apply are the checks; nothing it leaves behind can drift.
        return []

    def rollback(self, ctx: StepContext) -> None:
        # Reads only: it created nothing to remove.
        return None
