"""The Celery app finds every task under the name it was first registered with: queued messages
and the beat schedule carry those names, so a task that moves keeps its name."""

from __future__ import annotations

from django.conf import settings

from wizard.celery import app

# Names that queued messages may carry (the tasks lived in wizard/tasks.py when they were sent).
SENT_NAMES = {
    "wizard.tasks.advance_run",
    "wizard.tasks.make_user_changes",
    "wizard.tasks.start_due_user_syncs",
    "wizard.tasks.test_connection",
    "wizard.tasks.read_sign_in_facts",
    "wizard.tasks.write_audit_export",
    "wizard.tasks.expire_audit_exports",
    "wizard.tasks.watch_sign_in",
    "wizard.tasks.expire_sign_in_readings",
}


def test_it_registers_every_task_under_its_first_name_and_every_beat_entry() -> None:
    # What the worker does at start: import the autodiscovered task modules.
    app.loader.import_default_modules()

    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert not SENT_NAMES - set(app.tasks)
    assert scheduled, "the beat schedule sends tasks"
    assert not scheduled - set(app.tasks)
