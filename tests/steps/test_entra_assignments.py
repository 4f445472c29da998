"""entra_assignments against the sandbox tenant: how it reads the people of nested groups."""

from __future__ import annotations

import uuid

from provisioning.audit import AuditScope
from provisioning.context import StepContext
from provisioning.directory_picker import read_choice
from provisioning.models import Cloud, Connection
from provisioning.steps.entra_assignments import resolve
from sandbox.directory import AGENTS_GROUP, CONTACT_CENTRE_GROUP, SUPERVISORS_GROUP
from sandbox.server import Sandbox
from tests.steps import aws_step_runs

aws_connection = aws_step_runs.aws_connection


def test_it_lists_who_is_only_in_a_nested_group_with_graphs_advanced_query(
    sandbox: Sandbox, aws_connection: Connection
) -> None:
    # nested_groups = "skip" reads each inner group's users through
    # /transitiveMembers/microsoft.graph.user, which Graph serves only with ConsistencyLevel:
    # eventual and $count=true (group-list-transitivemembers).
    entra = Connection.objects.get(cloud=Cloud.ENTRA, is_sandbox=True)
    inputs = {"principals_text": CONTACT_CENTRE_GROUP, "nested_groups": "skip"}
    ctx = StepContext(
        run_id=uuid.uuid4(),
        step_key="entra_assignments",
        region="ap-northeast-1",
        instance_id="",
        mode="sandbox",
        inputs=inputs,
        outputs={},
        audit=AuditScope(actor_label="tests"),
        idp_connection_id=entra.pk,
    )

    result = resolve(ctx, ctx.graph(), read_choice(inputs))

    tenant = sandbox.apps["entra"].tenant
    for group in (AGENTS_GROUP, SUPERVISORS_GROUP):
        group_id = next(g["id"] for g in tenant.groups.values() if g["displayName"] == group)
        expected = sorted(
            tenant.users[i]["userPrincipalName"]
            for i in tenant.transitive_members(group_id)
            if i in tenant.users
        )
        assert sorted(result.nested_only[group]) == expected
