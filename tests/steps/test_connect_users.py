"""connect_users against the sandbox: usernames checked per person before any call, one stored
row per person, users created once however often apply runs (a killed worker included), the
quota checked first, and rollback deleting only what the run created."""

from __future__ import annotations

import os
import re
import signal
from dataclasses import replace
from typing import Any

import pytest

from provisioning.errors import PermanentError
from provisioning.messages import render
from provisioning.models import (
    AuditKind,
    RunStatus,
    SetupRun,
    StepRun,
    StepStatus,
    UserChange,
    UserChangeSet,
)
from provisioning.runs import admin_moves
from provisioning.steps.connect_users import ConnectUsers, ConnectUsersForm, parse_people_csv
from provisioning.user_changes.instance import USERS_PER_INSTANCE_QUOTA
from sandbox.server import Sandbox
from tests.engine.runs import (
    RUN_TIMEOUT_S,
    calls,
    succeeded_calls,
    wait_for,
    wait_until_at_rest,
)
from tests.engine_doubles import paused_path
from tests.sandbox.aws_clients import default_profiles
from tests.steps import aws_step_runs
from tests.steps.aws_step_runs import context, start_run
from tests.worker_process import WorkerProcess

# The AWS step tests' fixtures (tests/steps/aws_step_runs.py).
aws_connection = aws_step_runs.aws_connection
instance = aws_step_runs.instance
connect = aws_step_runs.connect

STEP = ConnectUsers()


def person(username: str, first: str = "Taro", last: str = "Yamada") -> dict[str, str]:
    return {"username": username, "first_name": first, "last_name": last}


GOOD = [
    person("taro.yamada@example.com"),
    person("Keiko.McDonald@example.com", "Keiko", "McDonald"),
]
BAD = [
    person("conan.o'brien@example.com", "Conan", "O'Brien"),
    person("b" * 65 + "@example.com"),
]


def usernames(client: Any, instance_id: str) -> list[str]:
    users = client.list_users(InstanceId=instance_id, MaxResults=1000)["UserSummaryList"]
    return sorted(user["Username"] for user in users)


def users_run(connection: Any, target: dict[str, Any], people: list[dict], **inputs: Any) -> Any:
    return start_run(
        "connect_users",
        connection,
        instance_id=target["Id"],
        inputs={"people": people, **inputs},
    )


def rows(run: Any, action: str = "") -> list[UserChange]:
    found = UserChange.objects.filter(change_set__step_run__run=run, change_set__purpose="apply")
    if action:
        found = found.filter(action=action)
    return list(found.order_by("change_set_id", "position"))


def test_it_refuses_bad_usernames_per_person_and_creates_the_rest(
    aws_connection: Any, connect: Any, instance: dict[str, Any]
) -> None:
    run = users_run(aws_connection, instance, GOOD + BAD)
    calls_before = len(calls(run))

    plan = STEP.plan(context(run, "connect_users"))

    assert len(calls(run)) > calls_before  # the plan read the instance
    assert plan.counts == {"create": 2, "refused": 2}
    assert [c.username for c in rows(run, "create")] == [p["username"] for p in GOOD]
    refused = {c.username: list(map(render, c.details["reasons"])) for c in rows(run, "refused")}
    assert any("“'”" in reason for reason in refused[BAD[0]["username"]])
    assert any("characters long" in reason for reason in refused[BAD[1]["username"]])
    assert len(plan.warnings) == 1 and "2 people can't have a Connect user" in render(
        plan.warnings[0]
    )
    assert usernames(connect, instance["Id"]) == []  # planning wrote nothing to Connect

    outputs = STEP.apply(context(run, "connect_users"))

    assert outputs.created == 2 and outputs.refused == 2 and outputs.failed == 0
    assert [r["username"] for r in outputs.refused_people] == [p["username"] for p in BAD]
    assert usernames(connect, instance["Id"]) == sorted(p["username"] for p in GOOD)
    assert {c.outcome for c in rows(run, "create")} == {"created"}
    findings = STEP.verify(context(run, "connect_users"))
    assert all(finding.ok for finding in findings), findings


