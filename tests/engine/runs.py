"""Helpers for the engine tests: start a test run and drive it in this process (as setup_sso)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from provisioning.models import AuditEvent, AuditKind, SetupRun
from provisioning.runs import admin_moves, runner
from tests.worker_process import WorkerProcess

# Inputs that make the test steps instant and skip the default waits of test_marker_two.
QUICK = {"step_seconds": 0, "waits": {"test_marker_two": 0}}
# A run that does not settle within this many advance() calls is a bug in the engine.
MAX_CALLS = 200
# A three-step run with waits takes a few seconds in a worker; a loaded CI machine gets more.
RUN_TIMEOUT_S = 90


def start_run(user: Any = None, flow_key: str = "test_flow", **kwargs: Any) -> SetupRun:
    kwargs.setdefault("inputs", QUICK)
    return admin_moves.run_create(
        user=user, flow_key=flow_key, region="ap-northeast-1", enqueue=False, **kwargs
    )


def drive(run: SetupRun, *, worker: str | None = None) -> list[float | None]:
    """Call advance() until it has nothing to do, sleeping the countdowns it asks for; returns
    every value it returned."""
    returned: list[float | None] = []
    for _ in range(MAX_CALLS):
        countdown = runner.advance(run.pk, worker=worker)
        returned.append(countdown)
        if countdown is None:
            run.refresh_from_db()
            return returned
        time.sleep(countdown)
    raise AssertionError(f"the run did not settle in {MAX_CALLS} calls: {returned[-5:]}")


def transitions(run: SetupRun, step_key: str = "") -> list[tuple[str, str]]:
    """(old, new) statuses of the run (step_key "") or of one step, in the order they happened."""
    kind = AuditKind.STEP_STATE if step_key else AuditKind.RUN_STATE
    events = AuditEvent.objects.filter(run=run, kind=kind, step_key=step_key).order_by("pk")
    return [(event.old_value.get("status", ""), event.new_value["status"]) for event in events]


def calls(run: SetupRun, operation: str = "") -> list[AuditEvent]:
    events = AuditEvent.objects.filter(
        run=run, kind__in=[AuditKind.CALL_STARTED, AuditKind.CALL_FINISHED]
    ).order_by("pk")
    return [event for event in events if not operation or event.operation == operation]


def succeeded_calls(run: SetupRun, operation: str) -> list[AuditEvent]:
    """The finished rows of the run's calls of `operation` that succeeded."""
    return [
        event
        for event in calls(run, operation)
        if event.kind == AuditKind.CALL_FINISHED and event.outcome == "ok"
    ]


def wait_for(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def wait_until_at_rest(run: SetupRun, worker: WorkerProcess) -> SetupRun:
    def at_rest() -> bool:
        run.refresh_from_db()
        return run.is_at_rest

    try:
        wait_for(at_rest, RUN_TIMEOUT_S, f"run {run.pk} to come to rest")
    except AssertionError:
        log = worker.log_text()[-4000:]
        raise AssertionError(f"run is {run.status}; worker log:\n{log}") from None
    return run
