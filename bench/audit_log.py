"""Issue 17's audit log benchmark: 1,000,000 audit rows (bulk-inserted), then the log page's
first page, a page 950,000 rows deep, and an operation filter that matches nothing, each the
median of several requests through Django's full stack as a signed-in admin.

Records audit_log: rows, first_page_ms, deep_page_ms, ratio (deep / first, target <= 2),
no_match_filter_ms, no_match_ratio (no match / first, target <= 2), database, load_average.
PostgreSQL only: the figures are about its plans (SQLite reports skipped).
"""

from __future__ import annotations

import json
import os
from typing import Any

from bench.web_pages import admin_client, load_average, median_ms, setup_django, sql

ROWS = int(os.environ.get("BENCH_AUDIT_ROWS", "1000000"))
DEEP = int(ROWS * 0.95)
# Operations the rows carry, as a busy site's log has them; the no-match filter names none.
OPERATIONS = [
    "CreateUser",
    "DescribeUser",
    "ListUsers",
    "UpdateUserSecurityProfiles",
    "DeleteUser",
    "CreateInstance",
    "DescribeInstance",
    "ListSecurityProfiles",
    "ListRoutingProfiles",
    "CreateSAMLProvider",
    "GetSAMLProvider",
    "CreateRole",
    "GetRole",
    "applications.create",
    "servicePrincipals.get",
    "groups.members.list",
    "users.list",
    "apps.create",
    "groups.list",
    "users.get",
]
NO_MATCH = "NoSuchOperationAnywhere"


def fill_audit_log(rows: int) -> None:
    """`rows` audit rows one second apart, newest now, in one INSERT … SELECT."""
    operations = "ARRAY[" + ",".join(f"'{name}'" for name in OPERATIONS) + "]"
    sql(
        f"""
        INSERT INTO wizard_auditevent (at, kind, actor_label, step_key, cloud, service,
            operation, outcome, error_code, duration_ms, request, response, old_value,
            new_value, message, run_id)
        SELECT now() - make_interval(secs => g), 'call_finished',
            (ARRAY['worker@host-a', 'worker@host-b', 'admin', 'alice'])[1 + mod(g, 4)],
            'group_users', (ARRAY['aws', 'entra', 'okta'])[1 + mod(g, 3)], 'connect',
            ({operations})[1 + mod(g, {len(OPERATIONS)})],
            CASE WHEN mod(g, 50) = 0 THEN 'error' ELSE 'ok' END, '', mod(g, 900),
            '{{"InstanceId": "i-1"}}', '{{}}', '{{}}', '{{}}', '',
            md5((g / 2000)::text)::uuid
        FROM generate_series(1, %s) AS g
        """,
        [rows],
    )
    sql("ANALYZE wizard_auditevent")


def deep_cursor(depth: int) -> str:
    from provisioning.models import AuditEvent
    from wizard.selectors.audit_log import Cursor

    row = AuditEvent.objects.order_by("-at", "-id").only("at", "id")[depth]
    return str(Cursor.of(row))


def main() -> dict[str, Any]:
    vendor = setup_django()
    if vendor != "postgresql":
        return {"audit_log": {"skipped": f"needs PostgreSQL, ran on {vendor}"}}
    from django.urls import reverse

    fill_audit_log(ROWS)
    client = admin_client()
    url = reverse("audit_log")
    cursor = deep_cursor(DEEP)

    def page(**query: str) -> None:
        response = client.get(url, query)
        assert response.status_code == 200, response.status_code

    first = median_ms(page)
    deep = median_ms(lambda: page(older=cursor))
    no_match = median_ms(lambda: page(operation=NO_MATCH))
    return {
        "audit_log": {
            "rows": ROWS,
            "depth": DEEP,
            "first_page_ms": first,
            "deep_page_ms": deep,
            "ratio": round(deep / first, 2),
            "no_match_filter_ms": no_match,
            "no_match_ratio": round(no_match / first, 2),
            "database": vendor,
            "load_average": load_average(),
        }
    }


if __name__ == "__main__":
    print(json.dumps(main()))
