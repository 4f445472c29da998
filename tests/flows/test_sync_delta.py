"""A scheduled sync reads only what changed: with nothing changed in its groups it makes a few IdP
calls and no Connect call; a member who comes, goes or changes is picked up (by a full read);
an expired Entra delta link, and the sync's own full-reconciliation schedule, read everything,
which is what catches a user edited in Connect itself."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone, translation
from msgraph.generated.models.user import User

from provisioning.models import AuditEvent, AuditKind, RunStatus, SetupRun, UserSync
from provisioning.runs.admin_moves import step_submit_inputs
from provisioning.services.user_syncs import sync_create, sync_start, users_run_create
from sandbox.directory import AGENTS_GROUP
from sandbox.server import Sandbox
from tests.flows import user_runs
from tests.flows.entra_runs import entra_sandbox, plan_file, setup_sso  # noqa: F401
from tests.flows.test_okta_headless import (  # noqa: F401
    AGENTS,
    ROLE_DOWNLOAD,
    okta_sandbox,
    run_plan,
    variant,
)
from tests.flows.user_runs import drive, plan_rows
from tests.sandbox.aws_clients import aws_client
from tests.sandbox.entra_graph import add_member, remove_member, run
from tests.sandbox.okta_sdk import okta_client, send
from wizard.change_sentences import change_sentence
from wizard.selectors.chain import chain_links

directory_admin = user_runs.directory_admin
AGENT = {"security_profiles": ["Agent"], "routing_profile": "Basic Routing Profile"}
# A sync that found nothing changed reads the group (1 call), then follows its two delta links
# (Entra: groups and users, 1 page each); a sign-in token call may come on top.
NOOP_IDP_CALLS_MAX = 4


def calls(run: SetupRun, *, cloud: str, service: str = "") -> int:
    events = AuditEvent.objects.filter(run=run, kind=AuditKind.CALL_STARTED, cloud=cloud)
    if service:
        events = events.filter(service=service)
    return events.count()


def reading(run: SetupRun) -> dict[str, Any]:
    return dict(run.steps.get(key="group_users").plan.get("sync_reading") or {})


def summary(run: SetupRun) -> dict[str, Any]:
    (event,) = AuditEvent.objects.filter(run=run, kind=AuditKind.USER_SYNC)
    return dict(event.new_value)


def _entra_sync(
    entra_sandbox: Sandbox,  # noqa: F811
    directory_admin: Any,
    tmp_path: Path,
    *,
    members: int = 3,
) -> tuple[UserSync, str, list[str], dict[str, str]]:
    """A succeeded Entra setup, a new group of `members` agents filled through Graph, a users
    run of it and a sync that deletes who left: the sync, the group, the agents' UPNs, and every
    UPN's id."""
    setup, output = setup_sso(plan_file(tmp_path))
    assert setup.status == RunStatus.SUCCEEDED, output
    admin = get_user_model().objects.create_user(f"admin-{uuid.uuid4().hex[:6]}")
    tenant = entra_sandbox.apps["entra"].tenant
    group = next(g["id"] for g in tenant.groups.values() if g["displayName"] == AGENTS_GROUP)
    by_upn = {user["userPrincipalName"]: user["id"] for user in tenant.users.values()}
    agents = sorted(
        tenant.users[i]["userPrincipalName"]
        for i in tenant.transitive_members(group)
        if i in tenant.users and ".agent0" in tenant.users[i]["userPrincipalName"]
    )
    group_id = tenant.add_group(f"Delta {uuid.uuid4().hex[:6]}", [])
    for upn in agents[:members]:
        run(lambda upn=upn: add_member(directory_admin, group_id, by_upn[upn]))
    users = users_run_create(user=admin, setup_id=setup.pk)
    drive(users)
    step_submit_inputs(
        user=admin,
        run_id=users.pk,
        step_key="group_users",
        inputs={"groups": [{"group": group_id, **AGENT}], "username_source": "userprincipalname"},
        enqueue=False,
    )
    assert drive(users).status == RunStatus.SUCCEEDED
    sync = sync_create(user=admin, run_id=users.pk, every_hours=24, departures="delete")
    return sync, group_id, agents, by_upn


