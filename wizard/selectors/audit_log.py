"""Reads the audit log: filtered, newest first, one keyset page at a time or all rows for export."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from wizard.models import AuditEvent

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
    """The rows matching the filters; dates are whole days in the site's time zone, inclusive."""
    events = AuditEvent.objects.all()
    if run_id:
        events = events.filter(run_id=run_id)
    if user:
        events = events.filter(Q(actor_label__iexact=user) | Q(actor__username__iexact=user))
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


def audit_events_page(
    *,
    filters: dict[str, Any],
    older_than: Cursor | None = None,
    newer_than: Cursor | None = None,
    page_size: int = AUDIT_PAGE_SIZE,
) -> AuditPage:
    """One page by keyset on (at, id): no OFFSET, so a page stays right while rows are added."""
    events = audit_events_filtered(**filters)
    if newer_than is not None:
        after = Q(at__gt=newer_than.at) | Q(at=newer_than.at, id__gt=newer_than.id)
        rows = list(events.filter(after).order_by("at", "id")[: page_size + 1])
        if len(rows) <= page_size:
            # Back at the top: show the full newest page rather than a short one.
            return audit_events_page(filters=filters, page_size=page_size)
        rows = rows[:page_size][::-1]
        has_more_older = has_more_newer = True
    else:
        if older_than is not None:
            events = events.filter(
                Q(at__lt=older_than.at) | Q(at=older_than.at, id__lt=older_than.id)
            )
        rows = list(events.order_by("-at", "-id")[: page_size + 1])
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
    """Every matching row as a dict of EXPORT_COLUMNS, newest first, read in chunks."""
    events = audit_events_filtered(**filters).order_by("-at", "-id").values(*EXPORT_COLUMNS)
    yield from events.iterator(chunk_size=EXPORT_CHUNK_SIZE)


def _start_of_day(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))