def test_it_creates_each_user_once_when_applied_twice(
    aws_connection: Any, connect: Any, instance: dict[str, Any]
) -> None:
    run = users_run(aws_connection, instance, GOOD, security_profiles=["Agent", "Admin"])

    first = STEP.apply(context(run, "connect_users"))
    second = STEP.apply(context(run, "connect_users"))

    assert first == second and first.created == len(GOOD)
    assert usernames(connect, instance["Id"]) == sorted(p["username"] for p in GOOD)
    created = [c for c in rows(run) if c.outcome == "created"]
    assert len(created) == len(GOOD)
    profiles, _ = default_profiles(connect, instance["Id"])
    user = connect.describe_user(InstanceId=instance["Id"], UserId=created[0].user_id)["User"]
    assert sorted(user["SecurityProfileIds"]) == sorted([profiles["Agent"], profiles["Admin"]])
    assert user["Tags"]["connect-sso-wizard:run"] == str(run.pk)
    # A plan after the apply has nothing left to create.
    replan = STEP.plan(context(run, "connect_users"))
    assert replan.counts == {"nothing": len(GOOD)}


def test_it_takes_a_user_its_own_crashed_attempt_made_and_leaves_someone_elses_alone(
    aws_connection: Any, connect: Any, instance: dict[str, Any]
) -> None:
    run = users_run(aws_connection, instance, GOOD)
    STEP.plan(context(run, "connect_users"))
    profiles, routing = default_profiles(connect, instance["Id"])
    # Between plan and apply: a crashed attempt of this run made the first user (tagged), and
    # someone else made the second (untagged).
    for person, tags in ((GOOD[0], {"connect-sso-wizard:run": str(run.pk)}), (GOOD[1], {})):
        connect.create_user(
            InstanceId=instance["Id"],
            Username=person["username"],
            IdentityInfo={"FirstName": "X", "LastName": "Y"},
            PhoneConfig={"PhoneType": "SOFT_PHONE"},
            SecurityProfileIds=[profiles["Agent"]],
            RoutingProfileId=routing,
            Tags=tags,
        )

    outputs = STEP.apply(context(run, "connect_users"))

    assert (outputs.created, outputs.existed) == (1, 1)
    assert [(c.username, c.outcome) for c in rows(run, "create")] == [
        (GOOD[0]["username"], "created"),
        (GOOD[1]["username"], "existed"),
    ]
    assert usernames(connect, instance["Id"]) == sorted(p["username"] for p in GOOD)


def test_it_refuses_a_plan_that_exceeds_the_users_quota_before_creating_anyone(
    aws_connection: Any, connect: Any, instance: dict[str, Any], sandbox: Sandbox
) -> None:
    profiles, routing = default_profiles(connect, instance["Id"])
    connect.create_user(
        InstanceId=instance["Id"],
        Username="already.here@example.com",
        IdentityInfo={"FirstName": "A", "LastName": "B"},
        PhoneConfig={"PhoneType": "SOFT_PHONE"},
        SecurityProfileIds=[profiles["Agent"]],
        RoutingProfileId=routing,
    )
    quotas = sandbox.apps["aws"].service_quotas
    # The test hook: this instance's quota is 2 (as if approved at that value).
    quotas._values[("ap-northeast-1", USERS_PER_INSTANCE_QUOTA, instance["Arn"])] = 2
    run = users_run(aws_connection, instance, GOOD)

    with pytest.raises(PermanentError) as refused:
        STEP.plan(context(run, "connect_users"))

    assert "1 more fit" in refused.value.message
    assert "would create 2" in refused.value.message
    assert USERS_PER_INSTANCE_QUOTA in refused.value.hint
    with pytest.raises(PermanentError):
        STEP.apply(context(run, "connect_users"))
    assert usernames(connect, instance["Id"]) == ["already.here@example.com"]
    assert not UserChangeSet.objects.filter(step_run__run=run).exists()


