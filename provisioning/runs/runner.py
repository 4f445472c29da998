"""The worker's moves of a setup run: advances it one step at a time (plan, wait for the admin if
asked, apply, verify) and rolls back what a run created. The admin's moves are in admin_moves.py;
both change a status only through moves.py.

`advance(run_id)` does the next piece of work and says when to be called again: the Celery task
re-enqueues itself with that countdown, the `setup_sso` command sleeps and calls again. Nothing
here sleeps while a cloud is busy, and every state change is guarded on the current state:

- A worker claims a step with a conditional UPDATE (`status` and `claimed_by` as they were read);
  0 rows means another worker has it. The claim names the process ("host:pid").
- A claim is released whenever the step stops for a wait or a retry, and is taken over only when
  the claiming process is gone (same host, pid no longer alive) or the claim is older than
  WIZARD_STEP_CLAIM_LEASE_S. Celery kills a task at WIZARD_STEP_TIME_LIMIT_S, shorter than the
  lease, so a claim that outlives its lease belongs to a dead process: two live workers never
  run the same step.
- A plan whose changes are all "nothing"/"adopt" still runs apply(): apply returns the outputs
  later steps read (ARNs, ids of adopted resources), and must change nothing.
- A confirmed plan is the plan that runs (as Terraform refuses a stale saved plan): before a
  step whose plan the admin confirmed first applies, the engine plans again and compares
  (Plan.differences). If the cloud changed, the step goes back to waiting for confirmation with
  the new plan. The check runs once, before apply starts: the stored plan then says apply began
  (APPLY_STARTED), so a retry, a wait or a worker taking over after a crash converges by apply
  alone, never blocked by what its own first attempt changed.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone, translation
from django.utils.translation import gettext_noop

from provisioning.audit import (
    AuditScope,
    batched_finishes,
    reads_riding_along,
    record_state_change,
    record_state_changes,
)
from provisioning.context import StepContext
from provisioning.errors import ProvisioningError, RetryableError, Throttled, WaitForCloud
from provisioning.federation_watch import watch_from_run
from provisioning.flows import FLOWS, SKIPPED_STEP
from provisioning.messages import Message, to_json
from provisioning.models import (
    RUN_ADVANCING,
    STEP_DONE,
    STEP_IN_PROGRESS,
    AuditKind,
    RunStatus,
    SetupRun,
    StepRun,
    StepStatus,
)
from provisioning.redaction import redact, redact_text
from provisioning.runs.moves import move_run, move_step, worker_scope
from provisioning.steps.base import (
    STEPS,
    Change,
    Finding,
    Plan,
    PlanDifference,
    Step,
    outputs_json,
)
from provisioning.steps.inputs import stored_input_problems

logger = logging.getLogger(__name__)

# advance() returns this to continue with the same run in the same call.
_CONTINUE = "continue"
# Seconds to wait before the next piece of work when there is more to do right away.
NOW = 0.0
# Keys of a stored plan the engine writes: when apply began under the confirmed plan (the check
# against a fresh plan is behind it), and how the plan the admin confirmed before this one
# differs from it (shown on the run page).
APPLY_STARTED = "apply_started_at"
# Set on a step the admin runs again (admin_moves.step_rerun): its fresh plan waits for them.
RERUN_ASKED = "rerun_asked"
CHANGED_SINCE_CONFIRMATION = "changed_since_confirmation"


def import_step_modules() -> None:
    """Import settings.WIZARD_STEP_MODULES so their steps and flows register (at startup)."""
    for module in settings.WIZARD_STEP_MODULES:
        importlib.import_module(module)


def worker_identity() -> str:
    """Who claims a step: this host and process, so a dead claimer can be recognised."""
    return f"{socket.gethostname()}:{os.getpid()}"


def flow_problem(run: SetupRun) -> Message | str:
    """Why this run can't continue under the flows this version of the wizard has ("" if it can)."""
    flow = FLOWS.get(run.flow_key)
    if flow is None:
        return Message(
            gettext_noop(
                "This run follows the setup “%(flow)s”, which this version of the wizard no "
                "longer has. Roll the run back or start a new one."
            ),
            {"flow": run.flow_key},
        )
    if not flow.accepts(run.flow_signature):
        return Message(
            gettext_noop(
                "The steps of “%(flow)s” changed since this run started, so it can't continue "
                "safely. Roll the run back or start a new one."
            ),
            {"flow": flow.title},
        )
    return ""


