"""Reads the audit log: filtered, newest first, one keyset page at a time or all rows for export."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import F, QuerySet
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan
from django.utils import timezone, translation

from provisioning.messages import render
from provisioning.models import AuditEvent

# Rows per page of the audit log page; a screenful of a busy run.
AUDIT_PAGE_SIZE = 50
# Rows fetched per database round trip while streaming an export.
EXPORT_CHUNK_SIZE = 500
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)

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


class BadCursor(ValueError):
    """A page cursor from the URL that doesn't parse (edited or truncated link)."""


@dataclass(frozen=True)
class Cursor:
    """A position in the log: the (at, id) of a row. Rows sort by (at, id), newest first."""

    at: dt.datetime
    id: int

    def __str__(self) -> str:
        return f"{(self.at - _EPOCH) // _MICROSECOND}-{self.id}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        try:
            micros, row_id = text.split("-", 1)
            return cls(at=_EPOCH + int(micros) * _MICROSECOND, id=int(row_id))
        except (ValueError, OverflowError):
            raise BadCursor(text) from None

    @classmethod
    def of(cls, event: AuditEvent) -> Cursor:
        return cls(at=event.at, id=event.pk)


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditEvent]
    # Cursors for the "Older" and "Newer" links; None when there is nothing that way.
    older: Cursor | None
    newer: Cursor | None


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


def _position() -> Tuple:
    """A row's place in the log, compared as one value: (at, id)."""
    return Tuple(F("at"), F("id"))


def audit_page_queryset(
    *,
    filters: dict[str, Any],
    older_than: Cursor | None = None,
    newer_than: Cursor | None = None,
) -> QuerySet[AuditEvent]:
    """The rows of one page and beyond, in page order. The keyset is a row comparison,
    (at, id) < (cursor at, cursor id), which PostgreSQL answers as a range of the (at, id)
    index: a page 950,000 rows deep costs what the first does."""
    events = audit_events_filtered(**filters)
    if newer_than is not None:
        after = TupleGreaterThan(_position(), (newer_than.at, newer_than.id))
        return events.filter(after).order_by("at", "id")
    if older_than is not None:
        events = events.filter(TupleLessThan(_position(), (older_than.at, older_than.id)))
    return events.order_by("-at", "-id")


def audit_events_page(
    *,
    filters: dict[str, Any],
    older_than: Cursor | None = None,
    newer_than: Cursor | None = None,
    page_size: int = AUDIT_PAGE_SIZE,
) -> AuditPage:
    """One page by keyset on (at, id): no OFFSET, so a page stays right while rows are added."""
    rows = list(
        audit_page_queryset(filters=filters, older_than=older_than, newer_than=newer_than)[
            : page_size + 1
        ]
    )
    if newer_than is not None:
        if len(rows) <= page_size:
            # Back at the top: show the full newest page rather than a short one.
            return audit_events_page(filters=filters, page_size=page_size)
        rows = rows[:page_size][::-1]
        has_more_older = has_more_newer = True
    else:
        has_more_older = len(rows) > page_size
        rows = rows[:page_size]
        has_more_newer = older_than is not None
    if not rows:
        return AuditPage(rows=[], older=None, newer=None)
    return AuditPage(
        rows=rows,
        older=Cursor.of(rows[-1]) if has_more_older else None,
        newer=Cursor.of(rows[0]) if has_more_newer else None,
    )


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
