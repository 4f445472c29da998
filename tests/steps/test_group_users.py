"""group_users against the sandbox IdPs and AWS: everyone in the picked groups (nested groups in
Entra) gets a Connect user with the mapped profiles; run again as a sync it updates who changed
and reports or deletes who left, only ever touching users the wizard made, and waits for the
admin before deleting many."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from django.utils import translation

from provisioning.connections.sandbox_registration import SANDBOX_NAMES
from provisioning.errors import PermanentError
from provisioning.messages import render
from provisioning.models import (
    AuditEvent,
    AuditKind,
    Cloud,
    Connection,
    RunStatus,
    SetupRun,
    StepStatus,
    UserChange,
    UserSync,
)
from provisioning.runs import admin_moves
from provisioning.steps.group_users import GroupUsers, GroupUsersForm, MappingPlan, MappingRowForm
from sandbox.directory import AGENTS_GROUP, CONTACT_CENTRE_GROUP, SUPERVISORS_GROUP
from sandbox.server import Sandbox
from tests.sandbox.aws_clients import default_profiles
from tests.steps import aws_step_runs
from tests.steps.aws_step_runs import context

aws_connection = aws_step_runs.aws_connection
instance = aws_step_runs.instance
connect = aws_step_runs.connect

STEP = GroupUsers()
AGENT = {"security_profiles": ["Agent"], "routing_profile": "Basic Routing Profile"}


def idp(cloud: str) -> Connection:
    return Connection.objects.get(cloud=cloud, is_sandbox=True, name=SANDBOX_NAMES[cloud])


def users_run(
    target: dict[str, Any], aws: Connection, *, cloud: str = Cloud.ENTRA, **inputs: Any
) -> SetupRun:
    return admin_moves.run_create(
        user=None,
        flow_key="test_only_group_users" if cloud == Cloud.ENTRA else "test_only_okta_group_users",
        region="ap-northeast-1",
        instance_id=target["Id"],
        aws_connection_id=aws.pk,
        idp_connection_id=idp(cloud).pk,
        inputs=inputs,
        enqueue=False,
    )


def rows(run: SetupRun, action: str) -> list[UserChange]:
    return list(
        UserChange.objects.filter(
            change_set__step_run__run=run, change_set__purpose="apply", action=action
        ).order_by("change_set_id", "position")
    )


def connect_users(client: Any, instance_id: str) -> dict[str, dict[str, Any]]:
    found = client.search_users(InstanceId=instance_id, MaxResults=500)["Users"]
    return {user["Username"]: user for user in found}


def members(sandbox: Sandbox, group: str) -> list[dict[str, Any]]:
    tenant = sandbox.apps["entra"].tenant
    group_id = next(g["id"] for g in tenant.groups.values() if g["displayName"] == group)
    return [tenant.users[i] for i in tenant.transitive_members(group_id) if i in tenant.users]


def test_it_waits_for_the_mapping_with_the_groups_and_profiles_to_choose_from(
    aws_connection: Connection, instance: dict[str, Any]
) -> None:
    run = users_run(instance, aws_connection)

    plan = STEP.plan(context(run, "group_users"))

    assert isinstance(plan, MappingPlan) and plan.needs_input
    names = [group["name"] for group in plan.mapping_choices["groups"]]
    assert {AGENTS_GROUP, SUPERVISORS_GROUP, CONTACT_CENTRE_GROUP} <= set(names)
    assert plan.mapping_choices["security_profiles"] == [
        "Admin",
        "Agent",
        "CallCenterManager",
        "QualityAnalyst",
    ]
    assert plan.mapping_choices["routing_profiles"] == ["Basic Routing Profile"]
    assert plan.mapping_choices["username_source"] == "userprincipalname"


def test_its_answers_stay_editable_with_the_groups_and_profiles_once_submitted(
    aws_connection: Connection, instance: dict[str, Any]
) -> None:
    """Issue 13: the answers offered again (a failed step, a plan waiting again) come with the
    groups and profiles to choose from, the submitted ones picked, not an empty picker."""
    run = users_run(instance, aws_connection)
    asked = STEP.plan(context(run, "group_users"))
    step = run.steps.get(key="group_users")
    step.status, step.plan = StepStatus.PLANNED, asked.to_json()
    step.save()
    SetupRun.objects.filter(pk=run.pk).update(status=RunStatus.WAITING)
    agents = next(g for g in asked.mapping_choices["groups"] if g["name"] == AGENTS_GROUP)

    admin_moves.step_submit_inputs(
        user=None,
        run_id=run.pk,
        step_key="group_users",
        inputs={"groups": [{"group": agents["id"], **AGENT, "phone_type": "DESK_PHONE"}]},
        enqueue=False,
    )
    step.refresh_from_db()
    ctx = context(run, "group_users")
    ctx.plan = dict(step.plan)
    # Nobody has a desk phone number: the plan fails, and the runner keeps the step's plan as
    # the answers left it; the page offers the answers for editing.
    with pytest.raises(PermanentError):
        STEP.plan(ctx)
    form = GroupUsersForm(plan=step.plan, initial=step.inputs, prefix="step-group_users")
    # Answered right, the users plan carries the choices on, for a failure after it.
    soft = [{"group": agents["id"], **AGENT, "phone_type": "SOFT_PHONE"}]
    ctx = context(run, "group_users", groups=soft)
    ctx.plan = dict(step.plan)
    users_plan = STEP.plan(ctx).to_json()
    # A plan file's answers were picked from nothing: the plan reads the choices itself.
    from_file = STEP.plan(context(run, "group_users", groups=soft)).to_json()

    assert users_plan["counts"]["create"] > 0
    assert from_file["mapping_choices"] == asked.mapping_choices
    assert users_plan["mapping_choices"] == asked.mapping_choices
    (chosen, *blank) = form.rows
    offered = dict(chosen.fields["group"].choices)  # type: ignore[attr-defined]
    assert {AGENTS_GROUP, SUPERVISORS_GROUP} <= {g["name"] for g in asked.mapping_choices["groups"]}
    assert len(offered) == len(asked.mapping_choices["groups"]) + 1  # and "Choose a group"
    assert chosen.initial["group"] == agents["id"] and chosen.initial["phone_type"] == "DESK_PHONE"
    html = str(chosen)
    assert f'value="{agents["id"]}" selected' in html
    assert 'value="Basic Routing Profile" selected' in html
    assert re.search(r'value="Agent"[^>]*checked', html), html
    assert blank and all(len(row.fields["group"].choices) == len(offered) for row in blank)  # type: ignore[attr-defined]


def test_its_users_plan_reads_the_instance_once_for_the_people_and_the_choices(
    aws_connection: Connection, instance: dict[str, Any]
) -> None:
    run = users_run(instance, aws_connection)
    agents = next(
        g
        for g in STEP.plan(context(run, "group_users")).mapping_choices["groups"]
        if g["name"] == AGENTS_GROUP
    )
    before = AuditEvent.objects.filter(run=run).order_by("-pk").values_list("pk", flat=True)[0]

    plan = STEP.plan(context(run, "group_users", groups=[{"group": agents["id"], **AGENT}]))

    read = list(
        AuditEvent.objects.filter(
            run=run, kind=AuditKind.CALL_STARTED, cloud=Cloud.AWS, pk__gt=before
        ).values_list("operation", flat=True)
    )
    # The choices kept for the form come from the reading the change set was planned from.
    for operation in ("DescribeInstance", "ListSecurityProfiles", "ListRoutingProfiles"):
        assert read.count(operation) == 1, read
    choices = plan.to_json()["mapping_choices"]
    assert choices["security_profiles"] == ["Admin", "Agent", "CallCenterManager", "QualityAnalyst"]
    assert choices["routing_profiles"] == ["Basic Routing Profile"]


def test_it_gives_everyone_in_nested_groups_a_user_with_the_merged_mapping(
    aws_connection: Connection, connect: Any, instance: dict[str, Any], sandbox: Sandbox
) -> None:
    run = users_run(
        instance,
        aws_connection,
        groups=[
            {"group": CONTACT_CENTRE_GROUP, **AGENT},
            {
                "group": SUPERVISORS_GROUP,
                "security_profiles": ["CallCenterManager"],
                "routing_profile": "Basic Routing Profile",
            },
        ],
    )

    plan = STEP.plan(context(run, "group_users"))

    everyone = members(sandbox, CONTACT_CENTRE_GROUP)
    refused = {
        change.username: list(map(render, change.details["reasons"]))
        for change in rows(run, "refused")
    }
    # The seeded awkward cases: an apostrophe in the UPN, a UPN over 64 characters, no surname.
    assert len(refused) == 3
    assert any("“'”" in " ".join(reasons) for reasons in refused.values())
    assert plan.counts["create"] == len(everyone) - 3
    outputs = STEP.apply(context(run, "group_users"))

    assert outputs.created == len(everyone) - 3 and outputs.failed == 0
    profiles, _routing = default_profiles(connect, instance["Id"])
    users = connect_users(connect, instance["Id"])
    supervisor = next(p for p in members(sandbox, SUPERVISORS_GROUP))
    agent = next(p for p in members(sandbox, AGENTS_GROUP) if "agent" in p["userPrincipalName"])
    assert sorted(users[supervisor["userPrincipalName"]]["SecurityProfileIds"]) == sorted(
        [profiles["Agent"], profiles["CallCenterManager"]]
    )
    assert users[agent["userPrincipalName"]]["SecurityProfileIds"] == [profiles["Agent"]]
    # Mixed case is kept: the username must equal what Entra sends.
    assert "Keiko.McDonald@contoso-sandbox.onmicrosoft.com" in users
    assert all(finding.ok for finding in STEP.verify(context(run, "group_users")))


def test_it_refuses_people_whose_usernames_would_collide_when_usernames_come_from_mail(
    aws_connection: Connection, instance: dict[str, Any]
) -> None:
    run = users_run(
        instance,
        aws_connection,
        groups=[{"group": AGENTS_GROUP, **AGENT}],
        username_source="mail",
    )

    STEP.plan(context(run, "group_users"))

    refused = {
        change.username: list(map(render, change.details["reasons"]))
        for change in rows(run, "refused")
    }
    shared = [name for name in refused if name.startswith("shared.mailbox@")]
    assert shared and "more than once" in " ".join(refused[shared[0]])


def test_it_asks_again_for_a_missing_group_and_a_sync_stops_on_one(
    aws_connection: Connection, instance: dict[str, Any]
) -> None:
    # A name shaped like a path is looked up as a name, never put into a Graph URL.
    groups = [{"group": "No Such Group", **AGENT}, {"group": "../servicePrincipals", **AGENT}]
    interactive = users_run(instance, aws_connection, groups=groups)
    synced = users_run(instance, aws_connection, groups=groups, sync_id=str(uuid.uuid4()))

    plan = STEP.plan(context(interactive, "group_users"))
    with pytest.raises(PermanentError) as refused:
        STEP.plan(context(synced, "group_users"))

    assert plan.needs_input and "No Such Group, ../servicePrincipals" in render(plan.warnings[0])
    assert refused.value.code == "group_missing"
    # Stored as a message id, read in the reader's language.
    (stored,) = plan.to_json()["warnings"]
    assert stored["msgid"] == "These groups are not in the identity provider: %(names)s."
    with translation.override("ja"):
        assert "ID プロバイダーにありません" in render(stored)


def test_it_syncs_changes_and_reports_or_deletes_only_the_users_it_manages(
    aws_connection: Connection, connect: Any, instance: dict[str, Any], sandbox: Sandbox
) -> None:
    tenant = sandbox.apps["entra"].tenant
    agents = [u for u in members(sandbox, AGENTS_GROUP) if ".agent" in u["userPrincipalName"]][:4]
    group_id = tenant.add_group(f"Sync {uuid.uuid4().hex[:6]}", [u["id"] for u in agents])
    # A one-off run makes the first users; the sync made from it manages them.
    first = users_run(instance, aws_connection, groups=[{"group": group_id, **AGENT}])
    assert STEP.apply(context(first, "group_users")).created == 4
    sync_id = str(uuid.uuid4())
    # Someone the wizard did not make, with the same username as a future member: left alone.
    profiles, routing = default_profiles(connect, instance["Id"])
    newcomer = next(
        u for u in members(sandbox, AGENTS_GROUP) if u["id"] not in {a["id"] for a in agents}
    )
    connect.create_user(
        InstanceId=instance["Id"],
        Username=newcomer["userPrincipalName"],
        IdentityInfo={"FirstName": "Made", "LastName": "Elsewhere"},
        PhoneConfig={"PhoneType": "SOFT_PHONE"},
        SecurityProfileIds=[profiles["Admin"]],
        RoutingProfileId=routing,
    )
    # One leaves, one joins, and everyone in the group now gets CallCenterManager too.
    tenant.members[group_id] = [a["id"] for a in agents[1:]] + [newcomer["id"]]
    changed = {
        "groups": [
            {
                "group": group_id,
                "security_profiles": ["Agent", "CallCenterManager"],
                "routing_profile": "Basic Routing Profile",
            }
        ],
        "sync_id": sync_id,
    }
    second = users_run(instance, aws_connection, departures="report", **changed)

    plan = STEP.plan(context(second, "group_users"))

    assert plan.counts == {"update": 3, "nothing": 1, "departed": 1}
    assert [c.username for c in rows(second, "nothing")] == [newcomer["userPrincipalName"]]
    assert rows(second, "nothing")[0].details["differs"]  # listed, but not ours to change
    assert [c.username for c in rows(second, "departed")] == [agents[0]["userPrincipalName"]]
    assert any("left the groups" in warning for warning in map(render, plan.warnings))
    assert STEP.apply(context(second, "group_users")).updated == 3

    third = users_run(instance, aws_connection, departures="delete", **changed)
    plan = STEP.plan(context(third, "group_users"))
    outputs = STEP.apply(context(third, "group_users"))

    assert plan.counts == {"delete": 1, "nothing": 4} and not plan.needs_confirmation
    assert outputs.deleted == 1
    remaining = connect_users(connect, instance["Id"])
    assert agents[0]["userPrincipalName"] not in remaining
    assert remaining[newcomer["userPrincipalName"]]["SecurityProfileIds"] == [profiles["Admin"]]
    assert all(finding.ok for finding in STEP.verify(context(third, "group_users")))


def test_it_waits_for_the_admin_before_deleting_many_users(
    aws_connection: Connection, instance: dict[str, Any], sandbox: Sandbox, settings: Any
) -> None:
    settings.WIZARD_SYNC_CONFIRM_DELETES_OVER = 2
    tenant = sandbox.apps["entra"].tenant
    agents = [u for u in members(sandbox, AGENTS_GROUP) if ".agent" in u["userPrincipalName"]][:5]
    group_id = tenant.add_group(f"Sync {uuid.uuid4().hex[:6]}", [u["id"] for u in agents])
    mapping = {"groups": [{"group": group_id, **AGENT}], "sync_id": str(uuid.uuid4())}
    first = users_run(instance, aws_connection, departures="delete", **mapping)
    STEP.apply(context(first, "group_users"))
    tenant.members[group_id] = [agents[0]["id"]]  # the group emptied by mistake

    second = users_run(instance, aws_connection, departures="delete", **mapping)
    plan = STEP.plan(context(second, "group_users"))

    assert plan.counts["delete"] == 4
    assert plan.needs_confirmation
    assert "delete 4 Connect users" in render(plan.warnings[0])


def test_it_reads_okta_group_members_with_the_apps_username_format(
    aws_connection: Connection, connect: Any, instance: dict[str, Any], sandbox: Sandbox
) -> None:
    org = sandbox.apps["okta"].org
    agents = [user for user in org.users.values() if ".agent" in user.login][:3]
    group = org.add_group(f"Okta sync {uuid.uuid4().hex[:6]}", "test group")
    group.member_ids = [user.id for user in agents]
    run = users_run(
        instance,
        aws_connection,
        cloud=Cloud.OKTA,
        groups=[{"group": group.name, **AGENT}],
        username_source='${fn:substringBefore(source.login,"@")}',
    )

    STEP.plan(context(run, "group_users"))
    outputs = STEP.apply(context(run, "group_users"))

    assert outputs.created == 3
    wanted = sorted(user.login.split("@")[0] for user in agents)
    assert sorted(connect_users(connect, instance["Id"])) == wanted


def test_it_offers_okta_groups_with_their_member_counts(
    aws_connection: Connection, instance: dict[str, Any], sandbox: Sandbox
) -> None:
    """The picker shows "(N people)" beside an Okta group: the count is the listing's
    `_embedded.stats.usersCount` (expand=stats), not one member listing per group."""
    org = sandbox.apps["okta"].org
    agents = [user for user in org.users.values() if ".agent" in user.login][:3]
    group = org.add_group(f"Okta picker {uuid.uuid4().hex[:6]}", "test group")
    group.member_ids = [user.id for user in agents]
    run = users_run(instance, aws_connection, cloud=Cloud.OKTA)

    plan = STEP.plan(context(run, "group_users"))

    assert isinstance(plan, MappingPlan) and plan.needs_input
    offered = next(g for g in plan.mapping_choices["groups"] if g["id"] == group.id)
    assert offered["member_count"] == 3
    with translation.override("en"):
        row = MappingRowForm(choices=plan.to_json()["mapping_choices"])
    labels = dict(row.fields["group"].choices)  # type: ignore[attr-defined]
    assert labels[group.id] == f"{group.name} (3 people)"


def test_its_form_turns_rows_into_the_mapping_and_says_what_is_missing() -> None:
    plan = {
        "mapping_choices": {
            "idp": "entra",
            "groups": [{"id": "g1", "name": "Agents"}, {"id": "g2", "name": "Supervisors"}],
            "security_profiles": ["Agent", "CallCenterManager"],
            "routing_profiles": ["Basic Routing Profile"],
            "username_source": "userprincipalname",
        }
    }
    prefix = "step-group_users"
    rows_prefix = f"{prefix}-groups"

    def data(*rows: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {
            f"{rows_prefix}-TOTAL_FORMS": str(len(rows)),
            f"{rows_prefix}-INITIAL_FORMS": "0",
            f"{prefix}-username_source": "userprincipalname",
        }
        for number, row in enumerate(rows):
            for name, value in row.items():
                values[f"{rows_prefix}-{number}-{name}"] = value
        return values

    good = GroupUsersForm(
        _querydict(
            data(
                {
                    "group": "g2",
                    "security_profiles": ["Agent", "CallCenterManager"],
                    "routing_profile": "Basic Routing Profile",
                    "phone_type": "SOFT_PHONE",
                },
                {"group": "", "phone_type": "SOFT_PHONE"},
            )
        ),
        plan=plan,
        prefix=prefix,
    )
    missing = GroupUsersForm(
        _querydict(data({"group": "g1", "routing_profile": "", "phone_type": "SOFT_PHONE"})),
        plan=plan,
        prefix=prefix,
    )
    empty = GroupUsersForm(
        _querydict(data({"group": "", "phone_type": "SOFT_PHONE"})), plan=plan, prefix=prefix
    )

    assert good.is_valid(), (good.errors, good.rows.errors)
    assert good.cleaned_data["groups"] == [
        {
            "group": "g2",
            "group_name": "Supervisors",
            "security_profiles": ["Agent", "CallCenterManager"],
            "routing_profile": "Basic Routing Profile",
            "phone_type": "SOFT_PHONE",
        }
    ]
    assert not missing.is_valid()
    assert missing.rows.errors[0] == {
        "security_profiles": ["Tick at least one security profile."],
        "routing_profile": ["Choose a routing profile."],
    }
    assert not empty.is_valid()
    assert "Choose at least one group" in str(empty.non_field_errors())


def _querydict(values: dict[str, Any]) -> Any:
    from django.http import QueryDict

    query = QueryDict(mutable=True)
    for key, value in values.items():
        if isinstance(value, list):
            query.setlist(key, value)
        else:
            query[key] = value
    return query


def test_it_refuses_a_group_bigger_than_it_reads_rather_than_read_it_in_part(
    aws_connection: Connection, instance: dict[str, Any], settings: Any
) -> None:
    settings.WIZARD_GROUP_MEMBERS_CAP = 5
    run = users_run(instance, aws_connection, groups=[{"group": AGENTS_GROUP, **AGENT}])

    with pytest.raises(PermanentError) as refused:
        STEP.plan(context(run, "group_users"))

    assert refused.value.code == "group_too_large"
    assert not UserChange.objects.filter(change_set__step_run__run=run).exists()


def test_it_warns_about_people_another_sync_of_the_instance_keeps(
    aws_connection: Connection, instance: dict[str, Any], sandbox: Sandbox
) -> None:
    tenant = sandbox.apps["entra"].tenant
    agents = [u for u in members(sandbox, AGENTS_GROUP) if ".agent" in u["userPrincipalName"]][:4]
    first_group = tenant.add_group(f"Sync A {uuid.uuid4().hex[:6]}", [a["id"] for a in agents[:3]])
    second_group = tenant.add_group(f"Sync B {uuid.uuid4().hex[:6]}", [a["id"] for a in agents[2:]])
    other = UserSync.objects.create(
        idp=Cloud.ENTRA,
        region="ap-northeast-1",
        instance_id=instance["Id"],
        aws_connection=aws_connection,
        idp_connection=idp(Cloud.ENTRA),
        inputs={"groups": [{"group": first_group, **AGENT}]},
    )
    first = users_run(instance, aws_connection, groups=[{"group": first_group, **AGENT}])
    STEP.apply(context(first, "group_users"))

    second = users_run(
        instance,
        aws_connection,
        groups=[{"group": second_group, **AGENT}],
        sync_id=str(uuid.uuid4()),
    )
    plan = STEP.plan(context(second, "group_users"))

    (warning,) = [w for w in map(render, plan.warnings) if "another sync of this instance" in w]
    assert agents[2]["userPrincipalName"] in warning
    (stored,) = [w for w in plan.to_json()["warnings"] if "another sync" in str(w)]
    assert stored["plural"].startswith("%(count)d people are also in the groups")
    with translation.override("ja"):
        assert "別の同期" in render(stored), render(stored)
    assert agents[3]["userPrincipalName"] not in warning
    own = users_run(
        instance, aws_connection, groups=[{"group": first_group, **AGENT}], sync_id=str(other.pk)
    )
    assert not [
        w
        for w in map(render, STEP.plan(context(own, "group_users")).warnings)
        if "another sync" in w
    ]