def advance(run_id: uuid.UUID | str, *, worker: str | None = None) -> float | None:
    """Do the run's next piece of work: at most one step (its plan, apply and verify), or one
    step's rollback. Returns the seconds after which to call again, or None when there is nothing
    to do now (the run is at rest, waits for the admin, or another worker holds its step)."""
    # The reads' audit rows ride along with the next row written (audit's docstring).
    with batched_finishes():
        return _advance(run_id, worker or worker_identity())


def _advance(run_id: uuid.UUID | str, worker: str) -> float | None:
    while True:
        try:
            # With its connections: the step's phases ask for them (one JOIN, not a SELECT per
            # phase), as they stand when this call starts.
            run = SetupRun.objects.select_related("aws_connection", "idp_connection").get(pk=run_id)
        except SetupRun.DoesNotExist:
            logger.warning("Run %s does not exist; nothing to advance.", run_id)
            return None
        if run.status == RunStatus.ROLLING_BACK:
            with translation.override(run.language):
                return _roll_back_next(run, worker)
        if run.status == RunStatus.CANCELLED:
            # A step that waited for the cloud when the run was cancelled comes here next.
            settle_cancelled_steps(run, functools.partial(worker_scope, run, worker))
            return None
        if run.status not in RUN_ADVANCING:
            return None
        problem = flow_problem(run)
        if problem:
            _fail_run(run, {"code": "flow_changed", "message": problem, "retryable": False})
            return None
        if run.status == RunStatus.PENDING:
            move_run(
                run, RunStatus.RUNNING, worker_scope(run, worker), from_status=RunStatus.PENDING
            )
        # One read of the run's steps gives the step to work on, the outputs of the steps before
        # it (done: nothing changes them while this one runs) and whether any comes after it.
        steps = list(run.steps.order_by("position"))
        index = next((i for i, s in enumerate(steps) if s.status not in STEP_DONE), None)
        if index is None:
            _finish_run(run, worker)
            return None
        step = steps[index]
        earlier = {done.key: done.outputs for done in steps[:index]}
        # Plans, warnings and messages are written in the language of the admin who started it.
        with translation.override(run.language):
            outcome = _advance_step(run, step, worker, earlier)
        if outcome == _CONTINUE:
            continue
        if outcome == StepStatus.SUCCEEDED:
            # One step per call (other runs get a turn, and the task stays far below its limit):
            # the next call reads the run afresh. After the last step, this call reads it
            # again and finishes the run (a step after this one that was done when read stays
            # done: only this worker moves the run's steps on).
            if any(later.status not in STEP_DONE for later in steps[index + 1 :]):
                return NOW
            continue
        return outcome  # type: ignore[return-value]


def _advance_step(
    run: SetupRun, step: StepRun, worker: str, earlier: dict[str, dict[str, Any]]
) -> float | str | None:
    """`earlier`: the outputs of the run's steps before this one, by key, as just read."""
    status = step.status
    if status == StepStatus.FAILED:
        _fail_run(run, {**step.error, "step": step.key})
        return None
    if status == StepStatus.PLANNED:
        if step.plan.get("needs_input") or step.plan.get("needs_confirmation"):
            _wait_for_admin(run, step, worker)
            return None
        claimed = _claim(run, step, worker, to_status=StepStatus.APPLYING)
        return _apply(run, claimed, worker, earlier=earlier) if claimed else None
    if status == StepStatus.PENDING:
        claimed = _claim(run, step, worker, to_status=StepStatus.PLANNING)
        return _plan_or_skip(run, claimed, worker, earlier) if claimed else None
    if status in (StepStatus.PLANNING, StepStatus.APPLYING):
        if step.claimed_by:
            if not _claim_is_stale(step):
                return None
            claimed = _take_over(run, step, worker)
        else:
            claimed = _claim(run, step, worker, to_status=status)
        if claimed is None:
            return None
        if status == StepStatus.PLANNING:
            return _plan_or_skip(run, claimed, worker, earlier)
        return _apply(run, claimed, worker, earlier=earlier)
    logger.warning("Run %s: step %s is %s; nothing to do.", run.pk, step.key, status)
    return None


# Claims ------------------------------------------------------------------------------------


def _claim(run: SetupRun, step: StepRun, worker: str, *, to_status: str) -> StepRun | None:
    """Take an unclaimed step: the one UPDATE that decides which worker runs it."""
    return _claim_where(run, step, worker, to_status, Q(claimed_by=""))


