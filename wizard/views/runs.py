"""Pages of a setup run: start one, watch its steps live, act on it (apply, retry, roll back)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling
from django_htmx.middleware import HtmxDetails

from provisioning.federation_check.repair import REPAIR_OF_CHECK
from provisioning.flows import (
    CLAIM_PHONE_NUMBERS,
    FLOWS,
    ROTATION_FLOWS,
    USER_FLOWS,
    is_sso_setup,
)
from provisioning.messages import render as render_message
from provisioning.models import (
    RUN_CANCELLABLE,
    RUN_RESUMABLE,
    RUN_ROLLBACKABLE,
    RUN_STEP_RERUNNABLE,
    STEP_DONE,
    ChangeAction,
    ChangeStatus,
    Cloud,
    Connection,
    RunStatus,
    SetupRun,
    StepRun,
    StepStatus,
)
from provisioning.redaction import redact, redact_text
from provisioning.runs import admin_moves, runner
from provisioning.runs.admin_moves import RunError
from provisioning.steps.base import STEPS, Step
from wizard.change_sentences import (
    LabelledValue,
    ReadableChange,
    deletion_sentence,
    labelled_values,
    readable_changes,
)
from wizard.forms import RunCreateForm
from wizard.middleware import wants_fragment
from wizard.roles import OPERATOR, VIEWER, role_required
from wizard.selectors.chain import chain_links
from wizard.selectors.runs import run_with_steps, started_by_deleted_account
from wizard.selectors.user_changes import (
    EXPORT_COLUMNS,
    ChangeSetView,
    change_set_of_step,
    change_set_progress_view,
    change_set_view,
    rows_for_export,
)
from wizard.views.csv_export import csv_download

RUN_TEMPLATE = "run_detail.html"
# A users step's lists and progress, included in its card.
CHANGES = "user_changes.html"
# Steps whose waiting clock and progress the status poll sends each time.
ACTIVE_STEP = {StepStatus.PLANNING, StepStatus.APPLYING}
# The engine keeps why a step waits for the cloud in its outputs under this key (runner.py).
WAITING_REASON = "waiting_for"
# The engine keeps the checks verify() made in a step's outputs under this key (runner.py).
VERIFY_FINDINGS = "verify"
# A step's card folds to one line when finished, or when not yet begun: a failed or waiting run
# then shows the step that needs the admin, not a wall of the descriptions of those after it.
FOLDED = {StepStatus.SUCCEEDED, StepStatus.SKIPPED, StepStatus.ROLLED_BACK, StepStatus.PENDING}
# The output a folded card shows on its one line: the first of these a step has.
HEADLINE_OUTPUTS = (
    "role_name",
    "provider_name",
    "policy_name",
    "instance_alias",
    "display_name",
    "app_label",
)
# The tag of a flash message that belongs to a phase of a run (see _act).
PHASE_TAG = "run-phase"
# Outputs the card shows in their own way, not as labelled values.
HIDDEN_OUTPUTS = {WAITING_REASON, VERIFY_FINDINGS}


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _get_run(run_id: uuid.UUID) -> SetupRun:
    try:
        return run_with_steps(run_id=run_id)
    except SetupRun.DoesNotExist:
        raise Http404(_("No setup run has this ID.")) from None


def _get_step(run: SetupRun, step_key: str) -> StepRun:
    for step in run.steps.all():
        if step.key == step_key:
            return step
    raise Http404(_("This run has no such step."))


def _run_url(run: SetupRun | uuid.UUID) -> str:
    run_id = run.pk if isinstance(run, SetupRun) else run
    return reverse("run_detail", kwargs={"run_id": run_id})


@dataclass
class StepCard:
    """What the run page shows for one step: the record plus what the admin can do with it."""

    step: StepRun
    title: str
    description: str
    plan: dict[str, Any]
    outputs: dict[str, Any]
    form: forms.Form | None
    can_retry: bool
    can_apply: bool
    waiting_seconds: int | None
    waiting_reason: str
    # Waiting for the API's rate limit: done, total and the next try (None: not throttled).
    rate_limit: dict[str, Any] | None = None
    # A users step's change set: its lists, and how far the work is.
    changes: ChangeSetView | None = None
    # The plan's changes as sentences, the outputs as labelled values, verify()'s checks.
    readable_changes: list[ReadableChange] = field(default_factory=list)
    output_values: list[LabelledValue] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    # A succeeded step the admin may run again inside the run (Step.rerunnable).
    can_rerun: bool = False
    # The run's status when the card was drawn: part of the card's stamp.
    run_status: str = ""

    @property
    def is_active(self) -> bool:
        return self.step.status in {StepStatus.PLANNING, StepStatus.APPLYING}

    @property
    def needs_admin(self) -> bool:
        return bool(self.can_apply or (self.form is not None and self.step.status != "failed"))

    @property
    def badge(self) -> tuple[str, str]:
        """The status and the word of the card's badge: a step that waits for the admin says so
        instead of "Planned"."""
        if self.form is not None and self.step.status == StepStatus.PLANNED:
            return "needs_you", _("Needs your answer")
        if self.can_apply:
            return "needs_you", _("Needs your confirmation")
        return self.step.status, str(self.step.get_status_display())

    @property
    def is_open(self) -> bool:
        """Finished and pending steps fold to one line; one that needs the admin, failed or works
        is open."""
        return self.step.status not in FOLDED or self.needs_admin

    @property
    def headline(self) -> str:
        """A folded card's key fact: the name of what the step made or found."""
        for name in HEADLINE_OUTPUTS:
            value = self.outputs.get(name)
            if isinstance(value, str) and value:
                return value
        return ""

    @property
    def waiting_elsewhere(self) -> list[dict[str, Any]]:
        """Checks not yet true that wait on the admin elsewhere (Okta using the key): a calm
        note, not a failure."""
        return [f for f in self.findings if not f.get("ok") and not f.get("blocking", True)]

    @property
    def stamp(self) -> str:
        return step_stamp(self.step, self.run_status)


