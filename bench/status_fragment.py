"""Issue 17's status fragment benchmark: 100 pollers ask for a users run's status as the run page
does (htmx, every 1.5 s) through gunicorn, for a run of 200 changes and one of 20,000 (half of
each done, bulk-inserted), and the p99 of their answers is compared.

Records status_fragment: p99_ms_small, p99_ms_large, ratio (large / small, target <= 1.3),
fragment_bytes, page_bytes, size_ratio (fragment / page, target <= 0.2), queries (of one
fragment), polls, database, load_average. PostgreSQL only (SQLite reports skipped).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.web_pages import admin_client, bench_connections, load_average, setup_django, sql

REPO = Path(__file__).resolve().parents[1]
SMALL = 200
LARGE = int(os.environ.get("BENCH_FRAGMENT_LARGE", "20000"))
POLLERS = int(os.environ.get("BENCH_POLLERS", "100"))
# The run page's hx-trigger (templates/run_detail.html).
POLL_INTERVAL_S = 1.5
POLL_FOR_S = float(os.environ.get("BENCH_POLL_FOR_S", "20"))
REQUEST_TIMEOUT_S = 60
WARM_UP_S = 5.0
SERVER_START_TIMEOUT_S = 60


def make_users_run(changes: int, aws: Any, idp: Any) -> Any:
    """A running users run whose group_users step applies a change set of `changes` creations,
    the first half done."""
    from django.utils import timezone

    from provisioning.models import SetupRun, StepRun, UserChangeSet

    run = SetupRun.objects.create(
        idp="entra",
        flow_key="entra_users",
        region="ap-northeast-1",
        instance_id="i-1",
        status="running",
        aws_connection=aws,
        idp_connection=idp,
    )
    StepRun.objects.create(run=run, key="preflight", position=0, status="succeeded")
    step = StepRun.objects.create(run=run, key="group_users", position=1, status="applying")
    change_set = UserChangeSet.objects.create(
        step_run=step,
        instance_id="i-1",
        counts={"create": changes},
        users_quota=100000,
        rate={"per_second": 2.0, "burst": 5, "source": "service_quotas"},
        dispatched_at=timezone.now(),
    )
    step.plan = {"change_set": change_set.pk, "needs_confirmation": False}
    step.save(update_fields=["plan"])
    sql(
        """
        INSERT INTO wizard_userchange (change_set_id, position, action, username, details,
            user_id, status, outcome, error, attempts, claimed_by, claimed_at, finished_at)
        SELECT %s, g, 'create', 'agent' || g || '@example.com',
            jsonb_build_object('first_name', 'Agent', 'last_name', g::text,
                'groups', jsonb_build_array('Contact centre')),
            CASE WHEN g <= %s THEN 'u-' || g ELSE '' END,
            CASE WHEN g <= %s THEN 'done' ELSE 'pending' END,
            CASE WHEN g <= %s THEN 'created' ELSE '' END,
            '{}', CASE WHEN g <= %s THEN 1 ELSE 0 END,
            CASE WHEN g <= %s THEN 'worker@bench' ELSE '' END,
            CASE WHEN g <= %s THEN now() END, CASE WHEN g <= %s THEN now() END
        FROM generate_series(1, %s) AS g
        """,
        [change_set.pk] + [changes // 2] * 7 + [changes],
    )
    sql("ANALYZE wizard_userchange")
    return run


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(port: int) -> subprocess.Popen[bytes]:
    from wizard.management.commands.serve import gunicorn_arguments

    server = subprocess.Popen(  # noqa: S603 - our own interpreter and app
        [
            sys.executable,
            "-m",
            "gunicorn",
            "wizard.wsgi:application",
            *gunicorn_arguments(f"127.0.0.1:{port}"),
        ],
        cwd=REPO,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=5)  # noqa: S310
            return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise RuntimeError("gunicorn did not start")


def poll(url: str, cookie: str, stop_at: float, latencies: list[float]) -> None:
    """One browser tab: ask for the status as htmx does, wait the interval, ask again, until
    `stop_at`."""
    request = urllib.request.Request(  # noqa: S310 - our own server
        url, headers={"Cookie": cookie, "HX-Request": "true", "HX-Target": "run-status"}
    )
    while time.monotonic() < stop_at:
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:  # noqa: S310
            response.read()
        latencies.append((time.perf_counter() - start) * 1000)
        time.sleep(POLL_INTERVAL_S)


def status_url(client: Any, run: Any) -> str:
    """The URL the run page polls, with the step stamps the page shows (as hx-include sends
    them)."""
    from django.urls import reverse

    page = client.get(reverse("run_detail", args=[run.pk])).content.decode()
    seen = re.findall(r'class="step-seen" name="seen" value="([^"]+)"', page)
    return reverse("run_status", args=[run.pk]) + "?" + urlencode([("seen", s) for s in seen])


def poll_latencies(url: str, cookie: str, for_s: float = 0.0) -> list[float]:
    """Every answer's time in ms of POLLERS tabs polling `url` for `for_s` (or POLL_FOR_S)."""
    latencies: list[float] = []
    stop_at = time.monotonic() + (for_s or POLL_FOR_S)
    threads = [
        threading.Thread(target=poll, args=(url, cookie, stop_at, latencies))
        for _ in range(POLLERS)
    ]
    for index, thread in enumerate(threads):
        thread.start()
        # Tabs opened over one interval, not all in the same instant.
        time.sleep(POLL_INTERVAL_S / POLLERS * (index % 2))
    for thread in threads:
        thread.join()
    return latencies


def p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return round(ordered[max(0, int(len(ordered) * 0.99) - 1)], 1)


def p99_of_pollers(url: str, cookie: str, for_s: float = 0.0) -> tuple[float, int]:
    latencies = poll_latencies(url, cookie, for_s)
    return p99(latencies), len(latencies)


def main() -> dict[str, Any]:
    vendor = setup_django()
    if vendor != "postgresql":
        return {"status_fragment": {"skipped": f"needs PostgreSQL, ran on {vendor}"}}
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    aws, idp = bench_connections()
    small = make_users_run(SMALL, aws, idp)
    large = make_users_run(LARGE, aws, idp)
    client = admin_client()
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    page_bytes = len(client.get(reverse("run_detail", args=[large.pk])).content)
    small_url, large_url = status_url(client, small), status_url(client, large)
    with CaptureQueriesContext(connection) as queries:
        fragment = client.get(large_url, headers={"HX-Request": "true"})
    assert fragment.status_code == 200, fragment.status_code
    connection.close()
    port = _free_port()
    server = start_server(port)
    try:
        base = f"http://127.0.0.1:{port}"
        # Warm the workers up (imports, connections, template caches), untimed.
        p99_of_pollers(base + small_url, cookie, for_s=WARM_UP_S)
        p99_small, polls_small = p99_of_pollers(base + small_url, cookie)
        p99_large, polls_large = p99_of_pollers(base + large_url, cookie)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {
        "status_fragment": {
            "changes_small": SMALL,
            "changes_large": LARGE,
            "pollers": POLLERS,
            "p99_ms_small": p99_small,
            "p99_ms_large": p99_large,
            "ratio": round(p99_large / p99_small, 2),
            "fragment_bytes": len(fragment.content),
            "page_bytes": page_bytes,
            "size_ratio": round(len(fragment.content) / page_bytes, 3),
            "queries": len(queries),
            "polls": polls_small + polls_large,
            "database": vendor,
            "load_average": load_average(),
        }
    }


if __name__ == "__main__":
    print(json.dumps(main()))
