"""okta_assignments' picker directory against the sandbox org: each group with its member count."""

from __future__ import annotations

import uuid

from provisioning.audit import AuditScope
from provisioning.connections.sandbox_registration import SANDBOX_NAMES
from provisioning.models import AuditEvent, AuditKind, Cloud, Connection
from provisioning.okta.client import okta_client
from provisioning.steps import okta_assignments
from sandbox.server import Sandbox
from tests.steps import aws_step_runs

aws_connection = aws_step_runs.aws_connection


def test_it_counts_each_groups_members_from_the_listings_stats(
    aws_connection: Connection, sandbox: Sandbox
) -> None:
    """The count comes with the groups listing (`_embedded.stats.usersCount`, expand=stats): no
    member listing per group, which an org of many groups would pay for on every picker."""
    org = sandbox.apps["okta"].org
    agents = [user for user in org.users.values() if ".agent" in user.login][:3]
    group = org.add_group(f"Okta picker {uuid.uuid4().hex[:6]}", "test group")
    group.member_ids = [user.id for user in agents]
    connection = Connection.objects.get(cloud=Cloud.OKTA, name=SANDBOX_NAMES[Cloud.OKTA])
    client = okta_client(connection, audit=AuditScope(actor_label="okta_assignments tests"))

    directory = okta_assignments.read_directory(client)

    offered = next(g for g in directory["groups"] if g["id"] == group.id)
    assert offered["member_count"] == 3
    calls = AuditEvent.objects.filter(kind=AuditKind.CALL_STARTED, cloud=Cloud.OKTA)
    assert sorted(calls.values_list("operation", flat=True)) == [
        "GET /api/v1/groups",
        "GET /api/v1/users",
    ]
