"""The audit log's filters and its rows as an export carries them: what the page filters by, and
what a worker writes to an export file."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from provisioning.messages import render
from provisioning.models import AuditEvent, AuditOutcome, Cloud, SetupRun

# Rows fetched per database round trip while streaming an export.
EXPORT_CHUNK_SIZE = 500
# <input type="date"> sends and shows ISO dates whatever the page language.
ISO_DATE = "%Y-%m-%d"

# The columns an export carries. The request/response/old/new values were redacted before they
# were written (provisioning/audit.py); actor ids are left out, the label says who.
EXPORT_COLUMNS = [
    "id",
    "at",
    "kind",
    "actor_label",
    "run_id",
    "step_key",
    "cloud",
    "service",
    "operation",
    "call_id",
    "outcome",
    "error_code",
    "duration_ms",
    "message",
    "request",
    "response",
    "old_value",
    "new_value",
]


# Filter fields of the page's form, mapped to audit_events_filtered's keyword arguments.
FILTER_FIELDS = {
    "run": "run_id",
    "user": "user",
    "cloud": "cloud",
    "operation": "operation",
    "outcome": "outcome",
    "date_from": "date_from",
    "date_to": "date_to",
}


def audit_filters(form: Any) -> dict[str, Any] | None:
    """The filters of a bound filter form; None when one is invalid, so a mistyped filter shows
    an error instead of silently showing (or exporting) every row."""
    if not form.is_valid():
        return None
    return {
        selector_name: form.cleaned_data[field]
        for field, selector_name in FILTER_FIELDS.items()
        if form.cleaned_data.get(field)
    }


class AuditLogFilterForm(forms.Form):
    """The audit log's filters; every field optional, so an empty form shows everything."""

    run = forms.CharField(
        label=_("Run"),
        required=False,
        max_length=36,
        help_text=_("The run ID, or its first 8 characters as the table shows them."),
    )
    user = forms.CharField(label=_("User"), required=False, max_length=200)
    cloud = forms.ChoiceField(
        label=_("Cloud"), required=False, choices=[("", _("Any")), *Cloud.choices]
    )
    operation = forms.CharField(label=_("Operation"), required=False, max_length=128)
    outcome = forms.ChoiceField(
        label=_("Outcome"), required=False, choices=[("", _("Any")), *AuditOutcome.choices]
    )
    date_from = forms.DateField(
        label=_("From"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format=ISO_DATE),
    )
    date_to = forms.DateField(
        label=_("To"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format=ISO_DATE),
    )

    def clean_run(self) -> uuid.UUID | None:
        """A whole run ID, or the short one the table shows: its first characters, at least 8."""
        text = self.cleaned_data["run"].strip().lower()
        if not text:
            return None
        try:
            return uuid.UUID(text)
        except ValueError:
            pass
        digits = text.replace("-", "")
        if not re.fullmatch(r"[0-9a-f]{8,31}", digits):
            raise ValidationError(
                _("Type the run ID, or at least its first 8 characters (0-9 and a-f).")
            )
        # In the hyphenated form, so it matches PostgreSQL's text of a uuid as well (Django
        # drops the hyphens itself on databases that store a UUID as 32 characters).
        prefix = "-".join(
            part
            for part in (digits[:8], digits[8:12], digits[12:16], digits[16:20], digits[20:])
            if part
        )
        matches = list(
            SetupRun.objects.filter(pk__startswith=prefix).values_list("pk", flat=True)[:2]
        )
        if not matches:
            raise ValidationError(_("No run has an ID that starts with “%(id)s”.") % {"id": prefix})
        if len(matches) > 1:
            raise ValidationError(
                _("More than one run has an ID that starts with “%(id)s”: type more of it.")
                % {"id": prefix}
            )
        return matches[0]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if (
            cleaned.get("date_from")
            and cleaned.get("date_to")
            and cleaned["date_from"] > cleaned["date_to"]
        ):
            self.add_error("date_to", _("The end date is before the start date."))
        return cleaned


def audit_events_filtered(
    *,
    run_id: uuid.UUID | None = None,
    user: str = "",
    cloud: str = "",
    operation: str = "",
    outcome: str = "",
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
) -> QuerySet[AuditEvent]:
    """The rows matching the filters; dates are whole days in the site's time zone, inclusive.

    Each filter has an index that also keeps the rows in (at, id) order (migration 0007), so a
    page reads only its own rows however many the log holds. The operation is matched anywhere in
    the name, case-insensitively, through a trigram index on PostgreSQL."""
    events = AuditEvent.objects.all()
    if run_id:
        events = events.filter(run_id=run_id)
    if user:
        # The label is the username the row was written with (provisioning/audit.py), so it
        # still finds the rows of someone who has since been removed.
        events = events.filter(actor_label=user)
    if cloud:
        events = events.filter(cloud=cloud)
    if operation:
        events = events.filter(operation__icontains=operation)
    if outcome:
        events = events.filter(outcome=outcome)
    if date_from:
        events = events.filter(at__gte=_start_of_day(date_from))
    if date_to:
        events = events.filter(at__lt=_start_of_day(date_to + dt.timedelta(days=1)))
    return events


def audit_events_for_export(*, filters: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every matching row as a dict of EXPORT_COLUMNS, newest first, read in chunks. Messages
    are rendered in English whoever exports: an export is a record compared and searched across
    admins and tools, so the same row reads the same in every export."""
    events = (
        audit_events_filtered(**filters)
        .order_by("-at", "-id")
        .values(*EXPORT_COLUMNS, "translatable_message")
    )
    with translation.override("en"):
        for event in events.iterator(chunk_size=EXPORT_CHUNK_SIZE):
            stored = event.pop("translatable_message")
            if stored:
                event["message"] = str(render(stored))
            yield event


def _start_of_day(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))
