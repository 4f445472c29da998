"""GET /healthz says whether the database, the broker and a worker are up, without a login."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from unittest import mock

import pytest
from django.utils import timezone

from provisioning.models import WorkerHeartbeat

pytestmark = pytest.mark.django_db


@pytest.fixture
def a_day_later() -> Iterator[datetime]:
    """The test session's own Celery worker writes a heartbeat of its own (to this database, and
    visible to this test whenever it runs): the health check is read a day later, so only the
    heartbeats a test writes at that time count."""
    later = timezone.now() + timedelta(days=1)
    with mock.patch("django.utils.timezone.now", return_value=later):
        yield later


def _statuses(response) -> dict[str, str]:
    return {name: check["status"] for name, check in response.json().items()}


def test_it_is_healthy_when_everything_is_up_and_needs_no_login(
    client, settings, tmp_path, a_day_later: datetime
) -> None:
    if not settings.REDIS_URL:
        # The embedded broker is a pair of folders; `make run` creates them.
        settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
            **settings.CELERY_BROKER_TRANSPORT_OPTIONS,
            "data_folder_in": str(tmp_path),
            "data_folder_out": str(tmp_path),
        }
    WorkerHeartbeat.objects.create(hostname="celery@a", seen_at=a_day_later)

    response = client.get("/healthz")

    assert response.status_code == 200, response.json()
    assert _statuses(response) == {"database": "ok", "broker": "ok", "worker": "ok"}
    assert response.json()["worker"]["detail"] == "1 worker"


def test_it_reports_the_worker_down_without_a_recent_heartbeat(
    client, settings, a_day_later: datetime
) -> None:
    stale = a_day_later - timedelta(seconds=settings.WIZARD_WORKER_HEARTBEAT_STALE_S + 1)
    WorkerHeartbeat.objects.create(hostname="celery@a", seen_at=stale)

    response = client.get("/healthz")

    assert response.status_code == 503
    limit = settings.WIZARD_WORKER_HEARTBEAT_STALE_S
    assert response.json()["worker"] == {
        "status": "down",
        "detail": f"no worker has reported in the last {limit} s",
    }


def test_it_reports_an_unreachable_broker_down_without_showing_its_url(client, settings) -> None:
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    settings.CELERY_BROKER_URL = "redis://:hunter2-password@127.0.0.1:9/0"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    WorkerHeartbeat.objects.create(hostname="celery@a", seen_at=timezone.now())

    response = client.get("/healthz")

    assert response.status_code == 503
    broker = response.json()["broker"]
    assert broker["status"] == "down"
    assert "hunter2" not in broker["detail"]


def test_it_reports_a_missing_broker_folder(client, settings, tmp_path) -> None:
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(tmp_path / "missing"),
        "data_folder_out": str(tmp_path / "missing"),
    }

    response = client.get("/healthz")

    assert response.json()["broker"] == {
        "status": "down",
        "detail": "the broker folder missing does not exist",
    }