def step_stamp(step: StepRun, run_status: str) -> str:
    """What the page shows of a step changes only with these: each move of a step stamps
    updated_at (provisioning/runs/moves.py), a retry counts an attempt, and the run's status
    decides what the card offers (a form and Apply only while the run waits, Retry once it is at
    rest). The runner plans a step and sets the run waiting in two commits: a poll between them
    must not leave the card without its form."""
    moved = int(step.updated_at.timestamp() * 1_000_000)
    return f"{run_status}-{step.status}-{moved}-{step.attempts}"


def _waiting(step: StepRun, now: Any, progress: ChangeSetView | None = None) -> dict[str, Any]:
    """How long a step has waited for the cloud, and why (seconds None: not waiting); and, when
    it waits for a rate limit, its counter."""
    seconds = None
    if step.waiting_since and step.status in {StepStatus.PLANNING, StepStatus.APPLYING}:
        seconds = max(0, int((now - step.waiting_since).total_seconds()))
    reason = redact_text(str(render_message((step.outputs or {}).get(WAITING_REASON, ""))))
    rate_limit = _rate_limit(step, progress)
    return {"waiting_seconds": seconds, "waiting_reason": reason, "rate_limit": rate_limit}


def _rate_limit(step: StepRun, progress: ChangeSetView | None = None) -> dict[str, Any] | None:
    """A working step the engine retries because the cloud throttled it (the runner marks the
    error `rate_limited`): how far it is (a users step's changes, else its tries) and when it
    tries next. None when the step is not waiting for a rate limit."""
    error = step.error or {}
    if not error.get("rate_limited") or not (
        step.status in ACTIVE_STEP or _being_rolled_back(step)
    ):
        return None
    next_try = parse_datetime(str(error.get("retry_at", "")))
    progress = progress or change_set_progress_view(step)
    if progress is not None:
        done, total = progress.progress.finished, progress.progress.total
    else:
        paced = "rate_limit_waits" in error
        done = int(error.get("rate_limit_waits" if paced else "retries", 0))
        total = (
            settings.WIZARD_STEP_MAX_RATE_LIMIT_WAITS if paced else settings.WIZARD_STEP_MAX_RETRIES
        )
    return {
        "done": done,
        "total": total,
        "tries": progress is None,
        "next_try": timezone.localtime(next_try) if next_try else None,
    }


def _being_rolled_back(step: StepRun) -> bool:
    """The run rolls back and this step is still to undo (rollback keeps the step's status: a
    retry of its rollback leaves the error on a succeeded step)."""
    return step.run.status == RunStatus.ROLLING_BACK and step.status != StepStatus.ROLLED_BACK


