"""What the admin does with a run: retry a step, resume, cancel, roll back; and the refusal to
continue a run whose flow changed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from provisioning.errors import Throttled
from provisioning.flows import (
    CLAIM_PHONE_NUMBERS,
    FLOWS,
    PHONE_STEP,
    Flow,
    OptionalStep,
    flow_signature,
    register_flow,
)
from provisioning.messages import render
from provisioning.models import AuditKind, RunStatus, StepStatus
from provisioning.runs import admin_moves, runner
from provisioning.runs.admin_moves import RunError
from tests import engine_doubles
from tests.engine.runs import QUICK, calls, drive, start_run, transitions

pytestmark = pytest.mark.django_db

FAILS_ONCE_STEPS = ["test_marker_one", "test_marker_fails_once", "test_marker_three"]
FLOW_STEPS = ["test_marker_one", "test_marker_two", "test_marker_three"]


def test_it_retries_a_failed_step_and_finishes_the_run(admin_user) -> None:
    run = start_run(admin_user, "test_flow_fails_once")
    drive(run)
    assert run.status == RunStatus.FAILED
    assert run.error["message"] == "This step fails the first time; retry it."

    admin_moves.run_retry_step(
        user=admin_user, run_id=run.pk, step_key="test_marker_fails_once", enqueue=False
    )
    drive(run)

    assert run.status == RunStatus.SUCCEEDED
    assert run.error == {}
    assert engine_doubles.creations(run.pk) == FAILS_ONCE_STEPS
    assert transitions(run, "test_marker_fails_once")[3:] == [
        ("applying", "failed"),
        ("failed", "pending"),
        ("pending", "planning"),
        ("planning", "planned"),
        ("planned", "applying"),
        ("applying", "succeeded"),
    ]


def test_it_refuses_to_retry_a_step_that_did_not_fail(admin_user) -> None:
    run = start_run(admin_user)

    with pytest.raises(RunError, match="Only a failed step"):
        admin_moves.run_retry_step(user=admin_user, run_id=run.pk, step_key="test_marker_one")


def test_it_resumes_a_failed_run_from_the_failed_step(admin_user) -> None:
    run = start_run(admin_user, "test_flow_fails_once")
    drive(run)
    one = run.steps.get(key="test_marker_one")

    admin_moves.run_resume(user=admin_user, run_id=run.pk, enqueue=False)
    drive(run)

    assert run.status == RunStatus.SUCCEEDED
    assert engine_doubles.creations(run.pk) == FAILS_ONCE_STEPS
    one_after = run.steps.get(key="test_marker_one")
    assert one_after.attempts == one.attempts  # the succeeded step was not run again


def test_it_stops_a_cancelled_run_and_resumes_it_later(admin_user) -> None:
    run = start_run(admin_user)
    assert runner.advance(run.pk) == runner.NOW  # step one done

    admin_moves.run_cancel(user=admin_user, run_id=run.pk)

    assert runner.advance(run.pk) is None
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert engine_doubles.creations(run.pk) == ["test_marker_one"]

    admin_moves.run_resume(user=admin_user, run_id=run.pk, enqueue=False)
    drive(run)

    assert run.status == RunStatus.SUCCEEDED
    assert engine_doubles.creations(run.pk) == FLOW_STEPS
    assert [new for _, new in transitions(run)] == [
        "pending",
        "running",
        "cancelled",
        "running",
        "succeeded",
    ]


def test_it_finishes_the_call_in_progress_after_a_cancel(admin_user) -> None:
    run = start_run(admin_user, inputs={**QUICK, "waits": {"test_marker_one": 1}})
    runner.advance(run.pk)  # step one is applying and waits for the cloud
    step = run.steps.get(key="test_marker_one")
    step_claim = runner._claim(run, step, "host:1", to_status=StepStatus.APPLYING)
    assert step_claim is not None

    admin_moves.run_cancel(user=admin_user, run_id=run.pk)
    # The worker holding the step finishes its call and records the result, then stops.
    assert runner._apply(run, step_claim, "host:1") == StepStatus.SUCCEEDED
    assert runner.advance(run.pk) is None

    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert run.steps.get(key="test_marker_one").status == StepStatus.SUCCEEDED
    assert run.steps.get(key="test_marker_two").status == StepStatus.PENDING


def test_a_cancel_leaves_no_step_frozen_in_applying(admin_user) -> None:
    # Step one waits for the cloud (released, still "applying") when the admin cancels.
    run = start_run(admin_user, inputs={**QUICK, "waits": {"test_marker_one": 1}})
    runner.advance(run.pk)
    assert run.steps.get(key="test_marker_one").status == StepStatus.APPLYING

    admin_moves.run_cancel(user=admin_user, run_id=run.pk)

    one = run.steps.get(key="test_marker_one")
    assert one.status == StepStatus.PENDING
    assert one.plan == {}
    assert ("applying", "pending") in transitions(run, "test_marker_one")
    admin_moves.run_resume(user=admin_user, run_id=run.pk, enqueue=False)
    drive(run)
    assert run.status == RunStatus.SUCCEEDED
    assert engine_doubles.creations(run.pk) == FLOW_STEPS


def test_a_step_whose_worker_waits_after_a_cancel_is_settled_on_the_next_advance(
    admin_user,
) -> None:
    run = start_run(admin_user, inputs={**QUICK, "waits": {"test_marker_one": 2}})
    runner.advance(run.pk)  # applying, waits for the cloud
    step = run.steps.get(key="test_marker_one")
    claimed = runner._claim(run, step, "host:1", to_status=StepStatus.APPLYING)
    assert claimed is not None

    admin_moves.run_cancel(user=admin_user, run_id=run.pk)
    # The worker holding the step is not disturbed by the cancel; its call ends in a wait.
    assert run.steps.get(key="test_marker_one").status == StepStatus.APPLYING
    runner._apply(run, claimed, "host:1")
    assert runner.advance(run.pk) is None

    assert run.steps.get(key="test_marker_one").status == StepStatus.PENDING


def test_it_rolls_back_what_the_run_created_last_step_first(admin_user) -> None:
    run = start_run(admin_user)
    adopted = engine_doubles.marker_path(run.pk, "test_marker_two")
    adopted.write_text("made by someone else")
    drive(run)

    admin_moves.run_rollback(user=admin_user, run_id=run.pk, enqueue=False)
    drive(run)

    assert run.status == RunStatus.ROLLED_BACK
    assert list(run.steps.values_list("status", flat=True)) == [StepStatus.ROLLED_BACK] * 3
    assert not engine_doubles.marker_path(run.pk, "test_marker_one").exists()
    assert not engine_doubles.marker_path(run.pk, "test_marker_three").exists()
    assert adopted.read_text() == "made by someone else"  # adopted, so left alone
    deleted = [
        event.request["name"]
        for event in calls(run, "DeleteMarker")
        if event.kind == AuditKind.CALL_STARTED
    ]
    assert deleted == [
        engine_doubles.marker_path(run.pk, "test_marker_three").name,
        engine_doubles.marker_path(run.pk, "test_marker_one").name,
    ]


def test_a_throttled_rollback_waits_with_its_next_try_and_then_finishes(
    admin_user, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rollback's retry carries what the run page shows as a calm counter (rate_limited,
    retry_at), as apply's does; the next advance rolls the step back."""
    run = start_run(admin_user)
    drive(run)
    admin_moves.run_rollback(user=admin_user, run_id=run.pk, enqueue=False)
    undo = engine_doubles.MarkerThree.rollback
    throttled = []

    def throttled_once(self: Any, ctx: Any) -> None:
        if not throttled:
            throttled.append(ctx.step_key)
            raise Throttled("Rate exceeded", code="ThrottlingException", retry_after_s=0.01)
        undo(self, ctx)

    monkeypatch.setattr(engine_doubles.MarkerThree, "rollback", throttled_once)

    countdown = runner.advance(run.pk)

    three = run.steps.get(key="test_marker_three")
    assert countdown == pytest.approx(0.01, abs=0.05)
    assert three.status == StepStatus.SUCCEEDED and not three.claimed_by
    assert three.error["rate_limited"] is True and three.error["retries"] == 1
    assert parse_datetime(three.error["retry_at"]) > timezone.now() - timedelta(seconds=5)
    drive(run)
    assert run.status == RunStatus.ROLLED_BACK
    assert run.steps.get(key="test_marker_three").status == StepStatus.ROLLED_BACK


