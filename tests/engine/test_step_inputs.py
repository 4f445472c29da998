"""The engine checks a step's stored answers with the step's form before it plans: a step never
plans with an answer its form refuses, and waits for input saying which field to fix."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django import forms
from django.utils import translation

from provisioning.context import StepContext
from provisioning.flows import FLOWS, Flow, register_flow
from provisioning.messages import render
from provisioning.models import RunStatus, StepRun, StepStatus
from provisioning.runs import admin_moves
from provisioning.steps.base import STEPS, Change, Finding, Plan, Step, register
from tests.engine.runs import drive, start_run

pytestmark = pytest.mark.django_db

FLOW = "test_inputs_flow"
KEY = "test_form_step"


class CountForm(forms.Form):
    answer = forms.CharField(label="Your answer")
    count = forms.IntegerField(label="How many", min_value=1, initial=1)


class FormStep(Step):
    """Plans only with answers its form takes: plan() reads them without checking."""

    key = KEY
    title = "A step with a form"
    form_class = CountForm

    def plan(self, ctx: StepContext) -> Plan:
        return Plan(changes=[Change("nothing", "answer", str(ctx.inputs["answer"]))])

    def apply(self, ctx: StepContext) -> dict[str, Any]:
        return {"answer": ctx.inputs["answer"], "count": int(ctx.inputs.get("count", 1))}

    def verify(self, ctx: StepContext) -> list[Finding]:
        return []

    def rollback(self, ctx: StepContext) -> None:
        return None


@pytest.fixture(autouse=True)
def form_flow() -> Iterator[None]:
    register(FormStep)
    register_flow(Flow(key=FLOW, idp="entra", title="Form flow", step_keys=(KEY,)))
    yield
    FLOWS.pop(FLOW, None)
    STEPS.pop(KEY, None)


def _run(answers: dict[str, Any], language: str = "en") -> Any:
    """A run whose step has these answers stored (as a run saved before its form changed may:
    run_create refuses them), driven until it rests."""
    with translation.override(language):
        run = start_run(flow_key=FLOW, inputs={})
    StepRun.objects.filter(run=run, key=KEY).update(inputs=answers)
    drive(run)
    return run, run.steps.get(key=KEY)


def test_it_asks_without_an_error_when_nothing_was_answered() -> None:
    run, step = _run({})

    assert run.status == RunStatus.WAITING
    assert step.status == StepStatus.PLANNED
    assert step.plan["needs_input"] is True
    assert step.plan["changes"] == []  # plan() never ran
    assert step.error == {}


def test_it_waits_naming_the_missing_field_in_the_admins_language() -> None:
    run, step = _run({"count": 3}, language="ja")

    assert run.status == RunStatus.WAITING
    assert step.status == StepStatus.PLANNED
    assert step.plan["needs_input"] is True
    assert step.error["code"] == "step_input_invalid"
    assert step.error["message"] == "「Your answer」：この項目は必須です。"
    # The hint is a message id, read in the reader's language (the form's own words are not).
    with translation.override("ja"):
        assert render(step.error["hint"]) == "下のフォームで回答を直してから、保存してください。"
    with translation.override("en"):
        assert render(step.error["hint"]) == (
            "Correct these answers in the step's form below, then save them."
        )


def test_it_waits_naming_a_refused_value_and_plans_once_it_is_fixed(admin_user) -> None:
    run, step = _run({"answer": "yes", "count": 0})

    assert step.plan["needs_input"] is True
    assert step.error["message"] == ("“How many”: Ensure this value is greater than or equal to 1.")

    admin_moves.step_submit_inputs(
        user=admin_user, run_id=run.pk, step_key=KEY, inputs={"count": 2}
    )
    drive(run)

    step.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert step.error == {}
    assert step.outputs["answer"] == "yes" and step.outputs["count"] == 2


def test_a_field_left_out_of_given_answers_takes_the_forms_initial_value() -> None:
    run, step = _run({"answer": "yes"})

    assert run.status == RunStatus.SUCCEEDED
    assert step.outputs["count"] == 1
