"""The one live chain of worker tasks that drives a run: an admin's move or a wait sends the
next "advance" task with a new token, a task whose token is no longer the run's does nothing, and
the workers' watchdog starts a new chain for a run whose task was lost."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from provisioning.models import RUN_WORKED_ON, SetupRun
from provisioning.runs import runner


def enqueue_advance(run_id: uuid.UUID | str, *, countdown: float = 0.0) -> None:
    """Ask a worker to advance the run once this transaction commits, as the run's one live
    chain: the task carries a new token, and older tasks of the run, still queued, do nothing."""
    # provisioning.tasks imports this module (through the services) for its task bodies.
    from provisioning.tasks import advance_run

    token = uuid.uuid4()
    SetupRun.objects.filter(pk=run_id).update(
        advance_token=token, next_advance_at=timezone.now() + timedelta(seconds=countdown)
    )
    transaction.on_commit(
        lambda: advance_run.apply_async((str(run_id), str(token)), countdown=countdown)
    )


def run_advance(*, run_id: uuid.UUID | str, token: str | None = None) -> None:
    """The worker's move: advance the run, and come back after the countdown the runner asks.

    A task whose token is no longer the run's belongs to a chain another one replaced (a nudge
    after a lost message, an admin's action): it does nothing. While it works, the run is marked
    busy until the task's time limit, so the watchdog leaves it alone.
    """
    if token is not None:
        busy_until = timezone.now() + timedelta(seconds=settings.WIZARD_STEP_TIME_LIMIT_S)
        if not SetupRun.objects.filter(pk=run_id, advance_token=token).update(
            next_advance_at=busy_until
        ):
            return
    countdown = runner.advance(run_id)
    if countdown is not None:
        enqueue_advance(run_id, countdown=countdown)
    elif token is not None:
        # Nothing to do now (the run rests, or another worker holds its step): due at once, so
        # the watchdog looks again if the run is still active and nobody holds it.
        SetupRun.objects.filter(pk=run_id, advance_token=token).update(
            next_advance_at=timezone.now()
        )


def run_mark_driven(*, run_id: uuid.UUID | str, margin_s: float = 0.0) -> None:
    """A process drives the run itself (setup_sso): busy until a step's time limit (and
    `margin_s`) from now, so the watchdog doesn't start a chain beside it; if the process dies,
    the run is due then. A driver that marks again only once `margin_s` has passed still starts
    every step at least a step's time limit before the mark runs out."""
    busy_s = settings.WIZARD_STEP_TIME_LIMIT_S + margin_s
    SetupRun.objects.filter(pk=run_id).update(
        next_advance_at=timezone.now() + timedelta(seconds=busy_s)
    )


def run_nudge(*, run_id: uuid.UUID | str) -> None:
    """Advance the run now, replacing its queued task (the work it waited for is done)."""
    enqueue_advance(run_id)


def _holds_live_claim(run: SetupRun) -> bool:
    return any(
        step.claimed_by
        and not runner.claim_is_stale(
            step.claimed_by, step.claimed_at, settings.WIZARD_STEP_CLAIM_LEASE_S
        )
        for step in run.steps.exclude(claimed_by="")
    )


def runs_nudge_stalled() -> list[uuid.UUID]:
    """Start a new chain for every active run whose next task is overdue by far and whose steps
    nobody holds: its task was lost (a broker restart drops queued messages, a killed host drops
    the ones it held). Guarded on the token read, so two watchdogs nudge a run once."""
    grace = timedelta(seconds=settings.WIZARD_RUN_STALL_GRACE_S)
    late = timezone.now() - grace
    stalled = SetupRun.objects.filter(status__in=RUN_WORKED_ON).filter(
        Q(next_advance_at__lt=late) | Q(next_advance_at__isnull=True, updated_at__lt=late)
    )
    nudged = []
    for run in stalled.order_by("next_advance_at")[: settings.WIZARD_RUN_NUDGE_BATCH]:
        if _holds_live_claim(run):
            continue
        with transaction.atomic():
            taken = SetupRun.objects.filter(
                pk=run.pk, advance_token=run.advance_token, next_advance_at=run.next_advance_at
            ).update(next_advance_at=timezone.now())
            if taken:
                enqueue_advance(run.pk)
                nudged.append(run.pk)
    return nudged
