"""Creates (or adopts) the Okta AWS Account Federation app that signs people in to Amazon Connect:
SAML 2.0, login URL, session duration and the relay state into the instance, and fetches its
metadata for the IAM identity provider.

Inputs (the form): destination and custom_ccp_url (provisioning/relay_state.py), app_label
(default "Amazon Connect <instance alias or ID>"), app_id (adopt this existing amazon_aws app
instead of finding or creating one by label), session_duration_hours (1-12, default 1); and,
from a repair only, keep_app_settings: the names of the settings below to keep as the adopted
app holds them (a repair changes only what its findings are about).
Outputs: app_id, app_label, created (this run created the app), relay_state_url, metadata_xml,
user_access_url (the app's tile link), sandbox_sso_url (sandbox only: the sandbox IdP's
sign-on URL for sign_in_test), entity_id.

The settings this step owns are the label, loginURL, awsEnvironmentType, sessionDuration and the
relay state; the role settings (identityProviderArn, useGroupMapping, roleValuePattern,
groupFilter) belong to okta_app_provider and okta_group_mapping and are kept as they are.
Rollback deactivates and deletes the app only when this run created it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from provisioning.context import StepContext
from provisioning.errors import PermanentError
from provisioning.messages import Message
from provisioning.okta import aws_app
from provisioning.okta.rest import okta_call
from provisioning.relay_state import (
    DEFAULT_DESTINATION,
    KEEP_RELAY_STATE,
    RelayStateError,
    RelayStateFields,
    build_relay_state_url,
    relay_state_warnings,
)
from provisioning.saml import parse_idp_metadata
from provisioning.sandbox_endpoints import sandbox_endpoints
from provisioning.steps.base import (
    Change,
    ChangeAction,
    Finding,
    Plan,
    Step,
    StepOutputs,
    register,
)

# Okta's AWS app accepts 900-43200 s, the range STS allows for a SAML session; the wizard asks
# in whole hours like federation_role (1-12 h).
MIN_SESSION_HOURS = 1
MAX_SESSION_HOURS = 12
DEFAULT_SESSION_HOURS = 1
SECONDS_PER_HOUR = 3600
# Okta labels are at most 100 characters (Okta API reference, Application.label).
MAX_LABEL_LENGTH = 100
LABEL_PREFIX = "Amazon Connect "
# awsEnvironmentType and the console the app's login URL opens, per AWS partition
# (the app's settings as an admin fills them in by hand; AWS GovCloud (US) console endpoints).
ENVIRONMENTS = {
    "aws": ("aws.amazon", "https://console.aws.amazon.com"),
    "aws-us-gov": ("aws-us-gov", "https://console.amazonaws-us-gov.com"),
}
SANDBOX_SSO_PATH = "/sandbox/sso/"
# The run input naming the settings this step owns that it keeps as the app holds them
# (provisioning/federation_check/repair.py): a repair adopts the app by its ID (find_app refuses
# an ID Okta doesn't know), so what is kept is always an existing app's.
KEEP_APP_SETTINGS = "keep_app_settings"
OKTA_APP_SETTINGS = ("awsEnvironmentType", "loginURL", "sessionDuration", "joinAllRoles")


class OktaAppForm(RelayStateFields):
    app_label = forms.CharField(
        label=_("Name of the app in Okta"),
        required=False,
        max_length=MAX_LABEL_LENGTH,
        help_text=_("Leave empty for “Amazon Connect <instance>”."),
    )
    session_duration_hours = forms.IntegerField(
        label=_("Session duration (hours)"),
        min_value=MIN_SESSION_HOURS,
        max_value=MAX_SESSION_HOURS,
        initial=DEFAULT_SESSION_HOURS,
        help_text=_("How long a sign-in lasts before Okta is asked again."),
    )
    app_id = forms.CharField(
        label=_("Use an existing AWS app (its Okta app ID)"),
        required=False,
        help_text=_("Leave empty: the wizard finds the app by its name or creates it."),
    )


def _label(ctx: StepContext) -> str:
    given = str(ctx.inputs.get("app_label") or "").strip()
    return (given or f"{LABEL_PREFIX}{ctx.instance_alias or ctx.instance_id}")[:MAX_LABEL_LENGTH]


def _partition(region: str) -> str:
    return "aws-us-gov" if region.startswith("us-gov-") else "aws"


def _session_seconds(ctx: StepContext) -> int:
    # Within MIN/MAX_SESSION_HOURS: the engine checked it with OktaAppForm before plan.
    return int(ctx.inputs.get("session_duration_hours") or DEFAULT_SESSION_HOURS) * SECONDS_PER_HOUR


def relay_state(ctx: StepContext) -> str:
    try:
        return build_relay_state_url(
            ctx.region,
            ctx.instance_id,
            str(ctx.inputs.get("destination") or DEFAULT_DESTINATION),
            str(ctx.inputs.get("custom_ccp_url") or ""),
        )
    except RelayStateError as error:
        raise PermanentError(
            error.message,
            code="okta_app_bad_relay_state",
            hint=Message(gettext_noop("Change where users land.")),
        ) from None


def relay_state_for(ctx: StepContext, app: OktaAppReading | None) -> str:
    """The relay state the app should hold: an adopted app's own, byte for byte, when a repair
    keeps it (KEEP_RELAY_STATE: the check found it leads into the instance, whatever its form);
    otherwise the one into the instance this step builds."""
    if app is not None and ctx.inputs.get(KEEP_RELAY_STATE) is True:
        return app.relay_state
    return relay_state(ctx)


def wanted_settings(ctx: StepContext) -> dict[str, Any]:
    """The settings.app values this step owns."""
    environment, login_url = ENVIRONMENTS[_partition(ctx.region)]
    wanted: dict[str, Any] = {
        "awsEnvironmentType": environment,
        "loginURL": login_url,
        "sessionDuration": _session_seconds(ctx),
        "joinAllRoles": False,
    }
    kept = ctx.inputs.get(KEEP_APP_SETTINGS) or []
    if not isinstance(kept, list):
        return wanted
    return {name: value for name, value in wanted.items() if name not in kept}


def _held_seconds(app: dict[str, Any]) -> int:
    """The sessionDuration the app holds (0 when it holds none)."""
    held = str(aws_app.app_settings(app).get("sessionDuration") or "")
    return int(held) if held.isdigit() else 0


def _created_app_ids(ctx: StepContext) -> list[str]:
    return [record.identifier for record in ctx.created_of("okta_app")]


@dataclass(frozen=True)
class OktaAppReading:
    """The AWS app the step works on, as Okta returned it: what plan, apply and verify read of
    it, and the whole object (`wire`), which a change sends back whole (Okta's app update
    replaces the app)."""

    id: str
    label: str
    status: str
    sign_on_mode: str
    relay_state: str
    # This run created it (its rollback deletes it); otherwise it is adopted.
    created_by_run: bool
    wire: dict[str, Any]

    @classmethod
    def of(cls, ctx: StepContext, app: dict[str, Any]) -> OktaAppReading:
        return cls(
            id=str(app["id"]),
            label=str(app.get("label") or ""),
            status=str(app.get("status") or ""),
            sign_on_mode=str(app.get("signOnMode") or ""),
            relay_state=aws_app.relay_state_of(app),
            created_by_run=app["id"] in _created_app_ids(ctx),
            wire=app,
        )

    def differences(self, wanted: dict[str, Any]) -> dict[str, Any]:
        """The settings.app values this step owns that differ from `wanted` ({name: [old, new]})."""
        return aws_app.differences(self.wire, wanted)


def find_app(ctx: StepContext, client: Any) -> OktaAppReading | None:
    """The app to use: the one named by app_id, else one this run created, else the one
    labelled as this run wants (several such apps: the admin must pick one)."""
    app_id = str(ctx.inputs.get("app_id") or "").strip()
    if app_id:
        app = aws_app.get_app(client, app_id)
        if app is None or app.get("name") != aws_app.AWS_APP_NAME:
            raise PermanentError(
                Message(
                    gettext_noop(
                        "The Okta org has no AWS Account Federation app with the ID %(app_id)s."
                    ),
                    {"app_id": app_id},
                ),
                code="okta_app_not_found",
                hint=Message(
                    gettext_noop(
                        "Copy the ID from the app's address in the Okta Admin Console "
                        "(…/admin/app/amazon_aws/instance/<ID>/), or leave it empty."
                    )
                ),
            )
        return OktaAppReading.of(ctx, app)
    for created_id in _created_app_ids(ctx):
        app = aws_app.get_app(client, created_id)
        if app is not None:
            return OktaAppReading.of(ctx, app)
    found = aws_app.find_apps(client, _label(ctx))
    if len(found) > 1:
        raise PermanentError(
            Message(
                gettext_noop("The Okta org has %(count)d AWS apps named “%(label)s”."),
                {"count": len(found), "label": _label(ctx)},
            ),
            code="okta_app_ambiguous",
            hint=Message(
                gettext_noop("Enter the ID of the one to use (app_id), or choose another name.")
            ),
        )
    return OktaAppReading.of(ctx, found[0]) if found else None


def _changes(ctx: StepContext, app: OktaAppReading | None) -> list[Change]:
    wanted = wanted_settings(ctx)
    relay = relay_state_for(ctx, app)
    if app is None:
        return [
            Change(
                "create",
                "okta_app",
                _label(ctx),
                details={"settings.app": wanted, "defaultRelayState": relay},
            )
        ]
    changed = app.differences(wanted)
    if app.relay_state != relay:
        changed["defaultRelayState"] = [app.relay_state, relay]
    if app.label != _label(ctx) and ctx.inputs.get("app_label"):
        changed["label"] = [app.label, _label(ctx)]
    if app.status != "ACTIVE":
        changed["status"] = [app.status, "ACTIVE"]
    action: ChangeAction = "update" if changed else ("nothing" if app.created_by_run else "adopt")
    return [
        Change(
            action,
            "okta_app",
            app.label,
            details={"app_id": app.id},
            diff="\n".join(f"{key}: {old!r} → {new!r}" for key, (old, new) in changed.items()),
        )
    ]


def sandbox_sso_url(ctx: StepContext, app_id: str) -> str:
    """The sandbox IdP's sign-on URL for the app ("" in live mode): from var/sandbox.json only."""
    endpoints = sandbox_endpoints(ctx.idp_connection())
    if endpoints is None:
        return ""
    return f"{str(endpoints['okta_org_url']).rstrip('/')}{SANDBOX_SSO_PATH}{app_id}"


