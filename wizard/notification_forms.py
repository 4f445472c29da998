"""The Notifications page's form (where the watch's changes of state go: e-mail recipients and a
webhook) and the form of a watched federation's interval."""

from __future__ import annotations

from django import forms
from django.core.validators import validate_email
from django.utils.translation import gettext_lazy as _

from provisioning.notifications import WebhookUrlRefused, check_webhook_url
from provisioning.services.federation_watch import EVERY_HOURS_MAX, EVERY_HOURS_MIN

# One address a line or comma separated; more than this is a mailing list's job.
RECIPIENTS_MAX = 20


class NotificationsForm(forms.Form):
    email_recipients = forms.CharField(
        label=_("E-mail recipients"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_(
            "One address a line (or separated by commas). Sent through the wizard's mail settings."
        ),
    )
    webhook_url = forms.CharField(
        label=_("Webhook URL"),
        required=False,
        max_length=2000,
        widget=forms.PasswordInput(render_value=False),
        help_text=_(
            "A Slack or Microsoft Teams incoming webhook, or any URL that takes a JSON POST with a "
            "“text” field. Leave empty to keep the one stored."
        ),
    )
    remove_webhook = forms.BooleanField(label=_("Remove the stored webhook"), required=False)

    def clean_email_recipients(self) -> list[str]:
        text = self.cleaned_data["email_recipients"]
        addresses = [a.strip() for a in text.replace(",", "\n").splitlines() if a.strip()]
        for address in addresses:
            try:
                validate_email(address)
            except forms.ValidationError:
                raise forms.ValidationError(
                    _("“%(address)s” is not an e-mail address."), params={"address": address}
                ) from None
        if len(addresses) > RECIPIENTS_MAX:
            raise forms.ValidationError(
                _("At most %(max)s recipients; use a mailing list for more."),
                params={"max": RECIPIENTS_MAX},
            )
        return list(dict.fromkeys(addresses))

    def clean_webhook_url(self) -> str:
        url = self.cleaned_data["webhook_url"].strip()
        if not url:
            return ""
        try:
            return check_webhook_url(url)
        except WebhookUrlRefused as refused:
            raise forms.ValidationError(refused.reason.render()) from None

    def webhook_change(self) -> str | None:
        """The webhook to store: None keeps the stored one, "" removes it."""
        if self.cleaned_data["remove_webhook"]:
            return ""
        return self.cleaned_data["webhook_url"] or None


class WatchIntervalForm(forms.Form):
    every_hours = forms.IntegerField(
        label=_("Check every (hours)"), min_value=EVERY_HOURS_MIN, max_value=EVERY_HOURS_MAX
    )