def test_it_rolls_back_a_failed_run_including_the_failed_steps_creations(admin_user) -> None:
    run = start_run(admin_user, inputs={**QUICK, "verify_fail_steps": ["test_marker_two"]})
    drive(run)
    assert run.steps.get(key="test_marker_two").created_resources  # created, then verify failed

    admin_moves.run_rollback(user=admin_user, run_id=run.pk, enqueue=False)
    drive(run)

    assert run.status == RunStatus.ROLLED_BACK
    statuses = dict(run.steps.values_list("key", "status"))
    assert statuses == {
        "test_marker_one": StepStatus.ROLLED_BACK,
        "test_marker_two": StepStatus.ROLLED_BACK,
        "test_marker_three": StepStatus.PENDING,
    }
    assert not engine_doubles.marker_path(run.pk, "test_marker_two").exists()


def test_it_refuses_to_roll_back_a_run_in_progress(admin_user) -> None:
    run = start_run(admin_user)
    runner.advance(run.pk)

    with pytest.raises(RunError, match="cancel it first"):
        admin_moves.run_rollback(user=admin_user, run_id=run.pk)


def test_it_refuses_to_resume_a_run_whose_flow_changed(admin_user) -> None:
    run = start_run(admin_user, "test_flow_fails_once")
    drive(run)
    original = FLOWS["test_flow_fails_once"]
    register_flow(Flow(original.key, original.idp, original.title, original.step_keys[:2]))
    try:
        with pytest.raises(RunError, match="changed since this run started"):
            admin_moves.run_resume(user=admin_user, run_id=run.pk)
        with pytest.raises(RunError, match="changed since this run started"):
            admin_moves.run_retry_step(
                user=admin_user, run_id=run.pk, step_key="test_marker_fails_once"
            )
    finally:
        register_flow(original)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED


