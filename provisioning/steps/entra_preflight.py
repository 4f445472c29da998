"""The Entra preflight step: the connection gets a token, the token's application permissions cover
every Graph call of the flow, and the "AWS Single-Account Access" gallery template is found.

Outputs: `tenant_id`, `granted_permissions` (the token's `roles` claim), `template_id`,
`template_name`. A missing permission stops the step with a PermanentError naming each one exactly
as the app registration's "API permissions" page lists it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.utils.translation import gettext_lazy as _
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.application_templates.application_templates_request_builder import (
    ApplicationTemplatesRequestBuilder,
)

from provisioning.context import StepContext
from provisioning.entra.client import run_graph, token_permissions
from provisioning.entra.graph_reads import get_or_none
from provisioning.errors import PermanentError
from provisioning.messages import Message
from provisioning.steps.base import Change, Finding, Plan, Step, StepOutputs, register

TEMPLATE_NAME = "AWS Single-Account Access"
# The template's id as seen in Entra's gallery by an admin adding the app by hand: used when the
# lookup by name finds nothing (a renamed gallery entry), never instead of it.
FALLBACK_TEMPLATE_ID = "8b1025e4-1dd2-430b-a150-2ef79cd700f5"
# What the flow's Graph calls need, each with the permissions that satisfy it (Microsoft Graph
# permissions reference: a ReadWrite permission covers the matching Read; Directory.* cover users
# and groups). The key is the name the admin is told to add.
REQUIRED_PERMISSIONS: dict[str, frozenset[str]] = {
    "Application.ReadWrite.All": frozenset(
        {"Application.ReadWrite.All", "Application.ReadWrite.OwnedBy"}
    ),
    "AppRoleAssignment.ReadWrite.All": frozenset({"AppRoleAssignment.ReadWrite.All"}),
    "Policy.ReadWrite.ApplicationConfiguration": frozenset(
        {"Policy.ReadWrite.ApplicationConfiguration"}
    ),
    "Policy.Read.All": frozenset({"Policy.Read.All", "Policy.ReadWrite.ApplicationConfiguration"}),
    "User.Read.All": frozenset(
        {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
    ),
    "Group.Read.All": frozenset(
        {
            "Group.Read.All",
            "Group.ReadWrite.All",
            "GroupMember.Read.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        }
    ),
}


# The key under which plan() hands apply() its checks' outputs (StepContext.read_by_plan).
CHECKED = "checked_tenant"


def missing_permissions(granted: list[str]) -> list[str]:
    """The required permissions none of whose equivalents was granted."""
    have = set(granted)
    return [name for name, covering in REQUIRED_PERMISSIONS.items() if not have & covering]


def find_template(client: Any) -> tuple[str, str]:
    """(id, displayName) of the AWS gallery template: by name first, then the known id."""
    query = ApplicationTemplatesRequestBuilder.ApplicationTemplatesRequestBuilderGetQueryParameters(
        filter=f"displayName eq '{TEMPLATE_NAME}'"
    )
    found = run_graph(
        client.application_templates.get(
            request_configuration=RequestConfiguration(query_parameters=query)
        )
    )
    for template in found.value or []:
        if template.display_name == TEMPLATE_NAME:
            return str(template.id), str(template.display_name)
    template = get_or_none(
        client.application_templates.by_application_template_id(FALLBACK_TEMPLATE_ID).get()
    )
    if template is not None:
        return str(template.id), str(template.display_name)
    raise PermanentError(
        Message(
            _("The Entra gallery has no “%(template)s” application template."),
            {"template": TEMPLATE_NAME},
        ),
        code="entra_template_missing",
        hint=Message(
            _(
                "Check that the tenant is a commercial Entra ID tenant with the application "
                "gallery available, then retry."
            )
        ),
    )


@dataclass
class EntraPreflightOutputs(StepOutputs):
    """What the preflight found of the tenant: the wizard's permissions and the gallery app."""

    step_key: ClassVar[str] = "entra_preflight"

    tenant_id: str = ""
    granted_permissions: list[str] = field(default_factory=list)
    template_id: str = ""
    template_name: str = ""


def check_tenant(ctx: StepContext, *, fresh_sign_in: bool = False) -> EntraPreflightOutputs:
    """Every check of the step; raises on the first that fails, returns the outputs. With
    `fresh_sign_in` it reads the permissions from a new token, not the worker's kept one."""
    client = ctx.graph(fresh_sign_in=fresh_sign_in)
    granted = token_permissions(client)
    missing = missing_permissions(granted)
    if missing:
        raise PermanentError(
            Message(
                _(
                    "The wizard's app registration lacks these Microsoft Graph application "
                    "permissions: %(permissions)s."
                ),
                {"permissions": ", ".join(missing)},
            ),
            code="entra_permissions_missing",
            hint=Message(
                _(
                    "In Entra admin center › App registrations › the wizard's app › API "
                    "permissions, add them as Application permissions of Microsoft Graph, then "
                    "Grant admin consent, and retry."
                )
            ),
        )
    template_id, template_name = find_template(client)
    connection = ctx.idp_connection()
    return EntraPreflightOutputs(
        tenant_id=str(connection.config.get("tenant_id", "")),
        granted_permissions=granted,
        template_id=template_id,
        template_name=template_name,
    )


@register
class EntraPreflight(Step):
    key = "entra_preflight"
    title = _("Entra ID preflight")
    description = _(
        "Checks that the wizard can sign in to your tenant, has the Graph permissions the setup "
        "needs, and finds the AWS Single-Account Access gallery app."
    )

    def plan(self, ctx: StepContext) -> Plan:
        # Permissions the admin has just granted appear only in a new token's roles, and a plan
        # is what the admin retries after granting them.
        outputs = check_tenant(ctx, fresh_sign_in=True)
        ctx.read_by_plan[CHECKED] = outputs
        return Plan(
            changes=[
                Change(
                    "nothing",
                    "entra_tenant",
                    outputs.tenant_id,
                    {"template": outputs.template_name, "template_id": outputs.template_id},
                )
            ]
        )

    def apply(self, ctx: StepContext) -> EntraPreflightOutputs:
        # The plan's checks, made a moment ago with a fresh token, when apply follows it at once.
        checked: EntraPreflightOutputs | None = ctx.read_by_plan.get(CHECKED)
        return checked or check_tenant(ctx)

    def verify(self, ctx: StepContext) -> list[Finding]:
        # Its plan and apply are the checks; nothing it leaves behind can drift.
        return []

    def rollback(self, ctx: StepContext) -> None:
        # Reads only: it created nothing to remove.
        return None
