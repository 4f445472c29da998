"""What admins do with Connect users from IdP groups: start a users run for an SSO setup, keep an
instance's users in step with the groups on a schedule (create, change, pause, delete a sync, run
it now), and what Celery beat does: start the syncs that are due, each as a run of its own.

Like the run services: one transaction per action, guarded on the current state, its audit row
written in that transaction, tasks sent after commit. A refused action raises RunError.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext, gettext_noop

from provisioning.audit import AuditScope, record_state_change
from provisioning.flows import USER_FLOWS, is_sso_setup
from provisioning.messages import Message
from provisioning.models import (
    RUN_IN_PROGRESS,
    AuditKind,
    RunStatus,
    SetupRun,
    StepStatus,
    UserSync,
)
from provisioning.runs import admin_moves
from provisioning.runs.admin_moves import RunError
from provisioning.steps.group_users import quoted
from provisioning.user_changes.planning import DEPARTURE_CHOICES
from provisioning.user_changes.steps import SYNC_ACTOR

USERS_STEP = "group_users"
# A sync runs at least this often and at most this rarely (hours): hourly is as close as the
# 2/s Connect quota lets a sync of thousands keep up; a week is the longest an admin asked for.
EVERY_HOURS_CHOICES = (1, 2, 4, 6, 12, 24, 48, 168)
# The group_users answers a sync repeats on every run.
SYNCED_INPUTS = ("groups", "username_source", "update_existing")


def _scope(user: Any) -> AuditScope:
    if user is not None and getattr(user, "is_authenticated", False):
        return AuditScope(actor_label=user.get_username(), actor_id=user.pk)
    return AuditScope(actor_label=SYNC_ACTOR)


def _sync_record(sync: UserSync) -> dict[str, Any]:
    return {
        "sync": str(sync.pk),
        "instance": sync.instance_alias or sync.instance_id,
        "groups": [
            row.get("group_name") or row.get("group") for row in sync.inputs.get("groups", [])
        ],
        "every_hours": sync.every_hours,
        "full_every_hours": sync.full_every_hours,
        "departures": sync.departures,
        "enabled": sync.enabled,
    }


def setup_inputs(setup: SetupRun) -> dict[str, Any]:
    """What a users run takes from the SSO setup it works on: where usernames come from and the
    IdP app people sign in through. (Which users it manages, the step works out from the groups
    themselves, the same for every path: provisioning/user_changes/sources.py.)"""
    outputs = {step.key: step.outputs for step in setup.steps.all()}
    inputs: dict[str, Any] = {}
    source = outputs.get("entra_claims", {}).get("session_name_source")
    if source:
        inputs["username_source"] = source
    app_id = outputs.get("okta_app", {}).get("app_id")
    if app_id:
        inputs["okta_app_id"] = app_id
    return inputs


def users_run_create(*, user: Any, setup_id: uuid.UUID | str) -> SetupRun:
    """Start "Connect users from groups" for the instance of a succeeded SSO setup."""
    setup = SetupRun.objects.filter(pk=setup_id).first()
    if setup is None:
        raise RunError(gettext("No setup run has this ID."))
    if setup.status != RunStatus.SUCCEEDED or not is_sso_setup(setup.flow_key):
        raise RunError(gettext("Users can be added from groups once an SSO setup has succeeded."))
    instance_id = setup.instance_id or str(
        next(
            (
                s.outputs.get("instance_id")
                for s in setup.steps.all()
                if s.key == "connect_instance"
            ),
            "",
        )
        or ""
    )
    return admin_moves.run_create(
        user=user,
        flow_key=USER_FLOWS[setup.idp],
        region=setup.region,
        instance_alias=setup.instance_alias,
        instance_id=instance_id,
        aws_connection_id=setup.aws_connection_id,
        idp_connection_id=setup.idp_connection_id,
        inputs=setup_inputs(setup),
        review_plans=True,
        parent_id=setup.pk,
    )


def _check_schedule(every_hours: int, departures: str) -> None:
    if every_hours not in EVERY_HOURS_CHOICES:
        raise RunError(
            gettext("Choose how often the sync runs: every %(choices)s hours.")
            % {"choices": ", ".join(str(hours) for hours in EVERY_HOURS_CHOICES)}
        )
    if departures not in DEPARTURE_CHOICES or departures == "ignore":
        raise RunError(gettext("Choose whether the sync reports or deletes people who left."))


def sync_create(
    *, user: Any, run_id: uuid.UUID | str, every_hours: int, departures: str
) -> UserSync:
    """Keep the users of a succeeded users run's instance in step with its groups, from now on."""
    _check_schedule(every_hours, departures)
    with transaction.atomic():
        run = SetupRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None:
            raise RunError(gettext("No setup run has this ID."))
        step = run.steps.filter(key=USERS_STEP, status=StepStatus.SUCCEEDED).first()
        if run.flow_key not in USER_FLOWS.values() or step is None:
            raise RunError(
                gettext("A sync repeats a run of “Connect users from groups” that succeeded.")
            )
        aws_connection_id, idp_connection_id = run.aws_connection_id, run.idp_connection_id
        if aws_connection_id is None or idp_connection_id is None:
            raise RunError(gettext("The run's connections no longer exist; start a new run."))
        inputs = {key: step.inputs[key] for key in SYNCED_INPUTS if key in step.inputs}
        _refuse_overlap(run.instance_id, inputs.get("groups") or [])
        for key in ("okta_app_id",):
            if key in run.inputs:
                inputs[key] = run.inputs[key]
        if run.inputs.get("username_source") and "username_source" not in inputs:
            inputs["username_source"] = run.inputs["username_source"]
        sync = UserSync.objects.create(
            idp=run.idp,
            region=run.region,
            instance_id=run.instance_id,
            instance_alias=run.instance_alias,
            aws_connection_id=aws_connection_id,
            idp_connection_id=idp_connection_id,
            setup_id=run.parent_id,
            inputs=inputs,
            departures=departures,
            every_hours=every_hours,
            full_every_hours=max(every_hours, settings.WIZARD_SYNC_FULL_EVERY_HOURS),
            next_run_at=timezone.now() + timedelta(hours=every_hours),
            language=translation.get_language() or settings.LANGUAGE_CODE,
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        record_state_change(
            _scope(user),
            kind=AuditKind.USER_SYNC,
            old={},
            new=_sync_record(sync),
            message=Message(
                gettext_noop("Created the sync of %(instance)s."),
                {"instance": sync.instance_alias or sync.instance_id},
            ),
        )
    return sync


def _group_refs(rows: list[Any]) -> set[str]:
    return {str(row.get("group")) for row in rows if isinstance(row, dict) and row.get("group")}


def _refuse_overlap(instance_id: str, groups: list[Any]) -> None:
    """Two syncs of one group on one instance would each take the other's people for theirs:
    one would delete whom the other keeps. (Overlapping people through different groups are
    warned about in each sync run's plan.)"""
    wanted = _group_refs(groups)
    for other in UserSync.objects.filter(instance_id=instance_id):
        shared = wanted & _group_refs(other.inputs.get("groups") or [])
        if shared:
            names = {
                str(row.get("group")): str(row.get("group_name") or row.get("group"))
                for row in other.inputs.get("groups") or []
            }
            raise RunError(
                gettext(
                    "Another sync of this instance already keeps %(groups)s in step; two syncs "
                    "of one group would undo each other. Change or delete that sync instead."
                )
                % {"groups": ", ".join(quoted(names[ref]) for ref in sorted(shared))}
            )


def _locked_sync(sync_id: uuid.UUID | str) -> UserSync:
    try:
        return UserSync.objects.select_for_update().get(pk=sync_id)
    except (UserSync.DoesNotExist, ValueError):
        raise RunError(gettext("No sync has this ID.")) from None


def sync_update(
    *, user: Any, sync_id: uuid.UUID | str, every_hours: int, departures: str, enabled: bool
) -> UserSync:
    """Change how often a sync runs, what it does with departures, or pause/resume it."""
    _check_schedule(every_hours, departures)
    with transaction.atomic():
        sync = _locked_sync(sync_id)
        old = _sync_record(sync)
        if every_hours != sync.every_hours or (enabled and not sync.enabled):
            sync.next_run_at = timezone.now() + timedelta(hours=every_hours)
        sync.every_hours = every_hours
        sync.departures = departures
        sync.enabled = enabled
        sync.save()
        record_state_change(_scope(user), kind=AuditKind.USER_SYNC, old=old, new=_sync_record(sync))
    return sync


def sync_delete(*, user: Any, sync_id: uuid.UUID | str) -> None:
    """Stop syncing for good (its runs and the users it made stay)."""
    with transaction.atomic():
        sync = _locked_sync(sync_id)
        record_state_change(
            _scope(user),
            kind=AuditKind.USER_SYNC,
            old=_sync_record(sync),
            new={"deleted": True},
            message=Message(
                gettext_noop("Deleted the sync of %(instance)s."),
                {"instance": sync.instance_alias or sync.instance_id},
            ),
        )
        sync.delete()


def _in_progress(sync: UserSync) -> SetupRun | None:
    return sync.runs.filter(status__in=RUN_IN_PROGRESS).order_by("-created_at").first()


def sync_start(*, user: Any, sync_id: uuid.UUID | str) -> SetupRun:
    """Run the sync now: a users run with the sync's groups, applied without review (deletions
    past the safety threshold still wait for an admin)."""
    with transaction.atomic():
        sync = _locked_sync(sync_id)
        running = _in_progress(sync)
        if running is not None:
            raise RunError(
                gettext("The previous run of this sync has not finished; it is %(status)s.")
                % {"status": running.get_status_display().lower()}
            )
        with translation.override(sync.language):
            return admin_moves.run_create(
                user=user,
                flow_key=USER_FLOWS[sync.idp],
                region=sync.region,
                instance_alias=sync.instance_alias,
                instance_id=sync.instance_id,
                aws_connection_id=sync.aws_connection_id,
                idp_connection_id=sync.idp_connection_id,
                inputs={"sync_id": str(sync.pk), "departures": sync.departures},
                step_inputs={USERS_STEP: dict(sync.inputs)},
                review_plans=False,
                parent_id=sync.setup_id,
                sync_id=sync.pk,
                actor_label=SYNC_ACTOR,
            )


def syncs_start_due() -> list[uuid.UUID]:
    """Celery beat's turn: start every enabled sync whose time has come. Each sync is claimed by
    moving its next time on (a conditional UPDATE), so two beats start it once; a sync whose
    previous run is still going skips this turn."""
    now = timezone.now()
    started = []
    due = UserSync.objects.filter(enabled=True, next_run_at__lte=now).order_by("next_run_at")
    for sync in due[: settings.WIZARD_RUN_NUDGE_BATCH]:
        claimed = UserSync.objects.filter(pk=sync.pk, next_run_at=sync.next_run_at).update(
            next_run_at=now + timedelta(hours=sync.every_hours)
        )
        if not claimed:
            continue
        try:
            run = sync_start(user=None, sync_id=sync.pk)
        except RunError:
            continue
        started.append(run.pk)
    return started