def _throttled_rollback(step: StepRun) -> bool:
    """A step whose rollback waits for a rate limit: the poll brings its counter too."""
    return bool((step.error or {}).get("rate_limited")) and _being_rolled_back(step)


def _step_class(key: str) -> type[Step] | None:
    return STEPS.get(key)


def _step_title(step: StepRun) -> str:
    step_class = _step_class(step.key)
    return str(step_class.title) if step_class else step.key


def _step_needs_input(run: SetupRun, step: StepRun) -> bool:
    step_class = _step_class(step.key)
    return bool(
        run.status == RunStatus.WAITING
        and step.plan.get("needs_input")
        and step.status == StepStatus.PLANNED
        and step_class is not None
        and step_class.form_class is not None
    )


def _step_answers_editable(run: SetupRun, step: StepRun) -> bool:
    """A failed step with a form, in a run at rest: its answers may have been what was wrong, so
    the admin can change them and retry in the same run."""
    step_class = _step_class(step.key)
    return bool(
        step.status == StepStatus.FAILED
        and run.status in RUN_RESUMABLE
        and step_class is not None
        and step_class.form_class is not None
    )


def _step_cards(
    run: SetupRun,
    bound_form: tuple[str, forms.Form] | None = None,
    steps: list[StepRun] | None = None,
) -> list[StepCard]:
    """The cards of the run's steps (or of `steps`, some of them)."""
    now = timezone.now()
    cards = []
    for step in run.steps.all() if steps is None else steps:
        step_class = _step_class(step.key)
        needs_input = _step_needs_input(run, step)
        form = None
        if (
            (needs_input or _step_answers_editable(run, step))
            and step_class is not None
            and step_class.form_class is not None
        ):
            if bound_form and bound_form[0] == step.key:
                form = bound_form[1]
            else:
                form = _step_form(step_class, step, initial=step.inputs)
        waiting = _waiting(step, now)
        unshown = step_class.plan_keys_not_shown if step_class else frozenset()
        plan = redact({k: v for k, v in (step.plan or {}).items() if k not in unshown})
        every_output = redact(
            {k: v for k, v in (step.outputs or {}).items() if k != WAITING_REASON}
        )
        outputs = {k: v for k, v in every_output.items() if k not in HIDDEN_OUTPUTS}
        findings = every_output.get(VERIFY_FINDINGS)
        cards.append(
            StepCard(
                step=step,
                run_status=run.status,
                title=str(step_class.title) if step_class else step.key,
                description=str(step_class.description) if step_class else "",
                # Steps are written to keep secrets out of plans and outputs; redacting here
                # too means a slip in one step still never reaches a page.
                plan=plan,
                outputs=outputs,
                readable_changes=readable_changes(plan),
                output_values=labelled_values(outputs),
                findings=findings if isinstance(findings, list) else [],
                waiting_reason=waiting["waiting_reason"],
                form=form,
                can_retry=step.status == StepStatus.FAILED and run.status in RUN_RESUMABLE,
                can_rerun=bool(
                    step_class
                    and step_class.rerunnable
                    and step.status == StepStatus.SUCCEEDED
                    and run.status in RUN_STEP_RERUNNABLE
                ),
                can_apply=(
                    run.status == RunStatus.WAITING
                    and step.status == StepStatus.PLANNED
                    and bool(step.plan.get("needs_confirmation"))
                    and not needs_input
                ),
                waiting_seconds=waiting["waiting_seconds"],
                rate_limit=waiting["rate_limit"],
                changes=change_set_view(step),
            )
        )
    return cards


def _step_form(step_class: type[Step], step: StepRun, data: Any = None, **kwargs: Any) -> Any:
    """A step's form; one that takes its choices from the plan it waits on gets the plan."""
    form_class = step_class.form_class
    assert form_class is not None
    if getattr(form_class, "takes_plan", False):
        kwargs["plan"] = step.plan
    return form_class(data, prefix=f"step-{step.key}", **kwargs)


def _run_context(run: SetupRun, bound_form: tuple[str, forms.Form] | None = None) -> dict[str, Any]:
    cards = _step_cards(run, bound_form)
    steps = [card.step for card in cards]
    return {**_summary_context(run, steps), "cards": cards, "links": chain_links(run, steps)}


