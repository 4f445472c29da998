"""One live chain of advance tasks per run, and the watchdog that starts a new one when a run's
task was lost (a broker restart drops queued messages): a task with an old token does nothing, an
overdue run nobody holds is nudged once, a busy or recently scheduled run is left alone."""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from provisioning.models import RunStatus, SetupRun, StepStatus
from provisioning.runs import chain as run_chain
from tests.engine.runs import start_run

pytestmark = pytest.mark.django_db


def overdue(run: SetupRun, seconds: float, **fields: Any) -> None:
    SetupRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING,
        next_advance_at=timezone.now() - timedelta(seconds=seconds),
        **fields,
    )


def test_a_task_of_a_replaced_chain_does_nothing(
    admin_user, django_capture_on_commit_callbacks
) -> None:
    run = start_run(admin_user)
    with django_capture_on_commit_callbacks(execute=False):
        run_chain.run_nudge(run_id=run.pk)
    run.refresh_from_db()
    current = str(run.advance_token)

    run_chain.run_advance(run_id=run.pk, token="00000000-0000-0000-0000-000000000000")

    run.refresh_from_db()
    assert run.status == RunStatus.PENDING
    assert set(run.steps.values_list("status", flat=True)) == {StepStatus.PENDING}
    assert str(run.advance_token) == current


def test_a_task_of_the_live_chain_advances_and_schedules_the_next(
    admin_user, django_capture_on_commit_callbacks
) -> None:
    run = start_run(admin_user)
    with django_capture_on_commit_callbacks(execute=False):
        run_chain.run_nudge(run_id=run.pk)
    run.refresh_from_db()

    with django_capture_on_commit_callbacks(execute=False) as sent:
        run_chain.run_advance(run_id=run.pk, token=str(run.advance_token))

    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    assert run.steps.filter(status=StepStatus.SUCCEEDED).count() == 1
    assert len(sent) == 1  # the next task of the chain, with a new token
    assert run.next_advance_at is not None and run.next_advance_at <= timezone.now()


def test_the_watchdog_nudges_an_overdue_run_once_and_leaves_the_others(
    admin_user, settings, django_capture_on_commit_callbacks
) -> None:
    grace = settings.WIZARD_RUN_STALL_GRACE_S
    lost = start_run(admin_user)
    recent = start_run(admin_user)
    held = start_run(admin_user)
    overdue(lost, grace + 5, advance_token=None)
    overdue(recent, grace - 30)
    overdue(held, grace + 5)
    held.steps.filter(position=0).update(
        status=StepStatus.APPLYING,
        claimed_by=f"{socket.gethostname()}:{os.getpid()}",
        claimed_at=timezone.now(),
    )

    with django_capture_on_commit_callbacks(execute=False) as sent:
        first = run_chain.runs_nudge_stalled()
        second = run_chain.runs_nudge_stalled()

    assert first == [lost.pk] and second == []
    assert len(sent) == 1
    lost.refresh_from_db()
    assert lost.advance_token is not None


def test_the_watchdog_takes_a_run_whose_holder_is_gone(
    admin_user, settings, django_capture_on_commit_callbacks
) -> None:
    run = start_run(admin_user)
    overdue(run, settings.WIZARD_RUN_STALL_GRACE_S + 5)
    run.steps.filter(position=0).update(
        status=StepStatus.APPLYING,
        claimed_by=f"{socket.gethostname()}:999999999",
        claimed_at=timezone.now(),
    )

    with django_capture_on_commit_callbacks(execute=False):
        assert run_chain.runs_nudge_stalled() == [run.pk]
