"""Registers the IdP's SAML metadata in IAM as a SAML identity provider, or updates it.

Where the metadata comes from, first found wins: an earlier step's outputs["metadata_xml"] (the
IdP steps `entra_app` and `okta_app` first, then any earlier step that outputs that key); the
input `metadata_xml` (pasted); the input `metadata_url` (live mode only: in sandbox mode nothing
is fetched from a URL an admin typed). Input `provider_name` (default
"ConnectSSO-<instance alias or ID>").

Outputs: provider_arn, provider_name, entity_id, certificate_fingerprint (SHA-256, colon hex),
certificate_not_after (ISO 8601).

The provider is updated when the facts IAM uses from the metadata changed (entityID or the set of
signing certificates), not when only the text differs: Entra signs its metadata document anew on
every download, so comparing texts would update on every run.

The metadata is read once, by the plan: the stored plan carries the document and its SHA-256
(SamlProviderPlan), and what follows it (the engine's re-check of a confirmed plan, apply, a
worker taking apply over after a crash, verify) uses that document. A URL is fetched once per
plan, and apply registers the document the admin confirmed, even if the IdP serves another since (a
certificate rolled over): as a saved Terraform plan, the plan's inputs are what runs; a new
document is taken by planning again (retry or run the step again).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, ClassVar

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from provisioning.audit import audited_call
from provisioning.aws.iam import (
    SAML_PROVIDER_NAME,
    checked_name,
    default_name,
    run_tags,
    tagged_run,
)
from provisioning.context import StepContext
from provisioning.errors import NotFound, PermanentError, ProvisioningError
from provisioning.messages import Message
from provisioning.saml import (
    MAX_METADATA_BYTES,
    IdpMetadata,
    check_metadata_url,
    fetch_metadata_url,
    metadata_diff,
    metadata_summary,
    parse_idp_metadata,
    without_byte_order_mark,
)
from provisioning.steps.base import Change, Finding, Plan, Step, StepOutputs, register

# The IdP steps whose outputs carry the metadata; any other earlier step may too.
IDP_STEPS = ("entra_app", "okta_app")
METADATA_OUTPUT = "metadata_xml"
RESOURCE_TYPE = "saml_provider"
# What plan() found in IAM, for the apply() that follows it at once (StepContext.read_by_plan).
SURVEYED = "surveyed_providers"
# The provider's ARN as apply created or found it, for the verify() right after: verify reads the
# provider itself by it instead of listing every provider again (StepContext.read_by_apply).
APPLIED_ARN = "provider_arn"
# The metadata apply registered, for the verify() right after: what IAM must hold.
REGISTERED = "registered_metadata"
NAME_RULE = _("1 to 128 letters, digits, or the characters . _ -")


def _validation_error(error: ProvisioningError) -> forms.ValidationError:
    return forms.ValidationError(f"{error.message} {error.hint}".strip())


class SamlProviderForm(forms.Form):
    metadata_xml = forms.CharField(
        label=_("IdP metadata (XML)"),
        required=False,
        max_length=MAX_METADATA_BYTES,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
        help_text=_(
            "Paste the Federation Metadata XML (Entra) or the IdP metadata (Okta) of your app."
        ),
    )
    metadata_file = forms.FileField(
        label=_("or upload the metadata file"),
        required=False,
        help_text=_("The .xml file the IdP lets you download; it is read into the box above."),
    )
    metadata_url = forms.URLField(
        label=_("or the metadata URL"),
        required=False,
        assume_scheme="https",
        help_text=_(
            "Live mode only: an https URL of the IdP, such as Entra's App Federation Metadata Url."
        ),
    )
    provider_name = forms.CharField(
        label=_("Identity provider name in IAM"),
        required=False,
        max_length=128,
        help_text=_("Leave empty for ConnectSSO-<instance alias>."),
    )

    def clean_metadata_xml(self) -> str:
        document = self.cleaned_data.get("metadata_xml", "")
        if document:
            try:
                parse_idp_metadata(document)
            except PermanentError as error:
                raise _validation_error(error) from error
        return document

    def clean_metadata_file(self) -> str:
        """The uploaded file as text, checked like a paste; the answer keeps the text only."""
        upload = self.cleaned_data.get("metadata_file")
        if not upload:
            return ""
        if upload.size > MAX_METADATA_BYTES:
            raise forms.ValidationError(
                _("The file is %(size)s bytes; IdP metadata is a few KB. Choose the metadata file.")
                % {"size": f"{upload.size:,}"}
            )
        raw = without_byte_order_mark(upload.read(MAX_METADATA_BYTES + 1))
        try:
            document = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise forms.ValidationError(
                _("This file is not text (UTF-8 XML). Choose the metadata .xml file.")
            ) from None
        try:
            parse_idp_metadata(document)
        except PermanentError as error:
            raise _validation_error(error) from error
        return document.strip()

    def clean_metadata_url(self) -> str:
        url = self.cleaned_data.get("metadata_url", "")
        if not url:
            return url
        if settings.WIZARD_MODE == "sandbox":
            raise forms.ValidationError(
                _("In sandbox mode the wizard fetches nothing from a typed URL: paste the XML.")
            )
        try:
            check_metadata_url(url)
        except PermanentError as error:
            raise _validation_error(error) from error
        return url

    def clean_provider_name(self) -> str:
        name = self.cleaned_data.get("provider_name", "").strip()
        if name and not SAML_PROVIDER_NAME.fullmatch(name):
            raise forms.ValidationError(_("Use %(rule)s.") % {"rule": NAME_RULE})
        return name

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        uploaded = cleaned.pop("metadata_file", "")
        if uploaded and cleaned.get("metadata_xml") and uploaded != cleaned["metadata_xml"]:
            self.add_error(
                "metadata_file", _("Paste the metadata or upload it as a file, not both.")
            )
        elif uploaded:
            cleaned["metadata_xml"] = uploaded
        if not self.errors and not cleaned.get("metadata_xml") and not cleaned.get("metadata_url"):
            raise forms.ValidationError(
                _("Paste the metadata XML, upload its file, or give its URL.")
            )
        return cleaned


@dataclass(frozen=True)
class ExistingProvider:
    arn: str
    metadata: IdpMetadata | None  # None: IAM holds a document the wizard can't read
    tags: list[dict[str, str]]


def metadata_for(ctx: StepContext) -> IdpMetadata | None:
    """The IdP metadata this run registers, parsed and checked; None when none was given yet."""
    candidates = [*IDP_STEPS, *(key for key in ctx.outputs if key not in IDP_STEPS)]
    for key in candidates:
        document = ctx.outputs.get(key, {}).get(METADATA_OUTPUT)
        if document:
            return parse_idp_metadata(document)
    if ctx.inputs.get("metadata_xml"):
        return parse_idp_metadata(ctx.inputs["metadata_xml"])
    url = str(ctx.inputs.get("metadata_url", "")).strip()
    if not url:
        return None
    if ctx.mode != "live":
        raise PermanentError(
            Message(
                gettext_noop(
                    "In sandbox mode the wizard fetches nothing from a URL an admin typed."
                )
            ),
            code="saml_metadata_url_in_sandbox",
            hint=Message(
                gettext_noop(
                    "Paste the metadata XML instead; in a full setup the IdP step provides it."
                )
            ),
        )
    document = audited_call(
        ctx.audit,
        cloud="idp",
        service="saml_metadata",
        operation="GetMetadata",
        request={"url": url},
        call=lambda: fetch_metadata_url(url),
        summarize=lambda body: {"bytes": len(body)},
    )
    return parse_idp_metadata(document)


def document_sha256(document: str) -> str:
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


@dataclass
class SamlProviderPlan(Plan):
    """A plan that carries the metadata document it read, for apply (and for the engine's
    re-check of the plan once confirmed): its changes show the document's facts (metadata_summary);
    the run page leaves the document out (Step.plan_keys_not_shown)."""

    metadata_document: str = ""
    metadata_sha256: str = ""


# The stored plan's keys for them.
PLANNED_DOCUMENT = "metadata_document"
PLANNED_SHA256 = "metadata_sha256"


def planned_metadata(ctx: StepContext) -> IdpMetadata | None:
    """The metadata the step's stored plan carries, parsed and checked; None when it carries
    none (a step planning afresh, or a plan stored before plans carried it)."""
    document = str(ctx.plan.get(PLANNED_DOCUMENT) or "")
    if not document:
        return None
    if document_sha256(document) != ctx.plan.get(PLANNED_SHA256):
        # The stored plan's document is not the one the plan read (the plan row was edited, or
        # masking a secret-looking text changed it): registering it would not be what was shown.
        raise PermanentError(
            Message(gettext_noop("The metadata kept with the plan is not the one the plan read.")),
            code="saml_metadata_plan_altered",
            hint=Message(gettext_noop("Retry the step to read the metadata and plan again.")),
        )
    return parse_idp_metadata(document)


def wanted_metadata(ctx: StepContext) -> IdpMetadata | None:
    """The metadata this run registers: the one its plan read and carries, else read now
    (metadata_for: the plan reads it so)."""
    return planned_metadata(ctx) or metadata_for(ctx)


def provider_name(ctx: StepContext) -> str:
    name = str(ctx.inputs.get("provider_name") or "").strip() or default_name(ctx, 128)
    return checked_name(name, SAML_PROVIDER_NAME, "SAML identity provider", str(NAME_RULE))


def find_provider(iam: Any, name: str) -> ExistingProvider | None:
    """The IAM SAML provider called `name`, with the metadata it holds."""
    suffix = f":saml-provider/{name}"
    listed = iam.list_saml_providers().get("SAMLProviderList", [])
    arn = next((p["Arn"] for p in listed if p["Arn"].endswith(suffix)), None)
    if arn is None:
        return None
    return read_provider(iam, arn)


def read_provider(iam: Any, arn: str) -> ExistingProvider | None:
    """The IAM SAML provider at `arn`, with the metadata it holds; None when IAM has none there."""
    try:
        got = iam.get_saml_provider(SAMLProviderArn=arn)
    except NotFound:
        return None
    try:
        metadata = parse_idp_metadata(got.get("SAMLMetadataDocument", ""), check_dates=False)
    except PermanentError:
        metadata = None
    return ExistingProvider(arn=arn, metadata=metadata, tags=list(got.get("Tags") or []))


def needs_update(existing: ExistingProvider, wanted: IdpMetadata) -> bool:
    return (
        existing.metadata is None
        or existing.metadata.entity_id != wanted.entity_id
        or existing.metadata.fingerprints != wanted.fingerprints
    )


@dataclass(frozen=True)
class ProviderReading:
    """What plan, apply and verify read: the provider's name in IAM, the metadata this run
    registers (None: none given) and the provider IAM holds under that name (None: none)."""

    name: str
    wanted: IdpMetadata | None
    existing: ExistingProvider | None

    @property
    def holds_wanted(self) -> bool:
        """IAM's provider already holds the facts of the wanted metadata."""
        return (
            self.existing is not None
            and self.wanted is not None
            and not needs_update(self.existing, self.wanted)
        )


