"""The two moves every status change of a run or a step goes through, the worker's (runner.py)
and the admin's (admin_moves.py) alike: one UPDATE guarded on the status as it was read, with its
audit row in the same transaction (and the rows of the reads made since the last row written,
audit.reads_riding_along). 0 rows means someone else moved it first."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from provisioning.audit import AuditScope, reads_riding_along, record_state_change
from provisioning.models import AuditKind, SetupRun, StepRun

logger = logging.getLogger(__name__)


def worker_scope(run: SetupRun, worker: str, step_key: str = "") -> AuditScope:
    """Who moves, in the audit log, when a worker ("host:pid") does."""
    return AuditScope(
        actor_label=f"worker {worker}",
        actor_id=run.created_by_id,
        run_id=run.pk,
        step_key=step_key,
    )


def admin_scope(user: Any, run: SetupRun, step_key: str = "", actor_label: str = "") -> AuditScope:
    """Who moves, in the audit log, when an admin does (or a command or a schedule, named by
    `actor_label`, when nobody signed in did)."""
    if user is not None and getattr(user, "is_authenticated", False):
        return AuditScope(
            actor_label=user.get_username(), actor_id=user.pk, run_id=run.pk, step_key=step_key
        )
    return AuditScope(actor_label=actor_label or "command line", run_id=run.pk, step_key=step_key)


def move_run(
    run: SetupRun,
    to_status: str,
    scope: AuditScope,
    *,
    from_status: str | None = None,
    message: Any = "",
    **fields: Any,
) -> bool:
    """Move the run from `from_status` (the status it was read with, by default) to `to_status`,
    setting `fields`, in the caller's transaction or its own. The object follows when it moved."""
    old = run.status if from_status is None else from_status
    with reads_riding_along(), transaction.atomic():
        moved = SetupRun.objects.filter(pk=run.pk, status=old).update(
            status=to_status, updated_at=timezone.now(), **fields
        )
        if moved:
            record_state_change(
                scope,
                kind=AuditKind.RUN_STATE,
                old={"status": old},
                new={"status": to_status},
                message=message,
            )
    if moved:
        run.status = to_status
        for name, value in fields.items():
            setattr(run, name, value)
    return bool(moved)


def move_step(
    step: StepRun,
    to_status: str,
    scope: AuditScope,
    *,
    held_by: str = "",
    message: Any = "",
    **fields: Any,
) -> bool:
    """Move the step from the status it was read with to `to_status`, setting `fields`. Guarded on
    who holds it too: `held_by` is the worker whose claim the move ends (released with it), ""
    for an admin's move of a step no worker holds."""
    now = timezone.now()
    with reads_riding_along(), transaction.atomic():
        moved = StepRun.objects.filter(pk=step.pk, status=step.status, claimed_by=held_by).update(
            status=to_status, claimed_by="", claimed_at=None, updated_at=now, **fields
        )
        if moved:
            record_state_change(
                scope,
                kind=AuditKind.STEP_STATE,
                old={"status": step.status},
                new={"status": to_status},
                message=message,
            )
    if not moved:
        if held_by:
            logger.warning(
                "Run %s: step %s was taken over by another worker.", scope.run_id, step.key
            )
        return False
    step.status, step.claimed_by, step.claimed_at, step.updated_at = to_status, "", None, now
    for name, value in fields.items():
        setattr(step, name, value)
    return True
