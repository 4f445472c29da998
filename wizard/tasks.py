"""Celery tasks (thin: load by id, call a service) and the worker's heartbeat and startup hooks."""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import shared_task
from celery.signals import after_setup_logger, worker_ready, worker_shutdown
from django.conf import settings
from django.db import connections
from django.utils import timezone

from provisioning.audit import RedactSecretsFilter
from wizard.services import connections as connection_services
from wizard.services import runs as run_services

logger = logging.getLogger(__name__)


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.WIZARD_STEP_SOFT_TIME_LIMIT_S,
    time_limit=settings.WIZARD_STEP_TIME_LIMIT_S,
)
def advance_run(run_id: str) -> None:
    run_services.run_advance(run_id=run_id)


def _write_heartbeat(hostname: str) -> None:
    from wizard.models import WorkerHeartbeat

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
            finally:
                # This thread's own connection: closed so it holds nothing between beats.
                connections.close_all()
            self.stopped.wait(settings.WIZARD_WORKER_HEARTBEAT_INTERVAL_S)


_heartbeat: _Heartbeat | None = None


@worker_ready.connect
def _on_worker_ready(sender: Any = None, **kwargs: Any) -> None:
    """Start the heartbeat, and nudge every run in progress: a run whose worker died while no
    message was left for it (a hard time limit, a lost broker) continues now."""
    from wizard.models import RunStatus, SetupRun

    global _heartbeat
    _heartbeat = _Heartbeat(getattr(sender, "hostname", "") or "celery")
    _heartbeat.thread.start()
    in_progress = SetupRun.objects.filter(
        status__in=[RunStatus.PENDING, RunStatus.RUNNING, RunStatus.ROLLING_BACK]
    ).values_list("pk", flat=True)
    for run_id in in_progress:
        advance_run.delay(str(run_id))
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


@shared_task(acks_late=True, reject_on_worker_lost=True)
def test_connection(connection_id: int) -> None:
    connection_services.connection_test(connection_id=connection_id)
