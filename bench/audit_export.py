"""Issue 17's export benchmark: all 1,000,000 audit rows exported as CSV, written by a Celery
worker as the page's Export button asks for it, while 100 pollers watch a run page through
gunicorn; their p99 during the export against their p99 before it.

Records audit_export: rows (the 1,000,000 and the sign-in's own), rows_written (the CSV's data
rows), complete (the export finished and holds every row), export_s, p99_ms_idle,
p99_ms_during, p99_ratio (target <= 2), broker, database, load_average. PostgreSQL only (SQLite
reports skipped).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.audit_log import ROWS, fill_audit_log
from bench.status_fragment import (
    REPO,
    _free_port,
    make_users_run,
    p99,
    p99_of_pollers,
    poll_latencies,
    start_server,
    status_url,
)
from bench.web_pages import admin_client, bench_connections, load_average, setup_django

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
EXPORT_TIMEOUT_S = 600
WORKER_READY_TIMEOUT_S = 120
IDLE_POLL_S = 20.0
WARM_UP_S = 10.0


def _redis() -> str | None:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).flushdb()
    except Exception:  # noqa: BLE001 - no Redis here: the filesystem broker instead
        return None
    return REDIS_URL


def start_worker(log: Path) -> subprocess.Popen[bytes]:
    from provisioning.models import WorkerHeartbeat

    worker = subprocess.Popen(  # noqa: S603 - our own interpreter and app
        [
            str(Path(sys.executable).parent / "celery"),
            *("-A", "wizard", "worker", "--pool", "prefork", "--concurrency", "1"),
            *("--loglevel", "WARNING", "--without-gossip", "--without-mingle"),
            *("--hostname", "bench-export@%h"),
        ],
        cwd=REPO,
        env=os.environ.copy(),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
    while not WorkerHeartbeat.objects.filter(hostname__startswith="bench-export@").exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not start; see {log}")
        time.sleep(0.5)
    return worker


def main() -> dict[str, Any]:
    broker = _redis()
    if broker:
        os.environ["REDIS_URL"] = broker
    state = Path(tempfile.mkdtemp(prefix="bench-export-"))
    os.environ["WIZARD_EXPORT_DIR"] = str(state / "exports")
    os.environ["WIZARD_BROKER_DIR"] = str(state / "broker")
    vendor = setup_django()
    if vendor != "postgresql":
        return {"audit_export": {"skipped": f"needs PostgreSQL, ran on {vendor}"}}
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.db import connection, transaction

    from provisioning.models import AuditEvent, AuditExport
    from provisioning.services import audit_exports

    fill_audit_log(ROWS)
    aws, idp = bench_connections()
    run = make_users_run(200, aws, idp)
    client = admin_client()
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    url = status_url(client, run)
    connection.close()
    port = _free_port()
    server = start_server(port)
    worker = start_worker(state / "worker.log")
    try:
        base = f"http://127.0.0.1:{port}"
        p99_of_pollers(base + url, cookie, for_s=WARM_UP_S)  # untimed
        p99_idle, _ = p99_of_pollers(base + url, cookie, for_s=IDLE_POLL_S)
        # Signing in wrote audit rows too: the export has every row there is now.
        rows = AuditEvent.objects.count()
        started = time.monotonic()
        with transaction.atomic():
            export = audit_exports.export_request(
                user=User.objects.get(username="bench-admin"), file_format="csv", query={}
            )
        during: list[float] = []
        while time.monotonic() - started < EXPORT_TIMEOUT_S:
            during += poll_latencies(base + url, cookie, for_s=10.0)
            export.refresh_from_db()
            if export.status in {"ready", "failed"}:
                break
        export_s = round(time.monotonic() - started, 1)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
        server.terminate()
        server.wait(timeout=30)
    export = AuditExport.objects.get(pk=export.pk)
    rows_written = 0
    path = audit_exports.export_path(export)
    if path.exists():
        with path.open(encoding="utf-8-sig", newline="") as file:
            rows_written = sum(1 for _ in csv.reader(file)) - 1
    p99_during = p99(during)
    return {
        "audit_export": {
            "rows": rows,
            "rows_written": rows_written,
            "complete": export.status == "ready" and rows_written == rows,
            "export_s": export_s,
            "p99_ms_idle": p99_idle,
            "p99_ms_during": p99_during,
            "p99_ratio": round(p99_during / p99_idle, 2),
            "broker": "redis" if broker else "filesystem",
            "database": vendor,
            "load_average": load_average(),
        }
    }


if __name__ == "__main__":
    print(json.dumps(main()))