def _claim_where(
    run: SetupRun, step: StepRun, worker: str, to_status: str, guard: Q
) -> StepRun | None:
    now = timezone.now()
    with transaction.atomic():
        updated = StepRun.objects.filter(guard, pk=step.pk, status=step.status).update(
            status=to_status,
            claimed_by=worker,
            claimed_at=now,
            attempts=F("attempts") + 1,
            started_at=Coalesce(F("started_at"), Value(now)),
            updated_at=now,
        )
        if updated:
            record_state_change(
                worker_scope(run, worker, step.key),
                kind=AuditKind.STEP_STATE,
                old={"status": step.status},
                new={"status": to_status},
            )
    if not updated:
        return None
    # The row as the UPDATE left it, without reading it again (attempts is counted in the
    # database; nothing here reads it).
    step.status, step.claimed_by, step.claimed_at, step.updated_at = to_status, worker, now, now
    step.started_at = step.started_at or now
    return step


def _process_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed process stays a zombie until its parent reaps it: it runs nothing any more.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def claim_is_stale(claimed_by: str, claimed_at: Any, lease_s: float) -> bool:
    """A claim ("host:pid" since `claimed_at`) whose process is gone (same host, pid not alive)
    or whose lease ran out."""
    if claimed_at is None or claimed_at < timezone.now() - timedelta(seconds=lease_s):
        return True
    host, _, pid = claimed_by.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not _process_is_alive(int(pid))


def _claim_is_stale(step: StepRun) -> bool:
    return claim_is_stale(step.claimed_by, step.claimed_at, settings.WIZARD_STEP_CLAIM_LEASE_S)


def _take_over(run: SetupRun, step: StepRun, worker: str) -> StepRun | None:
    """Re-claim a step whose worker died mid-call; counts as a retry, so a step that kills its
    worker every time fails after WIZARD_STEP_MAX_RETRIES instead of looping."""
    logger.warning(
        "Run %s: step %s was claimed by %s, which is gone; taking it over.",
        run.pk,
        step.key,
        step.claimed_by,
    )
    guard = Q(claimed_by=step.claimed_by, claimed_at=step.claimed_at)
    claimed = _claim_where(run, step, worker, step.status, guard)
    if claimed is None:
        return None
    retries = int(claimed.error.get("retries", 0)) + 1
    if retries > settings.WIZARD_STEP_MAX_RETRIES:
        _fail_step(
            run,
            claimed,
            worker,
            {
                "code": "worker_lost",
                "message": Message(
                    gettext_noop("The worker running this step stopped %(retries)d times."),
                    {"retries": retries},
                ),
                "hint": Message(
                    gettext_noop("Check the worker's log and memory, then retry the step.")
                ),
                "retryable": True,
            },
        )
        return None
    StepRun.objects.filter(pk=claimed.pk).update(
        error={
            "code": "worker_lost",
            "message": Message(
                gettext_noop("The worker running this step stopped; another one took over.")
            ).to_json(),
            "hint": "",
            "retryable": True,
            "retries": retries,
        }
    )
    claimed.refresh_from_db()
    return claimed


def settle_cancelled_steps(run: SetupRun, scope_of: Callable[[str], AuditScope]) -> int:
    """A cancelled run leaves no step "Planning" or "Applying" that no worker holds (confirmed
    but not yet picked up, or waiting for the cloud): each goes back to pending, and is planned
    again, against the cloud as it is then, when the run resumes (apply is idempotent; what the
    step created stays recorded). A step a worker holds is settled by that worker's result, or
    here on the run's next advance if it ends in a wait."""
    settled = 0
    for step in run.steps.filter(status__in=STEP_IN_PROGRESS, claimed_by="").only("pk", "status"):
        settled += move_step(
            step,
            StepStatus.PENDING,
            scope_of(step.key),
            message=Message(
                gettext_noop("Run cancelled: the step is planned again when the run resumes.")
            ),
            plan={},
            waiting_since=None,
        )
    return settled


def _release(step: StepRun, worker: str, **fields: Any) -> bool:
    """Give the claim back (for a wait or a retry), keeping the step's status."""
    return bool(
        StepRun.objects.filter(pk=step.pk, claimed_by=worker).update(
            claimed_by="", claimed_at=None, updated_at=timezone.now(), **fields
        )
    )


# Phases -------------------------------------------------------------------------------------


