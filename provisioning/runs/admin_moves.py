"""The admin's moves of a setup run: start, confirm, answer, retry, resume, cancel, roll back.

Each move changes the database in one transaction on the row-locked run, through moves.py (guarded
on the current status, its audit row in that transaction), and enqueues the worker's next move
after commit (chain.py). No move talks to a cloud. A refused move raises RunError with a message
for the page; which status allows which move is provisioning/models.py's.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext, gettext_noop

from provisioning.audit import record_state_change
from provisioning.flows import FLOWS
from provisioning.messages import Message
from provisioning.models import (
    RUN_CANCELLABLE,
    RUN_RESUMABLE,
    RUN_RESUMABLE_IF_INTERRUPTED,
    RUN_ROLLBACKABLE,
    RUN_STEP_RERUNNABLE,
    AuditKind,
    Cloud,
    Connection,
    RunStatus,
    SetupRun,
    StepRun,
    StepStatus,
)
from provisioning.runs import runner
from provisioning.runs.chain import enqueue_advance
from provisioning.runs.moves import admin_scope, move_run, move_step
from provisioning.steps.base import STEPS
from provisioning.steps.inputs import (
    StepInputError,
    clean_step_inputs,
    kept_choices,
    takes_plan,
)


class RunError(Exception):
    """The action is refused; the message says why, in the admin's words."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _json(values: dict[str, Any] | None) -> dict[str, Any]:
    """Form answers as plain JSON (dates and decimals from cleaned_data become strings)."""
    return json.loads(json.dumps(values or {}, cls=DjangoJSONEncoder))


def _locked_run(run_id: uuid.UUID | str) -> SetupRun:
    """The run, row-locked until the transaction ends (serialises actions on one run)."""
    try:
        return SetupRun.objects.select_for_update().get(pk=run_id)
    except (SetupRun.DoesNotExist, ValueError):
        raise RunError(gettext("No setup run has this ID.")) from None


def _step(run: SetupRun, step_key: str) -> StepRun:
    try:
        return run.steps.get(key=step_key)
    except StepRun.DoesNotExist:
        raise RunError(gettext("This run has no step “%(step)s”.") % {"step": step_key}) from None


def _run_to(user: Any, run: SetupRun, to_status: str, message: Message, **fields: Any) -> None:
    """The admin's move of the run, which the run's row lock (held by the caller) makes certain."""
    if not move_run(run, to_status, admin_scope(user, run), message=message, **fields):
        raise RunError(gettext("This run changed at the same moment; reload the page."))


def _step_to(user: Any, run: SetupRun, step: StepRun, to_status: str, **fields: Any) -> None:
    """The admin's move of a step no worker holds; refused if a worker still holds it."""
    if not move_step(step, to_status, admin_scope(user, run, step.key), **fields):
        raise RunError(gettext("A worker is still busy with this step; try again in a moment."))


def _connection(connection_id: int | None, clouds: tuple[str, ...], role: str) -> Connection | None:
    if connection_id is None:
        return None
    try:
        connection = Connection.objects.get(pk=connection_id)
    except Connection.DoesNotExist:
        raise RunError(
            gettext("The %(cloud)s connection does not exist.") % {"cloud": role}
        ) from None
    if connection.cloud not in clouds:
        raise RunError(
            gettext("“%(name)s” is not a %(cloud)s connection.")
            % {"name": connection.name, "cloud": role}
        )
    return connection


def _refuse_changed_flow(run: SetupRun) -> None:
    problem = runner.flow_problem(run)
    if problem:
        raise RunError(str(problem))