def _attention(run: SetupRun, steps: list[StepRun]) -> StepRun | None:
    """The step the admin should look at: the one waiting for them, or the one that failed."""
    for step in steps:
        if run.status == RunStatus.WAITING and step.status == StepStatus.PLANNED:
            return step
        if step.status == StepStatus.FAILED and run.status in RUN_RESUMABLE:
            return step
    return None


def _summary_context(run: SetupRun, steps: list[StepRun]) -> dict[str, Any]:
    """What the run's status section shows: its state, how many steps are done, what to do."""
    flow = FLOWS.get(run.flow_key)
    created = [item for step in steps for item in (step.created_resources or [])]
    is_users_run = run.flow_key in USER_FLOWS.values()
    succeeded = run.status == RunStatus.SUCCEEDED
    attention = _attention(run, steps)
    return {
        "run": run,
        "started_by_deleted_account": bool(started_by_deleted_account([run])),
        "is_rotation": run.flow_key in ROTATION_FLOWS.values(),
        # A repair started from a federation check: its page names it and links back to it.
        "repair_of_check": str(run.inputs.get(REPAIR_OF_CHECK) or ""),
        "flow_title": flow.title if flow else run.flow_key,
        "can_add_users": succeeded and is_sso_setup(run.flow_key),
        "can_sync": succeeded and is_users_run and run.sync_id is None,
        "steps_done": sum(step.status in STEP_DONE for step in steps),
        "steps_total": len(steps),
        "can_resume": run.status in RUN_RESUMABLE,
        "can_cancel": run.status in RUN_CANCELLABLE,
        "can_rollback": run.status in RUN_ROLLBACKABLE and bool(created),
        "created_resources": created,
        "attention": attention,
        "attention_title": _step_title(attention) if attention else "",
        "flow_problem": "" if run.status == RunStatus.SUCCEEDED else runner.flow_problem(run),
    }


@role_required(OPERATOR)
@require_http_methods(["GET", "POST"])
def run_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = RunCreateForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                run = admin_moves.run_create(
                    user=request.user,
                    flow_key=data["flow_key"],
                    region=data["region"],
                    instance_alias=data["instance_alias"],
                    instance_id=data["instance_id"],
                    aws_connection_id=data["aws_connection"].pk,
                    idp_connection_id=data["idp_connection"].pk,
                    review_plans=data["review_plans"],
                    inputs={CLAIM_PHONE_NUMBERS: data["claim_phone_numbers"]},
                )
            except RunError as error:
                form.add_error(None, str(error))
            else:
                return redirect(_run_url(run))
    else:
        form = RunCreateForm(initial=_new_run_initial(request.GET))
        if wants_fragment(request):
            # The provider changed: its flows and connections, in place of the other's.
            return render(request, "run_new.html#idp_fields", {"form": form})
    connections_missing = not Connection.objects.filter(cloud=Cloud.AWS).exists() or not (
        Connection.objects.filter(cloud__in=[Cloud.ENTRA, Cloud.OKTA]).exists()
    )
    return render(
        request,
        "run_new.html",
        {"form": form, "connections_missing": connections_missing},
    )


def _new_run_initial(query: Any) -> dict[str, Any]:
    """The provider the page was asked for (`?idp=okta`), Entra by default; preselect the
    sandbox connections, so a first run needs no typing in sandbox mode, and whatever else the
    link asked for (RunCreateForm.asked_for)."""
    idp = RunCreateForm.idp_of(query)
    initial: dict[str, Any] = {"idp": idp}
    sandbox = {c.cloud: c.pk for c in Connection.objects.filter(is_sandbox=True).order_by("-pk")}
    if Cloud.AWS in sandbox:
        initial["aws_connection"] = sandbox[Cloud.AWS]
    if idp in sandbox:
        initial["idp_connection"] = sandbox[idp]
    return {**initial, **RunCreateForm.asked_for(query)}


@role_required(VIEWER)
@require_GET
def run_detail(request: HtmxHttpRequest, run_id: uuid.UUID) -> HttpResponse:
    """The whole run page: it works without JavaScript (its Refresh link reloads it); with htmx
    its status section polls run_status."""
    run = _get_run(run_id)
    return render(request, RUN_TEMPLATE, {**_run_context(run), **_phase_messages(request, run)})


