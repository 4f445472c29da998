"""`setup_sso examples/entra-sandbox-users.toml` after the Entra setup: everyone in the groups
gets a Connect user with the mapped profiles, and a second run changes nothing in any cloud."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import translation
from msgraph.generated.models.app_role_assignment import AppRoleAssignment

from provisioning.messages import render
from provisioning.models import AuditEvent, AuditKind, RunStatus, SetupRun, UserChange
from provisioning.runs.admin_moves import run_rollback, step_submit_inputs
from provisioning.services.user_syncs import sync_create, sync_start, users_run_create
from provisioning.steps.sign_in_test import sandbox_sign_in
from provisioning.user_changes.sources import managed_usernames
from sandbox.directory import ADMINS_GROUP, AGENTS_GROUP, CONTACT_CENTRE_GROUP, SUPERVISORS_GROUP
from sandbox.server import Sandbox
from tests.flows import user_runs
from tests.flows.entra_runs import (  # noqa: F401
    cloud_writes,
    entra_sandbox,
    plan_file,
    setup_sso,
    step_context,
)
from tests.flows.user_runs import drive, plan_rows
from tests.sandbox.aws_clients import aws_client
from tests.sandbox.entra_graph import add_member, graph_client, remove_member, run

directory_admin = user_runs.directory_admin
AGENT = {"security_profiles": ["Agent"], "routing_profile": "Basic Routing Profile"}
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
    # The one definition of "managed", as the headless path's plan used it: everyone the first
    # run made, and nobody the SSO setup made.
    change_set = UserChange.objects.filter(change_set__step_run__run=second).first().change_set
    managed = managed_usernames(
        instance_id=second.instance_id,
        group_ids=change_set.group_ids,
        exclude_step_run_id=change_set.step_run_id,
    )
    made = UserChange.objects.filter(change_set__step_run__run=first, outcome="created")
    assert set(managed) >= set(made.values_list("username", flat=True))
    rows = list(UserChange.objects.filter(change_set=change_set))
    assert {row.username for row in rows if row.details.get("managed")} == set(managed) & {
        row.username for row in rows
    }
    setup_made = UserChange.objects.filter(change_set__step_run__run=setup, outcome="created")
    assert setup_made.exists()
    assert not set(managed) & set(setup_made.values_list("username", flat=True))
    assert cloud_writes(second) == []


def test_a_sync_keeps_the_setups_admins_and_deletes_only_who_left_every_source(
    entra_sandbox: Sandbox,  # noqa: F811
    directory_admin: Any,
    tmp_path: Path,
) -> None:
    admin, setup = _admin_and_setup("sync-admin", tmp_path)
    tenant = entra_sandbox.apps["entra"].tenant
    admins = sorted(upn for upn in _upns(tenant, ADMINS_GROUP) if ".admin" in upn)
    agents = sorted(upn for upn in _upns(tenant, AGENTS_GROUP) if ".agent0" in upn)[:3]
    by_upn = {user["userPrincipalName"]: user["id"] for user in tenant.users.values()}
    # A new group, filled the way an admin fills one: through Graph.
    group_id = tenant.add_group(f"Sync {uuid.uuid4().hex[:6]}", [])
    for upn in [*agents, admins[0]]:
        run(lambda upn=upn: add_member(directory_admin, group_id, by_upn[upn]))
    connect = aws_client(entra_sandbox, "connect")

    # "Add Connect users from groups" in the browser, then a sync that deletes who left.
    users = users_run_create(user=admin, setup_id=setup.pk)
    assert drive(users).status == RunStatus.WAITING
    step_submit_inputs(
        user=admin,
        run_id=users.pk,
        step_key="group_users",
        inputs={"groups": [{"group": group_id, **AGENT}], "username_source": "userprincipalname"},
        enqueue=False,
    )
    assert drive(users).status == RunStatus.SUCCEEDED
    sync = sync_create(user=admin, run_id=users.pk, every_hours=24, departures="delete")
    first = drive(sync_start(user=admin, sync_id=sync.pk))

    # Run now deletes nobody: the admins came from the SSO setup, never from the sync's group.
    assert first.status == RunStatus.SUCCEEDED
    assert plan_rows(first, "delete") == []
    assert set(admins) <= set(_connect_usernames(connect, setup.instance_id))

    # One agent leaves every source; the admin leaves the sync's group but not "Connect Admins".
    for upn in (agents[0], admins[0]):
        run(lambda upn=upn: remove_member(directory_admin, group_id, by_upn[upn]))
    second = sync_start(user=admin, sync_id=sync.pk)
    step = second.steps.get(key="group_users")
    second = drive(second)

    assert second.status == RunStatus.SUCCEEDED
    # The one definition of "managed", as the web path's plan used it.
    managed = managed_usernames(
        instance_id=setup.instance_id, group_ids=[group_id], exclude_step_run_id=step.pk
    )
    assert set(managed) == {*agents, admins[0]}
    assert [row.username for row in plan_rows(second, "delete")] == [agents[0]]
    (kept,) = plan_rows(second, "departed")
    assert kept.username == admins[0]
    assert render(kept.details["kept_because"]) == (
        f"assigned to the app through the group “{ADMINS_GROUP}”"
    )
    assert any(admins[0] in warning for warning in map(render, step_plan(second)["warnings"]))
    remaining = set(_connect_usernames(connect, setup.instance_id))
    assert agents[0] not in remaining and set(admins) <= remaining
    # One summary event per sync run, in the name of the admin who pressed Run now.
    (summary,) = AuditEvent.objects.filter(run=second, kind=AuditKind.USER_SYNC)
    assert summary.actor_label == "sync-admin"
    assert {key: summary.new_value[key] for key in ("created", "deleted", "refused")} == {
        "created": 0,
        "deleted": 1,
        "refused": 0,
    }
    assert summary.new_value["kept_after_leaving"] == 1

    # Someone assigned to the app outside the setup (directly) leaves the group: the delete waits.
    outputs = {step.key: step.outputs for step in setup.steps.all()}
    run(
        lambda: assign_directly(
            graph_client(entra_sandbox.endpoints),
            outputs["entra_app"]["service_principal_id"],
            outputs["entra_claims"]["app_role_id"],
            by_upn[agents[1]],
        )
    )
    run(lambda: remove_member(directory_admin, group_id, by_upn[agents[1]]))
    third = drive(sync_start(user=admin, sync_id=sync.pk), confirm=False)

    assert third.status == RunStatus.WAITING
    assert [row.username for row in plan_rows(third, "delete")] == [agents[1]]
    (warning, *_rest) = map(render, step_plan(third)["warnings"])
    assert "can still sign in through the identity provider app" in warning
    assert f"1 person: assigned to the app directly ({agents[1]})" in warning
    assert agents[1] in _connect_usernames(connect, setup.instance_id)


def _admin_and_setup(username: str, tmp_path: Path) -> tuple[Any, SetupRun]:
    """An admin, and a succeeded Entra setup (it assigns "Connect Admins" and makes their users)."""
    setup, output = setup_sso(plan_file(tmp_path))
    assert setup.status == RunStatus.SUCCEEDED, output
    return get_user_model().objects.create_user(username), setup


async def assign_directly(client: Any, sp_id: str, role_id: str, user_id: str) -> None:
    """An app role assignment made outside the wizard (an admin in the portal)."""
    await client.service_principals.by_service_principal_id(sp_id).app_role_assigned_to.post(
        AppRoleAssignment(
            principal_id=uuid.UUID(user_id),
            resource_id=uuid.UUID(sp_id),
            app_role_id=uuid.UUID(role_id),
        )
    )


def _upns(tenant: Any, group: str) -> list[str]:
    group_id = next(g["id"] for g in tenant.groups.values() if g["displayName"] == group)
    return [
        tenant.users[i]["userPrincipalName"]
        for i in tenant.transitive_members(group_id)
        if i in tenant.users
    ]


def _connect_usernames(connect: Any, instance_id: str) -> list[str]:
    found = connect.list_users(InstanceId=instance_id, MaxResults=1000)["UserSummaryList"]
    return [user["Username"] for user in found]


def step_plan(run_: SetupRun) -> dict[str, Any]:
    return run_.steps.get(key="group_users").plan


def test_a_users_plan_lists_who_cannot_sign_in_and_assigns_their_direct_groups(
    entra_sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
) -> None:
    admin, setup = _admin_and_setup("groups-admin", tmp_path)
    tenant = entra_sandbox.apps["entra"].tenant
    agent = sorted(upn for upn in _upns(tenant, AGENTS_GROUP) if ".agent0" in upn)[0]
    sign_in = step_context(setup, "sign_in_test")
    # Only "Connect Admins" is assigned: Entra refuses an agent (nested groups don't count).
    refused = sandbox_sign_in(sign_in, {"login": agent, "username": agent})
    assert not refused["ok"] and "AADSTS50105" in render(refused["detail"])

    users = users_run_create(user=admin, setup_id=setup.pk)
    drive(users)
    step_submit_inputs(
        user=admin,
        run_id=users.pk,
        step_key="group_users",
        inputs={
            "groups": [{"group": CONTACT_CENTRE_GROUP, **AGENT}],
            "username_source": "userprincipalname",
            "assign_groups": True,
        },
        enqueue=False,
    )
    users = drive(users, confirm=False)

    # The plan names each person the app won't let in, why, and the direct group it assigns.
    assert users.status == RunStatus.WAITING
    plan = step_plan(users)
    (row,) = [r for r in plan_rows(users, "create") if r.username == agent]
    assert "a group inside an assigned group doesn't count" in render(row.details["cannot_sign_in"])
    assert row.details["assign_group"]["name"] == AGENTS_GROUP
    assigned = sorted(
        c["name"] for c in plan["changes"] if c["resource_type"] == "idp_app_assignment"
    )
    assert assigned == [AGENTS_GROUP, SUPERVISORS_GROUP]
    (blocked,) = [w for w in plan["warnings"] if "can't sign in yet" in render(w)]
    # One reason said once for everyone it holds for, in the reader's language.
    assert render(blocked).count("a group inside an assigned group doesn't count") == 1
    with translation.override("ja"):
        in_japanese = render(blocked)
    assert "入れ子のグループは対象外です" in in_japanese and "not assigned" not in in_japanese

    users = drive(users)
    assert users.status == RunStatus.SUCCEEDED
    signed_in = sandbox_sign_in(sign_in, {"login": agent, "username": agent})
    assert signed_in["ok"], render(signed_in["detail"])

    # Rolled back, the run takes back the assignments it made (and the users).
    run_rollback(user=admin, run_id=users.pk, enqueue=False)
    drive(users)
    refused_again = sandbox_sign_in(sign_in, {"login": agent, "username": agent})
    assert not refused_again["ok"] and "AADSTS50105" in render(refused_again["detail"])
