"""The workers' side of a users step: asking helpers to take a change set's changes, and what one
helper does (its share of the changes, then again if changes still wait)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation

from provisioning import runner
from provisioning.models import UserChangeSet
from provisioning.user_changes.work import work_on
from wizard.services import runs as run_services

logger = logging.getLogger(__name__)


def _send(change_set_id: int, count: int, countdown: float = 0.0) -> None:
    # wizard.tasks imports this module for its thin task bodies.
    from wizard.tasks import make_user_changes

    def send() -> None:
        for _ in range(count):
            make_user_changes.apply_async((change_set_id,), countdown=countdown)

    transaction.on_commit(send)


def change_set_ask_helpers(*, change_set_id: int, count: int) -> None:
    """Send `count` helper tasks for the change set (after the current transaction commits)."""
    if count <= 0:
        return
    UserChangeSet.objects.filter(pk=change_set_id).update(helpers_sent_at=timezone.now())
    _send(change_set_id, count)


def change_set_work(*, change_set_id: int) -> None:
    """One helper's turn: make changes for a while, then come back if changes still wait (at the
    back of the queue, so other runs get their turn); when none is left, wake the run up so the
    step finishes at once instead of at its next poll."""
    change_set = (
        UserChangeSet.objects.select_related("step_run__run").filter(pk=change_set_id).first()
    )
    if change_set is None or change_set.finished_at is not None:
        return
    run = change_set.step_run.run
    worker = runner.worker_identity()
    with translation.override(run.language):
        ctx = runner.step_context(change_set.step_run_id, worker)
        connect = ctx.aws("connect")
        done = work_on(
            change_set,
            connect=connect,
            worker=worker,
            budget_s=settings.WIZARD_USER_CHANGES_TASK_S,
        )
    if done.run_stopped:
        return
    if done.waiting:
        _send(change_set_id, 1, countdown=min(done.wait_s, settings.WIZARD_MAX_COUNTDOWN_S))
    elif done.made:
        run_services.run_nudge(run_id=run.pk)