@role_required(VIEWER)
@require_GET
def run_status(request: HtmxHttpRequest, run_id: uuid.UUID) -> HttpResponse:
    """The run page's poll: its status section, and out of band only the step cards that changed
    since the page showed them (the `seen` stamps it sends), a waiting step's clock and a users
    step's progress. The cost and size stay flat however many changes a users step makes; 286
    (stop polling) once the run is at rest."""
    try:
        run = SetupRun.objects.select_related("aws_connection", "idp_connection").get(pk=run_id)
    except SetupRun.DoesNotExist:
        raise Http404(_("No setup run has this ID.")) from None
    # Plans and answers can be large; a card that changed is read whole below.
    steps = list(run.steps.order_by("position").defer("plan", "inputs", "secret_ciphertext"))
    seen = dict(value.partition(":")[::2] for value in request.GET.getlist("seen"))
    if any(step.key not in seen for step in steps):
        # A page from before its steps existed: the whole page, once.
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"
        return response
    changed = [step.key for step in steps if seen[step.key] != step_stamp(step, run.status)]
    parts: list[str] = [
        render_to_string(
            f"{RUN_TEMPLATE}#run_status", _summary_context(run, steps), request=request
        )
    ]
    if changed:
        whole = list(run.steps.filter(key__in=changed).order_by("position"))
        for card in _step_cards(run, steps=whole):
            parts.append(_out_of_band("step_card", request, run, card=card, step=card.step))
        # The chain's links follow their steps: drawn again only when a step changed.
        parts.append(_out_of_band("run_chain", request, run, links=chain_links(run, steps)))
    now = timezone.now()
    for step in steps:
        if step.key in changed or not (step.status in ACTIVE_STEP or _throttled_rollback(step)):
            continue
        # Read once: the progress bar and a rate limit's counter both show it.
        progress = change_set_progress_view(step)
        waiting = _waiting(step, now, progress)
        parts.append(_out_of_band("step_waiting", request, run, card=waiting, step=step))
        if progress is not None:
            parts.append(
                _out_of_band(
                    "change_progress", request, run, view=progress, step=step, template=CHANGES
                )
            )
    phase = request.GET.get("phase")
    if phase and phase != run.status:
        # The page shows a message of a phase that has ended: gone.
        parts.append(_out_of_band("phase_messages", request, run))
    html = "".join(parts)
    if run.is_at_rest:
        return HttpResponseStopPolling(html)
    return HttpResponse(html)


def _out_of_band(
    partial: str, request: HttpRequest, run: SetupRun, template: str = RUN_TEMPLATE, **context: Any
) -> str:
    """One part of the run page, marked for htmx to swap into its place by id."""
    return render_to_string(
        f"{template}#{partial}", {"run": run, "out_of_band": True, **context}, request=request
    )


def _act(
    request: HttpRequest, run_id: uuid.UUID, action: Any, done: str, **kwargs: Any
) -> HttpResponseRedirect:
    try:
        action(user=request.user, run_id=run_id, **kwargs)
    except RunError as error:
        messages.error(request, str(error))
    else:
        # The message belongs to the phase the action started: the run page shows it while the
        # run keeps the status it has now, and its status poll drops it once the run moved on.
        status = SetupRun.objects.filter(pk=run_id).values_list("status", flat=True).first()
        messages.success(request, done, extra_tags=f"{PHASE_TAG} run-{run_id} phase-{status}")
    return redirect(_run_url(run_id))


def _phase_messages(request: HttpRequest, run: SetupRun) -> dict[str, Any]:
    """The flash messages of the page, split: those of this run's phase go in the container the
    status poll clears (with the phase they belong to), the others in the page's usual list."""
    mine, others, phase = [], [], ""
    for message in messages.get_messages(request):
        tags = message.extra_tags.split() if message.extra_tags else []
        if PHASE_TAG in tags and f"run-{run.pk}" in tags:
            mine.append(message)
            phase = next((t.removeprefix("phase-") for t in tags if t.startswith("phase-")), "")
        else:
            others.append(message)
    return {"messages_split": True, "page_messages": others, "phase_messages": mine, "phase": phase}