def run_create(
    *,
    user: Any,
    flow_key: str,
    region: str,
    instance_alias: str = "",
    instance_id: str = "",
    aws_connection_id: int | None = None,
    idp_connection_id: int | None = None,
    inputs: dict[str, Any] | None = None,
    review_plans: bool = False,
    step_inputs: dict[str, dict[str, Any]] | None = None,
    enqueue: bool = True,
    parent_id: uuid.UUID | None = None,
    sync_id: uuid.UUID | None = None,
    actor_label: str = "",
) -> SetupRun:
    """Save a new run with one pending step per flow step, and start it.

    `step_inputs` pre-fills steps' answers by step key (the setup_sso plan file). `enqueue=False`
    leaves driving the run to the caller (setup_sso runs the engine in its own process).
    `parent_id` names the SSO setup a users run works on, `sync_id` the schedule that started it
    (and `actor_label` who, in the audit log, when no admin did).
    """
    flow = FLOWS.get(flow_key)
    if flow is None:
        raise RunError(gettext("There is no setup called “%(flow)s”.") % {"flow": flow_key})
    missing = [key for key in flow.step_keys if key not in STEPS]
    if missing:
        raise RunError(
            gettext("This version of the wizard lacks the steps %(steps)s.")
            % {"steps": ", ".join(missing)}
        )
    unknown = sorted(set(step_inputs or {}) - set(flow.step_keys))
    if unknown:
        raise RunError(
            gettext("“%(flow)s” has no steps called %(steps)s.")
            % {"flow": flow.title, "steps": ", ".join(unknown)}
        )
    if not region:
        raise RunError(gettext("Choose the AWS region of the Connect instance."))
    step_inputs = _checked_step_inputs(step_inputs or {})
    aws_connection = _connection(aws_connection_id, (Cloud.AWS,), "AWS")
    idp_connection = _connection(idp_connection_id, (flow.idp,), Cloud(flow.idp).label)
    with transaction.atomic():
        run = SetupRun.objects.create(
            idp=flow.idp,
            flow_key=flow.key,
            flow_signature=flow.signature,
            mode=settings.WIZARD_MODE,
            region=region,
            instance_alias=instance_alias,
            instance_id=instance_id,
            aws_connection=aws_connection,
            idp_connection=idp_connection,
            inputs=_json(inputs),
            review_plans=review_plans,
            language=translation.get_language() or settings.LANGUAGE_CODE,
            created_by=user if getattr(user, "is_authenticated", False) else None,
            parent_id=parent_id,
            sync_id=sync_id,
        )
        StepRun.objects.bulk_create(
            StepRun(run=run, key=key, position=position, inputs=step_inputs.get(key, {}))
            for position, key in enumerate(flow.step_keys)
        )
        record_state_change(
            admin_scope(user, run, actor_label=actor_label),
            kind=AuditKind.RUN_STATE,
            old={},
            new={"status": run.status, "flow": flow.key, "region": region},
            message=Message(gettext_noop("Started “%(flow)s”."), {"flow": flow.title}),
        )
        if enqueue:
            enqueue_advance(run.pk)
    return run


