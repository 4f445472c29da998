"""What the admin does with a run: retry a step, resume, cancel, roll back; and the refusal to
continue a run whose flow changed."""

from __future__ import annotations

import pytest

from provisioning import runner
from provisioning.flows import FLOWS, Flow, register_flow
from provisioning.messages import render
from provisioning.models import AuditKind, RunStatus, StepStatus
from tests import engine_doubles
from tests.engine.runs import QUICK, calls, drive, start_run, transitions
from wizard.services import runs as run_services
from wizard.services.runs import RunError

pytestmark = pytest.mark.django_db

FAILS_ONCE_STEPS = ["test_marker_one", "test_marker_fails_once", "test_marker_three"]
FLOW_STEPS = ["test_marker_one", "test_marker_two", "test_marker_three"]


def test_it_retries_a_failed_step_and_finishes_the_run(admin_user) -> None:
    run = start_run(admin_user, "test_flow_fails_once")
    drive(run)
    assert run.status == RunStatus.FAILED
    assert run.error["message"] == "This step fails the first time; retry it."

    run_services.run_retry_step(
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
        run_services.run_retry_step(user=admin_user, run_id=run.pk, step_key="test_marker_one")


def test_it_resumes_a_failed_run_from_the_failed_step(admin_user) -> None:
    run = start_run(admin_user, "test_flow_fails_once")
    drive(run)
    one = run.steps.get(key="test_marker_one")

    run_services.run_resume(user=admin_user, run_id=run.pk, enqueue=False)
    drive(run)

    assert run.status == RunStatus.SUCCEEDED
    assert engine_doubles.creations(run.pk) == FAILS_ONCE_STEPS
    one_after = run.steps.get(key="test_marker_one")
    assert one_after.attempts == one.attempts  # the succeeded step was not run again


def test_it_stops_a_cancelled_run_and_resumes_it_later(admin_user) -> None:
    run = start_run(admin_user)
    assert runner.advance(run.pk) == runner.NOW  # step one done

    run_services.run_cancel(user=admin_user, run_id=run.pk)

    assert runner.advance(run.pk) is None
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert engine_doubles.creations(run.pk) == ["test_marker_one"]

    run_services.run_resume(user=admin_user, run_id=run.pk, enqueue=False)
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

    run_services.run_cancel(user=admin_user, run_id=run.pk)
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

    run_services.run_cancel(user=admin_user, run_id=run.pk)

    one = run.steps.get(key="test_marker_one")
    assert one.status == StepStatus.PENDING
    assert one.plan == {}
    assert ("applying", "pending") in transitions(run, "test_marker_one")
    run_services.run_resume(user=admin_user, run_id=run.pk, enqueue=False)
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

    run_services.run_cancel(user=admin_user, run_id=run.pk)
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

    run_services.run_rollback(user=admin_user, run_id=run.pk, enqueue=False)
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


def test_it_rolls_back_a_failed_run_including_the_failed_steps_creations(admin_user) -> None:
    run = start_run(admin_user, inputs={**QUICK, "verify_fail_steps": ["test_marker_two"]})
    drive(run)
    assert run.steps.get(key="test_marker_two").created_resources  # created, then verify failed

    run_services.run_rollback(user=admin_user, run_id=run.pk, enqueue=False)
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
        run_services.run_rollback(user=admin_user, run_id=run.pk)


def test_it_refuses_to_resume_a_run_whose_flow_changed(admin_user) -> None:
    run = start_run(admin_user, "test_flow_fails_once")
    drive(run)
    original = FLOWS["test_flow_fails_once"]
    register_flow(Flow(original.key, original.idp, original.title, original.step_keys[:2]))
    try:
        with pytest.raises(RunError, match="changed since this run started"):
            run_services.run_resume(user=admin_user, run_id=run.pk)
        with pytest.raises(RunError, match="changed since this run started"):
            run_services.run_retry_step(
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
