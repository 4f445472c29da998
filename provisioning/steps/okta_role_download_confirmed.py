"""The guided manual step of the role-download variant: the admin types the IAM user's access key
into the Okta app's Provisioning tab (Okta has no public API for it) and ticks "Update User
Attributes"; the wizard confirms that Okta used the key (iam:GetAccessKeyLastUsed) before the run
goes on.

Reads outputs okta_app (app_id, app_label) and okta_role_listing_user (access_key_id,
user_name). Inputs (the form): `done` (the admin says it is done), and in sandbox mode only
`sandbox_perform_manual_step`: the sandbox Okta does the admin's part itself, through its hook
POST /sandbox/apps/{appId}/provisioning on the sandbox's own Okta URL from var/sandbox.json.
Outputs: access_key_id, key_last_used (ISO 8601), key_used_by (AWS service), performed_by
("admin" or "sandbox"), roles (the role names the sandbox Okta downloaded; [] in live mode).

While the admin hasn't answered, the plan carries `guide` (what the run page shows: the app,
the key id, where to click); after the answer, apply waits (re-enqueued, never sleeping) until
AWS shows the key used.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from provisioning.context import StepContext
from provisioning.errors import PermanentError, WaitForCloud
from provisioning.messages import Message
from provisioning.models import StepRun
from provisioning.okta.rest import okta_call
from provisioning.redaction import register_secret_values
from provisioning.sandbox_endpoints import sandbox_endpoints
from provisioning.steps.base import Change, Finding, Plan, Step, StepOutputs, register
from provisioning.steps.okta_app import OktaAppOutputs

LISTING_STEP = "okta_role_listing_user"
SANDBOX_HOOK = "/sandbox/apps/{app_id}/provisioning"
# IAM records a key's last use within minutes; look again this often while waiting.
KEY_USE_POLL_S = 15.0
# The Okta Admin Console lives on the org's "-admin" host (Okta Help, "Okta Admin Console").
ADMIN_HOST_SUFFIX = "-admin"
ADMIN_APP_PATH = "/admin/app/amazon_aws/instance/{app_id}/#tab-provisioning"


@dataclass
class GuidePlan(Plan):
    """A plan that carries what the run page shows for the manual step."""

    guide: dict[str, Any] = field(default_factory=dict)


def _is_sandbox_mode() -> bool:
    return settings.WIZARD_MODE == "sandbox"


class RoleDownloadForm(forms.Form):
    done = forms.BooleanField(
        label=_(
            "I pasted the keys in Okta, saved, and ticked “Update User Attributes” under To App"
        ),
        required=False,
    )
    sandbox_perform_manual_step = forms.BooleanField(
        label=_("Sandbox: let the sandbox Okta do this part for me"),
        required=False,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not _is_sandbox_mode():
            del self.fields["sandbox_perform_manual_step"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not cleaned.get("done") and not cleaned.get("sandbox_perform_manual_step"):
            raise forms.ValidationError(_("Tick the box once you have done the steps in Okta."))
        return cleaned


def _earlier(ctx: StepContext, key: str, name: str) -> str:
    value = str(ctx.outputs.get(key, {}).get(name) or "")
    if not value:
        raise PermanentError(
            Message(
                _("This step needs %(output)s from the step %(step)s."),
                {"output": name, "step": key},
            ),
            code="okta_role_download_missing",
        )
    return value


def key_last_used(ctx: StepContext, access_key_id: str) -> dict[str, Any]:
    return dict(
        ctx.aws("iam").get_access_key_last_used(AccessKeyId=access_key_id)["AccessKeyLastUsed"]
    )


def _connection(ctx: StepContext) -> Any:
    return ctx.idp_connection()


def _sandbox_requested(ctx: StepContext) -> bool:
    """The sandbox stands in for the admin only in sandbox mode, with a sandbox connection."""
    if not ctx.inputs.get("sandbox_perform_manual_step"):
        return False
    if not _is_sandbox_mode() or sandbox_endpoints(_connection(ctx)) is None:
        raise PermanentError(
            Message(_("Only the sandbox can do the Okta part of this step for you.")),
            code="okta_role_download_not_sandbox",
            hint=Message(
                _("Do the steps in the Okta Admin Console, then tick the box that says so.")
            ),
        )
    return True


def admin_console_url(org_url: str, app_id: str) -> str:
    """The app's Provisioning tab in the Okta Admin Console ("" when the org URL has no
    <org>.<domain> host, as in the sandbox)."""
    host = urlsplit(org_url).hostname or ""
    org, dot, domain = host.partition(".")
    if not dot or "okta" not in domain.split(".")[0]:
        return ""
    return f"https://{org}{ADMIN_HOST_SUFFIX}.{domain}" + ADMIN_APP_PATH.format(app_id=app_id)


def _guide(ctx: StepContext) -> dict[str, Any]:
    app_id = _earlier(ctx, "okta_app", "app_id")
    org_url = str(_connection(ctx).config.get("org_url") or "")
    return {
        "app_id": app_id,
        "app_label": ctx.outputs_of(OktaAppOutputs).app_label,
        "admin_url": admin_console_url(org_url, app_id),
        "access_key_id": _earlier(ctx, LISTING_STEP, "access_key_id"),
        "iam_user": str(ctx.outputs.get(LISTING_STEP, {}).get("user_name") or ""),
        "listing_step": LISTING_STEP,
        "sandbox": _is_sandbox_mode(),
    }


def _listing_secret(ctx: StepContext, access_key_id: str) -> str:
    step = StepRun.objects.filter(run_id=ctx.run_id, key=LISTING_STEP).first()
    secret = (step.secrets if step is not None else {}).get(access_key_id, "")
    if not secret:
        raise PermanentError(
            Message(_("The wizard no longer holds the secret of this access key.")),
            code="okta_role_download_no_secret",
            hint=Message(
                _("Retry the step okta_role_listing_user with “Make a new access key” ticked.")
            ),
        )
    register_secret_values([secret])
    return secret


@dataclass
class OktaRoleDownloadConfirmedOutputs(StepOutputs):
    """When and by whom Okta used the listing user's key to download the account's roles."""

    step_key: ClassVar[str] = "okta_role_download_confirmed"

    access_key_id: str = ""
    key_last_used: str = ""  # ISO 8601
    key_used_by: str = ""  # the AWS service IAM says used the key
    performed_by: str = ""  # "admin" or "sandbox"
    roles: list[str] = field(default_factory=list)  # the roles the sandbox's Okta read


@register
class OktaRoleDownloadConfirmed(Step):
    key = "okta_role_download_confirmed"
    title = _("Okta: roles from AWS (manual step)")
    description = _(
        "In the Okta Admin Console, give the app the IAM user's access key so Okta can list the "
        "roles. Okta has no API for this; the wizard checks that Okta used the key."
    )
    form_class = RoleDownloadForm
    # Its plan decides whether to ask: no tick is needed once AWS shows Okta used the key, and
    # while it is needed the plan carries the console guide the run page shows with the form.
    inputs_checked_by_form = False

    def plan(self, ctx: StepContext) -> Plan:
        access_key_id = _earlier(ctx, LISTING_STEP, "access_key_id")
        used = key_last_used(ctx, access_key_id).get("LastUsedDate")
        if used is not None:
            return Plan(
                changes=[Change("nothing", "okta_role_download", access_key_id, details={})]
            )
        if _sandbox_requested(ctx):
            return Plan(
                changes=[
                    Change(
                        "update",
                        "okta_app_provisioning",
                        _earlier(ctx, "okta_app", "app_id"),
                        details={"access_key_id": access_key_id, "by": "sandbox"},
                    )
                ]
            )
        if ctx.inputs.get("done"):
            # The admin says it is done; apply waits until AWS shows the key used.
            return Plan(
                changes=[Change("nothing", "okta_role_download", access_key_id, details={})]
            )
        return GuidePlan(needs_input=True, guide=_guide(ctx))

    def apply(self, ctx: StepContext) -> OktaRoleDownloadConfirmedOutputs:
        access_key_id = _earlier(ctx, LISTING_STEP, "access_key_id")
        used = key_last_used(ctx, access_key_id)
        performed_by = "admin"
        roles: list[str] = []
        if used.get("LastUsedDate") is None and _sandbox_requested(ctx):
            app_id = _earlier(ctx, "okta_app", "app_id")
            answer = okta_call(
                ctx.okta(),
                "POST",
                SANDBOX_HOOK.format(app_id=app_id),
                {
                    "accessKeyId": access_key_id,
                    "secretAccessKey": _listing_secret(ctx, access_key_id),
                    "updateUserAttributes": True,
                },
            )
            roles = [str(role.get("name")) for role in (answer or {}).get("roles", [])]
            performed_by = "sandbox"
            used = key_last_used(ctx, access_key_id)
        elif ctx.inputs.get("sandbox_perform_manual_step"):
            performed_by = "sandbox"
        last_used = used.get("LastUsedDate")
        if last_used is None:
            raise WaitForCloud(
                Message(_("Okta has not used the access key %(key)s yet."), {"key": access_key_id}),
                countdown_s=KEY_USE_POLL_S,
            )
        return OktaRoleDownloadConfirmedOutputs(
            access_key_id=access_key_id,
            key_last_used=last_used.isoformat()
            if isinstance(last_used, dt.datetime)
            else str(last_used),
            key_used_by=str(used.get("ServiceName") or ""),
            performed_by=performed_by,
            roles=roles,
        )

    def verify(self, ctx: StepContext) -> list[Finding]:
        access_key_id = _earlier(ctx, LISTING_STEP, "access_key_id")
        used = key_last_used(ctx, access_key_id).get("LastUsedDate")
        return [
            Finding(
                check=Message(_("Okta has used the access key")),
                ok=used is not None,
                detail=Message(_("last used %(when)s UTC"), {"when": f"{used:%Y-%m-%d %H:%M}"})
                if used
                else Message(_("not used yet")),
                fix=Message(
                    _(
                        "In the Okta app: Provisioning › Integration › Enable API integration, "
                        "paste the keys, Test API Credentials, Save."
                    )
                ),
            )
        ]

    def rollback(self, ctx: StepContext) -> None:
        # It waits for Okta to use the key; the key itself is the listing user step's to remove.
        return None