def survey(ctx: StepContext, wanted: IdpMetadata | None, arn: str = "") -> ProviderReading:
    """The run's provider name and what IAM holds under it, beside the metadata `wanted`
    (metadata_for, read first: plan and apply stop before any IAM call without it). `arn`: the
    provider's, as apply created or found it a moment ago under that name; then the provider is
    read by it, not looked for among all of IAM's."""
    name = provider_name(ctx)
    iam = ctx.aws("iam")
    existing = read_provider(iam, arn) if arn else find_provider(iam, name)
    return ProviderReading(name=name, wanted=wanted, existing=existing)


def _diff(existing: ExistingProvider, wanted: IdpMetadata) -> str:
    return metadata_diff(existing.metadata or None, wanted)


@dataclass
class SamlProviderOutputs(StepOutputs):
    """The IAM identity provider the run registered or adopted."""

    step_key: ClassVar[str] = "saml_provider"

    provider_arn: str = ""
    provider_name: str = ""
    entity_id: str = ""
    certificate_fingerprint: str = ""
    certificate_not_after: str = ""


@register
class SamlProviderStep(Step):
    key = "saml_provider"
    title = _("IAM identity provider")
    description = _("Registers your IdP's SAML metadata in IAM so AWS trusts its sign-ins.")
    form_class = SamlProviderForm
    # Its metadata usually comes from the IdP step's outputs, not from the form: metadata_for()
    # says when none was given.
    inputs_checked_by_form = False
    plan_keys_not_shown = frozenset({PLANNED_DOCUMENT})

    def plan(self, ctx: StepContext) -> Plan:
        # The re-check of a confirmed plan keeps the document the admin confirmed (ctx.plan);
        # a plan made afresh reads it.
        metadata = wanted_metadata(ctx)
        if metadata is None:
            return Plan(
                needs_input=True,
                warnings=[str(_("No earlier step provided the IdP's metadata: paste it here."))],
            )
        reading = survey(ctx, metadata)
        ctx.read_by_plan[SURVEYED] = reading
        name, existing = reading.name, reading.existing
        details = metadata_summary(metadata)
        if existing is None:
            change = Change("create", RESOURCE_TYPE, name, details)
        elif not reading.holds_wanted:
            change = Change(
                "update",
                RESOURCE_TYPE,
                name,
                {**details, "provider_arn": existing.arn},
                diff=_diff(existing, metadata),
            )
        else:
            change = Change(
                "nothing", RESOURCE_TYPE, name, {**details, "provider_arn": existing.arn}
            )
        return SamlProviderPlan(
            changes=[change],
            warnings=list(metadata.warnings),
            metadata_document=metadata.document,
            metadata_sha256=document_sha256(metadata.document),
        )

    def apply(self, ctx: StepContext) -> SamlProviderOutputs:
        metadata = wanted_metadata(ctx)
        if metadata is None:
            raise PermanentError(
                Message(gettext_noop("No IdP metadata was given.")),
                code="saml_metadata_missing",
                hint=Message(gettext_noop("Paste the IdP's metadata into this step's form.")),
            )
        # The plan's survey, made a moment ago for the same metadata, when apply follows it at once.
        reading = ctx.read_by_plan.pop(SURVEYED, None) or survey(ctx, metadata)
        name, existing = reading.name, reading.existing
        iam = ctx.aws("iam")
        if existing is None:
            # Recorded before the call: a worker killed right after IAM created the provider
            # still leaves rollback a note of it (IAM's provider tags are not read back by every
            # IAM implementation, so they can't be the only trace).
            ctx.record_created(RESOURCE_TYPE, name)
            arn = iam.create_saml_provider(
                Name=name, SAMLMetadataDocument=metadata.document, Tags=run_tags(ctx)
            )["SAMLProviderArn"]
        else:
            arn = existing.arn
            if tagged_run(existing.tags) == str(ctx.run_id):
                ctx.record_created(RESOURCE_TYPE, name)
            if not reading.holds_wanted:
                iam.update_saml_provider(
                    SAMLProviderArn=arn, SAMLMetadataDocument=metadata.document
                )
        ctx.read_by_apply[APPLIED_ARN] = arn
        ctx.read_by_apply[REGISTERED] = metadata
        certificate = metadata.certificate
        return SamlProviderOutputs(
            provider_arn=arn,
            provider_name=name,
            entity_id=metadata.entity_id,
            certificate_fingerprint=certificate.fingerprint_sha256,
            certificate_not_after=certificate.not_after.isoformat(),
        )

    def verify(self, ctx: StepContext) -> list[Finding]:
        # Still read from IAM: what the provider holds now, beside what apply sent.
        wanted = ctx.read_by_apply.get(REGISTERED) or wanted_metadata(ctx)
        reading = survey(ctx, wanted, arn=ctx.read_by_apply.get(APPLIED_ARN, ""))
        name, existing = reading.name, reading.existing
        if existing is None:
            return [
                Finding(
                    Message(gettext_noop("The IAM identity provider exists")),
                    ok=False,
                    detail=Message(
                        gettext_noop("IAM has no SAML provider named %(name)s."), {"name": name}
                    ),
                    fix=Message(gettext_noop("Retry the step to create it.")),
                )
            ]
        holds = reading.holds_wanted
        return [
            Finding(
                Message(gettext_noop("The IAM identity provider exists")),
                ok=True,
                detail=existing.arn,
            ),
            Finding(
                Message(gettext_noop("IAM holds the IdP's signing certificate")),
                ok=holds,
                detail=""
                if holds
                else Message(
                    gettext_noop(
                        "The provider's metadata has another entityID or signing certificate."
                    )
                ),
                fix=""
                if holds
                else Message(gettext_noop("Retry the step to update the provider's metadata.")),
            ),
        ]

    def rollback(self, ctx: StepContext) -> None:
        iam = ctx.aws("iam")
        for entry in ctx.created_of(RESOURCE_TYPE):
            existing = find_provider(iam, entry.identifier)
            if existing is None:
                continue
            owner = tagged_run(existing.tags)
            if owner and owner != str(ctx.run_id):
                # Another run made this one after ours was removed: not ours to delete.
                continue
            iam.delete_saml_provider(SAMLProviderArn=existing.arn)
