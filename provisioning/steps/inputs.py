"""Checks a step's answers with the step's own form, wherever they come from: the run page, or a
`setup_sso` plan file."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.serializers.json import DjangoJSONEncoder
from django.utils.translation import gettext as _

from provisioning.steps.base import Step

if TYPE_CHECKING:
    from provisioning.context import StepContext


class StepInputError(ValueError):
    """Answers the step's form refuses: one readable line per problem, naming the field."""

    def __init__(self, step_key: str, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.step_key = step_key
        self.problems = problems


def takes_plan(step_class: type[Step]) -> bool:
    """Whether the step's form takes its choices from the plan the step waits on and so can
    only be checked once that plan exists, on the run page (a form that also checks answers
    without its plan, `checks_without_plan`, is checked at once like any other)."""
    form_class = step_class.form_class
    return bool(getattr(form_class, "takes_plan", False)) and not getattr(
        form_class, "checks_without_plan", False
    )


def kept_choices(step_class: type[Step] | None, plan: dict[str, Any]) -> dict[str, Any]:
    """What of the step's plan to keep when the plan is cleared to plan again (answers submitted,
    a failed step retried or resumed): the choices its form offers (`choices_key` of a form that
    takes its plan), so that the answers, if offered again for editing, still have them."""
    form_class = step_class.form_class if step_class is not None else None
    key = str(getattr(form_class, "choices_key", "") or "")
    return {key: plan[key]} if key and plan.get(key) else {}


def carried_choices(
    step_class: type[Step], ctx: StepContext, read: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """The choices a plan made from the answers keeps for its form (under its `choices_key`):
    those the answers were picked from, carried on from the plan that read them (kept_choices:
    no cloud call); `read` only for answers nobody picked from them (a plan file's, a step
    planned again from nothing), so the answers, offered again for editing (a failed step, a
    plan that waits again), never come with an empty picker."""
    carried = next(iter(kept_choices(step_class, ctx.plan).values()), None)
    return dict(carried) if carried else read()


def clean_step_inputs(step_class: type[Step], answers: Mapping[str, Any]) -> dict[str, Any]:
    """The answers as the form cleans them (plain JSON), or StepInputError.

    Only the answers given are checked: a field left out is asked for on the run page when the
    step needs it, as it is for a run started in the browser.
    """
    form_class = step_class.form_class
    if form_class is None or not answers:
        if answers:
            raise StepInputError(step_class.key, [_("This step takes no answers.")])
        return {}
    form = form_class(data=_form_data(form_class, answers))
    unknown = sorted(set(answers) - set(form.fields))
    problems = [
        _("“%(field)s” is not a field of this step; its fields are: %(fields)s.")
        % {"field": name, "fields": ", ".join(form.fields)}
        for name in unknown
    ]
    form.is_valid()
    missing_required = False
    for name, errors in form.errors.items():
        if name == NON_FIELD_ERRORS:
            continue
        if name not in answers:
            missing_required = True
            continue
        problems += [_field_problem(form, name, str(error)) for error in errors]
    if not missing_required:
        problems += [str(error) for error in form.non_field_errors()]
    if problems:
        raise StepInputError(step_class.key, problems)
    cleaned = {name: form.cleaned_data[name] for name in answers if name in form.cleaned_data}
    return json.loads(json.dumps(cleaned, cls=DjangoJSONEncoder))


def _form_data(form_class: type[forms.Form], answers: Mapping[str, Any]) -> dict[str, Any]:
    """The answers as a browser would post them: a list given for a one-value text field (a plan
    file's `security_profiles = ["Admin"]`) is its comma-separated text."""
    fields = form_class.base_fields
    return {
        name: ", ".join(str(item) for item in value)
        if isinstance(value, list)
        and name in fields
        and not isinstance(fields[name], forms.MultipleChoiceField)
        else value
        for name, value in answers.items()
    }


def _field_problem(form: forms.Form, name: str, error: str) -> str:
    field = form.fields[name]
    message = _("%(field)s: %(error)s") % {"field": name, "error": error}
    choices = getattr(field, "choices", None)
    if choices:
        values = ", ".join(str(value) for value, _label in choices if value != "")
        message += " " + _("Valid values: %(values)s.") % {"values": values}
    return message


def stored_input_problems(step: Step, ctx: StepContext) -> list[str] | None:
    """The engine's one "are my inputs there?" check, before a step plans: the step's form bound
    to the answers stored for it (Step.form_answers). None when the form takes them (or the step
    has no form, or its form can only be checked against the plan it waits on); otherwise the
    problems, one line each naming the field by its label: empty when the admin has answered
    nothing yet (the step simply asks), so a first visit shows no error.

    A field left out of the answers takes the value its form starts with (`initial`), as the run
    page shows it, so a plan file need not repeat the defaults; a step that must hear the admin
    first says so (Step.asks_before_planning)."""
    form_class = type(step).form_class
    if form_class is None or takes_plan(type(step)) or not step.inputs_checked_by_form:
        return None
    answers = step.form_answers(ctx)
    if not answers and step.asks_before_planning:
        return []
    form = form_class(data=_form_data(form_class, {**_initials(form_class), **answers}))
    if form.is_valid():
        return None
    if not answers:
        # Nothing answered, and the defaults don't do: the step asks, without an error.
        return []
    return [
        str(error) if name == NON_FIELD_ERRORS else _labelled_problem(form, name, str(error))
        for name, errors in form.errors.items()
        for error in errors
    ]


def _initials(form_class: type[forms.Form]) -> dict[str, Any]:
    return {
        name: field.initial
        for name, field in form_class.base_fields.items()
        if field.initial is not None and not callable(field.initial)
    }


def _labelled_problem(form: forms.Form, name: str, error: str) -> str:
    label = form.fields[name].label or name
    return _("“%(label)s”: %(error)s") % {"label": label, "error": error}
