"""The audit log page: filters, keyset pages across equal timestamps, CSV and JSON export."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import uuid
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.test import Client, TestCase
from django.urls import reverse
from django.utils import timezone

from provisioning.models import AuditEvent, AuditExport
from provisioning.tasks import expire_audit_exports, write_audit_export
from tests.web.factories import make_event, make_run
from wizard.roles import VIEWER, role_group
from wizard.selectors.audit_log import AUDIT_PAGE_SIZE, Cursor, audit_events_page

pytestmark = pytest.mark.django_db

MOMENT = dt.datetime(2025, 3, 14, 9, 30, tzinfo=dt.UTC)
# The worker writes an export in a thread of its own, with its own connection: it reads and
# updates committed rows only.
writes_in_a_thread = pytest.mark.django_db(transaction=True)


def _events_at(moment: dt.datetime, count: int, **fields: object) -> list[AuditEvent]:
    """Rows sharing one timestamp: `at` is auto_now_add, so the clock is held still."""
    with mock.patch("django.utils.timezone.now", return_value=moment):
        return [make_event(operation=f"Op{index}", **fields) for index in range(count)]


def _ids_on(html: str) -> list[str]:
    return re.findall(r"<code>aws:connect (Op\d+)</code>", html)


def test_it_pages_through_rows_with_equal_timestamps_without_gaps_or_repeats() -> None:
    events = _events_at(MOMENT, 7, cloud="aws", service="connect")
    expected = [event.pk for event in sorted(events, key=lambda e: e.pk, reverse=True)]

    first = audit_events_page(filters={}, page_size=3)
    second = audit_events_page(filters={}, older_than=first.older, page_size=3)
    third = audit_events_page(filters={}, older_than=second.older, page_size=3)
    back = audit_events_page(filters={}, newer_than=third.newer, page_size=3)

    seen = [row.pk for page in (first, second, third) for row in page.rows]
    assert seen == expected
    assert first.newer is None and third.older is None
    assert [row.pk for row in back.rows] == [row.pk for row in second.rows]


def test_it_links_older_and_newer_pages_on_the_page(admin_client: Client) -> None:
    _events_at(MOMENT, AUDIT_PAGE_SIZE + 5, cloud="aws", service="connect")

    first = admin_client.get(reverse("audit_log")).content.decode()
    older_link = re.search(r'href="\?older=([\d-]+)"', first)
    assert older_link is not None
    second = admin_client.get(reverse("audit_log"), {"older": older_link[1]}).content.decode()

    assert len(_ids_on(first)) == AUDIT_PAGE_SIZE
    assert len(_ids_on(second)) == 5
    assert not set(_ids_on(first)) & set(_ids_on(second))
    assert 'href="?newer=' in second and 'href="?older=' not in second


def test_it_reads_a_cursor_back_exactly() -> None:
    cursor = Cursor(at=dt.datetime(2025, 3, 14, 9, 30, 1, 123456, tzinfo=dt.UTC), id=42)

    assert Cursor.parse(str(cursor)) == cursor


def test_it_filters_by_run_user_cloud_operation_outcome_and_date(
    admin_client: Client, admin_user: User
) -> None:
    run = make_run()
    make_event(run=run, actor_label="admin", cloud="aws", operation="CreateInstance", outcome="ok")
    make_event(run=run, actor_label="admin", cloud="aws", operation="CreateUser", outcome="error")
    make_event(actor_label="worker@host", cloud="entra", operation="CreateInstance", outcome="ok")
    today = timezone.localdate().isoformat()

    def ops(**query: str) -> list[str]:
        html = admin_client.get(reverse("audit_log"), query).content.decode()
        return re.findall(r"<code>\w+ (Create\w+)</code>", html)

    assert sorted(ops(run=str(run.pk))) == ["CreateInstance", "CreateUser"]
    assert ops(user="worker@host") == ["CreateInstance"]
    assert sorted(ops(cloud="aws")) == ["CreateInstance", "CreateUser"]
    assert sorted(ops(operation="instance")) == ["CreateInstance", "CreateInstance"]
    assert ops(outcome="error") == ["CreateUser"]
    assert len(ops(date_from=today, date_to=today)) == 3
    assert ops(date_to="2000-01-01") == []


def test_it_shows_a_bad_filter_instead_of_every_row(admin_client: Client) -> None:
    make_event(cloud="aws", operation="CreateInstance")

    page = admin_client.get(reverse("audit_log"), {"run": "not-a-run-id"})
    export = admin_client.post(
        reverse("audit_export_new") + "?run=not-a-run-id", {"format": "csv"}, follow=True
    )

    assert "at least its first 8 characters" in page.content.decode()
    assert "CreateInstance" not in page.content.decode()
    assert "Fix the filters before exporting." in export.content.decode()
    assert not AuditExport.objects.exists()


@pytest.fixture
def export_dir(settings: Any, tmp_path: Path) -> Path:
    settings.WIZARD_EXPORT_DIR = tmp_path / "exports"
    return settings.WIZARD_EXPORT_DIR


def _export(client: Client, file_format: str, query: str) -> tuple[AuditExport, bytes]:
    """Ask for an export as the page's buttons do, let the worker's task write it, download it."""
    send_after_commit = TestCase.captureOnCommitCallbacks(execute=True)
    with mock.patch("provisioning.tasks.write_audit_export.delay") as send, send_after_commit:
        asked = client.post(
            reverse("audit_export_new") + query, {"format": file_format}, follow=False
        )
        export = AuditExport.objects.order_by("-created_at").first()
        assert export is not None
        assert asked.url == reverse("audit_export", args=[export.pk])
        client.get(asked.url)  # the page before the worker's turn
    send.assert_called_once_with(str(export.pk))
    write_audit_export(str(export.pk))
    page = client.get(asked.url, HTTP_HX_REQUEST="true")
    assert page.status_code == 286  # written: the page stops polling
    assert "Download" in page.content.decode()
    download = client.get(reverse("audit_export_download", args=[export.pk]))
    assert "attachment" in download["Content-Disposition"]
    export.refresh_from_db()
    return export, b"".join(download.streaming_content)


@writes_in_a_thread
def test_it_exports_the_filtered_rows_as_csv_written_by_a_worker(
    admin_client: Client, export_dir: Path
) -> None:
    make_event(cloud="aws", operation="CreateInstance", request={"InstanceAlias": "demo"})
    make_event(cloud="okta", operation="=HYPERLINK(evil)", message="=cmd")

    export, body = _export(admin_client, "csv", "?cloud=aws")
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    _, okta_body = _export(admin_client, "csv", "?cloud=okta")
    okta_rows = list(csv.DictReader(io.StringIO(okta_body.decode("utf-8-sig"))))

    assert (export.status, export.rows_total, export.rows_written) == ("ready", 1, 1)
    assert [row["operation"] for row in rows] == ["CreateInstance"]
    assert json.loads(rows[0]["request"]) == {"InstanceAlias": "demo"}
    assert okta_rows[0]["operation"] == "'=HYPERLINK(evil)"
    assert okta_rows[0]["message"] == "'=cmd"
    assert [path.suffix for path in export_dir.iterdir()] == [".csv", ".csv"]
    assert export_dir.stat().st_mode & 0o077 == 0


@writes_in_a_thread
def test_it_exports_the_filtered_rows_as_json(admin_client: Client, export_dir: Path) -> None:
    run = make_run()
    make_event(run=run, cloud="aws", operation="CreateInstance", outcome="ok", duration_ms=12)
    make_event(cloud="aws", operation="DescribeInstance")

    _export_record, body = _export(admin_client, "json", f"?run={run.pk}")
    rows = json.loads(body)

    assert len(rows) == 1
    assert rows[0]["operation"] == "CreateInstance"
    assert rows[0]["run_id"] == str(run.pk)
    assert rows[0]["duration_ms"] == 12
    assert "actor_id" not in rows[0]


@writes_in_a_thread
def test_only_whoever_asked_downloads_an_export_until_it_expires(
    admin_client: Client, client: Client, export_dir: Path, settings: Any
) -> None:
    make_event(cloud="aws", operation="CreateInstance")
    export, _body = _export(admin_client, "csv", "")
    viewer = User.objects.create_user("viewer")
    viewer.groups.add(role_group(VIEWER))
    client.force_login(viewer)

    other = client.get(reverse("audit_export_download", args=[export.pk]))
    settings.WIZARD_EXPORT_KEEP_S = 0
    expired = admin_client.get(reverse("audit_export_download", args=[export.pk]))

    assert other.status_code == 404
    assert expired.status_code == 404
    assert "has expired" in expired.content.decode()
    assert "Export the log again" in expired.content.decode()
    assert not AuditExport.objects.exists()
    assert list(export_dir.iterdir()) == []


@writes_in_a_thread
def test_beat_deletes_expired_exports_and_their_files(
    admin_client: Client, export_dir: Path, settings: Any
) -> None:
    make_event(cloud="aws", operation="CreateInstance")
    _export(admin_client, "json", "")
    settings.WIZARD_EXPORT_KEEP_S = 0

    expire_audit_exports()

    assert not AuditExport.objects.exists()
    assert list(export_dir.iterdir()) == []


def test_it_links_each_row_to_its_run(admin_client: Client) -> None:
    run = make_run()
    make_event(run=run, cloud="aws", operation="CreateInstance")

    html = admin_client.get(reverse("audit_log")).content.decode()

    assert f'href="{reverse("run_detail", args=[run.pk])}"' in html


def _run_with_id(text: str) -> Any:
    return make_run(id=uuid.UUID(text))


@pytest.mark.parametrize("typed", ["1a2b3c4d", "1A2B3C4D", " 1a2b3c4d-9 ", "1a2b3c4d9"])
def test_the_run_filter_takes_the_short_id_the_table_shows(
    admin_client: Client, typed: str
) -> None:
    mine = _run_with_id("1a2b3c4d-9e8f-4a5b-8c7d-000000000001")
    other = _run_with_id("99999999-9e8f-4a5b-8c7d-000000000002")
    make_event(operation="MineOp", run=mine)
    make_event(operation="OtherOp", run=other)

    html = admin_client.get(reverse("audit_log"), {"run": typed}).content.decode()

    assert "MineOp" in html
    assert "OtherOp" not in html


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        ("1a2b", "at least its first 8 characters"),
        ("zzzzzzzz", "at least its first 8 characters"),
        ("77777777", "No run has an ID that starts with"),
        ("1a2b3c4d", "More than one run has an ID that starts with"),
    ],
)
def test_a_short_run_id_that_names_no_single_run_says_what_to_type(
    admin_client: Client, typed: str, error: str
) -> None:
    _run_with_id("1a2b3c4d-9e8f-4a5b-8c7d-000000000001")
    _run_with_id("1a2b3c4d-0000-4a5b-8c7d-000000000003")
    make_event(operation="SomeOp")

    html = admin_client.get(reverse("audit_log"), {"run": typed}).content.decode()

    assert error in html
    assert "SomeOp" not in html
