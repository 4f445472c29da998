"""Helpers for the Entra flow tests: sandbox mode with its connections, the example plan with a
fresh instance alias, a whole headless run through `setup_sso` (or one whose worker dies with a
Graph answer lost, and the worker that takes it over), and the cloud writes of a run."""

from __future__ import annotations

import datetime as dt
import io
import re
import time
import uuid
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from provisioning.connections.sandbox_registration import register_sandbox_connections
from provisioning.entra import client as entra_client
from provisioning.models import AuditEvent, AuditKind, SetupRun, StepRun
from provisioning.runs import runner
from sandbox.server import Sandbox

EXAMPLE_PLAN = Path(__file__).resolve().parents[2] / "examples" / "entra-sandbox.toml"
# Operation names (botocore's) and HTTP methods that read without changing anything.
AWS_READ = re.compile(r"^(Get|List|Describe|Search|Simulate)")
# Services whose calls change no cloud state: STS identity, the sign-in test, token requests.
NON_WRITING_SERVICES = {"sts", "signin", "login"}


@pytest.fixture
def entra_sandbox(sandbox: Sandbox, settings: Any, db: None) -> Sandbox:
    """Sandbox mode with the three sandbox connections registered, as `make run` does."""
    settings.WIZARD_MODE = "sandbox"
    settings.SANDBOX_FILE = sandbox.state_dir / "sandbox.json"
    register_sandbox_connections(sandbox_file=settings.SANDBOX_FILE)
    return sandbox


def plan_file(tmp_path: Path, **replacements: str) -> Path:
    """The example plan with its own instance alias (the session sandbox is shared)."""
    text = EXAMPLE_PLAN.read_text()
    alias = f"entra-{uuid.uuid4().hex[:8]}"
    text = text.replace('alias = "entra-sandbox"', f'alias = "{alias}"')
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / f"{alias}.toml"
    path.write_text(text)
    return path


def setup_sso(path: Path) -> tuple[SetupRun, str]:
    """Run the management command in this process; returns the run and what it printed."""
    out = io.StringIO()
    before = set(SetupRun.objects.values_list("pk", flat=True))
    call_command("setup_sso", str(path), stdout=out)
    (run,) = SetupRun.objects.exclude(pk__in=before)
    return run, out.getvalue()


def answer_lost(monkeypatch: pytest.MonkeyPatch, operation: str) -> None:
    """Graph does what a call matching `operation` ("POST /applicationTemplates/*/instantiate")
    asks, but its answer (the finished row keeps the ids of what it made) never reaches the
    audit log: only the started row is left."""
    finish_call = entra_client.finish_call

    def lost(record: Any, **kwargs: Any) -> None:
        if not fnmatchcase(record.operation, operation):
            finish_call(record, **kwargs)

    monkeypatch.setattr(entra_client, "finish_call", lost)


def setup_sso_until_the_worker_dies(path: Path) -> SetupRun:
    """Run the management command in this process until something it calls raises SystemExit
    (the worker dying); the interrupted run."""
    before = set(SetupRun.objects.values_list("pk", flat=True))
    with pytest.raises(SystemExit):
        call_command("setup_sso", str(path), stdout=io.StringIO())
    return SetupRun.objects.exclude(pk__in=before).get()


def take_over(run: SetupRun, step: StepRun, sandbox: Sandbox) -> None:
    """The dead worker's claim on `step` outlives its lease (by then Graph's queries show what it
    made); the next worker takes the step over and the run goes on as far as it can."""
    time.sleep(sandbox.knobs.graph_visibility_delay_s)
    StepRun.objects.filter(pk=step.pk).update(claimed_at=step.claimed_at - dt.timedelta(days=1))
    for _ in range(50):
        if runner.advance(run.pk) is None:
            break
    run.refresh_from_db()


def cloud_writes(run: SetupRun) -> list[str]:
    """The calls of the run that could change a cloud, in the order made: "cloud service
    operation"."""
    writes = []
    calls = AuditEvent.objects.filter(run=run, kind=AuditKind.CALL_STARTED).order_by("at", "id")
    for event in calls:
        if event.service in NON_WRITING_SERVICES:
            continue
        if event.cloud == "aws" and AWS_READ.match(event.operation):
            continue
        if event.cloud != "aws" and event.operation.startswith("GET "):
            continue
        writes.append(f"{event.cloud} {event.service} {event.operation}")
    return writes


def step_context(run: SetupRun, step_key: str) -> Any:
    """What the runner hands `step_key` of `run`: its inputs and every earlier step's outputs."""
    from provisioning.audit import AuditScope
    from provisioning.context import StepContext

    step = run.steps.get(key=step_key)
    earlier = run.steps.filter(position__lt=step.position).order_by("position")
    return StepContext(
        run_id=run.pk,
        step_key=step_key,
        region=run.region,
        instance_id=run.instance_id,
        instance_alias=run.instance_alias,
        mode=run.mode,
        inputs={**run.inputs, **step.inputs},
        outputs={item.key: item.outputs for item in earlier},
        audit=AuditScope(actor_label="flow tests", run_id=run.pk, step_key=step_key),
        aws_connection_id=run.aws_connection_id,
        idp_connection_id=run.idp_connection_id,
        step_run_id=step.pk,
        created_resources=list(step.created_resources),
    )