def test_it_names_the_available_profiles_when_one_is_unknown(
    aws_connection: Any, instance: dict[str, Any]
) -> None:
    run = users_run(aws_connection, instance, GOOD, security_profiles=["Agents"])

    with pytest.raises(PermanentError) as refused:
        STEP.plan(context(run, "connect_users"))

    assert "'Agents'" in refused.value.message
    for name in ("Admin", "Agent", "CallCenterManager", "QualityAnalyst"):
        assert name in refused.value.hint


def test_it_fails_when_nobody_is_valid(aws_connection: Any, instance: dict[str, Any]) -> None:
    run = users_run(aws_connection, instance, BAD)

    with pytest.raises(PermanentError) as refused:
        STEP.plan(context(run, "connect_users"))

    assert refused.value.code == "no_valid_usernames"


def test_it_asks_for_people_when_it_has_none(aws_connection: Any, instance: dict[str, Any]) -> None:
    run = start_run("connect_users", aws_connection, instance_id=instance["Id"])

    assert STEP.plan(context(run, "connect_users")).needs_input


def test_it_reads_people_from_the_forms_csv(aws_connection: Any, instance: dict[str, Any]) -> None:
    csv_text = (
        "username,first_name,last_name,email\nsato@example.com,Hanako,Sato,sato@example.com\n"
    )
    assert parse_people_csv(csv_text) == [
        {
            "username": "sato@example.com",
            "first_name": "Hanako",
            "last_name": "Sato",
            "email": "sato@example.com",
        }
    ]
    with pytest.raises(ValueError, match="header"):
        parse_people_csv("sato@example.com,Hanako,Sato\n")
    run = start_run(
        "connect_users", aws_connection, instance_id=instance["Id"], inputs={"people_csv": csv_text}
    )

    STEP.plan(context(run, "connect_users"))

    assert [c.username for c in rows(run, "create")] == ["sato@example.com"]


def test_it_leaves_existing_users_alone_unless_asked_to_update_them(
    aws_connection: Any, connect: Any, instance: dict[str, Any]
) -> None:
    profiles, routing = default_profiles(connect, instance["Id"])
    existing = connect.create_user(
        InstanceId=instance["Id"],
        Username=GOOD[0]["username"],
        IdentityInfo={"FirstName": "Taro", "LastName": "Yamada"},
        PhoneConfig={"PhoneType": "SOFT_PHONE"},
        SecurityProfileIds=[profiles["Admin"]],
        RoutingProfileId=routing,
    )["UserId"]
    run = users_run(aws_connection, instance, GOOD[:1])

    left = STEP.apply(context(run, "connect_users"))
    plan = STEP.plan(context(run, "connect_users", update_existing=True))
    updated = STEP.apply(context(run, "connect_users", update_existing=True))

    assert (left.created, left.updated, left.unchanged) == (0, 0, 1)
    assert plan.counts == {"update": 1}
    update = rows(run, "update")[0]
    assert update.details["changes"]["security_profiles"] == {"from": ["Admin"], "to": ["Agent"]}
    assert updated.updated == 1
    user = connect.describe_user(InstanceId=instance["Id"], UserId=existing)["User"]
    assert user["SecurityProfileIds"] == [profiles["Agent"]]


def test_it_rolls_back_only_the_users_it_created(
    aws_connection: Any, connect: Any, instance: dict[str, Any]
) -> None:
    profiles, routing = default_profiles(connect, instance["Id"])
    connect.create_user(
        InstanceId=instance["Id"],
        Username=GOOD[0]["username"],
        IdentityInfo={"FirstName": "Taro", "LastName": "Yamada"},
        PhoneConfig={"PhoneType": "SOFT_PHONE"},
        SecurityProfileIds=[profiles["Agent"]],
        RoutingProfileId=routing,
    )
    run = users_run(aws_connection, instance, GOOD)
    outputs = STEP.apply(context(run, "connect_users"))
    assert outputs.created == 1
    # The step records that it created users, so the runner rolls it back.
    assert StepRun.objects.get(run=run).created_resources

    STEP.rollback(context(run, "connect_users"))
    STEP.rollback(context(run, "connect_users"))  # a second rollback finds nothing to do

    assert usernames(connect, instance["Id"]) == [GOOD[0]["username"]]


