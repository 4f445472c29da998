"""The wizard's forms: a new setup, a connection per cloud and method, and a users sync."""

from __future__ import annotations

import re
import uuid
from typing import Any, cast

import boto3
import botocore.session
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from provisioning.connections.formats import unsafe_characters
from provisioning.models import Cloud, Connection, Departures
from provisioning.services.user_syncs import EVERY_HOURS_CHOICES
from wizard.selectors.runs import available_flows

IDP_CHOICES = [(Cloud.ENTRA.value, "Microsoft Entra ID"), (Cloud.OKTA.value, "Okta")]

# Most of the wizard's admins run their contact centre in Tokyo; any Connect region can be chosen.
DEFAULT_REGION = "ap-northeast-1"

# An instance ARN as the Connect console shows it: arn:aws:connect:<region>:<acct>:instance/<id>.
INSTANCE_ARN = re.compile(
    r"^arn:aws[\w-]*:connect:(?P<region>[a-z0-9-]+):\d{12}:instance/(?P<instance_id>[0-9a-f-]{36})$"
)


def connect_regions() -> list[str]:
    """The regions where Amazon Connect exists, from botocore's endpoint data (not a hand list)."""
    return boto3.session.Session().get_available_regions("connect")


def _instance_alias_rule() -> tuple[int, int, re.Pattern[str]]:
    """Connect's own rule for an instance alias, read from botocore's service model."""
    shape = botocore.session.get_session().get_service_model("connect").shape_for("DirectoryAlias")
    return shape.metadata["min"], shape.metadata["max"], re.compile(shape.metadata["pattern"])


class ConnectionChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Connection) -> str:
        if obj.is_sandbox:
            return _("%(name)s (sandbox)") % {"name": obj.name}
        return obj.name


