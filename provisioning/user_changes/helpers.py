"""Asking helper workers to take a change set's changes.

The engine sends the task by its registered name through Celery's current app: the task's body
(provisioning/tasks.py registers it under this same name, and a test checks that it does) imports
the services that import this module."""

from __future__ import annotations

from celery import current_app
from django.db import transaction
from django.utils import timezone

from provisioning.models import UserChangeSet

MAKE_USER_CHANGES_TASK = "wizard.tasks.make_user_changes"


def send_helpers(change_set_id: int, count: int, countdown: float = 0.0) -> None:
    """Send `count` helper tasks once the current transaction commits."""

    def send() -> None:
        for _ in range(count):
            current_app.send_task(
                MAKE_USER_CHANGES_TASK, args=(change_set_id,), countdown=countdown
            )

    transaction.on_commit(send)


def change_set_ask_helpers(*, change_set_id: int, count: int) -> None:
    """Send `count` helper tasks for the change set (after the current transaction commits)."""
    if count <= 0:
        return
    UserChangeSet.objects.filter(pk=change_set_id).update(helpers_sent_at=timezone.now())
    send_helpers(change_set_id, count)
