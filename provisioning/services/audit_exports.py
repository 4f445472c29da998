"""Audit log exports: asked for on the page, written by a worker into a private folder with its
progress, downloaded by whoever asked, deleted once they expire."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from django import db
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from provisioning.audit_log import (
    EXPORT_COLUMNS,
    AuditLogFilterForm,
    audit_events_filtered,
    audit_events_for_export,
    audit_filters,
)
from provisioning.csv_rows import csv_lines
from provisioning.models import AuditExport, ExportStatus
from provisioning.private_files import PRIVATE_DIR_MODE


def export_request(*, user: Any, file_format: str, query: dict[str, str]) -> AuditExport:
    """Record the export and hand it to a worker once the record is committed."""
    from provisioning.tasks import write_audit_export

    export = AuditExport.objects.create(requested_by=user, file_format=file_format, query=query)
    transaction.on_commit(lambda: write_audit_export.delay(str(export.pk)))
    return export


def export_path(export: AuditExport) -> Path:
    return Path(settings.WIZARD_EXPORT_DIR) / f"{export.pk}.{export.file_format}"


def export_expired(export: AuditExport) -> bool:
    return export.created_at < timezone.now() - timedelta(seconds=settings.WIZARD_EXPORT_KEEP_S)


def export_write(*, export_id: str) -> None:
    """Write every matching row to the export's file (a .part file renamed when complete), moving
    its progress as it goes."""
    export = AuditExport.objects.get(pk=export_id)
    filters = audit_filters(AuditLogFilterForm(export.query))
    if filters is None:
        _finish(export, ExportStatus.FAILED, error="The filters of this export are not valid.")
        return
    AuditExport.objects.filter(pk=export.pk).update(
        status=ExportStatus.WRITING, rows_total=audit_events_filtered(**filters).count()
    )
    try:
        _in_the_background(_write, export, filters)
    except Exception as error:
        _finish(export, ExportStatus.FAILED, error=f"{type(error).__name__}: {error}")
        raise
    _finish(export, ExportStatus.READY)


def _in_the_background(work: Callable[..., None], *args: Any) -> None:
    """Run `work` in a thread of its own at a lower CPU priority, so a long export yields the
    CPU to the web server's pages on a shared host. On Linux setpriority(PRIO_PROCESS, 0) sets
    the calling thread's nice value only (setpriority(2), "BUGS"; sched(7): each nice step is
    about 10% of CPU weight), so the worker's next task runs at its usual priority."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            with contextlib.suppress(OSError):  # no setpriority: the normal priority, then
                os.setpriority(os.PRIO_PROCESS, 0, settings.WIZARD_EXPORT_NICENESS)
            work(*args)
        except BaseException as error:  # noqa: BLE001 - handed back to the caller below
            failure.append(error)
        finally:
            db.connection.close()

    thread = threading.Thread(target=run, name="audit-export")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def _write(export: AuditExport, filters: dict[str, Any]) -> None:
    rows = audit_events_for_export(filters=filters)
    folder = Path(settings.WIZARD_EXPORT_DIR)
    folder.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    path = export_path(export)
    part = path.with_suffix(path.suffix + ".part")
    counted = _counting(export, rows)
    chunks = csv_lines(EXPORT_COLUMNS, counted) if export.file_format == "csv" else _json(counted)
    with part.open("w", encoding="utf-8", newline="") as file:
        for chunk in chunks:
            file.write(chunk)
    os.replace(part, path)


def _counting(export: AuditExport, rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    written = 0
    for row in rows:
        yield row
        written += 1
        if written % settings.WIZARD_EXPORT_PROGRESS_ROWS == 0:
            AuditExport.objects.filter(pk=export.pk).update(rows_written=written)
    AuditExport.objects.filter(pk=export.pk).update(rows_written=written)


def _json(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    yield "["
    for index, row in enumerate(rows):
        yield (
            ("," if index else "")
            + "\n"
            + json.dumps(row, cls=DjangoJSONEncoder, ensure_ascii=False)
        )
    yield "\n]\n"


def _finish(export: AuditExport, status: str, error: str = "") -> None:
    AuditExport.objects.filter(pk=export.pk).update(
        status=status, error=error, finished_at=timezone.now()
    )


def exports_expire() -> int:
    """Delete the exports (files and records) older than WIZARD_EXPORT_KEEP_S; how many."""
    since = timezone.now() - timedelta(seconds=settings.WIZARD_EXPORT_KEEP_S)
    expired = list(AuditExport.objects.filter(created_at__lt=since))
    for export in expired:
        export_delete(export)
    return len(expired)


def export_delete(export: AuditExport) -> None:
    path = export_path(export)
    path.unlink(missing_ok=True)
    path.with_suffix(path.suffix + ".part").unlink(missing_ok=True)
    export.delete()