class RunCreateForm(forms.Form):
    """What a run needs before its first step: IdP, flow, region, instance and connections."""

    INSTANCE_NEW = "new"
    INSTANCE_EXISTING = "existing"

    idp = forms.ChoiceField(label=_("Provider"), choices=IDP_CHOICES, widget=forms.RadioSelect)
    flow_key = forms.ChoiceField(
        label=_("Setup flow"),
        error_messages={
            "invalid_choice": _(
                "This flow is for the other identity provider. Choose one for the provider "
                "you picked."
            )
        },
        help_text=_(
            "The steps the wizard will take. Choose one that matches the identity provider."
        ),
    )
    region = forms.ChoiceField(label=_("AWS Region"), initial=DEFAULT_REGION)
    instance_choice = forms.ChoiceField(
        label=_("Amazon Connect instance"),
        choices=[
            (INSTANCE_NEW, _("Create a new instance")),
            (INSTANCE_EXISTING, _("Use an existing instance")),
        ],
        initial=INSTANCE_NEW,
        widget=forms.RadioSelect,
    )
    instance_alias = forms.CharField(
        label=_("Instance alias (new instance)"),
        required=False,
        help_text=_(
            "Letters, digits and hyphens; must not start with “d-”. It becomes "
            "https://<alias>.my.connect.aws and must be unique in the region."
        ),
    )
    instance_id = forms.CharField(
        label=_("Instance ID or ARN (existing instance)"),
        required=False,
        help_text=_("Shown on the instance's page in the Amazon Connect console."),
    )
    aws_connection = ConnectionChoiceField(
        label=_("AWS connection"),
        queryset=Connection.objects.filter(cloud=Cloud.AWS),
        empty_label=_("Choose a connection"),
    )
    idp_connection = ConnectionChoiceField(
        label=_("Identity provider connection"),
        error_messages={
            "invalid_choice": _(
                "This connection is to the other identity provider. Choose a connection to the "
                "provider you picked."
            )
        },
        queryset=Connection.objects.filter(cloud__in=[Cloud.ENTRA, Cloud.OKTA]).order_by(
            "cloud", "name"
        ),
        empty_label=_("Choose a connection"),
    )
    review_plans = forms.BooleanField(
        label=_("Review each plan before applying"),
        required=False,
        initial=True,
        help_text=_("The wizard stops before each change and waits for you to press Apply."),
    )
    claim_phone_numbers = forms.BooleanField(
        label=_("Claim Japanese phone numbers"),
        required=False,
        initial=False,
        help_text=_(
            "After the sign-in test, the setup asks AWS for the quotas Japanese numbers need and "
            "claims the numbers once AWS Support approves. Left unticked, that step is skipped."
        ),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The flows and connections offered follow the provider chosen (the page swaps them in
        # when the choice changes; without JavaScript, submitting shows the right ones).
        self.chosen_idp = self.idp_of(self.data if self.is_bound else self.initial)
        cast(forms.ChoiceField, self.fields["flow_key"]).choices = [
            ("", _("Choose a flow")),
            *[(flow.key, flow.title) for flow in available_flows(idp=self.chosen_idp)],
        ]
        connections = cast(forms.ModelChoiceField, self.fields["idp_connection"])
        connections.queryset = Connection.objects.filter(cloud=self.chosen_idp).order_by("name")
        cast(forms.ChoiceField, self.fields["region"]).choices = [
            (region, region) for region in connect_regions()
        ]

    @staticmethod
    def idp_of(values: Any) -> str:
        """The provider named in form values, Entra when they name none we know."""
        idp = values.get("idp", "")
        return idp if idp in dict(IDP_CHOICES) else Cloud.ENTRA.value

    @classmethod
    def asked_for(cls, query: Any) -> dict[str, Any]:
        """The answers a link asks the page to choose (a check's "Connect users from groups" for
        its instance), each kept only if the form offers it; the admin sees them all before
        submitting, and the submitted form is checked as any other."""
        idp = cls.idp_of(query)
        asked: dict[str, Any] = {}
        flow_key = query.get("flow_key", "")
        if flow_key in {flow.key for flow in available_flows(idp=idp)}:
            asked["flow_key"] = flow_key
        region = query.get("region", "")
        if region in connect_regions():
            asked["region"] = region
        try:
            asked["instance_id"] = str(uuid.UUID(query.get("instance_id", "")))
        except ValueError:
            pass
        else:
            asked["instance_choice"] = cls.INSTANCE_EXISTING
        for name, cloud in (("aws_connection", Cloud.AWS), ("idp_connection", idp)):
            value = query.get(name, "")
            if value.isdigit() and Connection.objects.filter(pk=int(value), cloud=cloud).exists():
                asked[name] = int(value)
        return asked

    def clean_instance_alias(self) -> str:
        alias = self.cleaned_data["instance_alias"].strip()
        if not alias:
            return alias
        min_length, max_length, pattern = _instance_alias_rule()
        if not min_length <= len(alias) <= max_length:
            raise forms.ValidationError(
                _("The alias must be %(min)d to %(max)d characters long."),
                params={"min": min_length, "max": max_length},
            )
        if alias.lower().startswith("d-"):
            raise forms.ValidationError(_("The alias must not start with “d-”."))
        if not pattern.match(alias):
            raise forms.ValidationError(
                _(
                    "Use only letters, digits and single hyphens, starting and ending with a "
                    "letter or digit."
                )
            )
        return alias

    def clean_instance_id(self) -> str:
        value = self.cleaned_data["instance_id"].strip()
        if not value:
            return value
        arn = INSTANCE_ARN.match(value)
        if arn:
            self._instance_arn_region = arn["region"]
            return arn["instance_id"]
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise forms.ValidationError(
                _(
                    "Paste the instance ID (like 12345678-aaaa-bbbb-cccc-1234567890ab) or the "
                    "instance ARN from the Amazon Connect console."
                )
            ) from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        idp = cleaned.get("idp")
        flow_key = cleaned.get("flow_key")
        if idp and flow_key and flow_key not in {f.key for f in available_flows(idp=idp)}:
            self.add_error(
                "flow_key",
                _(
                    "This flow is for the other identity provider. Choose one for the provider "
                    "you picked."
                ),
            )
        idp_connection = cleaned.get("idp_connection")
        if idp and idp_connection and idp_connection.cloud != idp:
            self.add_error(
                "idp_connection",
                _(
                    "This connection is for %(cloud)s. Choose a connection to the identity "
                    "provider you picked."
                )
                % {"cloud": idp_connection.get_cloud_display()},
            )
        choice = cleaned.get("instance_choice")
        if choice == self.INSTANCE_NEW:
            cleaned["instance_id"] = ""
            if not cleaned.get("instance_alias") and "instance_alias" not in self.errors:
                self.add_error("instance_alias", _("Type an alias for the new instance."))
        elif choice == self.INSTANCE_EXISTING:
            cleaned["instance_alias"] = ""
            if not cleaned.get("instance_id") and "instance_id" not in self.errors:
                self.add_error("instance_id", _("Paste the ID of the instance to use."))
            arn_region = getattr(self, "_instance_arn_region", None)
            if arn_region and cleaned.get("region") and arn_region != cleaned["region"]:
                self.add_error(
                    "instance_id",
                    _("This instance is in %(arn_region)s, but you chose %(region)s.")
                    % {"arn_region": arn_region, "region": cleaned["region"]},
                )
        return cleaned


class WriteOnlyTextarea(forms.Textarea):
    """A textarea for a secret (a PEM key): like PasswordInput(render_value=False), it never sends
    a value back to the browser, not even the one just typed into a form with a mistake."""

    def format_value(self, value: Any) -> None:
        return None


class ConnectionForm(forms.Form):
    """One connection's name, settings and secrets; built from the field list of its cloud+method.

    Secret inputs never carry a stored value back to the browser (render_value=False); when editing,
    a blank secret keeps the stored one.
    """

    TARGET_SANDBOX = "sandbox"
    TARGET_AWS = "aws"

    name = forms.CharField(label=_("Name"), max_length=100)

    def __init__(
        self,
        *args: Any,
        cloud: str,
        method: str,
        spec: dict[str, Any],
        editing: Connection | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.cloud = cloud
        self.method = method
        self.editing = editing
        if cloud == Cloud.AWS and editing is None and settings.WIZARD_MODE == "sandbox":
            # Only in sandbox mode: in live mode every connection goes to real AWS.
            self.fields["target"] = forms.ChoiceField(
                label=_("Target"),
                choices=[
                    (self.TARGET_SANDBOX, _("The sandbox")),
                    (self.TARGET_AWS, _("Real AWS")),
                ],
                initial=self.TARGET_SANDBOX,
                widget=forms.RadioSelect,
                help_text=_(
                    "The sandbox takes the access key of an IAM user made in the sandbox's IAM, "
                    "and holds it to that user's policies."
                ),
            )
        self.config_names: list[str] = []
        self.secret_names: list[str] = []
        stored_secrets = set(editing.secret_names) if editing else set()
        for field in spec["config"]:
            self.config_names.append(field["name"])
            if field.get("choices"):
                self.fields[field["name"]] = forms.ChoiceField(
                    label=field["label"],
                    choices=field["choices"],
                    initial=field["choices"][0][0],
                    help_text=field.get("help", ""),
                )
                continue
            self.fields[field["name"]] = forms.CharField(
                label=field["label"],
                required=field.get("required", True),
                help_text=field.get("help", ""),
            )
        for field in spec["secrets"]:
            self.secret_names.append(field["name"])
            is_stored = field["name"] in stored_secrets
            attrs: dict[str, Any] = {"autocomplete": "new-password"}
            if is_stored:
                attrs["placeholder"] = _("stored — leave blank to keep")
            widget: forms.Widget = (
                WriteOnlyTextarea(attrs={**attrs, "rows": 6})
                if field.get("multiline")
                else forms.PasswordInput(render_value=False, attrs=attrs)
            )
            self.fields[field["name"]] = forms.CharField(
                label=field["label"],
                required=field.get("required", True) and not is_stored,
                help_text=field.get("help", ""),
                widget=widget,
                strip=True,
            )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if unsafe_characters(name):
            raise forms.ValidationError(
                _("This holds control or invisible direction characters; type it again.")
            )
        taken = Connection.objects.filter(cloud=self.cloud, name=name)
        if self.editing:
            taken = taken.exclude(pk=self.editing.pk)
        if taken.exists():
            raise forms.ValidationError(
                _("Another connection to this cloud already has this name.")
            )
        return name

    def add_service_errors(self, error: ValidationError) -> None:
        """Show the connection service's refusal next to the fields it names."""
        if not hasattr(error, "error_dict"):
            self.add_error(None, error)
            return
        for field, errors in error.error_dict.items():
            self.add_error(field if field in self.fields else None, errors)

    @property
    def config(self) -> dict[str, str]:
        values = {name: self.cleaned_data[name] for name in self.config_names}
        return {"method": self.method, **values}

    @property
    def secrets(self) -> dict[str, str]:
        return {name: self.cleaned_data[name] for name in self.secret_names}

    @property
    def is_sandbox(self) -> bool:
        return self.cleaned_data.get("target") == self.TARGET_SANDBOX


class UserSyncForm(forms.Form):
    """How often a sync runs, and what it does with people who left the groups."""

    every_hours = forms.TypedChoiceField(
        label=_("Run every"),
        coerce=int,
        initial=24,
        choices=[],
        help_text=_("Each run re-reads the groups and applies what changed since the last one."),
    )
    departures = forms.ChoiceField(
        label=_("People who left the groups"),
        choices=Departures.choices,
        initial=Departures.REPORT,
        widget=forms.RadioSelect,
    )
    enabled = forms.BooleanField(label=_("Enabled"), required=False, initial=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["departures"].help_text = _(
            "Only users the wizard made for this setup are ever deleted. A run that would delete "
            "more than %(over)d of them, and more than %(share)d%% of them, waits for you to "
            "confirm."
        ) % {
            "over": settings.WIZARD_SYNC_CONFIRM_DELETES_OVER,
            "share": round(100 * settings.WIZARD_SYNC_CONFIRM_DELETES_SHARE),
        }
        cast(forms.TypedChoiceField, self.fields["every_hours"]).choices = [
            (hours, ngettext("%(hours)d hour", "%(hours)d hours", hours) % {"hours": hours})
            for hours in EVERY_HOURS_CHOICES
        ]
