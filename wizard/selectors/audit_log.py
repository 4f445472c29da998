"""Reads the audit log for its page: filtered (provisioning/audit_log.py), newest first, one keyset
page at a time."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import F, QuerySet
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan

from provisioning.audit_log import audit_events_filtered
from provisioning.models import AuditEvent

# Rows per page of the audit log page; a screenful of a busy run.
AUDIT_PAGE_SIZE = 50
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


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
