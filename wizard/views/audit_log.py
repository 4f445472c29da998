"""The audit log page: filter, page by keyset, and export the filtered rows as CSV or JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from wizard.forms import AuditLogFilterForm
from wizard.roles import VIEWER, role_required
from wizard.selectors.audit_log import (
    EXPORT_COLUMNS,
    AuditPage,
    BadCursor,
    Cursor,
    audit_events_for_export,
    audit_events_page,
)
from wizard.views.csv_export import csv_download

# Filter fields of the form, mapped to the selector's keyword arguments.
_FILTERS = {
    "run": "run_id",
    "user": "user",
    "cloud": "cloud",
    "operation": "operation",
    "outcome": "outcome",
    "date_from": "date_from",
    "date_to": "date_to",
}


def _filters(request: HttpRequest) -> tuple[AuditLogFilterForm, dict[str, Any] | None]:
    """The filter form from the query string, and the selector's filters; None when a filter is
    invalid, so a mistyped filter shows an error instead of silently showing every row."""
    form = AuditLogFilterForm(request.GET)
    if not form.is_valid():
        return form, None
    return form, {
        selector_name: form.cleaned_data[field]
        for field, selector_name in _FILTERS.items()
        if form.cleaned_data.get(field)
    }


def _cursor(request: HttpRequest, name: str) -> Cursor | None:
    text = request.GET.get(name, "")
    if not text:
        return None
    try:
        return Cursor.parse(text)
    except BadCursor:
        return None


@role_required(VIEWER)
@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    form, filters = _filters(request)
    if filters is None:
        page = AuditPage(rows=[], older=None, newer=None)
    else:
        page = audit_events_page(
            filters=filters,
            older_than=_cursor(request, "older"),
            newer_than=_cursor(request, "newer"),
        )
    return render(
        request, "audit_log.html", {"form": form, "page": page, "is_filtered": bool(filters)}
    )


def _json_chunks(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    yield "["
    for index, row in enumerate(rows):
        yield (
            ("," if index else "")
            + "\n"
            + json.dumps(row, cls=DjangoJSONEncoder, ensure_ascii=False)
        )
    yield "\n]\n"


def _bad_filters(form: AuditLogFilterForm) -> HttpResponse:
    return HttpResponseBadRequest(form.errors.as_text(), content_type="text/plain; charset=utf-8")


def _export_name(extension: str) -> str:
    return f"audit-log-{timezone.now():%Y%m%d-%H%M%S}.{extension}"


@role_required(VIEWER)
@require_GET
def audit_log_csv(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    form, filters = _filters(request)
    if filters is None:
        return _bad_filters(form)
    return csv_download(
        EXPORT_COLUMNS, audit_events_for_export(filters=filters), _export_name("csv")
    )


@role_required(VIEWER)
@require_GET
def audit_log_json(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    form, filters = _filters(request)
    if filters is None:
        return _bad_filters(form)
    response = StreamingHttpResponse(
        _json_chunks(audit_events_for_export(filters=filters)), content_type="application/json"
    )
    response["Content-Disposition"] = f'attachment; filename="{_export_name("json")}"'
    return response