def test_it_stops_a_running_run_whose_flow_changed_under_it(admin_user) -> None:
    run = start_run(admin_user)
    runner.advance(run.pk)
    original = FLOWS["test_flow"]
    register_flow(Flow(original.key, original.idp, original.title, original.step_keys[::-1]))
    try:
        assert runner.advance(run.pk) is None
    finally:
        register_flow(original)

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error["code"] == "flow_changed"
    assert "Roll the run back or start a new one." in render(run.error["message"])


# Optional steps (a flow's phone numbers) -------------------------------------------------------

OPTIONAL_FLOW = Flow(
    key="test_flow_optional_three",
    idp="entra",
    title="Test setup: the third marker on request",
    step_keys=("test_marker_one", "test_marker_two", "test_marker_three"),
    earlier_step_keys=(("test_marker_one", "test_marker_two"),),
    optional_steps={
        "test_marker_three": OptionalStep(input="want_three", skipped="Skipped: no third marker.")
    },
)


@pytest.fixture
def optional_flow() -> Any:
    register_flow(OPTIONAL_FLOW)
    yield OPTIONAL_FLOW
    FLOWS.pop(OPTIONAL_FLOW.key, None)


def test_an_optional_step_left_out_is_skipped_with_its_reason_in_the_plan(
    admin_user, optional_flow: Flow
) -> None:
    run = start_run(admin_user, optional_flow.key)

    drive(run)

    assert run.status == RunStatus.SUCCEEDED
    three = run.steps.get(key="test_marker_three")
    assert three.status == StepStatus.SKIPPED
    assert three.plan["skipped"] is True
    assert [change["details"] for change in three.plan["changes"]] == [
        {"reason": {"msgid": "Skipped: no third marker.", "params": {}}}
    ]
    assert engine_doubles.creations(run.pk) == ["test_marker_one", "test_marker_two"]
    assert transitions(run, "test_marker_three") == [
        ("pending", "planning"),
        ("planning", "skipped"),
    ]
    # Nothing to undo for it: rollback passes over it.
    admin_moves.run_rollback(user=admin_user, run_id=run.pk, enqueue=False)
    drive(run)
    assert run.steps.get(key="test_marker_three").status == StepStatus.SKIPPED


def test_an_optional_step_asked_for_runs(admin_user, optional_flow: Flow) -> None:
    run = start_run(admin_user, optional_flow.key, inputs={**QUICK, "want_three": True})

    drive(run)

    assert run.status == RunStatus.SUCCEEDED
    assert run.steps.get(key="test_marker_three").status == StepStatus.SUCCEEDED
    assert engine_doubles.creations(run.pk) == [
        "test_marker_one",
        "test_marker_two",
        "test_marker_three",
    ]


def test_a_run_started_before_an_optional_step_was_added_resumes_without_it(
    admin_user, optional_flow: Flow
) -> None:
    earlier = Flow(
        optional_flow.key,
        optional_flow.idp,
        optional_flow.title,
        ("test_marker_one", "test_marker_two"),
    )
    register_flow(earlier)
    run = start_run(admin_user, optional_flow.key)
    runner.advance(run.pk)
    register_flow(optional_flow)  # the new version of the wizard

    assert runner.flow_problem(run) == ""
    drive(run)

    assert run.status == RunStatus.SUCCEEDED
    assert list(run.steps.values_list("key", flat=True)) == ["test_marker_one", "test_marker_two"]


def test_the_sso_setups_end_with_phone_numbers_skipped_unless_asked() -> None:
    for key in ("entra", "okta_group_mapping", "okta_role_download"):
        flow = FLOWS[key]
        assert flow.step_keys[-1] == PHONE_STEP, key
        assert flow.skip_reason(PHONE_STEP, {}).startswith("Skipped"), key
        assert flow.skip_reason(PHONE_STEP, {CLAIM_PHONE_NUMBERS: False}), key
        assert flow.skip_reason(PHONE_STEP, {CLAIM_PHONE_NUMBERS: True}) == "", key
        assert flow.skip_reason("connect_users", {}) == "", key
        # A run started before the step was added resumes.
        assert flow.accepts(flow_signature(flow.step_keys[:-1])), key
        assert not flow.accepts(flow_signature(flow.step_keys[:-2])), key
