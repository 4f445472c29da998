"""The form of "Inspect a sign-in": what the browser posted (pasted or uploaded), and optionally
the AWS connection, instance and region to check it against, or the IdP's metadata."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from provisioning.models import Cloud, Connection
from provisioning.saml import MAX_METADATA_BYTES
from provisioning.signin_checks.posted_sign_in import (
    MAX_HAR_BYTES,
    UnreadableSignIn,
    assertion_facts,
    read_posted_sign_in,
)
from wizard.forms import ConnectionChoiceField

# Connect instance IDs are UUIDs; regions look like ap-northeast-1 or us-gov-west-1.
INSTANCE_ID_RULE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
REGION_RULE = re.compile(r"[a-z]{2}(-gov)?-[a-z]+-\d")


class SignInInspectionForm(forms.Form):
    pasted = forms.CharField(
        label=_("What the browser posted"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
        help_text=_(
            "The base64 SAMLResponse, the decoded XML, or the whole form body "
            "(SAMLResponse=…&RelayState=…)."
        ),
    )
    upload = forms.FileField(
        label=_("Or upload a file"),
        required=False,
        help_text=_(
            "A HAR file saved from the browser's developer tools (Network tab, “Preserve log”), "
            "or any of the forms above. At most 16 MB."
        ),
    )
    connection = ConnectionChoiceField(
        label=_("AWS connection to read IAM and Connect with"),
        queryset=Connection.objects.filter(cloud=Cloud.AWS),
        required=False,
        empty_label=_("None: check against the IdP metadata below"),
    )
    instance_id = forms.CharField(
        label=_("Amazon Connect instance ID"),
        required=False,
        help_text=_("Leave empty to use the instance in the relay state."),
    )
    region = forms.CharField(label=_("AWS Region"), required=False)
    metadata = forms.CharField(
        label=_("IdP metadata (when no connection is chosen)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text=_("The federation metadata XML the IAM identity provider should hold."),
    )

    def clean_instance_id(self) -> str:
        value = self.cleaned_data["instance_id"].strip().lower()
        if value and not INSTANCE_ID_RULE.fullmatch(value):
            raise forms.ValidationError(
                _("An instance ID looks like 11111111-2222-4333-8444-555555555555.")
            )
        return value

    def clean_region(self) -> str:
        value = self.cleaned_data["region"].strip()
        if value and not REGION_RULE.fullmatch(value):
            raise forms.ValidationError(_("A region looks like ap-northeast-1."))
        return value

    def clean_metadata(self) -> str:
        value = self.cleaned_data["metadata"].strip()
        if len(value.encode()) > MAX_METADATA_BYTES:
            raise forms.ValidationError(_("The metadata is too large to be IdP metadata."))
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        pasted, upload = cleaned.get("pasted", ""), cleaned.get("upload")
        if bool(pasted.strip()) == bool(upload):
            raise forms.ValidationError(_("Paste what the browser posted, or upload a file: one."))
        if upload is not None and upload.size > MAX_HAR_BYTES:
            self.add_error("upload", _("The file is larger than 16 MB."))
            return cleaned
        raw = upload.read() if upload is not None else pasted.encode()
        try:
            cleaned["posted"] = read_posted_sign_in(raw, extra_signin_urls=self.sandbox_signin_urls)
            assertion_facts(cleaned["posted"].xml)
        except UnreadableSignIn as error:
            raise forms.ValidationError(
                _("No SAML response could be read from it: %(reason)s"),
                params={"reason": str(error)},
            ) from error
        return cleaned

    def __init__(self, *args: Any, sandbox_signin_urls: tuple[str, ...] = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.sandbox_signin_urls = sandbox_signin_urls
