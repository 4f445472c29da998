"""The entra_claims step: the app role whose value is "<roleArn>,<providerArn>", the SAML claims
AWS reads (Role, RoleSessionName, SessionDuration) through a claims mapping policy, and the relay
state that takes users into Amazon Connect.

Reads outputs["entra_app"] (service_principal_id, display_name) and outputs["federation_role"]
(role_value, max_session_duration_s). Inputs: `session_name_source` ("userprincipalname" or
"mail": what Entra sends as RoleSessionName, which must equal each Connect username),
`session_duration_s` (default the role's maximum), `destination` and `custom_ccp_url`
(provisioning/relay_state.py); a repair's `keep_relay_state` keeps the app's relay state as it is.
Outputs: app_role_id, role_value, session_name_source, policy_id, relay_state.

The app role goes on the application, whose whole appRoles list is written back with the default
roles (User, msiam_access) kept; the service principal only mirrors it, some time later, and the
step waits until it does, so entra_assignments can assign the role. The role's id is derived from
the service principal and role value, so a crashed attempt writes the same role again. A disabled
role with the run's value is enabled and adopted, never recorded as created.

A claims mapping policy linked to other apps too is never edited: the step links its own instead,
marked with the run in its description, and finds that one again after a crash between creating
and recording it. Rollback deletes the policy and the app role this run created (the role
disabled first, as Graph requires) and links back a policy it replaced.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from django import forms
from django.utils.translation import gettext_lazy as _
from msgraph.generated.models.app_role import AppRole
from msgraph.generated.models.application import Application
from msgraph.generated.models.claims_mapping_policy import ClaimsMappingPolicy
from msgraph.generated.models.reference_create import ReferenceCreate
from msgraph.generated.models.saml_single_sign_on_settings import SamlSingleSignOnSettings
from msgraph.generated.models.service_principal import ServicePrincipal

from provisioning.context import CreatedResource, StepContext
from provisioning.entra.client import (
    ids_made_by_run,
    is_replicating,
    posts_went_out,
    run_graph,
    run_graph_together,
)
from provisioning.entra.graph_reads import all_pages, get_or_none
from provisioning.errors import PermanentError, WaitForCloud
from provisioning.messages import Message
from provisioning.relay_state import (
    DEFAULT_DESTINATION,
    KEEP_RELAY_STATE,
    RelayStateError,
    RelayStateFields,
    build_relay_state_url,
    relay_state_warnings,
)
from provisioning.steps.base import (
    Change,
    ChangeAction,
    Finding,
    Plan,
    Step,
    StepOutputs,
    register,
)
from provisioning.steps.connect_instance import ConnectInstanceOutputs
from provisioning.steps.entra_app import EntraAppOutputs
from provisioning.steps.federation_role import FederationRoleOutputs

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
MAX_SESSION_S = 43_200
DEFAULT_SESSION_S = 3600
# Graph's directory reference URL of a policy, as $ref bodies name it.
POLICY_REF = "https://graph.microsoft.com/v1.0/policies/claimsMappingPolicies/{id}"
APP_ROLE = "entra_app_role"
# What plan() read (a ClaimsReading), for the apply() that follows it at once
# (StepContext.read_by_plan).
SURVEYED = "surveyed_claims"
# The service principal as apply() read it after its last write (waiting for the app role to show
# on it), for the verify() the runner calls right after (StepContext.read_by_apply).
SP_AFTER_WRITES = "service_principal_after_writes"
POLICY = "entra_claims_mapping_policy"
# The namespace of the app role ids this wizard derives (uuid5 of service principal + value).
APP_ROLE_NAMESPACE = uuid.UUID("0d7c8d52-3f5e-4b61-9a3e-6c0d5f1b2a40")
# The description that marks a claims mapping policy as made by one run of the wizard.
POLICY_MARKER = "Made by the Connect SSO wizard, run {run_id}"
# Claims mapping policies read when looking for the one a crashed attempt made. A tenant has a
# handful (one per app that needs custom claims); past this many the step makes a new one.
POLICY_SCAN_LIMIT = 1000
# Where Graph makes claims mapping policies (POST) and deletes them (DELETE .../{id}).
POLICY_COLLECTION = "/policies/claimsMappingPolicies"


class EntraClaimsForm(RelayStateFields):
    session_name_source = forms.ChoiceField(
        label=_("What Entra sends as the Connect username (RoleSessionName)"),
        choices=SESSION_NAME_SOURCES,
        initial=DEFAULT_SESSION_NAME_SOURCE,
        widget=forms.RadioSelect,
        help_text=_("Each Connect username must equal it exactly, case included."),
    )
    session_duration_s = forms.IntegerField(
        label=_("Session length in seconds"),
        required=False,
        min_value=MIN_SESSION_S,
        max_value=MAX_SESSION_S,
        help_text=_("Empty: one hour, or the federation role's maximum if that is shorter."),
    )


def _source(ctx: StepContext) -> str:
    # One of SESSION_NAME_SOURCES: the engine checked it with EntraClaimsForm before plan.
    return str(ctx.inputs.get("session_name_source") or DEFAULT_SESSION_NAME_SOURCE)


def _role_outputs(ctx: StepContext) -> FederationRoleOutputs:
    role = ctx.outputs_of(FederationRoleOutputs)
    if not role.role_value:
        raise PermanentError(
            Message(_("No earlier step created the federation role.")),
            code="federation_role_missing",
            hint=Message(_("This step follows federation_role in the flow.")),
        )
    return role


def _session_duration(ctx: StepContext) -> int:
    maximum = _role_outputs(ctx).max_session_duration_s or DEFAULT_SESSION_S
    wanted = int(ctx.inputs.get("session_duration_s") or min(DEFAULT_SESSION_S, maximum))
    if not MIN_SESSION_S <= wanted <= maximum:
        raise PermanentError(
            Message(
                _("A session of %(wanted)s s is outside what the role allows (%(min)s-%(max)s s)."),
                {"wanted": wanted, "min": MIN_SESSION_S, "max": maximum},
            ),
            code="entra_session_duration",
            hint=Message(_("Choose a duration within the role's maximum session duration.")),
        )
    return wanted


def policy_definition(source: str, duration_s: int) -> str:
    """The ClaimsMappingPolicy document (Microsoft Graph, "Create claimsMappingPolicy":
    https://learn.microsoft.com/en-us/graph/api/claimsmappingpolicy-post-claimsmappingpolicies)."""
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


def _keeps_relay_state(ctx: StepContext) -> bool:
    return ctx.inputs.get(KEEP_RELAY_STATE) is True


def relay_state(ctx: StepContext) -> str:
    instance_id = ctx.instance_id or ctx.outputs_of(ConnectInstanceOutputs).instance_id
    try:
        return build_relay_state_url(
            ctx.region,
            instance_id,
            str(ctx.inputs.get("destination") or DEFAULT_DESTINATION),
            str(ctx.inputs.get("custom_ccp_url") or ""),
        )
    except RelayStateError as error:
        raise PermanentError(error.message, code="relay_state_invalid") from None


def app_role_id(service_principal_id: str, value: str) -> str:
    return str(uuid.uuid5(APP_ROLE_NAMESPACE, f"{service_principal_id}/{value}"))


def _policy_name(ctx: StepContext) -> str:
    return f"Claims for {ctx.outputs['entra_app'].get('display_name', '')}".strip()


def _policy_marker(ctx: StepContext) -> str:
    return POLICY_MARKER.format(run_id=ctx.run_id)


def _policy_targets(client: Any, policy_id: str) -> set[str]:
    """The ids of the service principals (and apps) a claims mapping policy is linked to."""
    builder = client.policies.claims_mapping_policies.by_claims_mapping_policy_id(policy_id)
    targets, _more = all_pages(
        builder.applies_to, builder.applies_to.get(), limit=POLICY_SCAN_LIMIT
    )
    return {str(target.id) for target in targets}


@dataclass
class ClaimsReading:
    """What plan, apply and verify read of the app (survey()), beside what the run wants."""

    client: Any  # the Graph client the reading was made with
    sp_id: str
    application: Any  # Graph's Application
    roles: list[Any]  # the application's app roles
    role: Any  # the app role with the run's value, or None
    role_value: str
    role_ok: bool  # that role exists and is enabled
    role_mirrored: bool  # the service principal shows it too
    policy: Any  # the claims mapping policy linked to the service principal, or None
    policy_shared: bool  # it is linked to other apps as well
    definition: str  # the policy definition the run wants
    policy_ok: bool
    relay_state: str  # the relay state the run wants
    relay_ok: bool


def survey(ctx: StepContext, service_principal: Any = None) -> ClaimsReading:
    """Reads the application, its service principal and the linked policy; says what differs from
    what the run wants. `service_principal`: read since the last write to it (else read here)."""
    client = ctx.graph()
    app = ctx.outputs_of(EntraAppOutputs)
    sp_id = app.service_principal_id
    role_value = _role_outputs(ctx).role_value
    definition = policy_definition(_source(ctx), _session_duration(ctx))
    sp = client.service_principals.by_service_principal_id(sp_id)
    # Three reads at once: none depends on another's answer.
    application, linked, *read_here = run_graph_together(
        client.applications.by_application_id(app.app_object_id).get(),
        sp.claims_mapping_policies.get(),
        *([sp.get()] if service_principal is None else []),
    )
    service_principal = read_here[0] if read_here else service_principal
    # App roles live on the application; the service principal only mirrors them (Graph refuses
    # appRoles PATCHed on it: microsoft-graph-docs-contrib issue 8801, hamilton PR 42).
    roles = list(application.app_roles or [])
    role = next((r for r in roles if r.value == role_value), None)
    mirrored = role is not None and any(
        r.id == role.id and r.is_enabled for r in service_principal.app_roles or []
    )
    policy = (linked.value or [None])[0]
    policy_ok = policy is not None and _same_definition(policy.definition, definition)
    shared = (
        policy is not None
        and not policy_ok
        and bool(_policy_targets(client, str(policy.id)) - {sp_id})
    )
    settings = service_principal.saml_single_sign_on_settings
    current_relay = str((settings.relay_state if settings else "") or "")
    # A kept relay state is not rebuilt from the run's destination: made by hand, it may name one
    # the form refuses (an address by IP) or encode it otherwise, and sign-in works with it.
    wanted_relay = current_relay if _keeps_relay_state(ctx) else relay_state(ctx)
    return ClaimsReading(
        client=client,
        sp_id=sp_id,
        application=application,
        roles=roles,
        role=role,
        role_value=role_value,
        role_ok=role is not None and bool(role.is_enabled),
        role_mirrored=mirrored,
        policy=policy,
        policy_shared=shared,
        definition=definition,
        policy_ok=policy_ok,
        relay_state=wanted_relay,
        relay_ok=current_relay == wanted_relay,
    )


def _role_change(found: ClaimsReading) -> ChangeAction:
    if found.role_ok:
        return "nothing"
    # A disabled role with the run's value is enabled and adopted, not made anew.
    return "update" if found.role is not None else "create"


def _policy_change(found: ClaimsReading) -> ChangeAction:
    if found.policy_ok:
        return "nothing"
    if found.policy is None or found.policy_shared:
        return "create"
    return "update"


@dataclass
class EntraClaimsOutputs(StepOutputs):
    """The app role carrying the federation role, and the claims and relay state it set."""

    step_key: ClassVar[str] = "entra_claims"

    app_role_id: str = ""
    role_value: str = ""
    session_name_source: str = ""
    session_duration_s: int = 0
    policy_id: str = ""
    relay_state: str = ""


@register
class EntraClaims(Step):
    key = "entra_claims"
    title = _("Entra ID claims and relay state")
    description = _(
        "Adds the app role that carries the federation role, maps the claims AWS reads (Role, "
        "RoleSessionName, SessionDuration), and sets where users land in Amazon Connect."
    )
    form_class = EntraClaimsForm
    asks_before_planning = True

    def plan(self, ctx: StepContext) -> Plan:
        found = survey(ctx)
        ctx.read_by_plan[SURVEYED] = found
        policy_details: dict[str, Any] = {"definition": json.loads(found.definition)}
        if found.policy_shared:
            policy_details["replaces_shared_policy"] = str(found.policy.display_name)
        changes = [
            Change(
                _role_change(found),
                APP_ROLE,
                found.role_value,
                {"allowedMemberTypes": ["User"], "on": "application"},
            ),
            Change(_policy_change(found), POLICY, _policy_name(ctx), policy_details),
            Change(
                "nothing" if found.relay_ok else "update",
                "relay_state",
                found.relay_state,
            ),
        ]
        warnings = (
            []
            if _keeps_relay_state(ctx)
            else relay_state_warnings(
                str(ctx.inputs.get("destination")), str(ctx.inputs.get("custom_ccp_url") or "")
            )
        )
        return Plan(changes=changes, warnings=warnings)

    def apply(self, ctx: StepContext) -> EntraClaimsOutputs:
        # The plan's survey, made a moment ago, when apply follows it at once.
        # Single use, so an apply called again with this context (after a wait) reads afresh;
        # apply's calls go through its own client.
        planned: ClaimsReading | None = ctx.read_by_plan.pop(SURVEYED, None)
        found = replace(planned, client=ctx.graph()) if planned else survey(ctx)
        client, sp_id = found.client, found.sp_id
        sp = client.service_principals.by_service_principal_id(sp_id)
        role_id = self._apply_app_role(ctx, found)
        if not found.relay_ok:
            run_graph(
                sp.patch(
                    ServicePrincipal(
                        saml_single_sign_on_settings=SamlSingleSignOnSettings(
                            relay_state=found.relay_state
                        )
                    )
                )
            )
        policy = self._apply_policy(ctx, found)
        if not found.role_mirrored:
            # The service principal shows the application's new role only after Graph syncs it
            # ("the synchronization isn't immediate": Graph, applications-api-overview); until
            # then appRoleAssignedTo refuses the role ("Permission being assigned was not found").
            after_writes = run_graph(sp.get())
            mirrored = after_writes.app_roles or []
            if not any(str(r.id) == role_id and r.is_enabled for r in mirrored):
                raise WaitForCloud(
                    Message(
                        _("Waiting for Entra ID to show the new app role on the enterprise app.")
                    )
                )
            # Read after apply's last write to the service principal (linking the policy writes
            # its claimsMappingPolicies, which verify reads on their own): verify checks this
            # instead of reading the same object again a moment later.
            ctx.read_by_apply[SP_AFTER_WRITES] = after_writes
        return EntraClaimsOutputs(
            app_role_id=role_id,
            role_value=found.role_value,
            session_name_source=_source(ctx),
            session_duration_s=_session_duration(ctx),
            policy_id=str(policy.id),
            relay_state=found.relay_state,
        )

    def _apply_app_role(self, ctx: StepContext, found: ClaimsReading) -> str:
        """PATCH the application with its whole appRoles list, ours added or enabled; the id."""
        role = found.role
        if found.role_ok:
            return str(role.id)
        app_id = str(found.application.id)
        if role is not None:
            # Adopted: the admin's (or an earlier run's) disabled role; enabled, never recorded,
            # so rollback leaves it.
            role.is_enabled = True
            roles = found.roles
        else:
            role_id = app_role_id(found.sp_id, found.role_value)
            ctx.record_created(
                APP_ROLE, role_id, application_id=app_id, service_principal_id=found.sp_id
            )
            role = AppRole(
                id=uuid.UUID(role_id),
                allowed_member_types=["User"],
                description="Amazon Connect federation role",
                display_name=f"Amazon Connect {ctx.instance_alias or ctx.instance_id}"[:120],
                is_enabled=True,
                value=found.role_value,
            )
            roles = [*found.roles, role]
        client = found.client
        run_graph(client.applications.by_application_id(app_id).patch(Application(app_roles=roles)))
        return str(role.id)

    def _apply_policy(self, ctx: StepContext, found: ClaimsReading) -> Any:
        """The policy linked to the service principal once apply is done."""
        client, policy = found.client, found.policy
        sp = client.service_principals.by_service_principal_id(found.sp_id)
        if found.policy_ok:
            return policy
        if policy is not None and not found.policy_shared:
            run_graph(
                client.policies.claims_mapping_policies.by_claims_mapping_policy_id(
                    policy.id
                ).patch(ClaimsMappingPolicy(definition=[found.definition]))
            )
            return policy
        replaced = ""
        if policy is not None:
            # Shared with other apps: editing it would change their claims too. Entra allows
            # one claims mapping policy per service principal, so ours takes its place here.
            replaced = str(policy.id)
            run_graph(sp.claims_mapping_policies.by_claims_mapping_policy_id(replaced).ref.delete())
        ours = self._own_policy(ctx, client) or self._create_policy(ctx, client, found)
        ctx.record_created(
            POLICY, str(ours.id), service_principal_id=found.sp_id, replaced_policy_id=replaced
        )
        run_graph(
            sp.claims_mapping_policies.ref.post(
                ReferenceCreate(odata_id=POLICY_REF.format(id=ours.id))
            )
        )
        return ours

    def _own_policy(self, ctx: StepContext, client: Any) -> Any | None:
        """This run's policy: recorded, or (after a crash between creating and recording it)
        found by its name and this run's marker. No search when no attempt of this run sent a
        POST making a policy (every first attempt): only such a POST makes one with the marker."""
        policies = client.policies.claims_mapping_policies
        for created in ctx.created_of(POLICY):
            recorded = get_or_none(policies.by_claims_mapping_policy_id(created.identifier).get())
            if recorded is not None:
                return recorded
            if is_replicating(ctx.audit, created.identifier):
                # Not visible yet, not gone: a second policy now would be a duplicate.
                raise WaitForCloud(Message(_("Waiting for Entra ID to show the new policy.")))
        if not posts_went_out(ctx.audit, POLICY_COLLECTION):
            return None
        for made in ids_made_by_run(ctx.audit, POLICY_COLLECTION):
            # Made by this run, then a crash before it was recorded: the list may not show it
            # until it replicates, so look it up by the id Graph answered with.
            found = get_or_none(policies.by_claims_mapping_policy_id(made).get())
            if found is not None:
                return found
            if is_replicating(ctx.audit, made):
                raise WaitForCloud(Message(_("Waiting for Entra ID to show the new policy.")))
        every, _more = all_pages(policies, policies.get(), limit=POLICY_SCAN_LIMIT)
        return next(
            (
                policy
                for policy in every
                if policy.display_name == _policy_name(ctx)
                and policy.description == _policy_marker(ctx)
            ),
            None,
        )

    def _create_policy(self, ctx: StepContext, client: Any, found: ClaimsReading) -> Any:
        return run_graph(
            client.policies.claims_mapping_policies.post(
                ClaimsMappingPolicy(
                    display_name=_policy_name(ctx),
                    description=_policy_marker(ctx),
                    definition=[found.definition],
                )
            )
        )

    def verify(self, ctx: StepContext) -> list[Finding]:
        # The application and the policy links are read back here; the service principal too
        # unless apply read it after its writes.
        found = survey(ctx, ctx.read_by_apply.get(SP_AFTER_WRITES))
        return [
            Finding(
                Message(_("The app has the federation role as an app role")),
                ok=found.role_ok and found.role_mirrored,
                detail=found.role_value,
                fix=Message(_("Retry the step to add the app role again.")),
            ),
            Finding(
                Message(_("The enterprise app has the expected claims mapping policy")),
                ok=found.policy_ok,
                detail=Message(
                    _("Role, RoleSessionName from {source}, SessionDuration"),
                    {"source": _source(ctx)},
                ),
                fix=Message(_("Retry the step to set the claims mapping policy again.")),
            ),
            Finding(
                Message(_("The enterprise app has the expected relay state")),
                ok=found.relay_ok,
                detail=found.relay_state,
                fix=Message(_("Retry the step to set the relay state again.")),
            ),
        ]

    def rollback(self, ctx: StepContext) -> None:
        client = ctx.graph()
        for created in reversed(ctx.created_of(POLICY, APP_ROLE)):
            if created.kind == POLICY:
                self._remove_policy(client, created)
            else:
                self._remove_app_role(client, created)

    def _remove_policy(self, client: Any, created: CreatedResource) -> None:
        policy_id = created.identifier
        sp_id = created.details.get("service_principal_id", "")
        item = client.policies.claims_mapping_policies.by_claims_mapping_policy_id(policy_id)
        sp = client.service_principals.by_service_principal_id(sp_id)
        if get_or_none(item.get()) is not None:
            if get_or_none(sp.get()) is not None:
                linked = run_graph(sp.claims_mapping_policies.get())
                if any(str(p.id) == policy_id for p in linked.value or []):
                    run_graph(
                        sp.claims_mapping_policies.by_claims_mapping_policy_id(
                            policy_id
                        ).ref.delete()
                    )
            run_graph(item.delete())
        replaced = created.details.get("replaced_policy_id") or ""
        if replaced and get_or_none(sp.get()) is not None:
            linked = run_graph(sp.claims_mapping_policies.get())
            still_there = client.policies.claims_mapping_policies.by_claims_mapping_policy_id(
                replaced
            )
            if not linked.value and get_or_none(still_there.get()) is not None:
                run_graph(
                    sp.claims_mapping_policies.ref.post(
                        ReferenceCreate(odata_id=POLICY_REF.format(id=replaced))
                    )
                )

    def _remove_app_role(self, client: Any, created: CreatedResource) -> None:
        role_id = created.identifier
        app_id = created.details.get("application_id") or ""
        if not app_id:
            # Recorded before roles moved to the application: find it through the service
            # principal's appId.
            sp = get_or_none(
                client.service_principals.by_service_principal_id(
                    created.details.get("service_principal_id", "")
                ).get()
            )
            application = sp and get_or_none(client.applications_with_app_id(sp.app_id).get())
            app_id = str(application.id) if application else ""
        app = client.applications.by_application_id(app_id)
        application = get_or_none(app.get()) if app_id else None
        if application is None:
            return
        roles = list(application.app_roles or [])
        role = next((r for r in roles if str(r.id) == role_id), None)
        if role is None:
            return
        # Graph refuses to remove an enabled role: "Permission (scope or role) cannot be deleted
        # or updated unless disabled first" (msgraph-sdk-powershell issue 1211), so disable it in
        # one PATCH and remove it in the next (microsoft-graph-docs issue 5338).
        if role.is_enabled:
            role.is_enabled = False
            run_graph(app.patch(Application(app_roles=roles)))
        run_graph(app.patch(Application(app_roles=[r for r in roles if str(r.id) != role_id])))