@pytest.mark.worker
def test_it_creates_every_user_once_after_the_worker_is_killed_mid_create(
    celery_worker: WorkerProcess, aws_connection: Any, connect: Any, instance: dict[str, Any]
) -> None:
    people = [person(f"agent{n}@example.com") for n in range(3)]
    run = admin_moves.run_create(
        user=None,
        flow_key="test_only_connect_users",
        region="ap-northeast-1",
        instance_id=instance["Id"],
        aws_connection_id=aws_connection.pk,
        # Pause right after the first CreateUser answered, before the row records it.
        inputs={"people": people, "crash_after": {"connect_users": "CreateUser"}},
    )
    paused = paused_path(run.pk, "connect_users")
    wait_for(paused.exists, RUN_TIMEOUT_S, "the first CreateUser to have answered")
    victim = int(paused.read_text())
    assert victim in celery_worker.pool_pids()
    # Created in Connect, not yet recorded by the run.
    assert usernames(connect, instance["Id"]) == ["agent0@example.com"]
    assert [c.outcome for c in rows(run, "create")] == ["", "", ""]

    os.kill(victim, signal.SIGKILL)
    wait_until_at_rest(run, celery_worker)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert usernames(connect, instance["Id"]) == [p["username"] for p in people]
    assert [(c.username, c.outcome) for c in rows(run, "create")] == [
        (p["username"], "created") for p in people
    ]
    # The killed attempt's user is taken as this run's (its tag), not created twice.
    assert len(succeeded_calls(run, "CreateUser")) == len(people)
    step = StepRun.objects.get(run=run)
    assert step.outputs["created"] == len(people)


# The SSO setup: the people come from the assignments step, the choices from the admin. ---------

SANDBOX_PROFILES = ["Admin", "Agent", "CallCenterManager", "QualityAnalyst"]


def assigned(run: Any, **inputs: Any) -> Any:
    """The step's context in an SSO setup: the assignments step brought the people."""
    return replace(
        context(run, "connect_users", **inputs),
        outputs={"entra_assignments": {"people": GOOD}},
    )


def test_in_an_sso_setup_it_offers_the_instances_profiles_before_planning(
    aws_connection: Any, connect: Any, instance: dict[str, Any]
) -> None:
    run = start_run("connect_users", aws_connection, instance_id=instance["Id"])

    plan = STEP.plan(assigned(run))

    assert plan.needs_input
    choices = plan.to_json()["user_choices"]
    assert choices["security_profiles"] == SANDBOX_PROFILES
    assert choices["routing_profiles"] == ["Basic Routing Profile"]
    assert choices["people_count"] == len(GOOD)
    assert choices["usernames"] == [p["username"] for p in GOOD]
    assert not UserChangeSet.objects.filter(step_run__run=run).exists()
    assert usernames(connect, instance["Id"]) == []


def test_in_an_sso_setup_it_gives_everyone_the_chosen_profiles_and_desk_phones(
    aws_connection: Any, connect: Any, instance: dict[str, Any]
) -> None:
    run = start_run("connect_users", aws_connection, instance_id=instance["Id"])
    chosen = {
        "security_profiles": ["Agent", "CallCenterManager"],
        "routing_profile": "Basic Routing Profile",
        "phone_type": "DESK_PHONE",
        "desk_phones": f"{GOOD[0]['username']},+81312345678\n{GOOD[1]['username']},+81312345679",
    }

    plan = STEP.plan(assigned(run, **chosen))
    outputs = STEP.apply(assigned(run, **chosen))

    assert plan.chosen == (
        "Every user gets the security profiles “Agent”, “CallCenterManager”, the routing "
        "profile “Basic Routing Profile” and a desk phone."
    )
    assert outputs.created == len(GOOD)
    profiles, routing = default_profiles(connect, instance["Id"])
    users = {
        user["Username"]: connect.describe_user(InstanceId=instance["Id"], UserId=user["Id"])[
            "User"
        ]
        for user in connect.list_users(InstanceId=instance["Id"])["UserSummaryList"]
    }
    first = users[GOOD[0]["username"]]
    assert sorted(first["SecurityProfileIds"]) == sorted(
        [profiles["Agent"], profiles["CallCenterManager"]]
    )
    assert first["RoutingProfileId"] == routing
    assert first["PhoneConfig"]["PhoneType"] == "DESK_PHONE"
    assert first["PhoneConfig"]["DeskPhoneNumber"] == "+81312345678"
    assert users[GOOD[1]["username"]]["PhoneConfig"]["DeskPhoneNumber"] == "+81312345679"