def _context(
    run: SetupRun,
    step: StepRun,
    worker: str,
    planned_by: StepContext | None = None,
    earlier: dict[str, dict[str, Any]] | None = None,
) -> StepContext:
    """The context of a step's phase. `planned_by`: the plan's, made a moment ago in this call
    with nothing written by another phase since, for the apply that follows it: apply gets what
    the plan read (read_by_plan), and the earlier steps' outputs and the connections as the plan
    loaded them (earlier steps are done: nothing changes their outputs while this one runs).
    `earlier`: those outputs as this call read them with the step (else read here)."""
    if planned_by is not None:
        outputs = planned_by.outputs
    elif earlier is not None:
        outputs = earlier
    else:
        before = run.steps.filter(position__lt=step.position).order_by("position")
        outputs = {earlier_step.key: earlier_step.outputs for earlier_step in before}
    ctx = StepContext(
        run_id=run.pk,
        step_key=step.key,
        region=run.region,
        instance_id=run.instance_id,
        instance_alias=run.instance_alias,
        mode=run.mode,
        inputs={**run.inputs, **step.inputs},
        outputs=outputs,
        audit=worker_scope(run, worker, step.key),
        aws_connection_id=run.aws_connection_id,
        idp_connection_id=run.idp_connection_id,
        step_run_id=step.pk,
        created_resources=list(step.created_resources),
        plan=dict(step.plan or {}),
    )
    ctx.take_connections(_loaded_connections(run))
    if planned_by is not None:
        ctx.go_on_from(planned_by)
    return ctx


def _loaded_connections(run: SetupRun) -> list[Any]:
    """The run's connections that were read with it (select_related), without reading any."""
    loaded = []
    for name in ("aws_connection", "idp_connection"):
        if getattr(SetupRun, name).is_cached(run) and getattr(run, name) is not None:
            loaded.append(getattr(run, name))
    return loaded


def step_context(step_run_id: int, worker: str | None = None) -> StepContext:
    """What a step's helpers see (the workers making a users step's changes): the same context
    the step itself gets, its calls audited under the run and step as this worker."""
    step = StepRun.objects.select_related("run").get(pk=step_run_id)
    return _context(step.run, step, worker or worker_identity())


def _step_class(step: StepRun) -> Step | None:
    step_class = STEPS.get(step.key)
    return step_class() if step_class else None


def _missing_step_error(step: StepRun) -> dict[str, Any]:
    return {
        "code": "step_missing",
        "message": Message(
            gettext_noop("This version of the wizard has no step “%(step)s”."), {"step": step.key}
        ),
        "hint": Message(gettext_noop("Roll the run back or start a new one.")),
        "retryable": False,
    }


def _plan(
    run: SetupRun, step: StepRun, worker: str, earlier: dict[str, dict[str, Any]] | None = None
) -> float | str | None:
    implementation = _step_class(step)
    if implementation is None:
        _fail_step(run, step, worker, _missing_step_error(step))
        return None
    ctx = _context(run, step, worker, earlier=earlier)
    problems = stored_input_problems(implementation, ctx)
    try:
        plan = implementation.plan(ctx) if problems is None else implementation.input_plan(ctx)
    except BaseException as exc:  # noqa: BLE001 - sorted into wait / retry / failure below
        return _handle_step_exception(run, step, worker, exc)
    if problems is not None:
        plan.needs_input = True
        return _save_plan(run, step, worker, plan, error=_input_error(problems) if problems else {})
    return _save_plan(run, step, worker, plan, planned_by=ctx)


def _input_error(problems: list[str]) -> dict[str, Any]:
    """What the run page says about answers the step's form refuses (in the run's language:
    the runner plans under translation.override)."""
    return {
        "code": "step_input_invalid",
        "message": " ".join(problems),
        "hint": Message(
            gettext_noop("Correct these answers in the step's form below, then save them.")
        ).to_json(),
        "retryable": False,
    }


def _plan_or_skip(
    run: SetupRun, step: StepRun, worker: str, earlier: dict[str, dict[str, Any]] | None = None
) -> float | str | None:
    flow = FLOWS.get(run.flow_key)
    because = flow.skipped_because(step.key, run.inputs) if flow else ""
    if not (flow and because):
        return _plan(run, step, worker, earlier)
    return _skip(run, step, worker, Message(because))


