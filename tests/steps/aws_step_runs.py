"""Helpers for the AWS step tests: a sandbox AWS connection, a SAML instance, a run of one step
and the StepContext the runner would hand that step."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from provisioning.audit import AuditScope
from provisioning.connections.sandbox_registration import register_sandbox_connections
from provisioning.context import StepContext
from provisioning.models import Cloud, Connection, SetupRun, StepRun
from provisioning.runs import admin_moves
from sandbox.server import Sandbox
from tests.sandbox.aws_clients import active_instance, aws_client
from tests.steps import aws_step_doubles  # noqa: F401 - registers the test flows

REGION = "ap-northeast-1"


@pytest.fixture
def aws_connection(sandbox: Sandbox, settings: Any, db: None) -> Connection:
    settings.WIZARD_MODE = "sandbox"
    settings.SANDBOX_FILE = sandbox.state_dir / "sandbox.json"
    registered = register_sandbox_connections(sandbox_file=settings.SANDBOX_FILE)
    return next(connection for connection in registered if connection.cloud == Cloud.AWS)


@pytest.fixture
def connect(sandbox: Sandbox) -> Any:
    """A plain boto3 Connect client on the sandbox, for arranging and checking."""
    return aws_client(sandbox, "connect")


@pytest.fixture
def instance(connect: Any) -> dict[str, Any]:
    """A new ACTIVE SAML instance (each test its own: users and numbers don't leak)."""
    return active_instance(connect, "steps")


def start_run(
    step_key: str,
    connection: Connection,
    *,
    instance_id: str = "",
    instance_alias: str = "",
    inputs: dict[str, Any] | None = None,
    flow_key: str = "",
) -> SetupRun:
    return admin_moves.run_create(
        user=None,
        flow_key=flow_key or f"test_only_{step_key}",
        region=REGION,
        instance_id=instance_id,
        instance_alias=instance_alias,
        aws_connection_id=connection.pk,
        inputs=inputs or {},
        enqueue=False,
    )


def context(run: SetupRun, step_key: str, **inputs: Any) -> StepContext:
    """What the runner hands the step (fresh from the database, as each phase gets it)."""
    run.refresh_from_db()
    step = StepRun.objects.get(run=run, key=step_key)
    return StepContext(
        run_id=run.pk,
        step_key=step_key,
        region=run.region,
        instance_id=run.instance_id,
        instance_alias=run.instance_alias,
        mode=run.mode,
        inputs={**run.inputs, **step.inputs, **inputs},
        outputs={},
        audit=AuditScope(actor_label="step tests", run_id=run.pk, step_key=step_key),
        aws_connection_id=run.aws_connection_id,
        idp_connection_id=run.idp_connection_id,
        step_run_id=step.pk,
        created_resources=list(step.created_resources),
    )


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
