"""Fixtures for the client tests: sandbox mode pointed at the shared sandbox, its connections, and
the audit rows a test's calls wrote."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db.models import QuerySet

from provisioning.audit import AuditScope
from provisioning.connections.sandbox_registration import (
    SANDBOX_NAMES,
    SANDBOX_OKTA_SERVICE_APP,
    register_sandbox_connections,
)
from provisioning.models import AuditEvent, AuditKind, Cloud, Connection
from sandbox.server import Sandbox


@pytest.fixture
def sandbox_mode(sandbox: Sandbox, settings: Any) -> Sandbox:
    """Sandbox mode, reading the running sandbox's endpoints file."""
    settings.WIZARD_MODE = "sandbox"
    settings.SANDBOX_FILE = sandbox.state_dir / "sandbox.json"
    return sandbox


@pytest.fixture
def sandbox_connections(sandbox_mode: Sandbox, db: None) -> dict[str, Connection]:
    """The sandbox connection of each cloud (Okta's with its API token), by cloud."""
    registered = register_sandbox_connections(sandbox_file=sandbox_mode.state_dir / "sandbox.json")
    names = set(SANDBOX_NAMES.values())
    return {connection.cloud: connection for connection in registered if connection.name in names}


@pytest.fixture
def sandbox_okta_service_app(sandbox_connections: dict[str, Connection]) -> Connection:
    """The sandbox Okta's API service app connection: private key, DPoP on."""
    return Connection.objects.get(cloud=Cloud.OKTA, name=SANDBOX_OKTA_SERVICE_APP)


@pytest.fixture
def scope() -> AuditScope:
    return AuditScope(actor_label="client tests")


def call_rows(cloud: Cloud | str) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(
        kind__in=[AuditKind.CALL_STARTED, AuditKind.CALL_FINISHED], cloud=str(cloud)
    ).order_by("id")


def assert_every_call_started_and_finished(cloud: Cloud | str) -> list[AuditEvent]:
    """Each call_id has exactly one started row and, after it, one finished row."""
    rows = list(call_rows(cloud))
    assert rows, f"no audit rows for {cloud}"
    by_call: dict[Any, list[AuditEvent]] = {}
    for row in rows:
        by_call.setdefault(row.call_id, []).append(row)
    for call_id, pair in by_call.items():
        assert [row.kind for row in pair] == [AuditKind.CALL_STARTED, AuditKind.CALL_FINISHED], (
            call_id,
            [(row.kind, row.operation) for row in pair],
        )
        assert pair[1].duration_ms is not None
    return rows


def all_audit_text() -> str:
    return json.dumps(
        [
            [row.request, row.response, row.old_value, row.new_value, row.message, row.error_code]
            for row in AuditEvent.objects.all()
        ]
    )