def _skip(run: SetupRun, step: StepRun, worker: str, said: Message) -> str | None:
    """An optional step the run's inputs leave out: skipped, its plan saying why (the message
    id, read in the reader's language; wizard/change_sentences.py)."""
    plan = Plan(changes=[Change("nothing", SKIPPED_STEP, step.key, {"reason": said})]).to_json()
    moved = move_step(
        step,
        StepStatus.SKIPPED,
        worker_scope(run, worker, step.key),
        held_by=worker,
        message=said,
        plan={**plan, "skipped": True},
        error={},
        outputs={},
        finished_at=timezone.now(),
    )
    return _CONTINUE if moved else None


def _stored_plan(run: SetupRun, plan: Plan, *, rerun: bool = False) -> dict[str, Any]:
    """The plan as the step keeps it (and the admin sees it)."""
    stored = plan.to_json()
    # The page asks the admin to confirm when the step says so, when the admin asked to review
    # every plan that changes something, or when they asked to run a succeeded step again.
    stored["needs_confirmation"] = not plan.needs_input and (
        plan.needs_confirmation or rerun or (run.review_plans and not plan.is_noop)
    )
    return redact(stored, truncate=False)


def _save_plan(
    run: SetupRun,
    step: StepRun,
    worker: str,
    plan: Plan,
    error: dict[str, Any] | None = None,
    planned_by: StepContext | None = None,
) -> float | str | None:
    """Keep the plan; one nobody has to see first is applied at once, by this worker, with what
    its plan read (`planned_by`, the plan's context)."""
    stored = _stored_plan(run, plan, rerun=bool(step.plan.get(RERUN_ASKED)))
    applies_at_once = not (stored["needs_input"] or stored["needs_confirmation"] or error)
    if (
        applies_at_once
        and planned_by is not None
        and _planned_and_claimed(run, step, worker, stored)
    ):
        return _apply(run, step, worker, planned_by=planned_by)
    moved = move_step(
        step,
        StepStatus.PLANNED,
        worker_scope(run, worker, step.key),
        held_by=worker,
        plan=stored,
        error=redact(error or {}),
        outputs={},
        waiting_since=None,
    )
    if not moved:
        return None
    if stored["needs_input"] or stored["needs_confirmation"]:
        step.refresh_from_db()
        _wait_for_admin(run, step, worker)
        return None
    return _CONTINUE


def _planned_and_claimed(run: SetupRun, step: StepRun, worker: str, stored: dict[str, Any]) -> bool:
    """Save the plan and take the step on to apply in one guarded UPDATE, as its move to planned
    and the apply claim would in two: the claim this worker holds goes on (status and claim as
    read, so 0 rows means another worker took it over), attempts counts the apply, and only while
    the run is still running (a cancel or a rollback since the run was read stops it here, as
    the run read between the two would have). Both state rows commit with it. False: nothing
    changed, and the caller saves the plan the usual way."""
    now = timezone.now()
    running = SetupRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING)
    with reads_riding_along(), transaction.atomic():
        updated = (
            StepRun.objects.filter(pk=step.pk, status=step.status, claimed_by=worker)
            .filter(Exists(running))
            .update(
                status=StepStatus.APPLYING,
                plan=stored,
                error={},
                outputs={},
                waiting_since=None,
                claimed_at=now,
                attempts=F("attempts") + 1,
                updated_at=now,
            )
        )
        if updated:
            record_state_changes(
                worker_scope(run, worker, step.key),
                kind=AuditKind.STEP_STATE,
                changes=[
                    ({"status": step.status}, {"status": StepStatus.PLANNED}),
                    ({"status": StepStatus.PLANNED}, {"status": StepStatus.APPLYING}),
                ],
            )
    if not updated:
        return False
    step.status, step.plan, step.error, step.outputs = StepStatus.APPLYING, stored, {}, {}
    step.waiting_since, step.claimed_at, step.updated_at = None, now, now
    return True


