"""GET /healthz: whether the database, the broker and at least one worker are up, as JSON."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from kombu import Connection as BrokerConnection

from provisioning.models import WorkerHeartbeat

# A load balancer probes often: the broker check gives up after this, not after kombu's default.
BROKER_TIMEOUT_S = 3
# Error texts are cut to this length (they can be long, and the page is public).
DETAIL_CHARS = 200

Check = dict[str, str]


def _ok(detail: str) -> Check:
    return {"status": "ok", "detail": detail}


def _down(detail: str) -> Check:
    return {"status": "down", "detail": detail[:DETAIL_CHARS]}


def _check_database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:
        return _down(f"{type(error).__name__}: {error}")
    return _ok(connection.vendor)


def _check_broker() -> Check:
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    broker = BrokerConnection(
        settings.CELERY_BROKER_URL,
        transport_options=options,
        connect_timeout=BROKER_TIMEOUT_S,
    )
    try:
        broker.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT_S)
        transport = broker.transport_cls
        if transport == "filesystem":
            # The embedded broker is a folder: "up" means the worker and we can write there.
            for key in ("data_folder_in", "data_folder_out"):
                folder = Path(str(options[key]))
                if not folder.is_dir():
                    return _down(f"the broker folder {folder.name} does not exist")
    except Exception as error:
        # The URL may hold a password: name the error, never the URL.
        return _down(f"{type(error).__name__}: {error}")
    finally:
        broker.release()
    return _ok(str(transport))


def _check_worker() -> Check:
    stale = timedelta(seconds=settings.WIZARD_WORKER_HEARTBEAT_STALE_S)
    alive = WorkerHeartbeat.objects.filter(seen_at__gte=timezone.now() - stale).count()
    if not alive:
        return _down(
            f"no worker has reported in the last {settings.WIZARD_WORKER_HEARTBEAT_STALE_S} s"
        )
    return _ok(f"{alive} worker{'s' if alive != 1 else ''}")


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when every check is "ok", 503 otherwise; each check says why."""
    checks = {"database": _check_database(), "broker": _check_broker()}
    checks["worker"] = (
        _check_worker()
        if checks["database"]["status"] == "ok"
        else _down("unknown: the database is down")
    )
    healthy = all(check["status"] == "ok" for check in checks.values())
    return JsonResponse(checks, status=200 if healthy else 503)
