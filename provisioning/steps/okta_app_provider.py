"""Puts the IAM identity provider's ARN in the Okta app's identityProviderArn once the provider
and the federation role exist.

Why a step of its own, after federation_role: okta_app must run before saml_provider (the
provider is made from the app's metadata), so the app can't name the provider when it is
created; both role variants need the ARN afterwards (role download joins it to every role Okta
sends), and one small step keeps that write, its check and its undo in one place.

Reads outputs["okta_app"]["app_id"] and outputs["federation_role"]["provider_arn"] (or
outputs["saml_provider"]["provider_arn"]). No inputs. Outputs: app_id, identity_provider_arn.
Rollback puts back the value the app had before, unless this run created the app (okta_app's
rollback deletes it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from django.utils.translation import gettext_lazy as _

from provisioning.context import StepContext
from provisioning.errors import PermanentError
from provisioning.messages import Message
from provisioning.okta import aws_app
from provisioning.steps.base import Change, Finding, Plan, Step, StepOutputs, register
from provisioning.steps.okta_app import OktaAppOutputs

SETTING = "identityProviderArn"


def app_id_of(ctx: StepContext) -> str:
    app_id = ctx.outputs_of(OktaAppOutputs).app_id
    if not app_id:
        raise PermanentError(
            Message(_("This step needs the Okta app of the step okta_app.")),
            code="okta_app_missing",
        )
    return app_id


def provider_arn_of(ctx: StepContext) -> str:
    for key in ("federation_role", "saml_provider"):
        arn = str(ctx.outputs.get(key, {}).get("provider_arn") or "")
        if arn:
            return arn
    raise PermanentError(
        Message(_("This step needs the IAM identity provider of the step saml_provider.")),
        code="okta_provider_missing",
    )


def existing_app(ctx: StepContext, client: Any) -> dict[str, Any]:
    app = aws_app.get_app(client, app_id_of(ctx))
    if app is None:
        raise PermanentError(
            Message(_("The Okta app %(app)s no longer exists."), {"app": app_id_of(ctx)}),
            code="okta_app_gone",
            hint=Message(
                _("Retry the step okta_app (resume the run from it), or roll the run back.")
            ),
        )
    return app


@dataclass
class OktaAppProviderOutputs(StepOutputs):
    """The Okta app and the IAM identity provider ARN its settings now name."""

    step_key: ClassVar[str] = "okta_app_provider"

    app_id: str = ""
    identity_provider_arn: str = ""


@register
class OktaAppProvider(Step):
    key = "okta_app_provider"
    title = _("Okta app: IAM identity provider")
    description = _(
        "Tells the Okta app which IAM identity provider it signs in through (its Identity "
        "Provider ARN)."
    )

    def plan(self, ctx: StepContext) -> Plan:
        app = existing_app(ctx, ctx.okta())
        current = aws_app.app_settings(app).get(SETTING)
        wanted = provider_arn_of(ctx)
        return Plan(
            changes=[
                Change(
                    "nothing" if current == wanted else "update",
                    "okta_app_setting",
                    SETTING,
                    details={"app_id": app["id"], "value": wanted},
                    diff="" if current == wanted else f"{current!r} → {wanted!r}",
                )
            ]
        )

    def apply(self, ctx: StepContext) -> OktaAppProviderOutputs:
        client = ctx.okta()
        app = existing_app(ctx, client)
        current = aws_app.app_settings(app).get(SETTING)
        wanted = provider_arn_of(ctx)
        if current != wanted:
            if not ctx.outputs_of(OktaAppOutputs).created:
                ctx.record_created("okta_app_setting", SETTING, app_id=app["id"], previous=current)
            aws_app.replace_app(client, app, app_settings_update={SETTING: wanted})
        return OktaAppProviderOutputs(app_id=app["id"], identity_provider_arn=wanted)

    def verify(self, ctx: StepContext) -> list[Finding]:
        app = existing_app(ctx, ctx.okta())
        current = aws_app.app_settings(app).get(SETTING)
        return [
            Finding(
                check=Message(_("The Okta app names the IAM identity provider")),
                ok=current == provider_arn_of(ctx),
                detail=str(current),
                fix=Message(_("Retry the step.")),
            )
        ]

    def rollback(self, ctx: StepContext) -> None:
        client = ctx.okta()
        for record in ctx.created_of("okta_app_setting"):
            app = aws_app.get_app(client, record.details["app_id"])
            if app is not None:
                aws_app.replace_app(
                    client, app, app_settings_update={SETTING: record.details.get("previous")}
                )