def _apply(
    run: SetupRun,
    step: StepRun,
    worker: str,
    planned_by: StepContext | None = None,
    earlier: dict[str, dict[str, Any]] | None = None,
) -> float | str | None:
    """Apply and verify the step. `planned_by`: the context of the plan made a moment ago in this
    call (the step's own, applied at once; or the re-check of a confirmed plan), whose reads
    apply may use. `earlier`: the earlier steps' outputs as this call read them."""
    implementation = _step_class(step)
    if implementation is None:
        _fail_step(run, step, worker, _missing_step_error(step))
        return None
    if _confirmed_plan_unchecked(implementation, step):
        recheck = _context(run, step, worker, earlier=earlier)
        try:
            fresh = _stored_plan(run, implementation.plan(recheck))
        except BaseException as exc:  # noqa: BLE001 - sorted into wait / retry / failure below
            return _handle_step_exception(run, step, worker, exc)
        differences = Plan.from_json(step.plan).differences(Plan.from_json(fresh))
        if differences:
            _plan_changed(run, step, worker, fresh, differences)
            return None
        if not _mark_apply_started(step, worker):
            return None
        # The re-check read the cloud as it is now: apply goes on from there, as after a plan
        # applied at once.
        planned_by = recheck
    ctx = _context(run, step, worker, planned_by=planned_by, earlier=earlier)
    try:
        outputs = to_json(outputs_json(implementation.apply(ctx)))
        findings = implementation.verify(ctx)
    except BaseException as exc:  # noqa: BLE001 - sorted into wait / retry / failure below
        return _handle_step_exception(run, step, worker, exc)
    outputs["verify"] = [finding.to_json() for finding in findings]
    failing = [finding for finding in findings if not finding.ok and finding.blocking]
    if failing:
        _fail_step(
            run, step, worker, _verify_error(failing), outputs=redact(outputs, truncate=False)
        )
        return None
    moved = move_step(
        step,
        StepStatus.SUCCEEDED,
        worker_scope(run, worker, step.key),
        held_by=worker,
        outputs=redact(outputs, truncate=False),
        error={},
        waiting_since=None,
        finished_at=timezone.now(),
    )
    return StepStatus.SUCCEEDED if moved else None


def _confirmed_plan_unchecked(implementation: Step, step: StepRun) -> bool:
    """Whether apply is about to start under a plan the admin confirmed, not yet compared with
    the cloud as it is now. An auto-applied plan was made a moment ago: it is the fresh one."""
    return bool(
        implementation.checks_confirmed_plan
        and step.plan.get("needs_confirmation")
        and not step.plan.get(APPLY_STARTED)
    )


def _mark_apply_started(step: StepRun, worker: str) -> bool:
    """Note, before apply's first call, that apply began under the confirmed plan (False: another
    worker took the step over)."""
    step.plan = {**step.plan, APPLY_STARTED: timezone.now().isoformat()}
    return bool(
        StepRun.objects.filter(pk=step.pk, status=step.status, claimed_by=worker).update(
            plan=step.plan, updated_at=timezone.now()
        )
    )


def _plan_changed(
    run: SetupRun,
    step: StepRun,
    worker: str,
    fresh: dict[str, Any],
    differences: list[PlanDifference],
) -> None:
    """The cloud changed since the admin confirmed: keep the new plan, applied only once they
    confirm it (or answer its form, if it now needs input)."""
    plan = {
        **fresh,
        "needs_confirmation": not fresh.get("needs_input"),
        CHANGED_SINCE_CONFIRMATION: [asdict(difference) for difference in differences],
    }
    summary = [difference.summary() for difference in differences]
    moved = move_step(
        step,
        StepStatus.PLANNED,
        worker_scope(run, worker, step.key),
        held_by=worker,
        message=Message(
            gettext_noop("Plan changed since confirmation: %(summary)s"), {"summary": summary}
        ),
        plan=plan,
        error={},
        outputs={},
        waiting_since=None,
    )
    if moved:
        step.refresh_from_db()
        _wait_for_admin(run, step, worker)


def _verify_error(failing: list[Finding]) -> dict[str, Any]:
    return {
        "code": "verify_failed",
        "message": [
            Message(
                gettext_noop("%(check)s: %(detail)s"),
                {"check": finding.check, "detail": finding.detail},
            )
            for finding in failing
        ],
        "hint": [finding.fix for finding in failing if finding.fix],
        "retryable": True,
    }


def _handle_step_exception(
    run: SetupRun, step: StepRun, worker: str, exc: BaseException
) -> float | None:
    if isinstance(exc, WaitForCloud):
        return _wait_for_cloud(run, step, worker, exc)
    if isinstance(exc, RetryableError):
        return _retry_later(run, step, worker, exc)
    if isinstance(exc, ProvisioningError):
        _fail_step(run, step, worker, exc.as_dict())
        return None
    if not isinstance(exc, Exception):
        # KeyboardInterrupt, SystemExit: the process is stopping. The claim stays, and the next
        # worker takes the step over once this process is gone.
        raise exc
    # A bug or an SDK error a client module did not map. The message may still help the admin.
    logger.error("Run %s: step %s raised %s", run.pk, step.key, type(exc).__name__, exc_info=exc)
    _fail_step(
        run,
        step,
        worker,
        {
            "code": type(exc).__name__,
            "message": Message(gettext_noop("Unexpected error: %(error)s"), {"error": str(exc)}),
            "hint": Message(
                gettext_noop("Retry the step; if it fails again, the worker's log has the details.")
            ),
            "retryable": False,
        },
    )
    return None