def _checked_step_inputs(step_inputs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Pre-filled answers (a setup_sso plan file) as each step's form cleans them; refused with
    the form's own messages, as the run page would refuse them. A form that takes its choices
    from the step's plan checks its answers when the step plans."""
    checked: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for key, answers in step_inputs.items():
        step_class = STEPS[key]
        if not isinstance(answers, dict):
            problems.append(
                gettext("%(step)s: give the answers as fields (a table).") % {"step": key}
            )
            continue
        if takes_plan(step_class):
            checked[key] = _json(answers)
            continue
        try:
            checked[key] = clean_step_inputs(step_class, answers)
        except StepInputError as error:
            problems += [f"{key}: {problem}" for problem in error.problems]
    if problems:
        raise RunError(
            gettext("Some answers are refused; correct them and start again:")
            + "\n"
            + "\n".join(f"- {problem}" for problem in problems)
        )
    return checked


def run_resume(*, user: Any, run_id: uuid.UUID | str, enqueue: bool = True) -> SetupRun:
    """Continue a failed, cancelled or interrupted run from where it stopped (a failed step is
    planned again). Refused when the flow's steps changed since the run started."""
    with transaction.atomic():
        run = _locked_run(run_id)
        if run.status == RunStatus.WAITING:
            raise RunError(
                gettext("This run waits for you: confirm the plan or answer the step's form.")
            )
        if run.status not in RUN_RESUMABLE_IF_INTERRUPTED:
            raise RunError(
                gettext("A run that is %(status)s can't be resumed.")
                % {"status": run.get_status_display().lower()}
            )
        _refuse_changed_flow(run)
        for step in run.steps.filter(status=StepStatus.FAILED):
            _step_to(
                user,
                run,
                step,
                StepStatus.PENDING,
                error={},
                plan=kept_choices(STEPS.get(step.key), step.plan),
                finished_at=None,
            )
        if run.status != RunStatus.RUNNING:
            _run_to(
                user,
                run,
                RunStatus.RUNNING,
                Message(gettext_noop("Resumed.")),
                error={},
                finished_at=None,
            )
        if enqueue:
            enqueue_advance(run.pk)
    return run


def run_retry_step(
    *,
    user: Any,
    run_id: uuid.UUID | str,
    step_key: str,
    inputs: dict[str, Any] | None = None,
    enqueue: bool = True,
) -> SetupRun:
    """Plan and apply a failed step again, then carry on with the run; with `inputs` (its form's
    cleaned answers), with the admin's corrected answers."""
    with transaction.atomic():
        run = _locked_run(run_id)
        step = _step(run, step_key)
        if step.status != StepStatus.FAILED:
            raise RunError(gettext("Only a failed step can be retried."))
        if run.status not in RUN_RESUMABLE:
            raise RunError(gettext("The run is busy; retry the step once it has stopped."))
        _refuse_changed_flow(run)
        _step_to(
            user,
            run,
            step,
            StepStatus.PENDING,
            inputs={**step.inputs, **_json(inputs)},
            error={},
            # The choices its form offers stay: the answers may be offered again for editing.
            plan=kept_choices(STEPS.get(step.key), step.plan),
            finished_at=None,
        )
        _run_to(
            user,
            run,
            RunStatus.RUNNING,
            Message(gettext_noop("Retrying “%(step)s”."), {"step": step.key}),
            error={},
            finished_at=None,
        )
        if enqueue:
            enqueue_advance(run.pk)
    return run


def run_cancel(*, user: Any, run_id: uuid.UUID | str) -> SetupRun:
    """Stop the run after the call in progress; it can be resumed or rolled back later."""
    with transaction.atomic():
        run = _locked_run(run_id)
        if run.status not in RUN_CANCELLABLE:
            raise RunError(
                gettext("A run that is %(status)s can't be cancelled.")
                % {"status": run.get_status_display().lower()}
            )
        _run_to(
            user,
            run,
            RunStatus.CANCELLED,
            Message(gettext_noop("Cancelled.")),
            finished_at=timezone.now(),
        )
        runner.settle_cancelled_steps(run, lambda key: admin_scope(user, run, key))
    return run


def run_rollback(*, user: Any, run_id: uuid.UUID | str, enqueue: bool = True) -> SetupRun:
    """Remove what this run created (never what it adopted), last step first."""
    with transaction.atomic():
        run = _locked_run(run_id)
        if run.status not in RUN_ROLLBACKABLE:
            raise RunError(
                gettext("A run that is %(status)s can't be rolled back; cancel it first.")
                % {"status": run.get_status_display().lower()}
            )
        _run_to(
            user,
            run,
            RunStatus.ROLLING_BACK,
            Message(gettext_noop("Rolling back.")),
            error={},
            finished_at=None,
        )
        if enqueue:
            enqueue_advance(run.pk)
    return run


def step_confirm(
    *, user: Any, run_id: uuid.UUID | str, step_key: str, enqueue: bool = True
) -> SetupRun:
    """The admin approves a step's plan: the worker applies it."""
    with transaction.atomic():
        run = _locked_run(run_id)
        step = _step(run, step_key)
        if not (
            run.status == RunStatus.WAITING
            and step.status == StepStatus.PLANNED
            and step.plan.get("needs_confirmation")
        ):
            raise RunError(gettext("This step is not waiting for confirmation."))
        _refuse_changed_flow(run)
        # Unclaimed and applying: the next worker to come claims it and applies.
        _step_to(user, run, step, StepStatus.APPLYING)
        _run_to(
            user,
            run,
            RunStatus.RUNNING,
            Message(gettext_noop("Plan of “%(step)s” confirmed."), {"step": step.key}),
        )
        if enqueue:
            enqueue_advance(run.pk)
    return run


def step_submit_inputs(
    *,
    user: Any,
    run_id: uuid.UUID | str,
    step_key: str,
    inputs: dict[str, Any],
    enqueue: bool = True,
) -> SetupRun:
    """Save the admin's answers for a step that asked for them; the step plans again with them."""
    with transaction.atomic():
        run = _locked_run(run_id)
        step = _step(run, step_key)
        if not (
            run.status == RunStatus.WAITING
            and step.status == StepStatus.PLANNED
            and step.plan.get("needs_input")
        ):
            raise RunError(gettext("This step is not waiting for input."))
        _refuse_changed_flow(run)
        # The choices its form offers stay: the answers may be offered again for editing.
        _step_to(
            user,
            run,
            step,
            StepStatus.PENDING,
            inputs={**step.inputs, **_json(inputs)},
            plan=kept_choices(STEPS.get(step.key), step.plan),
        )
        _run_to(
            user,
            run,
            RunStatus.RUNNING,
            Message(gettext_noop("Answers for “%(step)s” saved."), {"step": step.key}),
        )
        if enqueue:
            enqueue_advance(run.pk)
    return run


def step_rerun(
    *, user: Any, run_id: uuid.UUID | str, step_key: str, enqueue: bool = True
) -> SetupRun:
    """Run a succeeded step again inside its run, where the step allows it (Step.rerunnable): it
    plans afresh, with the answers a re-run changes, and waits for the admin to confirm the new
    plan (or to answer its form, if the re-run forgot an answer: answering is confirming). The
    steps after it stay as they are; a run that had failed fails again at its failed step."""
    with transaction.atomic():
        run = _locked_run(run_id)
        step = _step(run, step_key)
        step_class = STEPS.get(step.key)
        if step_class is None or not step_class.rerunnable:
            raise RunError(gettext("This step can't be run again inside its run."))
        if step.status != StepStatus.SUCCEEDED:
            raise RunError(gettext("Only a succeeded step can be run again."))
        if run.status not in RUN_STEP_RERUNNABLE:
            raise RunError(gettext("The run is busy; run the step again once it has stopped."))
        _refuse_changed_flow(run)
        answers = {**step.inputs, **step_class.rerun_inputs}
        _step_to(
            user,
            run,
            step,
            StepStatus.PENDING,
            inputs={key: value for key, value in answers.items() if value is not None},
            plan={runner.RERUN_ASKED: True},
            error={},
            finished_at=None,
        )
        _run_to(
            user,
            run,
            RunStatus.RUNNING,
            Message(gettext_noop("Running “%(step)s” again."), {"step": step.key}),
            error={},
            finished_at=None,
        )
        if enqueue:
            enqueue_advance(run.pk)
    return run
