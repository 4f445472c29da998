"""Celery tasks (thin: load by id, call a service) and the worker's heartbeat and startup hooks.

Each task keeps the name it was first registered under, `wizard.tasks.<name>` (when it lived in
the web app): queued messages and the beat schedule (wizard/settings.py) carry that name."""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import shared_task
from celery.signals import after_setup_logger, worker_ready, worker_shutdown
from django.conf import settings
from django.db import connections
from django.utils import timezone

from provisioning.connections.sign_in_tests import connection_test
from provisioning.federation_watch import watch_notifications_resend
from provisioning.models import RUN_WORKED_ON, SetupRun, WorkerHeartbeat
from provisioning.redaction import RedactSecretsFilter
from provisioning.runs import chain as run_chain
from provisioning.services import audit_exports as audit_export_services
from provisioning.services import (
    federation_checks,
    federation_watch,
    sign_in_inspection,
    sign_in_watch,
)
from provisioning.services import user_changes as user_change_services
from provisioning.services import user_syncs as user_sync_services
from provisioning.user_changes.helpers import MAKE_USER_CHANGES_TASK

logger = logging.getLogger(__name__)


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.WIZARD_STEP_SOFT_TIME_LIMIT_S,
    time_limit=settings.WIZARD_STEP_TIME_LIMIT_S,
    name="wizard.tasks.advance_run",
)
def advance_run(run_id: str, token: str | None = None) -> None:
    run_chain.run_advance(run_id=run_id, token=token)


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.WIZARD_STEP_SOFT_TIME_LIMIT_S,
    time_limit=settings.WIZARD_STEP_TIME_LIMIT_S,
    name=MAKE_USER_CHANGES_TASK,
)
def make_user_changes(change_set_id: int) -> None:
    user_change_services.change_set_work(change_set_id=change_set_id)


def _write_heartbeat(hostname: str) -> None:
    WorkerHeartbeat.objects.update_or_create(
        hostname=hostname, defaults={"seen_at": timezone.now()}
    )


class _Heartbeat:
    """A thread in the worker's main process writing WorkerHeartbeat every few seconds."""

    def __init__(self, hostname: str) -> None:
        self.hostname = hostname
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="wizard-heartbeat", daemon=True)

    def _beat(self) -> None:
        while not self.stopped.is_set():
            try:
                _write_heartbeat(self.hostname)
            except Exception:
                logger.exception("Could not write the worker heartbeat.")
            try:
                # The watchdog: runs whose next task was lost continue.
                nudged = run_chain.runs_nudge_stalled()
                if nudged:
                    logger.warning("Nudged %d run(s) whose next task was overdue.", len(nudged))
            except Exception:
                logger.exception("Could not look for stalled runs.")
            finally:
                # This thread's own connection: closed so it holds nothing between beats.
                connections.close_all()
            self.stopped.wait(settings.WIZARD_WORKER_HEARTBEAT_INTERVAL_S)


_heartbeat: _Heartbeat | None = None


@worker_ready.connect
def _on_worker_ready(sender: Any = None, **kwargs: Any) -> None:
    """Start the heartbeat, and nudge every run in progress: a run whose worker died while no
    message was left for it (a hard time limit, a lost broker) continues now."""
    global _heartbeat
    _heartbeat = _Heartbeat(getattr(sender, "hostname", "") or "celery")
    _heartbeat.thread.start()
    in_progress = SetupRun.objects.filter(status__in=RUN_WORKED_ON).values_list("pk", flat=True)
    for run_id in in_progress:
        run_chain.run_nudge(run_id=run_id)
    connections.close_all()


@worker_shutdown.connect
def _on_worker_shutdown(**kwargs: Any) -> None:
    if _heartbeat is not None:
        _heartbeat.stopped.set()


@after_setup_logger.connect
def _redact_worker_logs(logger: logging.Logger, **kwargs: Any) -> None:
    """Celery replaces the root logger's handlers; give its handlers the secret-masking filter."""
    for handler in logger.handlers:
        handler.addFilter(RedactSecretsFilter())


@shared_task(acks_late=True, reject_on_worker_lost=True, name="wizard.tasks.start_due_user_syncs")
def start_due_user_syncs() -> None:
    """Celery beat sends this every WIZARD_SYNC_CHECK_INTERVAL_S."""
    user_sync_services.syncs_start_due()


@shared_task(acks_late=True, reject_on_worker_lost=True, name="wizard.tasks.test_connection")
def test_connection(connection_id: int) -> None:
    connection_test(connection_id=connection_id)


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.WIZARD_STEP_SOFT_TIME_LIMIT_S,
    time_limit=settings.WIZARD_STEP_TIME_LIMIT_S,
    name="wizard.tasks.read_sign_in_facts",
)
def read_sign_in_facts(reading_id: str, role_session_name: str) -> None:
    sign_in_inspection.sign_in_reading_run(
        reading_id=reading_id, role_session_name=role_session_name
    )


@shared_task(acks_late=True, reject_on_worker_lost=True, name="wizard.tasks.write_audit_export")
def write_audit_export(export_id: str) -> None:
    audit_export_services.export_write(export_id=export_id)


@shared_task(acks_late=True, reject_on_worker_lost=True, name="wizard.tasks.expire_audit_exports")
def expire_audit_exports() -> None:
    """Celery beat sends this every WIZARD_EXPORT_EXPIRY_CHECK_S."""
    audit_export_services.exports_expire()


@shared_task(acks_late=True, reject_on_worker_lost=True, name="wizard.tasks.watch_sign_in")
def watch_sign_in(reading_id: str) -> None:
    """One look at CloudTrail for a watched sign-in; the service enqueues the next."""
    sign_in_watch.sign_in_watch_look(reading_id=reading_id)


@shared_task(
    acks_late=True, reject_on_worker_lost=True, name="wizard.tasks.expire_sign_in_readings"
)
def expire_sign_in_readings() -> None:
    """Celery beat sends this every WIZARD_SIGN_IN_READING_EXPIRY_CHECK_S."""
    sign_in_watch.sign_in_readings_expire()


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.WIZARD_STEP_SOFT_TIME_LIMIT_S,
    time_limit=settings.WIZARD_STEP_TIME_LIMIT_S,
)
def run_federation_check(check_id: str) -> None:
    """Reads and judges one federation (read-only)."""
    federation_checks.federation_check_run(check_id=check_id)


@shared_task(
    acks_late=True, reject_on_worker_lost=True, name="wizard.tasks.start_due_federation_checks"
)
def start_due_federation_checks() -> None:
    """Celery beat sends this every WIZARD_WATCH_CHECK_INTERVAL_S: the watched federations whose
    check is due are checked (run_federation_check), and a notification a lost worker left
    unsent is sent again."""
    federation_watch.watches_check_due()
    watch_notifications_resend()


@shared_task(acks_late=True, reject_on_worker_lost=True, name="wizard.tasks.send_test_notification")
def send_test_notification(test_id: int) -> None:
    """The Notifications page's "Send a test notification"."""
    federation_watch.notifications_test_send(test_id=test_id)