def _countdown(seconds: float) -> float:
    return max(0.0, min(seconds, settings.WIZARD_MAX_COUNTDOWN_S))


def _wait_for_cloud(run: SetupRun, step: StepRun, worker: str, wait: WaitForCloud) -> float | None:
    countdown = _countdown(
        wait.countdown_s if wait.countdown_s is not None else settings.WIZARD_WAIT_COUNTDOWN_S
    )
    logger.info("Run %s: step %s waits: %s", run.pk, step.key, redact_text(str(wait.reason)))
    released = _release(
        step,
        worker,
        waiting_since=step.waiting_since or timezone.now(),
        outputs={"waiting_for": redact(to_json(wait.reason), truncate=False)},
    )
    return countdown if released else None


def _retry_delay(error: RetryableError, retries: int) -> float:
    """When the cloud said when to come back (a rate limit's reset), then; else our backoff."""
    if error.retry_after_s is not None:
        return _countdown(error.retry_after_s)
    return _countdown(settings.WIZARD_RETRY_BACKOFF_S * 2 ** (retries - 1))


def _retry_later(run: SetupRun, step: StepRun, worker: str, error: RetryableError) -> float | None:
    # A rate limit that says when to come back is the cloud pacing us, not a failure: it has its
    # own, larger budget, so a step making hundreds of calls at Okta's 20/min still finishes.
    paced = error.retry_after_s is not None
    counter, limit = (
        ("rate_limit_waits", settings.WIZARD_STEP_MAX_RATE_LIMIT_WAITS)
        if paced
        else ("retries", settings.WIZARD_STEP_MAX_RETRIES)
    )
    count = int(step.error.get(counter, 0)) + 1
    if count > limit:
        message = Message(
            gettext_noop("%(message)s (still failing after %(retries)d retries)"),
            {"message": error.given_message, "retries": count - 1},
        )
        _fail_step(run, step, worker, {**error.as_dict(), "message": message})
        return None
    delay = _retry_delay(error, count)
    logger.info(
        "Run %s: step %s will retry in %.1f s (%s %s/%s): %s",
        run.pk,
        step.key,
        delay,
        counter,
        count,
        limit,
        redact_text(str(error.message)),
    )
    kept = {key: step.error[key] for key in ("retries", "rate_limit_waits") if key in step.error}
    # When the next try is, and whether the cloud is pacing us: the run page shows a rate limit
    # as a calm waiting counter, not as an error.
    pacing = {
        "retry_at": (timezone.now() + timedelta(seconds=delay)).isoformat(),
        "rate_limited": paced or isinstance(error, Throttled),
    }
    released = _release(
        step, worker, error=redact({**error.as_dict(), **kept, counter: count, **pacing})
    )
    return delay if released else None


# State changes ------------------------------------------------------------------------------


def _fail_step(
    run: SetupRun,
    step: StepRun,
    worker: str,
    error: dict[str, Any],
    outputs: dict[str, Any] | None = None,
) -> None:
    error = redact(to_json(error))
    moved = move_step(
        step,
        StepStatus.FAILED,
        worker_scope(run, worker, step.key),
        held_by=worker,
        message=error.get("message", ""),
        error=error,
        outputs=outputs or {},
        waiting_since=None,
        finished_at=timezone.now(),
    )
    if moved:
        _fail_run(run, {**error, "step": step.key})


def _fail_run(run: SetupRun, error: dict[str, Any]) -> None:
    error = redact(to_json(error))
    scope = AuditScope(actor_label="wizard", actor_id=run.created_by_id, run_id=run.pk)
    for status in (RunStatus.RUNNING, RunStatus.PENDING):
        if move_run(
            run,
            RunStatus.FAILED,
            scope,
            from_status=status,
            message=error.get("message", ""),
            error=error,
            finished_at=timezone.now(),
        ):
            return


def _finish_run(run: SetupRun, worker: str) -> None:
    moved = move_run(
        run,
        RunStatus.SUCCEEDED,
        worker_scope(run, worker),
        from_status=RunStatus.RUNNING,
        error={},
        finished_at=timezone.now(),
    )
    if moved:
        # The federation it built is watched from now on (checked again on a schedule).
        watch_from_run(run=run)