def test_in_an_sso_setup_its_plan_reads_the_instance_once_for_the_users_and_the_choices(
    aws_connection: Any, instance: dict[str, Any]
) -> None:
    run = start_run("connect_users", aws_connection, instance_id=instance["Id"])
    calls_before = len(calls(run))

    plan = STEP.plan(assigned(run, **ConnectUsers.headless_defaults))

    read = [c.operation for c in calls(run)[calls_before:] if c.kind == AuditKind.CALL_STARTED]
    # The choices kept for the form come from the reading the change set was planned from.
    for operation in ("DescribeInstance", "ListSecurityProfiles", "ListRoutingProfiles"):
        assert read.count(operation) == 1, read
    choices = plan.to_json()["user_choices"]
    assert choices["security_profiles"] == SANDBOX_PROFILES
    assert choices["routing_profiles"] == ["Basic Routing Profile"]
    assert choices["people_count"] == len(GOOD)


def test_its_verify_lists_the_users_only_when_the_search_leaves_a_doubt(
    aws_connection: Any, connect: Any, instance: dict[str, Any]
) -> None:
    run = users_run(aws_connection, instance, GOOD)
    STEP.plan(context(run, "connect_users"))
    STEP.apply(context(run, "connect_users"))
    calls_before = len(calls(run))

    findings = STEP.verify(context(run, "connect_users"))

    assert all(finding.ok for finding in findings), findings
    read = [c.operation for c in calls(run)[calls_before:] if c.kind == AuditKind.CALL_STARTED]
    # SearchUsers found everyone just created, with their attributes: no ListUsers on top.
    assert read == ["SearchUsers"]
    # A user the search doesn't find is asked of ListUsers (the index may lag behind a create);
    # one deleted meanwhile is missing there too.
    gone = rows(run, "create")[0]
    connect.delete_user(InstanceId=instance["Id"], UserId=gone.user_id)
    calls_before = len(calls(run))
    (every_person, *_rest) = STEP.verify(context(run, "connect_users"))
    assert not every_person.ok and gone.username in render(every_person.detail)
    read = [c.operation for c in calls(run)[calls_before:] if c.kind == AuditKind.CALL_STARTED]
    assert read == ["SearchUsers", "ListUsers"]


def test_in_an_sso_setup_a_profile_the_instance_lacks_is_named_with_the_ones_it_has(
    aws_connection: Any, instance: dict[str, Any]
) -> None:
    run = start_run("connect_users", aws_connection, instance_id=instance["Id"])

    with pytest.raises(PermanentError) as refused:
        STEP.plan(assigned(run, security_profiles=["Supervisor"]))

    assert refused.value.code == "unknown_security_profile"
    assert "'Supervisor'" in refused.value.message
    assert refused.value.hint == "The instance has: " + ", ".join(SANDBOX_PROFILES) + "."


def test_a_phone_type_connect_does_not_know_is_refused_before_any_call(
    aws_connection: Any, instance: dict[str, Any]
) -> None:
    run = start_run("connect_users", aws_connection, instance_id=instance["Id"])
    calls_before = len(calls(run))

    with pytest.raises(PermanentError) as refused:
        STEP.plan(assigned(run, phone_type="VOIP"))

    assert refused.value.code == "phone_type_invalid"
    assert "SOFT_PHONE, DESK_PHONE" in refused.value.hint
    assert len(calls(run)) == calls_before


