"""The entra_claims step: the app role whose value is "<roleArn>,<providerArn>", the SAML claims
AWS reads (Role, RoleSessionName, SessionDuration) through a claims mapping policy, and the relay
state that takes users into Amazon Connect.

Reads outputs["entra_app"] (service_principal_id, display_name) and outputs["federation_role"]
(role_value, max_session_duration_s). Inputs: `session_name_source` ("userprincipalname" or
"mail": what Entra sends as RoleSessionName, which must equal each Connect username),
`session_duration_s` (default the role's maximum), `destination` and `custom_ccp_url`
(provisioning/relay_state.py).
Outputs: app_role_id, role_value, session_name_source, policy_id, relay_state.

The default app roles (User, msiam_access) are kept; the role's id is derived from the service
principal and role value, so a crashed attempt writes the same role again. Rollback deletes the
claims mapping policy and the app role this run created (after disabling it, as Graph requires).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _
from msgraph.generated.models.app_role import AppRole
from msgraph.generated.models.claims_mapping_policy import ClaimsMappingPolicy
from msgraph.generated.models.reference_create import ReferenceCreate
from msgraph.generated.models.saml_single_sign_on_settings import SamlSingleSignOnSettings
from msgraph.generated.models.service_principal import ServicePrincipal

from provisioning.context import StepContext
from provisioning.entra.client import is_replicating, run_graph
from provisioning.entra.graph_reads import get_or_none
from provisioning.errors import PermanentError, WaitForCloud
from provisioning.relay_state import (
    DEFAULT_DESTINATION,
    RelayStateError,
    RelayStateFields,
    build_relay_state_url,
    relay_state_warnings,
)
from provisioning.steps.base import Change, Finding, Plan, Step, register

ROLE_ATTRIBUTE = "https://aws.amazon.com/SAML/Attributes/Role"
ROLE_SESSION_NAME_ATTRIBUTE = "https://aws.amazon.com/SAML/Attributes/RoleSessionName"
SESSION_DURATION_ATTRIBUTE = "https://aws.amazon.com/SAML/Attributes/SessionDuration"
SESSION_NAME_SOURCES = [
    ("userprincipalname", _("User principal name (UPN)")),
    ("mail", _("Email address (mail)")),
]
DEFAULT_SESSION_NAME_SOURCE = "userprincipalname"
# IAM: a role session lasts 900 s to the role's MaxSessionDuration (at most 12 h).
MIN_SESSION_S = 900
DEFAULT_SESSION_S = 3600
# Graph's directory reference URL of a policy, as $ref bodies name it.
POLICY_REF = "https://graph.microsoft.com/v1.0/policies/claimsMappingPolicies/{id}"
APP_ROLE = "entra_app_role"
POLICY = "entra_claims_mapping_policy"
# The namespace of the app role ids this wizard derives (uuid5 of service principal + value).
APP_ROLE_NAMESPACE = uuid.UUID("0d7c8d52-3f5e-4b61-9a3e-6c0d5f1b2a40")


class EntraClaimsForm(RelayStateFields):
    session_name_source = forms.ChoiceField(
        label=_("What Entra sends as the Connect username (RoleSessionName)"),
        choices=SESSION_NAME_SOURCES,
        initial=DEFAULT_SESSION_NAME_SOURCE,
        widget=forms.RadioSelect,
        help_text=_("Each Connect username must equal it exactly, case included."),
    )


def _source(ctx: StepContext) -> str:
    source = str(ctx.inputs.get("session_name_source") or "")
    if source not in dict(SESSION_NAME_SOURCES):
        raise PermanentError(
            f"“{source}” is not a RoleSessionName source the wizard offers.",
            code="entra_session_name_source",
            hint="Choose userprincipalname or mail.",
        )
    return source


def _role_outputs(ctx: StepContext) -> dict[str, Any]:
    role = ctx.outputs.get("federation_role", {})
    if not role.get("role_value"):
        raise PermanentError(
            "No earlier step created the federation role.",
            code="federation_role_missing",
            hint="This step follows federation_role in the flow.",
        )
    return role


def _session_duration(ctx: StepContext) -> int:
    maximum = int(_role_outputs(ctx).get("max_session_duration_s") or DEFAULT_SESSION_S)
    wanted = int(ctx.inputs.get("session_duration_s") or min(DEFAULT_SESSION_S, maximum))
    if not MIN_SESSION_S <= wanted <= maximum:
        raise PermanentError(
            f"A session of {wanted} s is outside what the role allows "
            f"({MIN_SESSION_S}-{maximum} s).",
            code="entra_session_duration",
            hint="Choose a duration within the role's maximum session duration.",
        )
    return wanted


def policy_definition(source: str, duration_s: int) -> str:
    """The ClaimsMappingPolicy document (PROCEDURE.md section 2 step 8)."""
    return json.dumps(
        {
            "ClaimsMappingPolicy": {
                "Version": 1,
                "IncludeBasicClaimSet": "true",
                "ClaimsSchema": [
                    {"Source": "user", "ID": "assignedroles", "SamlClaimType": ROLE_ATTRIBUTE},
                    {"Source": "user", "ID": source, "SamlClaimType": ROLE_SESSION_NAME_ATTRIBUTE},
                    {"Value": str(duration_s), "SamlClaimType": SESSION_DURATION_ATTRIBUTE},
                ],
            }
        }
    )


def _same_definition(stored: list[str] | None, wanted: str) -> bool:
    try:
        return json.loads((stored or [""])[0]) == json.loads(wanted)
    except ValueError:
        return False


def relay_state(ctx: StepContext) -> str:
    instance_id = ctx.instance_id or ctx.outputs.get("connect_instance", {}).get("instance_id", "")
    try:
        return build_relay_state_url(
            ctx.region,
            instance_id,
            str(ctx.inputs.get("destination") or DEFAULT_DESTINATION),
            str(ctx.inputs.get("custom_ccp_url") or ""),
        )
    except RelayStateError as error:
        raise PermanentError(str(error), code="relay_state_invalid") from None


def app_role_id(service_principal_id: str, value: str) -> str:
    return str(uuid.uuid5(APP_ROLE_NAMESPACE, f"{service_principal_id}/{value}"))


def _policy_name(ctx: StepContext) -> str:
    return f"Claims for {ctx.outputs['entra_app'].get('display_name', '')}".strip()


def survey(ctx: StepContext) -> dict[str, Any]:
    """Reads the service principal and its policy; says what differs from what the run wants."""
    client = ctx.graph()
    sp_id = ctx.outputs["entra_app"]["service_principal_id"]
    role_value = _role_outputs(ctx)["role_value"]
    definition = policy_definition(_source(ctx), _session_duration(ctx))
    wanted_relay = relay_state(ctx)
    service_principal = run_graph(client.service_principals.by_service_principal_id(sp_id).get())
    roles = list(service_principal.app_roles or [])
    role = next((r for r in roles if r.value == role_value), None)
    linked = run_graph(
        client.service_principals.by_service_principal_id(sp_id).claims_mapping_policies.get()
    )
    policy = (linked.value or [None])[0]
    settings = service_principal.saml_single_sign_on_settings
    return {
        "client": client,
        "sp_id": sp_id,
        "service_principal": service_principal,
        "roles": roles,
        "role": role,
        "role_value": role_value,
        "role_ok": role is not None and bool(role.is_enabled),
        "policy": policy,
        "definition": definition,
        "policy_ok": policy is not None and _same_definition(policy.definition, definition),
        "relay_state": wanted_relay,
        "relay_ok": settings is not None and settings.relay_state == wanted_relay,
    }


@register
class EntraClaims(Step):
    key = "entra_claims"
    title = _("Entra ID claims and relay state")
    description = _(
        "Adds the app role that carries the federation role, maps the claims AWS reads (Role, "
        "RoleSessionName, SessionDuration), and sets where users land in Amazon Connect."
    )
    form_class = EntraClaimsForm

    def plan(self, ctx: StepContext) -> Plan:
        if "session_name_source" not in ctx.inputs or "destination" not in ctx.inputs:
            return Plan(needs_input=True)
        found = survey(ctx)
        changes = [
            Change(
                "nothing" if found["role_ok"] else "create",
                APP_ROLE,
                found["role_value"],
                {"allowedMemberTypes": ["User"]},
            ),
            Change(
                "nothing"
                if found["policy_ok"]
                else ("update" if found["policy"] is not None else "create"),
                POLICY,
                _policy_name(ctx),
                {"definition": json.loads(found["definition"])},
            ),
            Change(
                "nothing" if found["relay_ok"] else "update",
                "relay_state",
                found["relay_state"],
            ),
        ]
        warnings = relay_state_warnings(
            str(ctx.inputs.get("destination")), str(ctx.inputs.get("custom_ccp_url") or "")
        )
        return Plan(changes=changes, warnings=warnings)

    def apply(self, ctx: StepContext) -> dict[str, Any]:
        found = survey(ctx)
        client, sp_id = found["client"], found["sp_id"]
        sp = client.service_principals.by_service_principal_id(sp_id)
        role_id = (
            str(found["role"].id)
            if found["role"] is not None
            else app_role_id(sp_id, found["role_value"])
        )
        patch: dict[str, Any] = {}
        if not found["role_ok"]:
            ctx.record_created(APP_ROLE, role_id, service_principal_id=sp_id)
            others = [r for r in found["roles"] if str(r.id) != role_id]
            patch["app_roles"] = [
                *others,
                AppRole(
                    id=uuid.UUID(role_id),
                    allowed_member_types=["User"],
                    description="Amazon Connect federation role",
                    display_name=f"Amazon Connect {ctx.instance_alias or ctx.instance_id}"[:120],
                    is_enabled=True,
                    value=found["role_value"],
                ),
            ]
        if not found["relay_ok"]:
            patch["saml_single_sign_on_settings"] = SamlSingleSignOnSettings(
                relay_state=found["relay_state"]
            )
        if patch:
            run_graph(sp.patch(ServicePrincipal(**patch)))
        policy = found["policy"]
        if policy is not None and not found["policy_ok"]:
            run_graph(
                client.policies.claims_mapping_policies.by_claims_mapping_policy_id(
                    policy.id
                ).patch(ClaimsMappingPolicy(definition=[found["definition"]]))
            )
        elif policy is None:
            policy = self._recorded_policy(ctx, client) or self._create_policy(ctx, client, found)
            run_graph(
                sp.claims_mapping_policies.ref.post(
                    ReferenceCreate(odata_id=POLICY_REF.format(id=policy.id))
                )
            )
        return {
            "app_role_id": role_id,
            "role_value": found["role_value"],
            "session_name_source": _source(ctx),
            "session_duration_s": _session_duration(ctx),
            "policy_id": str(policy.id),
            "relay_state": found["relay_state"],
        }

    def _recorded_policy(self, ctx: StepContext, client: Any) -> Any | None:
        for created in ctx.created:
            if created["resource_type"] == POLICY:
                policy = get_or_none(
                    client.policies.claims_mapping_policies.by_claims_mapping_policy_id(
                        created["identifier"]
                    ).get()
                )
                if policy is None and is_replicating(ctx.audit, created["identifier"]):
                    # Not visible yet, not gone: a second policy now would be a duplicate.
                    raise WaitForCloud(str(_("Waiting for Entra ID to show the new policy.")))
                return policy
        return None

    def _create_policy(self, ctx: StepContext, client: Any, found: dict[str, Any]) -> Any:
        policy = run_graph(
            client.policies.claims_mapping_policies.post(
                ClaimsMappingPolicy(
                    display_name=_policy_name(ctx), definition=[found["definition"]]
                )
            )
        )
        ctx.record_created(POLICY, str(policy.id), service_principal_id=found["sp_id"])
        return policy

    def verify(self, ctx: StepContext) -> list[Finding]:
        found = survey(ctx)
        return [
            Finding(
                "app_role",
                ok=found["role_ok"],
                detail=found["role_value"],
                fix=str(_("Retry the step to add the app role again.")),
            ),
            Finding(
                "claims",
                ok=found["policy_ok"],
                detail=str(_("Role, RoleSessionName from {source}, SessionDuration")).format(
                    source=_source(ctx)
                ),
                fix=str(_("Retry the step to set the claims mapping policy again.")),
            ),
            Finding(
                "relay_state",
                ok=found["relay_ok"],
                detail=found["relay_state"],
                fix=str(_("Retry the step to set the relay state again.")),
            ),
        ]

    def rollback(self, ctx: StepContext) -> None:
        client = ctx.graph()
        for created in reversed(ctx.created):
            sp_id = created.get("service_principal_id", "")
            if created["resource_type"] == POLICY:
                policies = client.policies.claims_mapping_policies
                item = policies.by_claims_mapping_policy_id(created["identifier"])
                if get_or_none(item.get()) is None:
                    continue
                sp = client.service_principals.by_service_principal_id(sp_id)
                if get_or_none(sp.get()) is not None:
                    linked = run_graph(sp.claims_mapping_policies.get())
                    if any(str(p.id) == created["identifier"] for p in linked.value or []):
                        run_graph(
                            sp.claims_mapping_policies.by_claims_mapping_policy_id(
                                created["identifier"]
                            ).ref.delete()
                        )
                run_graph(item.delete())
            elif created["resource_type"] == APP_ROLE:
                self._remove_app_role(client, sp_id, created["identifier"])

    def _remove_app_role(self, client: Any, sp_id: str, role_id: str) -> None:
        sp = client.service_principals.by_service_principal_id(sp_id)
        service_principal = get_or_none(sp.get())
        if service_principal is None:
            return
        roles = list(service_principal.app_roles or [])
        role = next((r for r in roles if str(r.id) == role_id), None)
        if role is None:
            return
        # Graph refuses to remove an enabled role (CannotDeleteOrUpdateEnabledEntitlement).
        if role.is_enabled:
            role.is_enabled = False
            run_graph(sp.patch(ServicePrincipal(app_roles=roles)))
        run_graph(sp.patch(ServicePrincipal(app_roles=[r for r in roles if str(r.id) != role_id])))
