"""What a step's plan read reaches its apply only when the apply follows at once, in the same
advance() call (StepContext.read_by_plan): never across an admin's confirmation or a wait. A
confirmed plan's apply gets what its re-check read, made right before it."""

from __future__ import annotations

from typing import Any

import pytest

from provisioning.context import StepContext
from provisioning.models import RunStatus, StepStatus
from provisioning.runs import admin_moves
from tests import engine_doubles
from tests.engine.runs import QUICK, drive, start_run

pytestmark = pytest.mark.django_db

KEY = "test_marker_two"


@pytest.fixture
def seen_by_apply(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Each plan leaves a note in read_by_plan (its step, and how many plans of the step ran
    before); each apply records what it found there."""
    seen: list[tuple[str, dict[str, Any]]] = []
    plans: dict[str, int] = {}
    step_plan = engine_doubles.MarkerStep.plan
    step_apply = engine_doubles.MarkerStep.apply

    def plan(self: Any, ctx: StepContext) -> Any:
        ctx.read_by_plan["planned"] = f"{ctx.step_key} #{plans.get(ctx.step_key, 0)}"
        plans[ctx.step_key] = plans.get(ctx.step_key, 0) + 1
        return step_plan(self, ctx)

    def apply(self: Any, ctx: StepContext) -> Any:
        seen.append((ctx.step_key, dict(ctx.read_by_plan)))
        return step_apply(self, ctx)

    monkeypatch.setattr(engine_doubles.MarkerStep, "plan", plan)
    monkeypatch.setattr(engine_doubles.MarkerStep, "apply", apply)
    return seen


def test_an_apply_right_after_its_plan_gets_what_the_plan_read(seen_by_apply) -> None:
    run = start_run()

    drive(run)

    assert run.status == RunStatus.SUCCEEDED
    assert seen_by_apply == [
        ("test_marker_one", {"planned": "test_marker_one #0"}),
        ("test_marker_two", {"planned": "test_marker_two #0"}),
        ("test_marker_three", {"planned": "test_marker_three #0"}),
    ]


def test_a_confirmed_apply_gets_its_recheck_and_a_retry_after_a_wait_reads_afresh(
    admin_user, seen_by_apply
) -> None:
    run = start_run(admin_user, inputs={**QUICK, "confirm_steps": [KEY], "waits": {KEY: 1}})
    drive(run)
    admin_moves.step_confirm(user=admin_user, run_id=run.pk, step_key=KEY)

    drive(run)

    assert run.status == RunStatus.SUCCEEDED
    # The confirmed step's apply sees its re-check's reads (plan #1), never the plan the admin
    # confirmed (#0); its retry after the wait reads afresh; nothing reaches the next step.
    assert [reads for key, reads in seen_by_apply if key == KEY] == [
        {"planned": f"{KEY} #1"},
        {},
    ]
    assert seen_by_apply[-1] == ("test_marker_three", {"planned": "test_marker_three #0"})


def test_a_cancel_while_the_plan_is_made_stops_the_step_before_its_apply(
    admin_user, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan is saved and the step taken on to apply in one UPDATE, guarded on the run still
    running: a cancel that lands while the plan is being made leaves the plan saved, unapplied."""
    applied: list[str] = []
    step_plan = engine_doubles.MarkerStep.plan
    step_apply = engine_doubles.MarkerStep.apply

    def plan(self: Any, ctx: StepContext) -> Any:
        if ctx.step_key == KEY:
            admin_moves.run_cancel(user=admin_user, run_id=ctx.run_id)
        return step_plan(self, ctx)

    def apply(self: Any, ctx: StepContext) -> Any:
        applied.append(ctx.step_key)
        return step_apply(self, ctx)

    monkeypatch.setattr(engine_doubles.MarkerStep, "plan", plan)
    monkeypatch.setattr(engine_doubles.MarkerStep, "apply", apply)
    run = start_run(admin_user)

    drive(run)

    assert run.status == RunStatus.CANCELLED
    assert applied == ["test_marker_one"]
    step = run.steps.get(key=KEY)
    assert step.status == StepStatus.PLANNED and not step.claimed_by
    assert step.plan["changes"], step.plan