def _wait_for_admin(run: SetupRun, step: StepRun, worker: str) -> None:
    """The run waits for the admin (confirm a plan, answer a form) while this step is planned."""
    with transaction.atomic():
        # Serialise with step_confirm/step_submit_inputs, which lock the run row the same way.
        SetupRun.objects.select_for_update().filter(pk=run.pk).first()
        if StepRun.objects.filter(pk=step.pk, status=StepStatus.PLANNED).exists():
            waits_for = (
                gettext_noop("Step “%(step)s” waits for its input.")
                if step.plan.get("needs_input")
                else gettext_noop("Step “%(step)s” waits for confirmation of its plan.")
            )
            move_run(
                run,
                RunStatus.WAITING,
                worker_scope(run, worker, step.key),
                from_status=RunStatus.RUNNING,
                message=Message(waits_for, {"step": step.key}),
            )


# Rollback -----------------------------------------------------------------------------------


def _needs_rollback(step: StepRun) -> bool:
    if step.status == StepStatus.SUCCEEDED:
        return True
    return step.status != StepStatus.ROLLED_BACK and bool(step.created_resources)


def _roll_back_next(run: SetupRun, worker: str) -> float | None:
    """Undo the last step (in flow order) that is succeeded or created something."""
    steps = list(run.steps.order_by("-position"))
    if any(step.claimed_by and not _claim_is_stale(step) for step in steps):
        # A cancelled run's last call is still running; roll back after it.
        return _countdown(settings.WIZARD_WAIT_COUNTDOWN_S)
    step = next((step for step in steps if _needs_rollback(step)), None)
    if step is None:
        move_run(
            run,
            RunStatus.ROLLED_BACK,
            worker_scope(run, worker),
            from_status=RunStatus.ROLLING_BACK,
            error={},
            finished_at=timezone.now(),
        )
        return None
    guard = (
        Q(claimed_by=step.claimed_by, claimed_at=step.claimed_at)
        if step.claimed_by
        else Q(claimed_by="")
    )
    claimed = _claim_where(run, step, worker, step.status, guard)
    if claimed is None:
        return None
    implementation = _step_class(claimed)
    if implementation is None:
        _fail_rollback(run, claimed, worker, _missing_step_error(claimed))
        return None
    try:
        implementation.rollback(_context(run, claimed, worker))
    except BaseException as exc:  # noqa: BLE001 - sorted into wait / retry / failure below
        if isinstance(exc, WaitForCloud):
            return _wait_for_cloud(run, claimed, worker, exc)
        if isinstance(exc, RetryableError):
            retries = int(claimed.error.get("retries", 0)) + 1
            if retries <= settings.WIZARD_STEP_MAX_RETRIES:
                delay = _retry_delay(exc, retries)
                # As for apply (_retry_later): when the next try is and whether the cloud paces
                # us, so the run page shows a throttled rollback as a counter, not an error.
                pacing = {
                    "retry_at": (timezone.now() + timedelta(seconds=delay)).isoformat(),
                    "rate_limited": exc.retry_after_s is not None or isinstance(exc, Throttled),
                }
                _release(
                    claimed, worker, error=redact({**exc.as_dict(), "retries": retries, **pacing})
                )
                return delay
        if not isinstance(exc, Exception):
            raise
        error = (
            exc.as_dict()
            if isinstance(exc, ProvisioningError)
            else {
                "code": type(exc).__name__,
                "message": Message(
                    gettext_noop("Unexpected error: %(error)s"), {"error": str(exc)}
                ),
            }
        )
        _fail_rollback(run, claimed, worker, error)
        return None
    move_step(
        claimed,
        StepStatus.ROLLED_BACK,
        worker_scope(run, worker, claimed.key),
        held_by=worker,
        error={},
        waiting_since=None,
        finished_at=timezone.now(),
    )
    return NOW


def _fail_rollback(run: SetupRun, step: StepRun, worker: str, error: dict[str, Any]) -> None:
    error = redact(to_json({**error, "step": step.key}))
    message = Message(
        gettext_noop("Rolling back step “%(step)s” failed: %(message)s"),
        {"step": step.key, "message": error.get("message", "")},
    ).to_json()
    _release(step, worker, error=error)
    move_run(
        run,
        RunStatus.FAILED,
        worker_scope(run, worker, step.key),
        from_status=RunStatus.ROLLING_BACK,
        message=message,
        error={**error, "message": message},
        finished_at=timezone.now(),
    )
