"""The runner moves a run through plan, apply and verify of each step, waits without sleeping,
retries what can be retried and stops for the admin when a plan asks."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone, translation
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext

from provisioning.errors import WaitForCloud
from provisioning.messages import render
from provisioning.models import RunStatus, StepStatus
from provisioning.runs import admin_moves, runner
from provisioning.runs.admin_moves import RunError
from provisioning.steps.base import Plan, Step, register
from tests import engine_doubles
from tests.engine.runs import QUICK, calls, drive, start_run, transitions

pytestmark = pytest.mark.django_db

FLOW_STEPS = ["test_marker_one", "test_marker_two", "test_marker_three"]


def test_it_plans_applies_and_verifies_each_step_in_order() -> None:
    run = start_run()

    drive(run)

    assert run.status == RunStatus.SUCCEEDED
    assert run.finished_at is not None
    steps = list(run.steps.order_by("position"))
    assert [step.status for step in steps] == [StepStatus.SUCCEEDED] * 3
    assert engine_doubles.creations(run.pk) == FLOW_STEPS
    for step in steps:
        assert transitions(run, step.key) == [
            ("pending", "planning"),
            ("planning", "planned"),
            ("planned", "applying"),
            ("applying", "succeeded"),
        ]
        assert step.plan["changes"][0]["action"] == "create"
        assert step.outputs["marker"] == engine_doubles.marker_path(run.pk, step.key).name
        assert step.outputs["verify"] == [
            {"check": "The marker exists", "ok": True, "detail": "", "fix": "", "blocking": True}
        ]
        assert step.claimed_by == ""
        assert step.attempts == 2  # one claim to plan, one to apply
    assert transitions(run) == [("", "pending"), ("pending", "running"), ("running", "succeeded")]


def test_it_does_one_step_per_call_and_asks_to_be_called_again_at_once() -> None:
    run = start_run()

    assert runner.advance(run.pk) == runner.NOW

    statuses = list(run.steps.order_by("position").values_list("status", flat=True))
    assert statuses == [StepStatus.SUCCEEDED, StepStatus.PENDING, StepStatus.PENDING]


def test_it_still_applies_a_plan_that_changes_nothing() -> None:
    run = start_run()
    engine_doubles.marker_path(run.pk, "test_marker_one").write_text("made by someone else")

    drive(run)

    step = run.steps.get(key="test_marker_one")
    assert step.plan["changes"][0]["action"] == "nothing"
    assert step.status == StepStatus.SUCCEEDED
    assert step.outputs["marker"]  # apply ran and gave its outputs to later steps
    assert step.created_resources == []  # adopted, not created
    assert "test_marker_one" not in engine_doubles.creations(run.pk)


def test_it_waits_for_the_cloud_by_asking_to_be_called_again(settings) -> None:
    settings.WIZARD_WAIT_COUNTDOWN_S = 0.05
    run = start_run(inputs={"step_seconds": 0, "waits": {"test_marker_one": 2}})

    first = runner.advance(run.pk)

    assert first == 0.05
    step = run.steps.get(key="test_marker_one")
    assert step.status == StepStatus.APPLYING
    assert step.claimed_by == ""  # no worker holds it while it waits
    assert step.waiting_since is not None
    assert "not visible yet" in step.outputs["waiting_for"]
    waiting_since = step.waiting_since

    assert runner.advance(run.pk) == 0.05
    step.refresh_from_db()
    assert step.waiting_since == waiting_since  # elapsed time counts from the first wait

    drive(run)
    step.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert step.waiting_since is None
    assert "waiting_for" not in step.outputs


class WaitsLong(Step):
    key = "test_waits_long"
    title = "Asks for a wait longer than the broker allows"

    def plan(self, ctx):
        raise WaitForCloud("the cloud is slow", countdown_s=24 * 3600)

    def apply(self, ctx):
        raise AssertionError("its plan never finishes")

    def verify(self, ctx):
        return []

    def rollback(self, ctx):
        return None


def test_it_never_asks_for_a_countdown_longer_than_the_limit(settings) -> None:
    settings.WIZARD_MAX_COUNTDOWN_S = 1.5
    register(WaitsLong)
    run = start_run()
    run.steps.filter(key="test_marker_one").update(key="test_waits_long")

    assert runner.advance(run.pk) == 1.5


def test_it_retries_a_retryable_error_with_growing_backoff(settings) -> None:
    settings.WIZARD_RETRY_BACKOFF_S = 0.02
    run = start_run(inputs={**QUICK, "retryable_failures": {"test_marker_one": 2}})

    assert runner.advance(run.pk) == 0.02
    step = run.steps.get(key="test_marker_one")
    assert step.error["code"] == "Throttling"
    assert step.error["retries"] == 1
    assert step.claimed_by == ""
    assert runner.advance(run.pk) == 0.04

    drive(run)
    step.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert step.error == {}
    assert engine_doubles.creations(run.pk) == FLOW_STEPS


def test_it_waits_out_rate_limits_without_using_up_the_retries(settings) -> None:
    settings.WIZARD_STEP_MAX_RETRIES = 2
    settings.WIZARD_STEP_MAX_RATE_LIMIT_WAITS = 10
    run = start_run(inputs={**QUICK, "rate_limited": {"test_marker_two": 6}})

    drive(run)

    assert run.status == RunStatus.SUCCEEDED
    assert engine_doubles.creations(run.pk) == FLOW_STEPS


def test_it_notes_a_rate_limit_and_when_the_step_tries_next(settings) -> None:
    """The run page shows a rate limit as a calm counter: the runner says it is one, and when."""
    run = start_run(inputs={**QUICK, "rate_limited": {"test_marker_one": 2}})
    before = timezone.now()

    delay = runner.advance(run.pk)

    step = run.steps.get(key="test_marker_one")
    assert step.status in {StepStatus.PLANNING, StepStatus.APPLYING}
    assert step.error["rate_limited"] is True
    assert step.error["rate_limit_waits"] == 1
    retry_at = parse_datetime(step.error["retry_at"])
    assert retry_at is not None and delay is not None
    assert before <= retry_at <= timezone.now() + dt.timedelta(seconds=delay)


def test_a_plain_retry_is_no_rate_limit(settings) -> None:
    settings.WIZARD_RETRY_BACKOFF_S = 0.02
    run = start_run(inputs={**QUICK, "retryable_failures": {"test_marker_one": 1}})

    runner.advance(run.pk)

    assert run.steps.get(key="test_marker_one").error["rate_limited"] is False


def test_it_fails_the_step_once_rate_limit_waits_run_out(settings) -> None:
    settings.WIZARD_STEP_MAX_RATE_LIMIT_WAITS = 3
    run = start_run(inputs={**QUICK, "rate_limited": {"test_marker_two": 10}})

    drive(run)

    step = run.steps.get(key="test_marker_two")
    assert step.status == StepStatus.FAILED
    assert step.error["code"] == "RateLimited"
    assert run.status == RunStatus.FAILED


def test_it_fails_the_step_once_retries_run_out(settings) -> None:
    settings.WIZARD_STEP_MAX_RETRIES = 2
    run = start_run(inputs={**QUICK, "retryable_failures": {"test_marker_two": 10}})

    drive(run)

    step = run.steps.get(key="test_marker_two")
    assert step.status == StepStatus.FAILED
    assert step.error["retryable"] is True
    assert (
        render(step.error["message"])
        == "The test cloud is throttling. (still failing after 2 retries)"
    )
    assert run.status == RunStatus.FAILED
    assert run.error["step"] == "test_marker_two"


def test_it_fails_at_once_on_a_permanent_error_and_stops_the_run() -> None:
    run = start_run(inputs={**QUICK, "fail_steps": ["test_marker_two"]})

    returned = drive(run)

    assert returned[-1] is None
    assert run.status == RunStatus.FAILED
    assert run.error["code"] == "test_failure"
    assert run.error["message"] == "The test inputs ask this step to fail."
    assert run.error["step"] == "test_marker_two"
    statuses = dict(run.steps.values_list("key", "status"))
    assert statuses == {
        "test_marker_one": StepStatus.SUCCEEDED,
        "test_marker_two": StepStatus.FAILED,
        "test_marker_three": StepStatus.PENDING,
    }
    two = run.steps.get(key="test_marker_two")
    assert two.error["hint"] == "Start a run without fail_steps."
    assert two.error["retryable"] is False
    assert two.attempts == 2  # never retried


def test_it_fails_the_step_when_verify_finds_a_problem() -> None:
    run = start_run(inputs={**QUICK, "verify_fail_steps": ["test_marker_one"]})

    drive(run)

    step = run.steps.get(key="test_marker_one")
    assert step.status == StepStatus.FAILED
    assert step.error["code"] == "verify_failed"
    assert render(step.error["hint"]) == "Retry the step."
    assert step.outputs["verify"][0]["ok"] is False


def test_it_waits_for_the_admin_to_confirm_a_plan_that_asks(admin_user) -> None:
    run = start_run(admin_user, inputs={**QUICK, "confirm_steps": ["test_marker_two"]})

    drive(run)

    assert run.status == RunStatus.WAITING
    step = run.steps.get(key="test_marker_two")
    assert step.status == StepStatus.PLANNED
    assert step.plan["needs_confirmation"] is True
    assert engine_doubles.creations(run.pk) == ["test_marker_one"]
    assert runner.advance(run.pk) is None  # nothing happens until the admin confirms

    admin_moves.step_confirm(user=admin_user, run_id=run.pk, step_key="test_marker_two")
    drive(run)

    assert run.status == RunStatus.SUCCEEDED
    assert engine_doubles.creations(run.pk) == FLOW_STEPS
    assert ("waiting", "running") in transitions(run)


def test_it_asks_to_confirm_every_plan_that_changes_something_when_reviewing(admin_user) -> None:
    run = start_run(admin_user, review_plans=True)

    for key in FLOW_STEPS:
        drive(run)
        assert run.status == RunStatus.WAITING
        assert run.steps.get(key=key).plan["needs_confirmation"] is True
        admin_moves.step_confirm(user=admin_user, run_id=run.pk, step_key=key)
    drive(run)

    assert run.status == RunStatus.SUCCEEDED


def test_it_waits_for_input_and_plans_again_with_the_answer(admin_user) -> None:
    run = start_run(admin_user, inputs={**QUICK, "input_steps": ["test_marker_one"]})

    drive(run)

    step = run.steps.get(key="test_marker_one")
    assert run.status == RunStatus.WAITING
    assert step.status == StepStatus.PLANNED
    assert step.plan["needs_input"] is True
    assert step.plan["needs_confirmation"] is False
    assert calls(run) == []  # the plan asked for input before calling anything

    admin_moves.step_submit_inputs(
        user=admin_user, run_id=run.pk, step_key="test_marker_one", inputs={"answer": "42"}
    )
    drive(run)

    step.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert step.inputs == {"answer": "42"}
    assert step.outputs["answer"] == "42"


def test_it_refuses_to_confirm_or_answer_a_step_that_does_not_wait(admin_user) -> None:
    run = start_run(admin_user)

    with pytest.raises(RunError, match="not waiting for confirmation"):
        admin_moves.step_confirm(user=admin_user, run_id=run.pk, step_key="test_marker_one")
    with pytest.raises(RunError, match="not waiting for input"):
        admin_moves.step_submit_inputs(
            user=admin_user, run_id=run.pk, step_key="test_marker_one", inputs={"answer": "1"}
        )
    with pytest.raises(RunError, match="no step"):
        admin_moves.step_confirm(user=admin_user, run_id=run.pk, step_key="nope")


def test_it_enqueues_the_worker_only_after_the_transaction_commits(
    admin_user, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        admin_moves.run_create(user=admin_user, flow_key="test_flow", region="ap-northeast-1")

    assert len(callbacks) == 1


class WarnsInTheRunsLanguage(Step):
    key = "test_warns_in_the_runs_language"
    title = "Plans with a translated warning"

    def plan(self, ctx):
        return Plan(warnings=[gettext("Choose at least one user or group.")])

    def apply(self, ctx):
        return {}

    def verify(self, ctx):
        return []

    def rollback(self, ctx):
        return None


def test_it_writes_plans_in_the_language_of_the_admin_who_started_the_run() -> None:
    register(WarnsInTheRunsLanguage)
    with translation.override("ja"):
        run = start_run()
    run.steps.filter(key="test_marker_one").update(key="test_warns_in_the_runs_language")

    runner.advance(run.pk)

    step = run.steps.get(key="test_warns_in_the_runs_language")
    assert run.language == "ja"
    assert step.plan["warnings"] == ["ユーザーまたはグループを 1 つ以上選んでください。"]
