"""`manage.py setup_sso PLAN_FILE [--resume RUN_ID]`: a whole setup run without a browser.

The plan file is TOML:

    # Which setup to run (a flow key: "entra" or "okta"), and where.
    flow = "entra"
    region = "ap-northeast-1"
    # Apply plans that ask for confirmation without stopping (default false: the command stops
    # and tells you to confirm on the run page, then run it again with --resume).
    confirm_plans = false

    [instance]
    alias = "example-contact-center"   # create (or adopt) the instance with this alias
    # id = "..."                       # or adopt an existing instance by its ID

    [connections]                      # connection names as on the Connections page
    aws = "Sandbox AWS"
    idp = "Sandbox Entra ID"

    [inputs]                           # answers for the whole run
    # key = "value"

    [steps.some_step_key]              # answers for one step (the fields of its form)
    # field = "value"

The command runs the same engine as the workers, in this process: the same runner, the same
claims (a worker that picks the run up meanwhile can't apply a step this process holds), the same
audit log. It prints one line per step transition, exits 0 when the run succeeds, 1 with the
failed step's message when it fails, and 2 when the run waits for the admin. `--resume RUN_ID`
continues a run (failed, cancelled, or interrupted) with the plan file's `confirm_plans`.
"""

from __future__ import annotations

import time
import tomllib
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from provisioning.flows import FLOWS, USER_FLOWS, not_sso_setup_keys
from provisioning.messages import render
from provisioning.models import (
    RUN_WORKED_ON,
    AuditEvent,
    AuditKind,
    Connection,
    RunStatus,
    SetupRun,
    StepStatus,
)
from provisioning.runs import admin_moves, runner
from provisioning.runs import chain as run_chain
from provisioning.runs.admin_moves import RunError
from provisioning.steps.base import STEPS, Plan
from wizard.selectors.user_changes import ChangeSetView, change_set_view

# While another process holds the run's step, look again this often.
POLL_S = 1.0
# The driver marks the run busy for a step's time limit and this much more, and marks it again
# once this much has passed (one UPDATE a minute, not one per step).
MARK_MARGIN_S = 60.0
# Exit status when the run stops to wait for the admin (1 is a failure).
EXIT_WAITING = 2
PLAN_KEYS = {"flow", "region", "confirm_plans", "instance", "connections", "inputs", "steps"}


