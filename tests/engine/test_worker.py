"""A real Celery worker process runs runs: waits are re-enqueued, and a worker killed in the middle
of a step leaves a run that finishes with every step applied exactly once and every call audited."""

from __future__ import annotations

import os
import signal
from datetime import timedelta

import pytest
from django.utils import timezone

from provisioning.models import AuditEvent, AuditKind, RunStatus, WorkerHeartbeat
from provisioning.runs import admin_moves
from tests import engine_doubles
from tests.engine.runs import RUN_TIMEOUT_S, wait_for, wait_until_at_rest
from tests.worker_process import WorkerProcess

pytestmark = pytest.mark.worker

FLOW_STEPS = ["test_marker_one", "test_marker_two", "test_marker_three"]


def test_it_runs_a_flow_to_the_end_in_a_real_worker(
    celery_worker: WorkerProcess, admin_user, client
) -> None:
    run = admin_moves.run_create(
        user=admin_user,
        flow_key="test_flow",
        region="ap-northeast-1",
        inputs={"step_seconds": 0},  # test_marker_two still waits twice for the "cloud"
    )

    wait_until_at_rest(run, celery_worker)

    assert run.status == RunStatus.SUCCEEDED
    assert engine_doubles.creations(run.pk) == FLOW_STEPS
    two = run.steps.get(key="test_marker_two")
    # Plan, apply, and two more claims: each wait went back to the broker instead of sleeping.
    assert two.attempts == 4
    assert two.claimed_by == ""
    claimers = set(
        AuditEvent.objects.filter(run=run, kind=AuditKind.STEP_STATE).values_list(
            "actor_label", flat=True
        )
    )
    assert all(label.startswith("worker ") for label in claimers)
    assert not any(str(os.getpid()) == label.rsplit(":", 1)[1] for label in claimers)

    # A flush between tests may have emptied the table; the worker writes it every second.
    beats = WorkerHeartbeat.objects.filter(hostname__startswith="engine-tests-")
    wait_for(beats.exists, 10, "the worker's heartbeat")
    heartbeat = beats.get()
    assert heartbeat.seen_at > timezone.now() - timedelta(seconds=30)
    health = client.get("/healthz")
    assert health.status_code == 200, health.json()
    assert {name: check["status"] for name, check in health.json().items()} == {
        "database": "ok",
        "broker": "ok",
        "worker": "ok",
    }


def test_it_finishes_every_step_exactly_once_after_the_worker_is_killed_mid_step(
    celery_worker: WorkerProcess, admin_user
) -> None:
    run = admin_moves.run_create(
        user=admin_user,
        flow_key="test_flow",
        region="ap-northeast-1",
        # Step two creates its marker inside its create call, then stays in that call.
        inputs={
            "step_seconds": 0,
            "waits": {"test_marker_two": 0},
            "pause": {"test_marker_two": 60},
        },
    )
    paused = engine_doubles.paused_path(run.pk, "test_marker_two")
    wait_for(paused.exists, RUN_TIMEOUT_S, "step two to be in the middle of its call")
    victim = int(paused.read_text())
    assert victim in celery_worker.pool_pids()
    assert victim != celery_worker.pid

    os.kill(victim, signal.SIGKILL)
    wait_until_at_rest(run, celery_worker)

    assert run.status == RunStatus.SUCCEEDED
    # Every step's effect happened exactly once, the killed one included.
    assert engine_doubles.creations(run.pk) == FLOW_STEPS
    assert victim not in celery_worker.pool_pids()
    two = run.steps.get(key="test_marker_two")
    assert two.created_resources == [
        {
            "resource_type": "test_marker",
            "identifier": engine_doubles.marker_path(run.pk, two.key).name,
        }
    ]
    assert two.attempts == 3  # plan, apply, and the take-over after the kill
    assert "Task wizard.tasks.advance_run" in celery_worker.log_text()

    rows = AuditEvent.objects.filter(
        run=run, kind__in=[AuditKind.CALL_STARTED, AuditKind.CALL_FINISHED]
    )
    started = {row.call_id: row for row in rows if row.kind == AuditKind.CALL_STARTED}
    finished = {row.call_id for row in rows if row.kind == AuditKind.CALL_FINISHED}
    assert finished <= set(started)
    unfinished = [started[call_id] for call_id in set(started) - finished]
    # Only the killed call lacks its finished row, and its started row is there.
    assert [(row.step_key, row.operation) for row in unfinished] == [
        ("test_marker_two", "CreateMarker")
    ]
    take_over = AuditEvent.objects.filter(
        run=run, kind=AuditKind.STEP_STATE, step_key="test_marker_two"
    )
    assert [event.new_value["status"] for event in take_over.order_by("pk")] == [
        "planning",
        "planned",
        "applying",
        "succeeded",
    ]
