"""Issue 17's dashboard benchmark: the dashboard page with 1,000 runs, then with 10,000, most of
them the succeeded runs of hourly syncs (which the page folds to each sync's latest), every run
with four steps carrying plans and outputs of a few kilobytes (bulk-inserted).

Records dashboard: runs_small, runs_large, page_ms_small, page_ms_large, ratio (large / small,
target <= 2), queries, database, load_average. PostgreSQL only (SQLite reports skipped).
"""

from __future__ import annotations

import json
import os
from typing import Any

from bench.web_pages import (
    admin_client,
    bench_connections,
    load_average,
    median_ms,
    setup_django,
    sql,
)

SMALL = int(os.environ.get("BENCH_DASHBOARD_SMALL", "1000"))
LARGE = int(os.environ.get("BENCH_DASHBOARD_LARGE", "10000"))
SYNCS = 20
STEPS_PER_RUN = 4
# A plan or outputs of about this many characters, as a users step's are.
JSON_CHARS = 4000


def add_runs(count: int, syncs: list[Any], aws: Any, idp: Any, start: int) -> None:
    """`count` runs (every 50th in progress, every 50th failed, the rest succeeded sync runs)
    and their steps, in two INSERT … SELECTs."""
    sync_ids = "ARRAY[" + ",".join(f"'{sync.pk}'::uuid" for sync in syncs) + "]"
    sql(
        f"""
        INSERT INTO wizard_setuprun (id, idp, flow_key, flow_signature, mode, region,
            instance_alias, instance_id, inputs, review_plans, language, status, error,
            aws_connection_id, idp_connection_id, sync_id, created_at, updated_at)
        SELECT md5('run' || g)::uuid, 'entra', 'entra_users', '', 'sandbox', 'ap-northeast-1',
            'demo', 'i-1', '{{}}', false, 'en',
            CASE WHEN mod(g, 50) = 0 THEN 'running' WHEN mod(g, 50) = 1 THEN 'failed'
                 ELSE 'succeeded' END,
            '{{}}', %s, %s,
            CASE WHEN mod(g, 50) > 1 THEN ({sync_ids})[1 + mod(g, {len(syncs)})] END,
            now() - make_interval(secs => 100000 - g), now()
        FROM generate_series(%s, %s) AS g
        """,
        [aws.pk, idp.pk, start, start + count - 1],
    )
    blob = json.dumps({"change_set": 1, "summary": "x" * JSON_CHARS})
    sql(
        """
        INSERT INTO wizard_steprun (run_id, key, position, status, attempts, inputs, plan,
            outputs, created_resources, error, secret_ciphertext, claimed_by, updated_at)
        SELECT md5('run' || g)::uuid, (ARRAY['preflight', 'group_users', 'check', 'tags'])[p + 1],
            p, 'succeeded', 1, '{}', %s, %s, '[]', '{}', '', '', now()
        FROM generate_series(%s, %s) AS g, generate_series(0, %s) AS p
        """,
        [blob, blob, start, start + count - 1, STEPS_PER_RUN - 1],
    )
    sql("ANALYZE wizard_setuprun")
    sql("ANALYZE wizard_steprun")


def main() -> dict[str, Any]:
    vendor = setup_django()
    if vendor != "postgresql":
        return {"dashboard": {"skipped": f"needs PostgreSQL, ran on {vendor}"}}
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from provisioning.models import UserSync

    aws, idp = bench_connections()
    syncs = [
        UserSync.objects.create(
            idp="entra",
            region="ap-northeast-1",
            instance_id="i-1",
            aws_connection=aws,
            idp_connection=idp,
            every_hours=1,
        )
        for _ in range(SYNCS)
    ]
    client = admin_client()
    url = reverse("dashboard")

    def page() -> None:
        response = client.get(url)
        assert response.status_code == 200, response.status_code

    add_runs(SMALL, syncs, aws, idp, start=1)
    small = median_ms(page)
    add_runs(LARGE - SMALL, syncs, aws, idp, start=SMALL + 1)
    large = median_ms(page)
    with CaptureQueriesContext(connection) as queries:
        page()
    return {
        "dashboard": {
            "runs_small": SMALL,
            "runs_large": LARGE,
            "page_ms_small": small,
            "page_ms_large": large,
            "ratio": round(large / small, 2),
            "queries": len(queries),
            "database": vendor,
            "load_average": load_average(),
        }
    }


if __name__ == "__main__":
    print(json.dumps(main()))
