"""The workers' side of a users step: asking helpers to take a change set's changes, and what one
helper does (its share of the changes, then again if changes still wait)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.utils import translation

from provisioning.models import UserChangeSet
from provisioning.runs import chain as run_chain
from provisioning.runs import runner
from provisioning.user_changes.helpers import send_helpers
from provisioning.user_changes.work import work_on

logger = logging.getLogger(__name__)


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
        send_helpers(change_set_id, 1, countdown=min(done.wait_s, settings.WIZARD_MAX_COUNTDOWN_S))
    elif done.made:
        run_chain.run_nudge(run_id=run.pk)