class Command(BaseCommand):
    help = "Run a setup (Entra ID or Okta federation with Amazon Connect) from a TOML plan file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("plan_file", nargs="?", help="the TOML plan (see the module's doc)")
        parser.add_argument("--resume", metavar="RUN_ID", help="continue this run")

    def handle(self, *args: Any, plan_file: str | None, resume: str | None, **options: Any) -> None:
        if not plan_file and not resume:
            raise CommandError("Give a plan file, or --resume RUN_ID.")
        plan = _read_plan(Path(plan_file)) if plan_file else {}
        try:
            if resume:
                run = admin_moves.run_resume(user=None, run_id=resume, enqueue=False)
            else:
                run = _create_run(plan)
        except RunError as error:
            raise CommandError(error.message) from None
        self.stdout.write(f"Run {run.pk}")
        self._drive(run, confirm_plans=bool(plan.get("confirm_plans", False)))

    def _drive(self, run: SetupRun, *, confirm_plans: bool) -> None:
        seen = 0
        mark_again_at = 0.0
        while True:
            # This process drives the run: the workers' watchdog leaves it alone while it does,
            # and takes it over if this process dies.
            if time.monotonic() >= mark_again_at:
                run_chain.run_mark_driven(run_id=run.pk, margin_s=MARK_MARGIN_S)
                mark_again_at = time.monotonic() + MARK_MARGIN_S
            countdown = runner.advance(run.pk)
            seen = self._print_transitions(run, seen)
            if countdown is not None:
                time.sleep(countdown)
                continue
            # At rest for now: read how the run stands (the runner moved it in the database).
            run.refresh_from_db()
            if run.status == RunStatus.WAITING:
                if confirm_plans and self._confirm_waiting_step(run):
                    continue
                raise CommandError(self._waiting_message(run), returncode=EXIT_WAITING)
            if run.status in RUN_WORKED_ON:
                # Another process holds the current step; it moves on when that finishes.
                time.sleep(POLL_S)
                continue
            break
        if run.status == RunStatus.SUCCEEDED:
            self.stdout.write(self.style.SUCCESS(f"Run {run.pk} succeeded."))
            return
        error = run.error or {}
        step = f"Step {error['step']}" if error.get("step") else "The run"
        message = render(error.get("message", ""))
        hint = f" {render(error['hint'])}" if error.get("hint") else ""
        raise CommandError(f"{step} {run.get_status_display().lower()}: {message}{hint}")

    def _print_transitions(self, run: SetupRun, seen: int) -> int:
        events = (
            AuditEvent.objects.filter(
                run=run, kind__in=[AuditKind.STEP_STATE, AuditKind.RUN_STATE], pk__gt=seen
            )
            .only("at", "step_key", "old_value", "new_value", "message", "translatable_message")
            .order_by("pk")
        )
        for event in events:
            if "status" not in event.new_value:
                # Not a transition (the run's instance was found by its alias): said at its step.
                seen = event.pk
                continue
            subject = event.step_key or "run"
            old = event.old_value.get("status", "-")
            new = event.new_value.get("status", "-")
            self.stdout.write(f"{event.at:%H:%M:%S} {subject}: {old} → {new}")
            if new == StepStatus.PLANNED:
                self._print_plan(run, event.step_key)
            elif new == StepStatus.SKIPPED:
                # The reason says "Skipped: ..." itself (provisioning/flows.py).
                self.stdout.write(f"  {event.step_key}: {event.message_text}")
            seen = event.pk
        return seen

    def _print_plan(self, run: SetupRun, step_key: str) -> None:
        """ "nothing to do" for a plan that changes nothing, else each change it makes."""
        step = run.steps.filter(key=step_key).first()
        if step is None or step.plan.get("needs_input"):
            return
        plan = Plan.from_json(step.plan)
        for warning in plan.warnings:
            self.stdout.write(f"  warning: {render(warning)}")
        if step.plan.get("chosen"):
            self.stdout.write(f"  {render(step.plan['chosen'])}")
        people = change_set_view(step)
        if people is not None:
            self._print_people(people)
        if plan.is_noop:
            self.stdout.write(f"  {step_key}: nothing to do")
            return
        for change in plan.changes:
            if change.action not in ("nothing", "adopt"):
                self.stdout.write(f"  {change.action} {change.resource_type} {change.name}")

    def _print_people(self, people: ChangeSetView) -> None:
        """A users step's plan: how many of each change, and everyone it refused, with why."""
        counts = ", ".join(f"{entry.count} {entry.action}" for entry in people.lists)
        self.stdout.write(f"  people: {counts or 'nobody'}")
        for entry in people.lists:
            if entry.action != "refused":
                continue
            for change in entry.sample:
                reasons = " ".join(
                    str(render(r)) for r in (change.details or {}).get("reasons", [])
                )
                self.stdout.write(f"  refused {change.username}: {reasons}")
            if entry.count > len(entry.sample):
                self.stdout.write(
                    f"  … and {entry.count - len(entry.sample)} more refused: "
                    "the run page's CSV lists them all."
                )

    def _waiting_step(self, run: SetupRun) -> Any:
        return run.steps.filter(status=StepStatus.PLANNED).order_by("position").first()

    def _confirm_waiting_step(self, run: SetupRun) -> bool:
        step = self._waiting_step(run)
        if step is None or not step.plan.get("needs_confirmation"):
            return False
        for change in step.plan.get("changes", []):
            self.stdout.write(f"  {change['action']} {change['resource_type']} {change['name']}")
        admin_moves.step_confirm(user=None, run_id=run.pk, step_key=step.key, enqueue=False)
        return True

    def _waiting_message(self, run: SetupRun) -> str:
        step = self._waiting_step(run)
        key = step.key if step else "?"
        if step is not None and step.plan.get("needs_input"):
            what = f"answers: add them under [steps.{key}] in the plan file"
        else:
            what = (
                "confirmation of its plan: set confirm_plans = true, or confirm it on the run page"
            )
        return f"Step {key} waits for {what}; then run again with --resume {run.pk}."


def _read_plan(path: Path) -> dict[str, Any]:
    try:
        plan = tomllib.loads(path.read_text())
    except OSError as error:
        raise CommandError(f"Can't read {path}: {error.strerror}.") from None
    except tomllib.TOMLDecodeError as error:
        raise CommandError(f"{path} is not valid TOML: {error}.") from None
    unknown = sorted(set(plan) - PLAN_KEYS)
    if unknown:
        raise CommandError(f"Unknown keys in {path}: {', '.join(unknown)}.")
    for key in ("flow", "region"):
        if not isinstance(plan.get(key), str) or not plan[key]:
            raise CommandError(f'{path} needs {key} = "...".')
    return plan


def _connection_id(name: str | None, role: str) -> int | None:
    if not name:
        return None
    matches = list(Connection.objects.filter(name=name).values_list("pk", flat=True))
    if len(matches) != 1:
        found = "no" if not matches else "more than one"
        raise CommandError(f"There is {found} connection named “{name}” (for {role}).")
    return matches[0]


def _sso_setup(plan: dict[str, Any]) -> SetupRun | None:
    """The SSO setup a users plan file adds users to: the newest succeeded setup of its IdP and
    instance. As the run page's "Add Connect users from groups" does, the users run names it, so
    its page draws that setup's chain and links to it."""
    idp = next((idp for idp, key in USER_FLOWS.items() if key == plan.get("flow")), None)
    instance = plan.get("instance", {})
    if idp is None or not (instance.get("id") or instance.get("alias")):
        return None
    setups = SetupRun.objects.filter(
        idp=idp, region=plan.get("region", ""), status=RunStatus.SUCCEEDED
    ).exclude(flow_key__in=not_sso_setup_keys())
    if instance.get("id"):
        setups = setups.filter(instance_id=instance["id"])
    else:
        setups = setups.filter(instance_alias__iexact=instance["alias"])
    return setups.order_by("-created_at").first()


def _create_run(plan: dict[str, Any]) -> SetupRun:
    instance = plan.get("instance", {})
    connections = plan.get("connections", {})
    setup = _sso_setup(plan)
    return admin_moves.run_create(
        user=None,
        parent_id=setup.pk if setup is not None else None,
        flow_key=plan["flow"],
        region=plan["region"],
        instance_alias=instance.get("alias", ""),
        instance_id=instance.get("id", ""),
        aws_connection_id=_connection_id(connections.get("aws"), "AWS"),
        idp_connection_id=_connection_id(connections.get("idp"), "the IdP"),
        inputs=plan.get("inputs", {}),
        step_inputs=_with_headless_defaults(plan),
        enqueue=False,
    )


def _with_headless_defaults(plan: dict[str, Any]) -> dict[str, Any]:
    """The plan file's step answers, with the defaults of the steps that would otherwise stop to
    ask what the browser offers (a step's `headless_defaults`) where the file gives nothing."""
    steps = dict(plan.get("steps", {}))
    flow = FLOWS.get(str(plan.get("flow")))
    run_inputs = plan.get("inputs", {})
    for key in flow.step_keys if flow else ():
        defaults = getattr(STEPS.get(key), "headless_defaults", None)
        given = steps.get(key, {})
        if not defaults or not isinstance(given, dict) or not isinstance(run_inputs, dict):
            continue
        # What the file answers, for the step or for the whole run, stands.
        unanswered = {name: value for name, value in defaults.items() if name not in run_inputs}
        steps[key] = {**unanswered, **given}
    return steps
