"""The form of "Check a federation": the AWS connection, region and instance, the IdP connection,
and optionally the IdP app."""

from __future__ import annotations

import re

from django import forms
from django.utils.translation import gettext_lazy as _

from provisioning.idp_app_ids import APP_ID_REFUSED, APP_ID_RULE
from provisioning.models import Cloud, Connection
from wizard.forms import ConnectionChoiceField
from wizard.inspection_forms import INSTANCE_ID_RULE, REGION_RULE

# Connect's alias rule (CreateInstance InstanceAlias: ^(?!d-)([\da-zA-Z]+)([-]*[\da-zA-Z])*$,
# 1-45 characters).
INSTANCE_ALIAS_RULE = re.compile(r"(?!d-)[\da-zA-Z]+(-*[\da-zA-Z])*")
INSTANCE_ALIAS_MAX = 45


class FederationCheckForm(forms.Form):
    aws_connection = ConnectionChoiceField(
        label=_("AWS connection"), queryset=Connection.objects.filter(cloud=Cloud.AWS)
    )
    region = forms.CharField(label=_("AWS Region"), max_length=32)
    instance = forms.CharField(
        label=_("Amazon Connect instance"),
        max_length=64,
        help_text=_("Its ID or its alias."),
    )
    idp_connection = ConnectionChoiceField(
        label=_("Identity provider connection"),
        queryset=Connection.objects.filter(cloud__in=[Cloud.ENTRA, Cloud.OKTA]),
    )
    app_id = forms.CharField(
        label=_("IdP app (optional)"),
        required=False,
        max_length=64,
        help_text=_(
            "The Entra Application (client) ID or the Okta app ID. Leave empty to find the apps "
            "whose relay state or role claim points at the instance."
        ),
    )

    def clean_region(self) -> str:
        value = self.cleaned_data["region"].strip()
        if not REGION_RULE.fullmatch(value):
            raise forms.ValidationError(_("A region looks like ap-northeast-1."))
        return value

    def clean_instance(self) -> str:
        value = self.cleaned_data["instance"].strip()
        if INSTANCE_ID_RULE.fullmatch(value.lower()):
            return value.lower()
        if len(value) <= INSTANCE_ALIAS_MAX and INSTANCE_ALIAS_RULE.fullmatch(value):
            return value
        raise forms.ValidationError(
            _(
                "Enter the instance ID (11111111-2222-4333-8444-555555555555) or its alias "
                "(letters, digits and hyphens)."
            )
        )

    def clean_app_id(self) -> str:
        value = self.cleaned_data["app_id"].strip()
        if value and not APP_ID_RULE.fullmatch(value):
            raise forms.ValidationError(APP_ID_REFUSED)
        return value