def test_a_desk_phone_without_each_persons_number_is_refused_per_person(
    aws_connection: Any, instance: dict[str, Any]
) -> None:
    run = start_run("connect_users", aws_connection, instance_id=instance["Id"])
    only_first = f"{GOOD[0]['username']},+81312345678"

    plan = STEP.plan(assigned(run, phone_type="DESK_PHONE", desk_phones=only_first))

    assert plan.counts == {"create": 1, "refused": 1}
    refused = rows(run, "refused")[0]
    assert refused.username == GOOD[1]["username"]
    assert any("E.164" in str(render(reason)) for reason in refused.details["reasons"])


def test_its_answers_stay_editable_with_the_instances_profiles_once_submitted(
    aws_connection: Any, instance: dict[str, Any], sandbox: Sandbox
) -> None:
    """Issue 13: the answers offered again (a failed step, retried, a plan waiting again) come
    with the instance's profiles to choose from, the submitted ones ticked, not plain text
    fields (and no people list to type: the assignments step brought them)."""
    run = start_run("connect_users", aws_connection, instance_id=instance["Id"])
    asked = STEP.plan(assigned(run)).to_json()
    step = StepRun.objects.get(run=run, key="connect_users")
    step.status, step.plan = StepStatus.PLANNED, asked
    step.save()
    SetupRun.objects.filter(pk=run.pk).update(status=RunStatus.WAITING)
    chosen = {
        "security_profiles": ["CallCenterManager"],
        "routing_profile": "Basic Routing Profile",
    }
    admin_moves.step_submit_inputs(
        user=None, run_id=run.pk, step_key="connect_users", inputs=chosen, enqueue=False
    )
    step.refresh_from_db()
    # Only one more user fits the instance: the plan fails, and the runner keeps the step's plan
    # as the answers left it; the page offers the answers for editing, and a retry keeps them.
    quotas = sandbox.apps["aws"].service_quotas
    quotas._values[("ap-northeast-1", USERS_PER_INSTANCE_QUOTA, instance["Arn"])] = 1
    with pytest.raises(PermanentError):
        STEP.plan(replace(assigned(run), plan=dict(step.plan)))
    StepRun.objects.filter(pk=step.pk).update(status=StepStatus.FAILED)
    SetupRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED)
    form = ConnectUsersForm(plan=step.plan, initial=step.inputs, prefix="step-connect_users")
    failed_plan = dict(step.plan)
    admin_moves.run_retry_step(user=None, run_id=run.pk, step_key="connect_users", enqueue=False)
    step.refresh_from_db()
    # With room again, the users plan carries the choices on, for a failure after it.
    quotas._values[("ap-northeast-1", USERS_PER_INSTANCE_QUOTA, instance["Arn"])] = 10
    users_plan = STEP.plan(replace(assigned(run), plan=dict(step.plan))).to_json()
    # A plan file's answers were picked from nothing: the plan reads the choices itself.
    from_file = STEP.plan(assigned(run, **chosen)).to_json()

    assert asked["user_choices"]["security_profiles"] == SANDBOX_PROFILES
    assert failed_plan == step.plan == {"user_choices": asked["user_choices"]}
    assert users_plan["counts"]["create"] == len(GOOD)
    assert users_plan["user_choices"] == asked["user_choices"]
    assert from_file["user_choices"] == asked["user_choices"]
    assert form.fields["security_profiles"].choices == [(n, n) for n in SANDBOX_PROFILES]  # type: ignore[attr-defined]
    assert "people_csv" not in form.fields
    html = str(form)
    assert re.search(r'value="CallCenterManager"[^>]*checked', html), html
    assert not re.search(r'value="Agent"[^>]*checked', html), html
    assert '<option value="Basic Routing Profile" selected>' in html
