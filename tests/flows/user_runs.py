"""Helpers for the users-run flow tests: drive a run in this process as setup_sso does, answer and
confirm its steps as an admin would, and a Graph client that changes the directory as an admin's
tool does."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from provisioning.models import RunStatus, SetupRun, StepStatus, UserChange
from provisioning.runs import admin_moves, runner
from sandbox.server import Sandbox
from tests.sandbox.entra_graph import DIRECTORY_WRITE_PERMISSIONS, graph_client

# How long a test lets a run go before it calls the run stuck.
RUN_TIMEOUT_S = 120
BUSY_POLL_S = 0.2


def drive(run: SetupRun, *, confirm: bool = True) -> SetupRun:
    """Advance the run here until it ends, or waits for input (or, with confirm=False, for a
    confirmation); plans waiting for confirmation are confirmed when `confirm`."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        countdown = runner.advance(run.pk)
        run.refresh_from_db()
        if countdown is not None:
            time.sleep(min(countdown, 1.0))
            continue
        if run.status == RunStatus.WAITING:
            step = run.steps.filter(status=StepStatus.PLANNED).order_by("position").first()
            if confirm and step is not None and step.plan.get("needs_confirmation"):
                admin_moves.step_confirm(user=None, run_id=run.pk, step_key=step.key, enqueue=False)
                continue
            return run
        if run.status in (RunStatus.RUNNING, RunStatus.PENDING):
            time.sleep(BUSY_POLL_S)
            continue
        return run
    raise AssertionError(f"run {run.pk} still {run.status} after {RUN_TIMEOUT_S} s")


def plan_rows(run: SetupRun, action: str | None = None) -> list[UserChange]:
    """The rows of the run's newest users plan (of one action)."""
    rows = UserChange.objects.filter(change_set__step_run__run=run, change_set__purpose="apply")
    newest = rows.order_by("-change_set_id").values_list("change_set_id", flat=True).first()
    rows = rows.filter(change_set_id=newest)
    if action:
        rows = rows.filter(action=action)
    return list(rows.order_by("position"))


@pytest.fixture
def directory_admin(sandbox: Sandbox) -> Iterator[Any]:
    """A Graph client with the directory write permissions an admin's tool holds (consented for
    the test), given back after it."""
    tenant = sandbox.apps["entra"].tenant
    before = set(tenant.granted_permissions)
    tenant.granted_permissions |= DIRECTORY_WRITE_PERMISSIONS
    yield graph_client(sandbox.endpoints)
    tenant.granted_permissions = before
