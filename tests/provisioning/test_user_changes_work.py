"""Workers making a change set's changes: any number of them share it with each change made
once, a change held by a gone worker is taken over and one held by a live worker is not, a
retryable failure waits and is tried again, and helpers stop when the run no longer wants them."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import connections
from django.utils import timezone

from provisioning.models import RunStatus, SetupRun, UserChange, UserChangeSet
from provisioning.steps.connect_users import ConnectUsers
from provisioning.user_changes.progress import change_set_progress
from provisioning.user_changes.work import work_on
from sandbox.knobs import Knobs
from tests.engine.runs import succeeded_calls
from tests.steps import aws_step_runs
from tests.steps.aws_step_runs import context, start_run

aws_connection = aws_step_runs.aws_connection
instance = aws_step_runs.instance
connect = aws_step_runs.connect

STEP = ConnectUsers()


def people(count: int) -> list[dict[str, str]]:
    tag = uuid.uuid4().hex[:6]
    return [
        {"username": f"w{tag}.{n:03d}@example.com", "first_name": "Work", "last_name": f"{n:03d}"}
        for n in range(count)
    ]


def planned(connection: Any, target: dict[str, Any], count: int) -> tuple[SetupRun, Any]:
    run = start_run(
        "connect_users", connection, instance_id=target["Id"], inputs={"people": people(count)}
    )
    SetupRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    STEP.plan(context(run, "connect_users"))
    return run, UserChangeSet.objects.get(step_run__run=run)


@pytest.mark.django_db(transaction=True)
def test_it_lets_workers_share_a_set_and_makes_each_change_once(
    aws_connection: Any, instance: dict[str, Any], sandbox_knobs: Knobs
) -> None:
    # Three seconds of calls in all: every thread is up long before the work runs out.
    sandbox_knobs.latency_s["connect:CreateUser"] = 0.1
    run, change_set = planned(aws_connection, instance, 30)
    host = socket.gethostname()
    made: dict[str, int] = {}

    def worker(name: str) -> None:
        try:
            ctx = context(run, "connect_users")
            done = work_on(
                change_set,
                connect=ctx.aws("connect"),
                worker=f"{host}:{name}",
                budget_s=60,
            )
            made[name] = done.made
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(f"t{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(made.values()) == 30 and all(made.values()), made
    outcomes = set(change_set.changes.values_list("outcome", flat=True))
    assert outcomes == {"created"}
    assert len(succeeded_calls(run, "CreateUser")) == 30
    assert len(set(change_set.changes.values_list("claimed_by", flat=True))) == 3


@pytest.mark.django_db(transaction=True)
def test_it_takes_over_a_change_whose_worker_is_gone_but_not_a_live_ones(
    aws_connection: Any, instance: dict[str, Any], settings: Any
) -> None:
    run, change_set = planned(aws_connection, instance, 3)
    first, second, third = change_set.changes.order_by("position")
    lease = timedelta(seconds=settings.WIZARD_USER_CHANGE_LEASE_S)
    # A host that went silent past the lease, and a live process of this host.
    UserChange.objects.filter(pk=first.pk).update(
        claimed_by="gone-host:123", claimed_at=timezone.now() - lease - timedelta(seconds=1)
    )
    UserChange.objects.filter(pk=second.pk).update(
        claimed_by=f"{socket.gethostname()}:{os.getpid()}", claimed_at=timezone.now()
    )

    done = work_on(
        change_set,
        connect=context(run, "connect_users").aws("connect"),
        worker=f"{socket.gethostname()}:999999",
        budget_s=30,
    )

    assert done.made == 2
    first.refresh_from_db()
    second.refresh_from_db()
    third.refresh_from_db()
    assert (first.outcome, first.attempts) == ("created", 1)
    assert (second.status, second.outcome) == ("pending", "")
    assert third.outcome == "created"


@pytest.mark.django_db(transaction=True)
def test_it_retries_a_throttled_change_after_a_wait_and_then_makes_it(
    aws_connection: Any, instance: dict[str, Any], sandbox_knobs: Knobs, settings: Any
) -> None:
    settings.WIZARD_RETRY_BACKOFF_S = 0.2
    run, change_set = planned(aws_connection, instance, 1)
    connect_client = context(run, "connect_users").aws("connect")
    worker = f"{socket.gethostname()}:{os.getpid()}"
    sandbox_knobs.error_rates["connect:CreateUser"] = 1.0

    failing = work_on(change_set, connect=connect_client, worker=worker, budget_s=30)

    change = change_set.changes.get()
    assert (change.status, change.attempts, change.claimed_by) == ("pending", 1, "")
    assert change.not_before is not None and change.error["code"]
    assert failing.waiting == 1 and failing.wait_s > 0
    sandbox_knobs.error_rates.clear()
    UserChange.objects.filter(pk=change.pk).update(not_before=timezone.now())

    work_on(change_set, connect=connect_client, worker=worker, budget_s=30)

    change.refresh_from_db()
    assert (change.status, change.outcome, change.attempts) == ("done", "created", 2)


@pytest.mark.django_db(transaction=True)
def test_a_helper_stops_when_the_run_is_cancelled(
    aws_connection: Any, instance: dict[str, Any]
) -> None:
    run, change_set = planned(aws_connection, instance, 2)
    SetupRun.objects.filter(pk=run.pk).update(status=RunStatus.CANCELLED)

    done = work_on(
        change_set,
        connect=context(run, "connect_users").aws("connect"),
        worker=f"{socket.gethostname()}:{os.getpid()}",
        budget_s=30,
    )

    assert (done.made, done.run_stopped) == (0, True)
    assert set(change_set.changes.values_list("status", flat=True)) == {"pending"}


@pytest.mark.django_db
def test_its_progress_counts_the_changes_and_workers_of_the_rate_window_only(
    aws_connection: Any, instance: dict[str, Any], settings: Any
) -> None:
    _, change_set = planned(aws_connection, instance, 4)
    now = timezone.now()
    window = timedelta(seconds=settings.WIZARD_PROGRESS_RATE_WINDOW_S)
    first, second, third, _ = change_set.changes.order_by("position")
    for change, worker, finished in (
        (first, "a:1", now - window * 3),
        (second, "b:2", now - window / 4),
        (third, "c:3", now - window / 2),
    ):
        UserChange.objects.filter(pk=change.pk).update(claimed_by=worker, finished_at=finished)

    progress = change_set_progress(change_set)

    assert progress.last_at == now - window / 4
    # Two changes by two workers in the window; the one finished before it counts in neither.
    assert progress.workers == 2
    assert progress.rate_now > 0
    assert progress.rate_now * settings.WIZARD_PROGRESS_RATE_WINDOW_S == pytest.approx(2)
