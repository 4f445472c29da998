"""A step is claimed by one conditional UPDATE: one worker wins, a dead worker's claim is taken
over, a live worker's claim is left alone."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from provisioning.models import RunStatus, StepRun, StepStatus
from provisioning.runs import runner
from tests import engine_doubles
from tests.engine.runs import drive, start_run

FLOW_STEPS = ["test_marker_one", "test_marker_two", "test_marker_three"]


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@pytest.mark.django_db(transaction=True)
def test_it_lets_only_one_of_two_claimers_take_a_step() -> None:
    run = start_run()
    step = run.steps.get(key="test_marker_one")
    barrier = threading.Barrier(2)
    won: list[str] = []

    def claim(worker: str) -> None:
        try:
            barrier.wait()
            if runner._claim(run, step, worker, to_status=StepStatus.PLANNING):
                won.append(worker)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim, args=(f"host:{n}",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    step.refresh_from_db()
    assert len(won) == 1
    assert step.claimed_by == won[0]
    assert step.status == StepStatus.PLANNING
    assert step.attempts == 1


@pytest.mark.django_db(transaction=True)
def test_it_lets_only_one_of_two_workers_advance_the_same_run() -> None:
    run = start_run()
    barrier = threading.Barrier(2)

    def advance(worker: str) -> None:
        try:
            barrier.wait()
            drive(run.__class__.objects.get(pk=run.pk), worker=worker)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=advance, args=(f"host:{n}",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    drive(run)

    assert run.status == RunStatus.SUCCEEDED
    assert engine_doubles.creations(run.pk) == FLOW_STEPS
    # Each step was claimed exactly twice (plan, apply): no phase ran twice.
    assert list(run.steps.values_list("attempts", flat=True)) == [2, 2, 2]


@pytest.mark.django_db
def test_it_leaves_a_step_claimed_by_a_live_process_alone() -> None:
    run = start_run()
    run.steps.filter(key="test_marker_one").update(
        status=StepStatus.APPLYING,
        claimed_by=f"{socket.gethostname()}:{os.getpid()}",
        claimed_at=timezone.now(),
    )
    run.status = RunStatus.RUNNING
    run.save()

    assert runner.advance(run.pk, worker="other:1") is None

    step = run.steps.get(key="test_marker_one")
    assert step.claimed_by == f"{socket.gethostname()}:{os.getpid()}"
    assert engine_doubles.creations(run.pk) == []


@pytest.mark.django_db
def test_it_leaves_a_fresh_claim_from_another_host_alone() -> None:
    run = start_run()
    run.steps.filter(key="test_marker_one").update(
        status=StepStatus.APPLYING, claimed_by="elsewhere:1", claimed_at=timezone.now()
    )

    assert runner.advance(run.pk) is None
    assert run.steps.get(key="test_marker_one").claimed_by == "elsewhere:1"


@pytest.mark.django_db
def test_it_takes_over_a_step_whose_process_is_gone() -> None:
    run = start_run()
    run.steps.filter(key="test_marker_one").update(
        status=StepStatus.APPLYING,
        claimed_by=f"{socket.gethostname()}:{_dead_pid()}",
        claimed_at=timezone.now(),
        attempts=1,
    )

    drive(run)

    step = run.steps.get(key="test_marker_one")
    assert run.status == RunStatus.SUCCEEDED
    assert step.attempts == 2
    assert step.error == {}
    assert engine_doubles.creations(run.pk) == FLOW_STEPS


@pytest.mark.django_db
def test_it_takes_over_a_claim_whose_lease_ran_out(settings) -> None:
    run = start_run()
    expired = timezone.now() - timedelta(seconds=settings.WIZARD_STEP_CLAIM_LEASE_S + 1)
    run.steps.filter(key="test_marker_one").update(
        status=StepStatus.PLANNING, claimed_by="elsewhere:1", claimed_at=expired
    )

    drive(run)

    assert run.status == RunStatus.SUCCEEDED
    assert engine_doubles.creations(run.pk) == FLOW_STEPS


@pytest.mark.django_db
def test_it_fails_a_step_whose_worker_keeps_dying(settings) -> None:
    settings.WIZARD_STEP_MAX_RETRIES = 1
    run = start_run()
    dead = f"{socket.gethostname()}:{_dead_pid()}"
    step = run.steps.get(key="test_marker_one")
    for _ in range(2):
        StepRun.objects.filter(pk=step.pk).update(
            status=StepStatus.APPLYING, claimed_by=dead, claimed_at=timezone.now()
        )
        # The take-over claims the step; we stand in for a worker that dies before finishing.
        claimed = runner._take_over(run, StepRun.objects.get(pk=step.pk), "host:2")

    step.refresh_from_db()
    assert claimed is None
    assert step.status == StepStatus.FAILED
    assert step.error["code"] == "worker_lost"
