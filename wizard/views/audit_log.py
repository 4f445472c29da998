"""The audit log page: filter and page by keyset; exports of the filtered rows as CSV or JSON,
written by a worker and downloaded by whoever asked."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from provisioning.audit_log import FILTER_FIELDS, AuditLogFilterForm, audit_filters
from provisioning.models import AuditExport, ExportStatus
from provisioning.services import audit_exports
from wizard.middleware import wants_fragment
from wizard.roles import VIEWER, role_required
from wizard.selectors.audit_log import AuditPage, BadCursor, Cursor, audit_events_page

EXPORT_TEMPLATE = "audit_export.html"
EXPORT_FORMATS = ("csv", "json")


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
    form = AuditLogFilterForm(request.GET)
    filters = audit_filters(form)
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


@role_required(VIEWER)
@require_POST
def audit_export_new(request: HttpRequest) -> HttpResponse:
    """Ask a worker for an export of the rows the page's filters (its query string) select."""
    file_format = request.POST.get("format", "")
    query = {field: request.GET[field] for field in FILTER_FIELDS if request.GET.get(field)}
    if file_format not in EXPORT_FORMATS or audit_filters(AuditLogFilterForm(query)) is None:
        messages.error(request, _("Fix the filters before exporting."))
        return redirect(f"{reverse('audit_log')}?{request.GET.urlencode()}")
    export = audit_exports.export_request(user=request.user, file_format=file_format, query=query)
    return redirect("audit_export", export_id=export.pk)


def _own_export(request: HttpRequest, export_id: uuid.UUID) -> AuditExport | None:
    """The export, only for whoever asked for it: to anyone else it does not exist."""
    export = AuditExport.objects.filter(pk=export_id, requested_by_id=request.user.pk).first()
    if export is not None and audit_exports.export_expired(export):
        audit_exports.export_delete(export)
        return None
    return export


def _gone(request: HttpRequest) -> HttpResponse:
    """A link to an export that expired (or was never this person's): say what to do."""
    return render(request, EXPORT_TEMPLATE, {"export": None}, status=404)


@role_required(VIEWER)
@require_GET
def audit_export(request: HttpRequest, export_id: uuid.UUID) -> HttpResponse:
    """How far the export is (htmx polls its status, 286 once it is done), then its download."""
    export = _own_export(request, export_id)
    if export is None:
        return _gone(request)
    context = {"export": export, "filters": export.query}
    at_rest = export.status in {ExportStatus.READY, ExportStatus.FAILED}
    if wants_fragment(request):
        html = render_to_string(f"{EXPORT_TEMPLATE}#export_status", context, request=request)
        return HttpResponseStopPolling(html) if at_rest else HttpResponse(html)
    return render(request, EXPORT_TEMPLATE, context)


@role_required(VIEWER)
@require_GET
def audit_export_download(request: HttpRequest, export_id: uuid.UUID) -> Any:
    export = _own_export(request, export_id)
    if export is None:
        return _gone(request)
    path = audit_exports.export_path(export)
    if export.status != ExportStatus.READY or not path.exists():
        return redirect("audit_export", export_id=export.pk)
    name = f"audit-log-{timezone.localtime(export.created_at):%Y%m%d-%H%M%S}.{export.file_format}"
    content_type = "text/csv; charset=utf-8" if export.file_format == "csv" else "application/json"
    return FileResponse(
        path.open("rb"), as_attachment=True, filename=name, content_type=content_type
    )
