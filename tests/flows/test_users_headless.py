"""`setup_sso examples/entra-sandbox-users.toml` after the Entra setup: everyone in the groups
gets a Connect user with the mapped profiles, and a second run changes nothing in any cloud."""

from __future__ import annotations

import re
from pathlib import Path

from sandbox.directory import CONTACT_CENTRE_GROUP
from sandbox.server import Sandbox
from tests.flows.entra_runs import cloud_writes, entra_sandbox, plan_file, setup_sso  # noqa: F401
from tests.sandbox.aws_clients import aws_client
from wizard.models import RunStatus, UserChange

USERS_PLAN = Path(__file__).resolve().parents[2] / "examples" / "entra-sandbox-users.toml"


def test_it_adds_the_groups_users_headless_and_a_second_run_changes_nothing(
    entra_sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
) -> None:
    setup_path = plan_file(tmp_path)
    setup, output = setup_sso(setup_path)
    assert setup.status == RunStatus.SUCCEEDED, output
    users_path = tmp_path / "users.toml"
    users_path.write_text(
        USERS_PLAN.read_text().replace(
            'alias = "entra-sandbox"', f'alias = "{setup.instance_alias}"'
        )
    )

    first, first_output = setup_sso(users_path)
    second, second_output = setup_sso(users_path)

    assert first.status == RunStatus.SUCCEEDED, first_output
    tenant = entra_sandbox.apps["entra"].tenant
    group_id = next(
        g["id"] for g in tenant.groups.values() if g["displayName"] == CONTACT_CENTRE_GROUP
    )
    members = [i for i in tenant.transitive_members(group_id) if i in tenant.users]
    created = UserChange.objects.filter(change_set__step_run__run=first, outcome="created").count()
    # Everyone but the three seeded people Connect can't take (and the admins the setup made).
    assert created == len(members) - 3
    assert re.search(rf"create connect_users {created} users to create", first_output)
    # The plan says who it refused and why, not only that the run succeeded.
    refused = [line for line in first_output.splitlines() if line.startswith("  refused ")]
    assert len(refused) == 3, first_output
    assert all(len(line.split(": ", 1)[1]) > 10 for line in refused), refused
    listed = aws_client(entra_sandbox, "connect").list_users(
        InstanceId=first.instance_id, MaxResults=1000
    )["UserSummaryList"]
    assert len(listed) >= created
    assert second.status == RunStatus.SUCCEEDED, second_output
    assert "group_users: nothing to do" in second_output
    assert cloud_writes(second) == []
