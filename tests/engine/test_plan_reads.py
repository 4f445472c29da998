"""What a step's plan read reaches its apply only when the apply follows at once, in the same
advance() call (StepContext.read_by_plan): never across an admin's confirmation or a wait."""

from __future__ import annotations

from typing import Any

import pytest

from provisioning.context import StepContext
from provisioning.models import RunStatus
from provisioning.runs import admin_moves
from tests import engine_doubles
from tests.engine.runs import QUICK, drive, start_run

pytestmark = pytest.mark.django_db

KEY = "test_marker_two"


@pytest.fixture
def seen_by_apply(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Each plan leaves a note in read_by_plan; each apply records what it found there."""
    seen: list[tuple[str, dict[str, Any]]] = []
    step_plan = engine_doubles.MarkerStep.plan
    step_apply = engine_doubles.MarkerStep.apply

    def plan(self: Any, ctx: StepContext) -> Any:
        ctx.read_by_plan["planned"] = ctx.step_key
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
        ("test_marker_one", {"planned": "test_marker_one"}),
        ("test_marker_two", {"planned": "test_marker_two"}),
        ("test_marker_three", {"planned": "test_marker_three"}),
    ]


def test_an_apply_after_the_admin_confirmed_or_after_a_wait_reads_afresh(
    admin_user, seen_by_apply
) -> None:
    run = start_run(admin_user, inputs={**QUICK, "confirm_steps": [KEY], "waits": {KEY: 1}})
    drive(run)
    admin_moves.step_confirm(user=admin_user, run_id=run.pk, step_key=KEY)

    drive(run)

    assert run.status == RunStatus.SUCCEEDED
    # The confirmed step's apply, its retry after the wait, and nothing carried to the next step.
    assert [reads for key, reads in seen_by_apply if key == KEY] == [{}, {}]
    assert seen_by_apply[-1] == ("test_marker_three", {"planned": "test_marker_three"})
