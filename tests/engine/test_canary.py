"""A canary secret planted in a connection and used by a run (through the audit choke point, the
way client modules use secrets) shows up in no page, no log line and no audit row."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from django.urls import NoReverseMatch, reverse

from provisioning.models import (
    AuditEvent,
    AuditExport,
    AuditKind,
    Cloud,
    Connection,
    RunStatus,
    SetupRun,
    StepRun,
)
from provisioning.runs import admin_moves
from provisioning.services import audit_exports
from tests.engine.runs import wait_until_at_rest
from tests.worker_process import WorkerProcess

pytestmark = pytest.mark.worker

# Every page an admin can open that shows runs, connections or the audit log (its exports are
# files a worker writes: checked below).
PAGES = [
    ("dashboard", {}),
    ("connections", {}),
    ("audit_log", {}),
]


def test_it_never_shows_logs_or_audits_a_connection_secret(
    celery_worker: WorkerProcess, admin_user, client, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    canary = f"canary-{uuid.uuid4().hex}"
    connection = Connection(
        cloud=Cloud.ENTRA, name="Canary tenant", config={"tenant_id": "t", "client_id": "c"}
    )
    connection.set_secrets({"client_secret": canary})
    connection.save()
    runs = [
        admin_moves.run_create(
            user=admin_user,
            flow_key="test_canary_flow",
            region="ap-northeast-1",
            idp_connection_id=connection.pk,
            inputs={"step_seconds": 0, **extra},
        )
        for extra in ({}, {"fail_with_secret": True})
    ]
    for run in runs:
        wait_until_at_rest(run, celery_worker)

    # The secret was really used: sent in an audited call, echoed back, logged, put in an error.
    assert [run.status for run in runs] == [RunStatus.SUCCEEDED, RunStatus.FAILED]
    token_call = AuditEvent.objects.filter(
        operation="GetToken", kind=AuditKind.CALL_STARTED
    ).first()
    assert token_call.request["client_secret"] == "***"
    assert token_call.request["note"] == "asking with ***"
    assert runs[1].error["message"] == "The IdP refused the secret ***."
    assert "Got a token for the secret ***" in celery_worker.log_text()

    audit_rows = json.dumps(list(AuditEvent.objects.values()), default=str)
    assert canary not in audit_rows
    stored = json.dumps(
        [list(SetupRun.objects.values()), list(StepRun.objects.values())], default=str
    )
    assert canary not in stored
    assert canary not in celery_worker.log_text()

    client.force_login(admin_user)
    pages = [(name, kwargs) for name, kwargs in PAGES]
    pages += [("run_detail", {"run_id": run.pk}) for run in runs]
    rendered = []
    for name, kwargs in pages:
        try:
            url = reverse(name, kwargs=kwargs)
        except NoReverseMatch:
            pytest.fail(f"the page {name} does not exist (yet): the canary check needs it")
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        body = b"".join(response) if response.streaming else response.content
        assert canary not in body.decode(), url
        rendered.append(url)
    assert len(rendered) == len(pages)
    # The audit log's exports, as the worker writes them.
    for file_format in ("csv", "json"):
        export = AuditExport.objects.create(requested_by=admin_user, file_format=file_format)
        audit_exports.export_write(export_id=str(export.pk))
        written = audit_exports.export_path(export).read_text()
        audit_exports.export_delete(export)
        assert "GetToken" in written and canary not in written, file_format
    assert canary not in caplog.text