def test_an_entra_sync_with_nothing_changed_makes_no_connect_call_and_picks_up_who_came_or_went(
    entra_sandbox: Sandbox,  # noqa: F811
    directory_admin: Any,
    tmp_path: Path,
) -> None:
    sync, group_id, agents, by_upn = _entra_sync(entra_sandbox, directory_admin, tmp_path)

    first = drive(sync_start(user=None, sync_id=sync.pk))
    second = drive(sync_start(user=None, sync_id=sync.pk))

    assert first.status == RunStatus.SUCCEEDED and second.status == RunStatus.SUCCEEDED
    assert reading(first)["mode"] == "full" and reading(first)["reason"] == "first"
    assert {k: reading(second)[k] for k in ("mode", "reason")} == {
        "mode": "delta",
        "reason": "unchanged",
    }
    assert plan_rows(second) == []
    assert calls(first, cloud="aws", service="connect") > 0
    assert calls(second, cloud="aws", service="connect") == 0
    assert 0 < calls(second, cloud="entra") <= NOOP_IDP_CALLS_MAX < calls(first, cloud="entra")
    assert summary(second)["read"] == {"mode": "delta", "reason": "unchanged"}
    # The plan says so in the reader's language; the chain counts no user (not "1 user").
    (change,) = second.steps.get(key="group_users").plan["changes"]
    with translation.override("ja"):
        assert change_sentence(change) == "前回の同期の実行からグループに変化はありません。"
    (users,) = [link for link in chain_links(second) if link.kind == "connect_users"]
    assert users.fact == "nothing changed since the last sync"
    assert summary(first)["read"] == {"mode": "full", "reason": "first"}

    # A fourth agent joins and the first leaves: the delta shows it, the run reads in full.
    run(lambda: add_member(directory_admin, group_id, by_upn[agents[3]]))
    run(lambda: remove_member(directory_admin, group_id, by_upn[agents[0]]))
    third = drive(sync_start(user=None, sync_id=sync.pk))

    assert third.status == RunStatus.SUCCEEDED
    assert reading(third)["reason"] == "members_changed"
    assert [row.username for row in plan_rows(third, "create")] == [agents[3]]
    assert [row.username for row in plan_rows(third, "delete")] == [agents[0]]
    connect = aws_client(entra_sandbox, "connect")
    listed = {
        user["Username"]
        for page in connect.get_paginator("list_users").paginate(InstanceId=sync.instance_id)
        for user in page["UserSummaryList"]
    }
    assert agents[3] in listed and agents[0] not in listed

    # A member's name changes; someone outside the group changes too. Only the first matters.
    outsider = next(upn for upn in by_upn if upn not in agents[:4] and ".agent0" in upn)
    run(lambda: directory_admin.users.by_user_id(by_upn[outsider]).patch(User(surname="Else")))
    fourth = drive(sync_start(user=None, sync_id=sync.pk))
    run(lambda: directory_admin.users.by_user_id(by_upn[agents[1]]).patch(User(surname="New")))
    fifth = drive(sync_start(user=None, sync_id=sync.pk))

    assert reading(fourth)["reason"] == "unchanged"
    assert reading(fifth)["reason"] == "users_changed"
    (update,) = plan_rows(fifth, "update")
    assert update.username == agents[1]


def test_an_expired_delta_link_reads_in_full_and_takes_new_links(
    entra_sandbox: Sandbox,  # noqa: F811
    directory_admin: Any,
    tmp_path: Path,
) -> None:
    sync, _group_id, _agents, _by_upn = _entra_sync(entra_sandbox, directory_admin, tmp_path)
    drive(sync_start(user=None, sync_id=sync.pk))
    sync.refresh_from_db()
    old_links = dict(sync.delta_state["links"])
    entra_sandbox.apps["entra"].tenant.delta_log.forget()

    expired = drive(sync_start(user=None, sync_id=sync.pk))
    after = drive(sync_start(user=None, sync_id=sync.pk))

    assert expired.status == RunStatus.SUCCEEDED
    assert reading(expired)["mode"] == "full" and reading(expired)["reason"] == "expired"
    assert calls(expired, cloud="aws", service="connect") > 0
    sync.refresh_from_db()
    assert sync.delta_state["links"] != old_links
    assert reading(after)["reason"] == "unchanged"
    assert calls(after, cloud="aws", service="connect") == 0


