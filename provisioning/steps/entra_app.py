"""The entra_app step: the Entra enterprise app for AWS, instantiated from the "AWS Single-Account
Access" gallery template (or adopted), set up for SAML, with its own signing certificate, and its
federation metadata handed to saml_provider.

Inputs (all optional): `app_name` (default "Amazon Connect <instance alias or ID>"),
`existing_app_id` (adopt this app: appId or object id), `identifier_suffix` (the "#suffix" of the
identifier https://signin.aws.amazon.com/saml#<suffix>, default the instance alias or ID: one app
per tenant may hold each identifier), `reply_url` ("global", "regional" or "both"),
`certificate_years` (1-3, default 3).
Outputs: app_object_id, app_id, service_principal_id, display_name, identifier_uri, reply_urls,
certificate_thumbprint, certificate_not_after, metadata_xml, tenant_id, adopted,
user_access_url, sandbox_sso_url (sandbox only).

The app is found again on every run by its identifier (a second run of the same plan adopts what
the first made and changes nothing), or by what this run recorded right after instantiating it
(a crash). Rollback deletes only an app this run created (its service principal goes with it).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django import forms
from django.utils.translation import gettext_lazy as _
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.application_templates.item.instantiate.instantiate_post_request_body import (
    InstantiatePostRequestBody,
)
from msgraph.generated.applications.applications_request_builder import ApplicationsRequestBuilder
from msgraph.generated.models.application import Application
from msgraph.generated.models.service_principal import ServicePrincipal
from msgraph.generated.models.web_application import WebApplication
from msgraph.generated.service_principals.item.add_token_signing_certificate.add_token_signing_certificate_post_request_body import (  # noqa: E501
    AddTokenSigningCertificatePostRequestBody,
)

from provisioning.context import StepContext
from provisioning.entra.client import (
    instantiate_calls,
    is_replicating,
    run_graph,
    run_graph_together,
)
from provisioning.entra.graph_reads import get_or_none
from provisioning.entra.metadata import download_federation_metadata
from provisioning.errors import PermanentError, WaitForCloud
from provisioning.messages import Message
from provisioning.saml import parse_idp_metadata
from provisioning.sandbox_endpoints import sandbox_endpoints
from provisioning.steps.base import Change, Finding, Plan, Step, StepOutputs, register
from provisioning.steps.entra_preflight import FALLBACK_TEMPLATE_ID, EntraPreflightOutputs

RESOURCE_TYPE = "entra_application"
# The key under which apply() hands verify() the app and service principal it read after its last
# write (StepContext.read_by_apply).
READ_AFTER_WRITES = "app_after_writes"
# The key under which plan() hands apply() what its search found, None included
# (StepContext.read_by_plan).
FOUND_BY_PLAN = "app_found_by_plan"
SIGNIN_GLOBAL = "https://signin.aws.amazon.com/saml"
IDENTIFIER_PREFIX = SIGNIN_GLOBAL + "#"
# Characters kept in a derived "#suffix" (an identifier URI fragment without escaping).
SUFFIX_CHARACTER = re.compile(r"[^A-Za-z0-9._-]")
SUFFIX_MAX = 64
# addTokenSigningCertificate accepts an endDateTime at most three years away (Graph reference);
# Entra's own default is three years.
CERTIFICATE_YEARS = (1, 2, 3)
DEFAULT_CERTIFICATE_YEARS = 3
DAYS_PER_YEAR = 365
# A preferred certificate expiring sooner than this is replaced (saml_provider warns at 30 days).
CERTIFICATE_RENEW_DAYS = 30
CERTIFICATE_SUBJECT = "CN=Amazon Connect SSO"
# How far Graph's createdDateTime may run behind our database's clock and still count as made
# since this step started (clocks on different hosts drift by seconds, rarely more).
CLOCK_SKEW = dt.timedelta(minutes=5)
# Graph's displayName limit for applications.
APP_NAME_MAX = 120
USER_ACCESS_URL = "https://launcher.myapps.microsoft.com/api/signin/{app_id}?tenantId={tenant}"
# Where Graph's identifier URI policy refusals send admins (identifier-uri-restrictions.md).
IDENTIFIER_POLICY_LINK = "aka.ms/identifier-uri-addition-error"
REPLY_CHOICES = [
    ("global", _("Global: https://signin.aws.amazon.com/saml")),
    ("regional", _("Regional: https://<region>.signin.aws.amazon.com/saml")),
    ("both", _("Both")),
]


class EntraAppForm(forms.Form):
    app_name = forms.CharField(
        label=_("Name of the app in Entra ID"), required=False, max_length=APP_NAME_MAX
    )
    existing_app_id = forms.CharField(
        label=_("Use an existing app (its Application ID)"), required=False
    )
    identifier_suffix = forms.CharField(
        label=_("Identifier suffix"),
        required=False,
        max_length=SUFFIX_MAX,
        help_text=_("Keeps several AWS apps apart in one tenant. Default: the instance alias."),
    )
    reply_url = forms.ChoiceField(
        label=_("Reply URL"), choices=REPLY_CHOICES, initial="global", widget=forms.RadioSelect
    )
    certificate_years = forms.TypedChoiceField(
        label=_("Signing certificate lifetime (years)"),
        choices=[(years, str(years)) for years in CERTIFICATE_YEARS],
        coerce=int,
        initial=DEFAULT_CERTIFICATE_YEARS,
    )


def _instance_name(ctx: StepContext) -> str:
    return ctx.instance_alias or ctx.instance_id or str(ctx.run_id)[:8]


def wanted_identifier(ctx: StepContext) -> str:
    raw = str(ctx.inputs.get("identifier_suffix") or "").strip() or _instance_name(ctx)
    suffix = SUFFIX_CHARACTER.sub("-", raw)[:SUFFIX_MAX]
    return IDENTIFIER_PREFIX + suffix


def wanted_reply_urls(ctx: StepContext) -> list[str]:
    choice = str(ctx.inputs.get("reply_url") or "global")
    regional = f"https://{ctx.region}.signin.aws.amazon.com/saml"
    return {
        "global": [SIGNIN_GLOBAL],
        "regional": [regional],
        "both": [SIGNIN_GLOBAL, regional],
    }.get(choice, [SIGNIN_GLOBAL])


def wanted_name(ctx: StepContext) -> str:
    name = str(ctx.inputs.get("app_name") or "").strip()
    return (name or f"Amazon Connect {_instance_name(ctx)}")[:APP_NAME_MAX]


def certificate_years(ctx: StepContext) -> int:
    # One of CERTIFICATE_YEARS: the engine checked it with EntraAppForm before plan.
    return int(ctx.inputs.get("certificate_years") or DEFAULT_CERTIFICATE_YEARS)


def _identifier_policy_error(refused: PermanentError, identifier: str) -> PermanentError:
    """Graph's own refusal of the identifier under the tenant's identifier URI policy, with what
    the admin can do; any other refusal unchanged. Both policies' messages point at
    IDENTIFIER_POLICY_LINK (identifier-uri-restrictions.md)."""
    if IDENTIFIER_POLICY_LINK not in refused.message:
        return refused
    return PermanentError(
        refused.message,
        code="entra_identifier_uri_policy",
        hint=Message(
            _(
                "Your tenant's identifier URI policy refuses {identifier} even though the app is "
                "set up for SAML. Ask an administrator to grant this app an exemption from the "
                "policy (https://aka.ms/identifier-uri-protection-grant-exemptions) or to exempt "
                "SAML apps again, then retry the step."
            ),
            {"identifier": identifier},
        ),
    )


@dataclass
class FoundApp:
    application: Any  # msgraph Application
    service_principal: Any | None  # None while not replicated yet
    adopted: bool
    # Made by an attempt of this step whose worker died before recording it.
    unrecorded: bool = False


def _app_by_identifier(client: Any, identifier: str) -> Any | None:
    query = ApplicationsRequestBuilder.ApplicationsRequestBuilderGetQueryParameters(
        filter=f"identifierUris/any(uri:uri eq '{identifier}')"
    )
    found = run_graph(
        client.applications.get(request_configuration=RequestConfiguration(query_parameters=query))
    )
    return (found.value or [None])[0]


def _app_by_key(client: Any, key: str) -> Any | None:
    """An application by object id, or by appId."""
    application = get_or_none(client.applications.by_application_id(key).get())
    if application is None:
        application = get_or_none(client.applications_with_app_id(key).get())
    return application


def _service_principal(client: Any, app_id: str) -> Any | None:
    return get_or_none(client.service_principals_with_app_id(app_id).get())


def find_app(ctx: StepContext, client: Any) -> FoundApp | None:
    """The app this run works on: the admin's, this run's (recorded), or the one holding the
    identifier (made by an earlier run of the same setup)."""
    existing = str(ctx.inputs.get("existing_app_id") or "").strip()
    if existing:
        application = _app_by_key(client, existing)
        if application is None:
            raise PermanentError(
                Message(_("No app with the ID “%(app)s” exists in the tenant."), {"app": existing}),
                code="entra_app_not_found",
                hint=Message(
                    _(
                        "Copy the Application (client) ID from Entra admin center › Enterprise "
                        "applications › the app › Overview."
                    )
                ),
            )
        return FoundApp(application, _service_principal(client, application.app_id), adopted=True)
    for created in ctx.created_of(RESOURCE_TYPE):
        application = _app_by_key(client, created.identifier)
        if application is None:
            raise WaitForCloud(Message(_("Waiting for Entra ID to show the new app.")))
        service_principal = _service_principal(client, application.app_id)
        return FoundApp(application, service_principal, adopted=False)
    application = _app_by_identifier(client, wanted_identifier(ctx))
    if application is not None:
        return FoundApp(application, _service_principal(client, application.app_id), adopted=True)
    application = _app_of_lost_attempt(ctx, client)
    if application is None:
        return None
    return FoundApp(
        application,
        _service_principal(client, application.app_id),
        adopted=False,
        unrecorded=True,
    )


def _record_app(ctx: StepContext, application: Any) -> None:
    ctx.record_created(
        RESOURCE_TYPE,
        str(application.id),
        app_id=str(application.app_id),
        display_name=wanted_name(ctx),
    )


def _app_of_lost_attempt(ctx: StepContext, client: Any) -> Any | None:
    """The app an attempt of this step instantiated before its worker died: instantiate takes
    only a display name, so the app has ours, no identifier yet, and was made since the step
    started. Without this, the retry would instantiate a second app. No search when no attempt of
    this run sent an instantiate call (the first attempt's plan, and every run adopting an app)."""
    calls = instantiate_calls(ctx.audit)
    if not calls.any_went_out:
        return None
    for application_id in calls.application_ids:
        # Found by the id Graph answered with: a name query may not show it until it replicates.
        made = get_or_none(client.applications.by_application_id(application_id).get())
        if made is not None:
            return made
        if is_replicating(ctx.audit, application_id):
            raise WaitForCloud(Message(_("Waiting for Entra ID to show the new application.")))
    since = ctx.step_started_at()
    if since is None:
        return None
    name = wanted_name(ctx).replace("'", "''")
    query = ApplicationsRequestBuilder.ApplicationsRequestBuilderGetQueryParameters(
        filter=f"displayName eq '{name}'"
    )
    found = run_graph(
        client.applications.get(request_configuration=RequestConfiguration(query_parameters=query))
    )
    for application in found.value or []:
        created = application.created_date_time
        if not application.identifier_uris and created and created >= since - CLOCK_SKEW:
            return application
    return None


def _preferred_certificate(service_principal: Any) -> tuple[str, dt.datetime | None]:
    """(thumbprint, end) of the preferred signing certificate, ("", None) when there is none."""
    thumbprint = service_principal.preferred_token_signing_key_thumbprint or ""
    if not thumbprint:
        return "", None
    for key in service_principal.key_credentials or []:
        identifier = key.custom_key_identifier or b""
        if key.usage == "Verify" and identifier.hex().upper() == thumbprint.upper():
            return thumbprint, key.end_date_time
    return "", None


def _metadata_shows(metadata_xml: str, thumbprint: str) -> bool:
    """Whether the federation metadata carries the certificate with this (SHA-1) thumbprint."""
    metadata = parse_idp_metadata(metadata_xml, check_dates=False)
    return any(c.thumbprint_sha1 == thumbprint.upper() for c in metadata.signing_certificates)


def _unused_certificate(service_principal: Any) -> str:
    """The thumbprint of a fresh signing certificate of ours that is not the preferred one: an
    attempt whose worker died between adding it and preferring it made it. Using it keeps a
    retry from adding a second one. "" when there is none."""
    preferred = (service_principal.preferred_token_signing_key_thumbprint or "").upper()
    renew_before = dt.datetime.now(dt.UTC) + dt.timedelta(days=CERTIFICATE_RENEW_DAYS)
    for key in service_principal.key_credentials or []:
        thumbprint = (key.custom_key_identifier or b"").hex().upper()
        if (
            key.usage == "Verify"
            and key.display_name == CERTIFICATE_SUBJECT
            and thumbprint
            and thumbprint != preferred
            and key.end_date_time is not None
            and key.end_date_time > renew_before
        ):
            return thumbprint
    return ""


def _certificate_needed(service_principal: Any) -> bool:
    thumbprint, end = _preferred_certificate(service_principal)
    if not thumbprint or end is None:
        return True
    return end - dt.datetime.now(dt.UTC) < dt.timedelta(days=CERTIFICATE_RENEW_DAYS)


def differences(ctx: StepContext, found: FoundApp) -> dict[str, Any]:
    """What is not yet as wanted on an existing app: {what: (now, wanted)}."""
    application, service_principal = found.application, found.service_principal
    wanted: dict[str, Any] = {}
    identifiers = list(application.identifier_uris or [])
    # An app the admin named keeps the AWS identifier it already has (other AWS accounts may
    # federate through it); any other app gets this setup's own.
    keeps_own = bool(str(ctx.inputs.get("existing_app_id") or "").strip()) and any(
        uri.startswith(IDENTIFIER_PREFIX) for uri in identifiers
    )
    if not keeps_own and identifiers != [wanted_identifier(ctx)]:
        wanted["identifierUris"] = (identifiers, [wanted_identifier(ctx)])
    reply_urls = list((application.web.redirect_uris if application.web else None) or [])
    if sorted(reply_urls) != sorted(wanted_reply_urls(ctx)):
        wanted["web.redirectUris"] = (reply_urls, wanted_reply_urls(ctx))
    if service_principal is not None:
        if service_principal.preferred_single_sign_on_mode != "saml":
            wanted["preferredSingleSignOnMode"] = (
                service_principal.preferred_single_sign_on_mode,
                "saml",
            )
        if _certificate_needed(service_principal):
            wanted["signingCertificate"] = (
                _preferred_certificate(service_principal)[0] or None,
                f"{CERTIFICATE_SUBJECT}, {certificate_years(ctx)} years",
            )
    return wanted


@dataclass
class EntraAppOutputs(StepOutputs):
    """The Entra enterprise app the run created or adopted, and what AWS and later steps read
    of it."""

    step_key: ClassVar[str] = "entra_app"

    app_object_id: str = ""
    app_id: str = ""
    service_principal_id: str = ""
    display_name: str = ""
    identifier_uri: str = ""
    reply_urls: list[str] = field(default_factory=list)
    certificate_thumbprint: str = ""
    certificate_not_after: str = ""
    tenant_id: str = ""
    adopted: bool = False
    user_access_url: str = ""
    metadata_xml: str = ""
    # Only with the sandbox's IdP: stored runs have the key only then, so to_json leaves it out
    # when empty.
    sandbox_sso_url: str = ""

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        if not data["sandbox_sso_url"]:
            del data["sandbox_sso_url"]
        return data


@register
class EntraApp(Step):
    key = "entra_app"
    title = _("Entra ID enterprise app")
    description = _(
        "Adds the AWS Single-Account Access app to your tenant (or uses yours), sets it up for "
        "SAML sign-in with its own signing certificate, and reads its federation metadata."
    )
    form_class = EntraAppForm

    def plan(self, ctx: StepContext) -> Plan:
        client = ctx.graph()
        certificate_years(ctx)
        found = find_app(ctx, client)
        ctx.read_by_plan[FOUND_BY_PLAN] = found
        if found is None:
            return Plan(
                changes=[
                    Change(
                        "create",
                        RESOURCE_TYPE,
                        wanted_name(ctx),
                        {
                            "template": "AWS Single-Account Access",
                            "identifier": wanted_identifier(ctx),
                            "reply_urls": wanted_reply_urls(ctx),
                            "certificate": f"{CERTIFICATE_SUBJECT}, {certificate_years(ctx)} years",
                        },
                    )
                ]
            )
        changes = differences(ctx, found)
        name = str(found.application.display_name)
        if changes:
            return Plan(
                changes=[
                    Change(
                        "update",
                        RESOURCE_TYPE,
                        name,
                        {
                            what: {"now": now, "wanted": want}
                            for what, (now, want) in changes.items()
                        },
                    )
                ]
            )
        return Plan(
            changes=[Change("adopt" if found.adopted else "nothing", RESOURCE_TYPE, name, {})]
        )

    def apply(self, ctx: StepContext) -> EntraAppOutputs:
        client = ctx.graph()
        # The plan's search, made a moment ago, when apply follows it at once.
        found = (
            ctx.read_by_plan[FOUND_BY_PLAN]
            if FOUND_BY_PLAN in ctx.read_by_plan
            else find_app(ctx, client)
        )
        if found is None:
            found = self._instantiate(ctx, client)
        elif found.unrecorded:
            _record_app(ctx, found.application)
        if found.service_principal is None:
            raise WaitForCloud(
                Message(_("Waiting for Entra ID to show the new app's service principal."))
            )
        application, service_principal = found.application, found.service_principal
        changes = differences(ctx, found)
        sp = client.service_principals.by_service_principal_id(service_principal.id)
        # SAML mode first: since mid-2025 tenants refuse a new identifier outside their verified
        # domains unless the service principal is already in SAML mode (entra-docs,
        # identity-platform/identifier-uri-restrictions.md, "Policy behavior").
        if "preferredSingleSignOnMode" in changes:
            run_graph(sp.patch(ServicePrincipal(preferred_single_sign_on_mode="saml")))
        app_patch: dict[str, Any] = {}
        if "identifierUris" in changes:
            app_patch["identifier_uris"] = [wanted_identifier(ctx)]
        if "web.redirectUris" in changes:
            app_patch["web"] = WebApplication(redirect_uris=wanted_reply_urls(ctx))
        if app_patch:
            try:
                run_graph(
                    client.applications.by_application_id(application.id).patch(
                        Application(**app_patch)
                    )
                )
            except PermanentError as refused:
                raise _identifier_policy_error(refused, wanted_identifier(ctx)) from refused
        if "signingCertificate" in changes:
            thumbprint = _unused_certificate(service_principal)
            if not thumbprint:
                end = dt.datetime.now(dt.UTC) + dt.timedelta(
                    days=DAYS_PER_YEAR * certificate_years(ctx)
                )
                thumbprint = run_graph(
                    sp.add_token_signing_certificate.post(
                        AddTokenSigningCertificatePostRequestBody(
                            display_name=CERTIFICATE_SUBJECT, end_date_time=end
                        )
                    )
                ).thumbprint
            run_graph(sp.patch(ServicePrincipal(preferred_token_signing_key_thumbprint=thumbprint)))
        service_principal, application = run_graph_together(
            sp.get(), client.applications.by_application_id(application.id).get()
        )
        # Read after apply's last write, in the same task as the verify the runner calls next:
        # nothing of this run writes the app in between, so verify checks these instead of
        # reading the same two objects again.
        ctx.read_by_apply[READ_AFTER_WRITES] = FoundApp(
            application, service_principal, adopted=found.adopted
        )
        return self._outputs(ctx, application, service_principal, adopted=found.adopted)

    def _instantiate(self, ctx: StepContext, client: Any) -> FoundApp:
        template_id = ctx.outputs_of(EntraPreflightOutputs).template_id or FALLBACK_TEMPLATE_ID
        created = run_graph(
            client.application_templates.by_application_template_id(template_id).instantiate.post(
                InstantiatePostRequestBody(display_name=wanted_name(ctx))
            )
        )
        _record_app(ctx, created.application)
        # The answer holds both new objects (Graph reference, "applicationTemplate: instantiate":
        # an applicationServicePrincipal, whose example response gives the application and the
        # service principal with their properties), so they are not read again. Graph answers
        # before its replicas may have them (hashicorp/terraform-provider-azuread PR 656 retries
        # these 404s; issue 1811 shows the error): the writes that follow answer 404 until they
        # do, which the client turns into WaitForCloud (its docstring, "Replication"), and the
        # next attempt finds them through what was just recorded.
        return FoundApp(created.application, created.service_principal, adopted=False)

    def _outputs(
        self, ctx: StepContext, application: Any, service_principal: Any, *, adopted: bool
    ) -> EntraAppOutputs:
        connection = ctx.idp_connection()
        tenant = str(connection.config.get("tenant_id", ""))
        thumbprint, end = _preferred_certificate(service_principal)
        metadata_xml = download_federation_metadata(
            connection, str(application.app_id), audit=ctx.audit
        )
        if thumbprint and not _metadata_shows(metadata_xml, thumbprint):
            # The metadata URL can still serve the certificate from before a switch; IAM given
            # that copy would refuse every sign-in signed with the new one.
            raise WaitForCloud(
                Message(
                    _("Waiting for Entra ID's federation metadata to show the new certificate.")
                )
            )
        sandbox = sandbox_endpoints(connection)
        return EntraAppOutputs(
            app_object_id=str(application.id),
            app_id=str(application.app_id),
            service_principal_id=str(service_principal.id),
            display_name=str(application.display_name),
            identifier_uri=(application.identifier_uris or [""])[0],
            reply_urls=list(application.web.redirect_uris or []) if application.web else [],
            certificate_thumbprint=thumbprint,
            certificate_not_after=end.isoformat() if end else "",
            tenant_id=tenant,
            adopted=adopted,
            user_access_url=USER_ACCESS_URL.format(app_id=application.app_id, tenant=tenant),
            metadata_xml=metadata_xml,
            sandbox_sso_url=(
                f"{sandbox['entra_authority']}/sandbox/sso/{application.app_id}" if sandbox else ""
            ),
        )

    def verify(self, ctx: StepContext) -> list[Finding]:
        found = ctx.read_by_apply.get(READ_AFTER_WRITES) or find_app(ctx, ctx.graph())
        if found is None or found.service_principal is None:
            return [
                Finding(
                    Message(_("The Entra app is set up as the step made it")),
                    ok=False,
                    detail=Message(_("The app is gone from the tenant.")),
                    fix=Message(_("Retry the step to create it again.")),
                )
            ]
        left = differences(ctx, found)
        thumbprint, end = _preferred_certificate(found.service_principal)
        return [
            Finding(
                Message(_("The Entra app is set up as the step made it")),
                ok=not left,
                detail=", ".join(sorted(left)) if left else str(found.application.display_name),
                fix=Message(_("Retry the step: it sets these again.")) if left else "",
            ),
            Finding(
                Message(_("The enterprise app has a SAML signing certificate")),
                ok=bool(thumbprint),
                detail=Message(
                    _("%(thumbprint)s until %(end)s"),
                    {"thumbprint": thumbprint, "end": end.isoformat() if end else "?"},
                ),
            ),
        ]

    def rollback(self, ctx: StepContext) -> None:
        client = ctx.graph()
        for created in ctx.created_of(RESOURCE_TYPE):
            application = get_or_none(
                client.applications.by_application_id(created.identifier).get()
            )
            if application is not None:
                run_graph(client.applications.by_application_id(created.identifier).delete())
