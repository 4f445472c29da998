"""A confirmed plan is the plan that runs: the engine plans again before applying a confirmed
plan and asks again when the cloud changed, but never twice for an unchanged cloud, and never
because of what the step's own first attempt changed."""

from __future__ import annotations

import pytest

from provisioning.models import AuditEvent, AuditKind, RunStatus, StepStatus
from provisioning.runs import admin_moves, runner
from provisioning.steps.base import Change, Plan
from tests import engine_doubles
from tests.engine.runs import QUICK, drive, start_run, transitions

pytestmark = pytest.mark.django_db

KEY = "test_marker_two"


def _confirm(admin_user, run) -> None:
    admin_moves.step_confirm(user=admin_user, run_id=run.pk, step_key=KEY)
    drive(run)


def test_it_applies_an_unchanged_confirmed_plan_without_asking_twice(admin_user) -> None:
    run = start_run(admin_user, inputs={**QUICK, "confirm_steps": [KEY]})
    drive(run)

    _confirm(admin_user, run)

    assert run.status == RunStatus.SUCCEEDED
    assert transitions(run, KEY) == [
        ("pending", "planning"),
        ("planning", "planned"),
        ("planned", "applying"),
        ("applying", "succeeded"),
    ]
    step = run.steps.get(key=KEY)
    assert step.plan["apply_started_at"]
    assert "changed_since_confirmation" not in step.plan
    assert engine_doubles.creations(run.pk) == ["test_marker_one", KEY, "test_marker_three"]


def test_it_asks_again_when_the_cloud_changed_after_the_admin_confirmed(admin_user) -> None:
    run = start_run(admin_user, inputs={**QUICK, "confirm_steps": [KEY]})
    drive(run)
    assert run.steps.get(key=KEY).plan["changes"][0]["action"] == "create"
    # Someone else makes the marker between the admin's confirmation and the apply.
    engine_doubles.marker_path(run.pk, KEY).write_text("someone else")

    _confirm(admin_user, run)

    step = run.steps.get(key=KEY)
    assert run.status == RunStatus.WAITING
    assert step.status == StepStatus.PLANNED
    assert step.plan["needs_confirmation"] is True
    assert step.plan["changes"][0]["action"] == "nothing"
    assert step.plan["changed_since_confirmation"] == [
        {
            "resource_type": "test_marker",
            "name": engine_doubles.marker_path(run.pk, KEY).name,
            "confirmed": "create",
            "now": "nothing",
            "values": False,
        }
    ]
    assert ("applying", "planned") in transitions(run, KEY)
    event = AuditEvent.objects.get(
        run=run,
        kind=AuditKind.STEP_STATE,
        step_key=KEY,
        new_value__status="planned",
        old_value__status="applying",
    )
    assert event.message_text.startswith("Plan changed since confirmation: test_marker ")
    assert "create → nothing" in event.message_text
    assert KEY not in engine_doubles.creations(run.pk)

    _confirm(admin_user, run)

    assert run.status == RunStatus.SUCCEEDED
    assert engine_doubles.creations(run.pk) == ["test_marker_one", "test_marker_three"]
    assert transitions(run, KEY).count(("applying", "planned")) == 1


def test_a_confirmed_step_that_partly_applied_resumes_without_asking_again(admin_user) -> None:
    # Its first attempt creates the marker, then the cloud times out: planned again now, the
    # step would say "nothing" where the admin confirmed "create" (its own doing).
    run = start_run(
        admin_user,
        inputs={**QUICK, "confirm_steps": [KEY], "fail_after_create": {KEY: 1}},
    )
    drive(run)

    _confirm(admin_user, run)

    step = run.steps.get(key=KEY)
    assert run.status == RunStatus.SUCCEEDED
    assert ("applying", "planned") not in transitions(run, KEY)
    assert step.error == {}
    assert engine_doubles.creations(run.pk) == ["test_marker_one", KEY, "test_marker_three"]
    assert step.created_resources == [
        {"resource_type": "test_marker", "identifier": engine_doubles.marker_path(run.pk, KEY).name}
    ]


def test_an_auto_applied_plan_is_not_planned_twice(admin_user) -> None:
    run = start_run(admin_user)

    drive(run)

    assert run.status == RunStatus.SUCCEEDED
    plans = AuditEvent.objects.filter(
        run=run, step_key=KEY, operation="GetMarker", kind=AuditKind.CALL_STARTED
    )
    # One lookup in plan, one in apply: no second plan before the apply.
    assert plans.count() == 2
    assert "apply_started_at" not in run.steps.get(key=KEY).plan


def test_plans_differ_only_in_what_the_admin_confirms() -> None:
    confirmed = Plan(
        changes=[
            Change("nothing", "instance", "a", {"status": "CREATION_IN_PROGRESS"}),
            Change("create", "role", "r", {"trust": {"aud": 1}}),
            Change("update", "app", "x", {"reply_url": {"now": "u1", "wanted": "u2"}}),
        ],
        warnings=["read at 10:00"],
    )
    same = Plan(
        changes=[
            Change("update", "app", "x", {"reply_url": {"now": "u1", "wanted": "u2"}}),
            Change("create", "role", "r", {"trust": {"aud": 1}}),
            Change("nothing", "instance", "a", {"status": "ACTIVE"}),
        ],
        warnings=["read at 10:01"],
        needs_confirmation=True,
    )
    changed = Plan(
        changes=[
            Change("nothing", "instance", "a", {"status": "ACTIVE"}),
            Change("update", "role", "r", {"trust": {"aud": 1}}),
            Change("update", "app", "x", {"reply_url": {"now": "u9", "wanted": "u2"}}),
            Change("create", "group", "g"),
        ]
    )

    assert confirmed.differences(same) == []
    assert [str(d.summary()) for d in confirmed.differences(changed)] == [
        "role r: create → update",
        "app x: update with other values",
        "group g: absent → create",
    ]
    assert [str(d.summary()) for d in changed.differences(confirmed)][
        -1
    ] == "group g: create → absent"
    assert runner.CHANGED_SINCE_CONFIRMATION == "changed_since_confirmation"