def test_the_full_reconciliation_schedule_catches_a_user_edited_in_connect(
    entra_sandbox: Sandbox,  # noqa: F811
    directory_admin: Any,
    tmp_path: Path,
) -> None:
    sync, _group_id, agents, _by_upn = _entra_sync(entra_sandbox, directory_admin, tmp_path)
    drive(sync_start(user=None, sync_id=sync.pk))
    connect = aws_client(entra_sandbox, "connect")
    user_id = next(
        user["Id"]
        for page in connect.get_paginator("list_users").paginate(InstanceId=sync.instance_id)
        for user in page["UserSummaryList"]
        if user["Username"] == agents[0]
    )
    # Someone renames the user in the Connect console; the IdP knows nothing of it.
    connect.update_user_identity_info(
        InstanceId=sync.instance_id,
        UserId=user_id,
        IdentityInfo={"FirstName": "Edited", "LastName": "In Console"},
    )

    unchanged = drive(sync_start(user=None, sync_id=sync.pk))
    sync.refresh_from_db()
    UserSync.objects.filter(pk=sync.pk).update(
        last_full_at=timezone.now() - timedelta(hours=sync.full_every_hours, minutes=1)
    )
    scheduled = drive(sync_start(user=None, sync_id=sync.pk))

    assert reading(unchanged)["reason"] == "unchanged"
    assert plan_rows(unchanged) == []
    assert reading(scheduled)["mode"] == "full" and reading(scheduled)["reason"] == "scheduled"
    (update,) = plan_rows(scheduled, "update")
    assert update.username == agents[0]
    sync.refresh_from_db()
    assert sync.last_full_at is not None
    assert timezone.now() - sync.last_full_at < timedelta(minutes=5)


@pytest.mark.django_db(transaction=True)
def test_an_okta_sync_compares_last_membership_updated_and_reads_only_when_it_moved(
    okta_sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
) -> None:
    setup = run_plan(variant(ROLE_DOWNLOAD, tmp_path, alias=f"okta-delta-{uuid.uuid4().hex[:4]}"))
    assert setup.status == RunStatus.SUCCEEDED, setup.error
    org = okta_sandbox.apps["okta"].org
    # A group of its own: the newcomer below must not join the seeded Agents group other tests
    # count.
    seeded = next(g for g in org.groups.values() if g.name == AGENTS)
    group = org.add_group(f"Okta delta {uuid.uuid4().hex[:6]}", "test group")
    group.member_ids = list(seeded.member_ids[:3])
    users = users_run_create(user=None, setup_id=setup.pk)
    drive(users)
    step_submit_inputs(
        user=None,
        run_id=users.pk,
        step_key="group_users",
        inputs={
            "groups": [{"group": group.name, "security_profiles": ["Agent"]}],
            "username_source": "${source.login}",
        },
        enqueue=False,
    )
    assert drive(users).status == RunStatus.SUCCEEDED, users.error
    sync = sync_create(user=None, run_id=users.pk, every_hours=24, departures="report")

    first = drive(sync_start(user=None, sync_id=sync.pk))
    second = drive(sync_start(user=None, sync_id=sync.pk))

    assert reading(first)["mode"] == "full"
    assert reading(second)["reason"] == "unchanged"
    assert calls(second, cloud="aws", service="connect") == 0
    assert calls(second, cloud="okta") == 1  # GET /api/v1/groups/{id}
    assert calls(first, cloud="okta") > 1

    newcomer = next(u for u in org.users.values() if u.id not in group.member_ids)

    async def join() -> None:
        async with okta_client(okta_sandbox.endpoints) as client:
            _body, error = await send(
                client, "PUT", f"/api/v1/groups/{group.id}/users/{newcomer.id}"
            )
            assert error is None, error

    run(join)
    third = drive(sync_start(user=None, sync_id=sync.pk))

    assert reading(third)["reason"] == "members_changed"
    assert newcomer.login in [row.username for row in plan_rows(third, "create")] + [
        row.username for row in plan_rows(third, "refused")
    ]