@role_required(OPERATOR)
@require_POST
def run_resume(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    _get_run(run_id)
    return _act(
        request, run_id, admin_moves.run_resume, _("The run continues from where it stopped.")
    )


@role_required(OPERATOR)
@require_POST
def run_cancel(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    _get_run(run_id)
    return _act(
        request,
        run_id,
        admin_moves.run_cancel,
        _("The run is cancelled. You can resume it later."),
    )


@role_required(OPERATOR, recent_password=True)
@require_http_methods(["GET", "POST"])
def run_rollback(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    """GET asks for confirmation, listing what will be removed; POST rolls back."""
    run = _get_run(run_id)
    if request.method == "POST":
        return _act(
            request,
            run_id,
            admin_moves.run_rollback,
            _("Rolling back: the wizard is removing what this run created."),
        )
    context = _run_context(run)
    # Last created, first deleted: the order rollback works in.
    context["deletions"] = [
        deletion_sentence(resource) for resource in reversed(context["created_resources"])
    ]
    return render(request, "run_rollback.html", context)


@role_required(OPERATOR)
@require_POST
def step_retry(request: HttpRequest, run_id: uuid.UUID, step_key: str) -> HttpResponse:
    _get_step(_get_run(run_id), step_key)
    return _act(
        request, run_id, admin_moves.run_retry_step, _("Retrying the step."), step_key=step_key
    )


@role_required(OPERATOR)
@require_POST
def step_rerun(request: HttpRequest, run_id: uuid.UUID, step_key: str) -> HttpResponse:
    _get_step(_get_run(run_id), step_key)
    return _act(
        request,
        run_id,
        admin_moves.step_rerun,
        _("The step runs again: confirm its new plan when it is ready."),
        step_key=step_key,
    )


@role_required(OPERATOR)
@require_POST
def step_apply(request: HttpRequest, run_id: uuid.UUID, step_key: str) -> HttpResponse:
    _get_step(_get_run(run_id), step_key)
    return _act(
        request, run_id, admin_moves.step_confirm, _("Applying the plan."), step_key=step_key
    )


@role_required(OPERATOR)
@require_POST
def step_inputs(request: HttpRequest, run_id: uuid.UUID, step_key: str) -> HttpResponse:
    """Save a step's answers; on a mistake, show the run page again with what was typed."""
    run = _get_run(run_id)
    step = _get_step(run, step_key)
    step_class = _step_class(step.key)
    editable = _step_answers_editable(run, step)
    if step_class is None or not (editable or _step_needs_input(run, step)):
        messages.error(request, _("This step is not waiting for input."))
        return redirect(_run_url(run))
    form = _step_form(step_class, step, request.POST, files=request.FILES)
    if not form.is_valid():
        return render(request, RUN_TEMPLATE, _run_context(run, bound_form=(step.key, form)))
    if editable:
        return _act(
            request,
            run_id,
            admin_moves.run_retry_step,
            _("Saved. The step runs again with your new answers."),
            step_key=step_key,
            inputs=form.cleaned_data,
        )
    return _act(
        request,
        run_id,
        admin_moves.step_submit_inputs,
        _("Saved. The step continues with your answers."),
        step_key=step_key,
        inputs=form.cleaned_data,
    )


@role_required(VIEWER)
@require_GET
def step_changes_csv(
    request: HttpRequest, run_id: uuid.UUID, step_key: str
) -> StreamingHttpResponse:
    """Every person of a users step's change set, or one list of it (?action=refused, or
    ?status=failed), as CSV."""
    step = _get_step(_get_run(run_id), step_key)
    try:
        change_set_id = int(request.GET.get("change_set") or step.plan.get("change_set") or 0)
    except ValueError:
        change_set_id = 0
    change_set = change_set_of_step(step, change_set_id) if change_set_id else None
    if change_set is None:
        raise Http404(_("This step has no list of user changes."))
    action = request.GET.get("action", "")
    status = request.GET.get("status", "")
    # Both name the file too: only the lists the page offers are accepted.
    if action not in ("", *ChangeAction.values) or status not in ("", *ChangeStatus.values):
        raise Http404(_("This step has no such list of user changes."))
    name = "-".join(
        part for part in ("connect-users", action or status, str(change_set.pk)) if part
    )
    return csv_download(
        EXPORT_COLUMNS,
        rows_for_export(change_set, action=action, status=status),
        f"{name}.csv",
    )