@dataclass
class OktaAppOutputs(StepOutputs):
    """The Okta AWS app the run created or adopted, and what AWS and later steps read of it."""

    step_key: ClassVar[str] = "okta_app"

    app_id: str = ""
    app_label: str = ""
    # True when this run created the app: later steps then need not record its old settings.
    created: bool = False
    relay_state_url: str = ""
    metadata_xml: str = ""
    entity_id: str = ""
    user_access_url: str = ""
    sandbox_sso_url: str = ""
    session_duration_s: int = 0  # the SessionDuration the app asserts


@register
class OktaApp(Step):
    key = "okta_app"
    title = _("Okta app for Amazon Connect")
    description = _(
        "Creates Okta's AWS Account Federation app (SAML 2.0) with the relay state that takes "
        "people into your Connect instance, and reads its metadata for AWS."
    )
    form_class = OktaAppForm
    asks_before_planning = True

    def plan(self, ctx: StepContext) -> Plan:
        client = ctx.okta()
        app = find_app(ctx, client)
        warnings: list[Message | str] = list(
            relay_state_warnings(
                str(ctx.inputs.get("destination")), str(ctx.inputs.get("custom_ccp_url") or "")
            )
        )
        if app is not None and not app.created_by_run:
            warnings.append(
                Message(
                    _(
                        "The app “%(label)s” already exists: the wizard uses it and changes only "
                        "its AWS settings. Rolling back leaves it in place."
                    ),
                    {"label": app.label},
                )
            )
        return Plan(changes=_changes(ctx, app), warnings=warnings)

    def apply(self, ctx: StepContext) -> OktaAppOutputs:
        client = ctx.okta()
        found = find_app(ctx, client)
        wanted = wanted_settings(ctx)
        relay = relay_state_for(ctx, found)
        if found is None:
            app = okta_call(
                client,
                "POST",
                "/api/v1/apps",
                {
                    "name": aws_app.AWS_APP_NAME,
                    "label": _label(ctx),
                    "signOnMode": aws_app.SAML_2_0,
                    "settings": {"app": wanted, "signOn": {"defaultRelayState": relay}},
                },
            )
            ctx.record_created("okta_app", app["id"], label=app["label"])
        else:
            app = found.wire
            if (
                found.differences(wanted)
                or found.relay_state != relay
                or (ctx.inputs.get("app_label") and found.label != _label(ctx))
            ):
                app = aws_app.replace_app(
                    client,
                    app,
                    label=_label(ctx) if ctx.inputs.get("app_label") else None,
                    app_settings_update=wanted,
                    relay_state=relay,
                )
            if app.get("status") != "ACTIVE":
                okta_call(client, "POST", f"{aws_app.app_path(app['id'])}/lifecycle/activate")
        made = OktaAppReading.of(ctx, app)
        metadata = aws_app.metadata_xml(client, made.id)
        return OktaAppOutputs(
            app_id=made.id,
            app_label=made.label,
            created=made.created_by_run,
            relay_state_url=relay,
            metadata_xml=metadata,
            entity_id=parse_idp_metadata(metadata).entity_id,
            user_access_url=aws_app.user_access_url(made.wire),
            sandbox_sso_url=sandbox_sso_url(ctx, made.id),
            # The SessionDuration the app asserts (kept as it was, or set): the federation role
            # must allow at least this.
            session_duration_s=_held_seconds(made.wire) or _session_seconds(ctx),
        )

    def verify(self, ctx: StepContext) -> list[Finding]:
        created = _created_app_ids(ctx)
        app_id = created[0] if created else ""
        client = ctx.okta()
        if app_id:
            got = aws_app.get_app(client, app_id)
            app = OktaAppReading.of(ctx, got) if got is not None else None
        else:
            app = find_app(ctx, client)
        if app is None:
            return [
                Finding(
                    check=Message(gettext_noop("The Okta app exists")),
                    ok=False,
                    detail=Message(gettext_noop("no app %(app)s"), {"app": app_id or _label(ctx)}),
                    fix=Message(gettext_noop("Retry the step.")),
                )
            ]
        relay = relay_state_for(ctx, app)
        return [
            Finding(check=Message(gettext_noop("The Okta app exists")), ok=True, detail=app.id),
            Finding(
                check=Message(gettext_noop("The app is active")),
                ok=app.status == "ACTIVE",
                detail=app.status,
                fix=Message(gettext_noop("Activate the app in the Okta Admin Console.")),
            ),
            Finding(
                check=Message(gettext_noop("The app signs on with SAML 2.0")),
                ok=app.sign_on_mode == aws_app.SAML_2_0,
                detail=app.sign_on_mode,
            ),
            Finding(
                check=Message(gettext_noop("The app's relay state leads into the instance")),
                ok=app.relay_state == relay,
                detail=app.relay_state or Message(gettext_noop("(none)")),
                fix=Message(gettext_noop("Retry the step; it sets the relay state again.")),
            ),
        ]

    def rollback(self, ctx: StepContext) -> None:
        client = ctx.okta()
        for app_id in _created_app_ids(ctx):
            aws_app.delete_app(client, app_id)
