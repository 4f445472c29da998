"""What a users step (connect_users, group_users) does with its people: plan stores a change set
and shows its summary, apply makes the changes with as many workers as are free and waits for them
(re-enqueued, never sleeping), verify re-reads the instance, rollback deletes the users the run
created. The steps themselves only say where their people come from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from provisioning.aws.api_quotas import api_rate
from provisioning.context import StepContext
from provisioning.errors import PermanentError, WaitForCloud
from provisioning.messages import Message, joined
from provisioning.models import (
    AuditKind,
    ChangeAction,
    ChangeStatus,
    SetupRun,
    UserChange,
    UserChangeSet,
)
from provisioning.runs.runner import claim_is_stale, worker_identity
from provisioning.steps.base import Change, Finding, Plan, Step
from provisioning.user_changes.helpers import change_set_ask_helpers
from provisioning.user_changes.instance import (
    ConnectUser,
    Instance,
    all_users,
    profile_names,
    read_instance,
    saml_instance,
)
from provisioning.user_changes.people import Person, check_people
from provisioning.user_changes.planning import (
    DEPARTURE_CHOICES,
    IGNORE,
    RUN_TAG,
    ChangeOptions,
    ChangePlan,
    PlannedChange,
    differences,
    plan_changes,
    save_change_set,
)
from provisioning.user_changes.progress import Progress, change_set_progress
from provisioning.user_changes.sources import AppAccess, managed_usernames
from provisioning.user_changes.work import work_on

# The Connect operation whose quota paces a set, by the set's most common action.
OPERATION_OF = {
    "create": "CreateUser",
    "update": "UpdateUserSecurityProfiles",
    "delete": "DeleteUser",
}
# The step's outputs list at most this many refused people (the CSV has them all).
REFUSED_IN_OUTPUTS = 20
RESOURCE_TYPE = "connect_users"
# Who the audit log names for a sync run nobody pressed Run now for.
SYNC_ACTOR = "sync schedule"


@dataclass
class UserChangesPlan(Plan):
    """A plan whose per-person rows are a stored change set; the plan itself keeps the counts."""

    change_set: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    # IdP groups the run assigns to the app so their people can sign in ([{"id", "name"}]).
    assign_groups: list[dict[str, str]] = field(default_factory=list)
    users_in_use: int = 0
    users_quota: int = 0
    # A sync run's reading of its groups (provisioning/user_changes/sync_reading.py).
    sync_reading: dict[str, Any] = field(default_factory=dict)
    # What the admin can still do about a warning (tick a box in the step's form): shown only
    # while the plan waits for them, not once the run applies it.
    until_confirmed: list[Message] = field(default_factory=list)


@dataclass
class UserChangeCounts:
    """What a users step's apply returns (each step's StepOutputs adds it to its fields): how
    many users it created, updated, deleted, found, left alone and refused; the change set
    whose rows list everyone."""

    change_set: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    existed: int = 0
    # Users already right; a sync run that found nothing changed in its groups sets True.
    unchanged: int = 0
    refused: int = 0
    departed: int = 0
    failed: int = 0
    # The first REFUSED_IN_OUTPUTS refused people: [{"username", "reasons"}].
    refused_people: list[dict[str, Any]] = field(default_factory=list)


Counts = TypeVar("Counts", bound=UserChangeCounts)


def run_instance(ctx: StepContext) -> str:
    """The Connect instance id of the run: chosen at the start, made by connect_instance, or
    found by the alias the run names (a plan file may name an instance by its alias)."""
    instance_id = ctx.instance_id or str(
        ctx.outputs.get("connect_instance", {}).get("instance_id", "")
    )
    if not instance_id and ctx.instance_alias:
        instance_id = _instance_by_alias(ctx)
    if not instance_id:
        raise PermanentError(
            Message(gettext_noop("This run has no Amazon Connect instance yet.")),
            code="instance_missing",
            hint=Message(
                gettext_noop(
                    "Run the Connect instance step first, or start a run for an existing instance."
                )
            ),
        )
    return instance_id


def _instance_by_alias(ctx: StepContext) -> str:
    """The id of the instance with the run's alias, made the run's instance from now on."""
    connect = ctx.aws("connect")
    for page in connect.get_paginator("list_instances").paginate():
        for summary in page["InstanceSummaryList"]:
            if str(summary.get("InstanceAlias", "")).lower() == ctx.instance_alias.lower():
                ctx.set_run_instance(
                    instance_id=summary["Id"], instance_alias=summary["InstanceAlias"]
                )
                return str(summary["Id"])
    raise PermanentError(
        Message(
            gettext_noop("There is no Amazon Connect instance named “%(alias)s” in %(region)s."),
            {"alias": ctx.instance_alias, "region": ctx.region},
        ),
        code="instance_not_found",
        hint=Message(
            gettext_noop("Check the alias and the region, or give the instance's ID instead.")
        ),
    )


def read_planned_instance(ctx: StepContext) -> Instance:
    """The run's instance as a users plan reads it: profiles, users and quota (read_instance)."""
    return read_instance(ctx.aws("connect"), ctx.aws("service-quotas"), run_instance(ctx))


def offered_profile_names(
    ctx: StepContext, instance: Instance | None = None
) -> tuple[list[str], list[str]]:
    """The names of the instance's security and routing profiles, as a users form offers them:
    from `instance`, the plan's reading a moment ago, else read here (a SAML instance only)."""
    if instance is not None:
        return instance.profile_names()
    connect = ctx.aws("connect")
    instance_id = run_instance(ctx)
    saml_instance(connect, instance_id)
    return profile_names(connect, instance_id)


def options_from(
    ctx: StepContext,
    *,
    managed: dict[str, list[str]] | None = None,
    access: AppAccess | None = None,
) -> ChangeOptions:
    """The run's answers about whom it may change (inputs update_existing, departures, sync_id),
    with the users its groups held before (`managed`) and who the IdP app lets in (`access`)."""
    departures = str(ctx.inputs.get("departures") or IGNORE)
    if departures not in DEPARTURE_CHOICES:
        raise PermanentError(
            Message(
                gettext_noop("“%(value)s” is not a way to handle people who left the groups."),
                {"value": departures},
            ),
            code="departures_invalid",
            hint=Message(
                gettext_noop("Use one of: %(choices)s."), {"choices": ", ".join(DEPARTURE_CHOICES)}
            ),
        )
    return ChangeOptions(
        run_id=str(ctx.run_id),
        update_existing=bool(ctx.inputs.get("update_existing")),
        departures=departures,
        sync_id=str(ctx.inputs.get("sync_id") or ""),
        managed=managed or {},
        access=access,
        confirm_delete_over=settings.WIZARD_SYNC_CONFIRM_DELETES_OVER,
        confirm_delete_share=settings.WIZARD_SYNC_CONFIRM_DELETES_SHARE,
    )


# How the plan's summary names each kind of row ("1,985 users to create"), for setup_sso's
# output and the audit log; the run page shows the rows themselves.
SUMMARY_NAMES = {
    "delete": "{count} users to delete",
    "create": "{count} users to create",
    "update": "{count} users to update",
    "departed": "{count} users whose people left the groups (kept)",
    "nothing": "{count} users already right",
    "refused": "{count} people who can't have a user",
}


def _summary(plan: ChangePlan) -> list[Change]:
    """One Change per kind of row; refusals and departures change nothing."""
    counts = plan.counts
    return [
        Change(
            action if action in OPERATION_OF else "nothing",  # type: ignore[arg-type]
            RESOURCE_TYPE,
            SUMMARY_NAMES[action].format(count=counts[action]),
            details={"action": action, "count": counts[action]},
        )
        for action in SUMMARY_NAMES
        if counts.get(action)
    ]


def plan_user_changes(
    ctx: StepContext,
    people: list[Person],
    *,
    warnings: list[Message] | None = None,
    group_ids: list[str] | None = None,
    access: AppAccess | None = None,
    plan_class: type[UserChangesPlan] = UserChangesPlan,
    instance: Instance,
) -> UserChangesPlan:
    """Check the people, read the instance, store the change set; the plan (a `plan_class`, for
    a step whose plan keeps more) shows its summary. People from IdP groups (`group_ids`) are
    planned against the users those groups held before and who the IdP app lets in (`access`).
    `instance`: the instance as the step's plan read it a moment ago (read_planned_instance): the
    plan keeps its profiles for the form too."""
    if ctx.step_run_id is None:
        raise RuntimeError("A users plan is stored with its step; run it as part of a run.")
    check_people(people)
    managed = managed_usernames(
        instance_id=instance.id, group_ids=group_ids or [], exclude_step_run_id=ctx.step_run_id
    )
    options = options_from(ctx, managed=managed, access=access)
    plan = plan_changes(people, instance, options)
    change_set = save_change_set(
        step_run_id=ctx.step_run_id,
        instance_id=instance.id,
        plan=plan,
        tags=options.tags(),
        group_ids=group_ids,
    )
    return plan_class(
        changes=_summary(plan),
        warnings=[*(warnings or []), *plan.warnings],
        needs_confirmation=plan.needs_confirmation,
        change_set=change_set.pk,
        counts=plan.counts,
        users_in_use=plan.in_use,
        users_quota=plan.quota,
    )


def current_change_set(step_run_id: int | None, purpose: str = "apply") -> Any | None:
    """The step's newest change set for `purpose` (each plan stores a new one)."""
    if step_run_id is None:
        return None
    return (
        UserChangeSet.objects.select_related("step_run__run")
        .filter(step_run_id=step_run_id, purpose=purpose)
        .order_by("-pk")
        .first()
    )


def _progress_text(progress: Progress) -> dict[str, Any]:
    """The wait's reason, kept as ids and parameters (the run page reads it in its language)."""
    parts = [
        Message(
            gettext_noop("%(done)s of %(total)s changes made"),
            {
                "done": number_format(progress.finished, force_grouping=True),
                "total": number_format(progress.total, force_grouping=True),
            },
        )
    ]
    if progress.rate_now:
        parts.append(
            Message(
                gettext_noop("%(rate)s a second"), {"rate": number_format(progress.rate_now, 1)}
            )
        )
    if progress.eta_s:
        parts.append(
            Message(gettext_noop("about %(seconds)d s left"), {"seconds": round(progress.eta_s)})
        )
    return joined(parts, " · ")


def _dominant_operation(counts: dict[str, int]) -> str:
    action = max(OPERATION_OF, key=lambda name: counts.get(name, 0))
    return OPERATION_OF[action]


def _ask_for_helpers(change_set: Any, count: int) -> None:
    """Ask `count` more workers to take changes of the set (Celery tasks, sent after commit)."""
    change_set_ask_helpers(change_set_id=change_set.pk, count=count)


def _start(ctx: StepContext, change_set: Any, connect: Any) -> None:
    """First apply: note when the work began, at which rate, and that rollback has work; ask
    helpers for a set too big for this worker's share."""
    if change_set.dispatched_at is None:
        rate = api_rate(connect, _dominant_operation(change_set.counts))
        started = UserChangeSet.objects.filter(pk=change_set.pk, dispatched_at=None).update(
            dispatched_at=timezone.now(), rate=asdict(rate)
        )
        change_set.refresh_from_db()
        if started and change_set.counts.get("create"):
            # Rollback looks for steps that created something; the rows say what exactly.
            ctx.record_created(
                RESOURCE_TYPE,
                _("%(count)s users planned in change set %(id)s")
                % {"count": change_set.counts["create"], "id": change_set.pk},
            )
    changing = sum(change_set.counts.get(action, 0) for action in OPERATION_OF)
    if change_set.helpers_sent_at is None and changing > settings.WIZARD_USER_CHANGES_INLINE_MAX:
        _ask_for_helpers(change_set, settings.WIZARD_USER_CHANGE_WORKERS)


def _ask_again_if_stalled(change_set: Any, progress: Progress) -> None:
    """Helpers' tasks can be lost (a broker restart, a killed host): ask again when changes wait
    and fewer workers than wanted made one lately."""
    if progress.workers >= settings.WIZARD_USER_CHANGE_WORKERS:
        return
    stall = timezone.now() - timedelta(seconds=settings.WIZARD_USER_CHANGES_STALL_S)
    if change_set.helpers_sent_at is not None and change_set.helpers_sent_at > stall:
        return
    waiting = UserChange.objects.filter(
        change_set=change_set, status=ChangeStatus.PENDING, claimed_by=""
    ).exists()
    if waiting:
        _ask_for_helpers(change_set, settings.WIZARD_USER_CHANGE_WORKERS - progress.workers)


def _work(ctx: StepContext, change_set: Any, connect: Any) -> Progress:
    """This worker's share, then the numbers; WaitForCloud while changes are left."""
    work_on(
        change_set,
        connect=connect,
        worker=worker_identity(),
        budget_s=settings.WIZARD_USER_CHANGES_INLINE_S,
        helper=False,
    )
    progress = change_set_progress(change_set)
    if progress.left:
        _ask_again_if_stalled(change_set, progress)
        raise WaitForCloud(
            _progress_text(progress), countdown_s=settings.WIZARD_USER_CHANGES_POLL_S
        )

    with transaction.atomic():
        finished = UserChangeSet.objects.filter(pk=change_set.pk, finished_at=None).update(
            finished_at=timezone.now()
        )
        if finished and change_set.purpose == "apply" and ctx.inputs.get("sync_id"):
            _record_sync_summary(ctx, change_set, progress)
    return progress


def _record_sync_summary(ctx: StepContext, change_set: Any, progress: Progress) -> None:
    """One audit event per sync run, with what it did, in the name of whoever started it (the
    admin who pressed Run now, or the schedule)."""
    from provisioning.audit import AuditScope, record_state_change

    run = SetupRun.objects.select_related("created_by").get(pk=ctx.run_id)
    outcomes = progress.by_outcome
    summary = {
        "sync": str(ctx.inputs["sync_id"]),
        "created": outcomes.get("created", 0),
        "updated": outcomes.get("updated", 0),
        "deleted": outcomes.get("deleted", 0) + outcomes.get("gone", 0),
        "refused": change_set.counts.get("refused", 0),
        "kept_after_leaving": change_set.counts.get("departed", 0),
        "failed": progress.failed,
        "read": _read_summary(ctx.plan),
    }
    who = run.created_by.get_username() if run.created_by else SYNC_ACTOR
    record_state_change(
        AuditScope(actor_label=who, actor_id=run.created_by_id, run_id=run.pk),
        kind=AuditKind.USER_SYNC,
        old={},
        new=summary,
        message=Message(
            gettext_noop(
                "Sync run: %(created)d created, %(updated)d updated, %(deleted)d deleted, "
                "%(refused)d refused."
            ),
            {key: summary[key] for key in ("created", "updated", "deleted", "refused")},
        ),
    )


def _read_summary(plan: dict[str, Any]) -> dict[str, str]:
    """How the run read its groups (full or only what changed) and why, for the audit log."""
    reading = plan.get("sync_reading") or {}
    return {"mode": str(reading.get("mode") or "full"), "reason": str(reading.get("reason") or "")}


def record_unchanged_sync(ctx: StepContext) -> None:
    """The audit event of a sync run that found nothing changed in its groups and so made no
    change and no Connect call."""
    from provisioning.audit import AuditScope, record_state_change

    run = SetupRun.objects.select_related("created_by").get(pk=ctx.run_id)
    who = run.created_by.get_username() if run.created_by else SYNC_ACTOR
    summary = {
        "sync": str(ctx.inputs["sync_id"]),
        "created": 0,
        "updated": 0,
        "deleted": 0,
        "read": _read_summary(ctx.plan),
    }
    record_state_change(
        AuditScope(actor_label=who, actor_id=run.created_by_id, run_id=run.pk),
        kind=AuditKind.USER_SYNC,
        old={},
        new=summary,
        message=Message(
            gettext_noop(
                "Sync run: nothing changed in the groups since the last run; no changes made."
            )
        ),
    )


def _failures_error(change_set: Any, progress: Progress) -> PermanentError:
    failed = change_set.changes.filter(status=ChangeStatus.FAILED).order_by("position")
    examples = joined(
        [
            Message(
                gettext_noop("%(username)s: %(message)s"),
                {"username": change.username, "message": change.error.get("message", "")},
            )
            for change in failed[:3]
        ],
        "; ",
    )
    return PermanentError(
        Message(
            gettext_noop("%(failed)d of %(total)d changes failed, for example %(examples)s"),
            {"failed": progress.failed, "total": progress.total, "examples": examples},
        ),
        code="user_changes_failed",
        hint=Message(
            gettext_noop(
                "Download the failed changes (CSV) to see every reason, fix them, then retry the "
                "step: the new plan holds only what is still to do."
            )
        ),
    )


def _outputs(change_set: Any, progress: Progress, outputs: type[Counts]) -> Counts:
    refused = change_set.changes.filter(action=ChangeAction.REFUSED).order_by("position")
    outcomes = progress.by_outcome
    return outputs(
        change_set=change_set.pk,
        created=outcomes.get("created", 0),
        updated=outcomes.get("updated", 0),
        deleted=outcomes.get("deleted", 0) + outcomes.get("gone", 0),
        existed=outcomes.get("existed", 0),
        unchanged=change_set.counts.get("nothing", 0),
        refused=change_set.counts.get("refused", 0),
        departed=change_set.counts.get("departed", 0),
        failed=progress.failed,
        refused_people=[
            {"username": change.username, "reasons": change.details.get("reasons", [])}
            for change in refused[:REFUSED_IN_OUTPUTS]
        ],
    )


def apply_user_changes(
    ctx: StepContext, make_plan: Callable[[], Plan], outputs: type[Counts]
) -> Counts:
    """Make the changes of the step's current plan; without one, plan first (apply called on its
    own converges to the same users). Returns the step's `outputs` class filled in."""
    change_set = current_change_set(ctx.step_run_id)
    if change_set is None:
        make_plan()
        change_set = current_change_set(ctx.step_run_id)
        if change_set is None:
            raise PermanentError(
                Message(gettext_noop("No people were given.")), code="people_missing"
            )
    if change_set.finished_at is None:
        connect = ctx.aws("connect")
        _start(ctx, change_set, connect)
        progress = _work(ctx, change_set, connect)
    else:
        progress = change_set_progress(change_set)
    if progress.failed:
        raise _failures_error(change_set, progress)
    return _outputs(change_set, progress, outputs)


def _listed_usernames(connect: Any, instance_id: str) -> dict[str, str]:
    """username -> id from ListUsers, which (unlike the search index) lists a user at once."""
    users: dict[str, str] = {}
    for page in connect.get_paginator("list_users").paginate(
        InstanceId=instance_id, PaginationConfig={"PageSize": 1000}
    ):
        for summary in page["UserSummaryList"]:
            users[summary["Username"]] = summary["Id"]
    return users


def verify_user_changes(ctx: StepContext) -> list[Finding]:
    """Every created or updated user is there with the planned attributes; deleted ones are gone."""
    change_set = current_change_set(ctx.step_run_id)
    if change_set is None:
        return []
    connect = ctx.aws("connect")
    searched = all_users(connect, change_set.instance_id)
    done = list(change_set.changes.filter(status=ChangeStatus.DONE).order_by("position"))
    # The search index may lag behind the changes just made (a user created a moment ago not
    # found yet, one deleted still found): only then is ListUsers, which lists a user at once,
    # asked who is there; else the search already said it.
    settled = all(
        (change.username in searched) != (change.outcome in ("deleted", "gone")) for change in done
    )
    listed = (
        {username: user.id for username, user in searched.items()}
        if settled
        else _listed_usernames(connect, change_set.instance_id)
    )
    missing, wrong, remaining = [], [], []
    for change in done:
        if change.outcome in ("deleted", "gone"):
            if change.username in listed:
                remaining.append(change.username)
            continue
        if change.username not in listed:
            missing.append(change.username)
            continue
        if change.outcome not in ("created", "updated"):
            continue
        user = searched.get(change.username) or _described(
            connect, change_set.instance_id, listed[change.username]
        )
        wanted = change.details.get("call", {})
        if change.outcome == "updated":
            wanted = {name: difference["to"] for name, difference in wanted.items()}
        if differences(wanted, user):
            wrong.append(change.username)
    return [
        Finding(
            check=Message(gettext_noop("Every person has a Connect user")),
            ok=not missing,
            detail=Message(gettext_noop("missing: %(names)s"), {"names": ", ".join(missing[:20])})
            if missing
            else "",
            fix=Message(gettext_noop("Retry the step.")) if missing else "",
        ),
        Finding(
            check=Message(gettext_noop("Users have the planned profiles and names")),
            ok=not wrong,
            detail=Message(gettext_noop("different: %(names)s"), {"names": ", ".join(wrong[:20])})
            if wrong
            else "",
            fix=Message(
                gettext_noop("Someone changed them meanwhile; retry the step to set them again.")
            )
            if wrong
            else "",
        ),
        Finding(
            check=Message(gettext_noop("Deleted users are gone")),
            ok=not remaining,
            detail=", ".join(remaining[:20]),
            fix=Message(gettext_noop("Retry the step.")) if remaining else "",
        ),
    ]


def _described(connect: Any, instance_id: str, user_id: str) -> ConnectUser:
    """One user read directly, for a user the search index doesn't list yet."""
    return ConnectUser.from_wire(
        connect.describe_user(InstanceId=instance_id, UserId=user_id)["User"]
    )


def _changes_in_flight(ctx: StepContext) -> bool:
    """Whether a worker still holds one of the step's changes (a cancelled run's last calls)."""
    held = UserChange.objects.filter(
        change_set__step_run_id=ctx.step_run_id, status=ChangeStatus.PENDING
    ).exclude(claimed_by="")
    return any(
        not claim_is_stale(
            change.claimed_by, change.claimed_at, settings.WIZARD_USER_CHANGE_LEASE_S
        )
        for change in held[:100]
    )


def roll_back_user_changes(ctx: StepContext) -> None:
    """Delete every Connect user this run created (they carry its tag), with as many workers as
    are free; users it only updated or found are left alone."""
    if _changes_in_flight(ctx):
        raise WaitForCloud(
            Message(
                gettext_noop("Waiting for the changes in progress to finish before rolling back.")
            )
        )
    change_set = current_change_set(ctx.step_run_id, purpose="rollback")
    connect = ctx.aws("connect")
    if change_set is None:
        instance_id = run_instance(ctx)
        ours = {
            user.id: user
            for user in all_users(connect, instance_id).values()
            if user.tags.get(RUN_TAG) == str(ctx.run_id)
        }
        # The search index may lag behind a user created a moment ago; the rows don't.
        made = UserChange.objects.filter(
            change_set__step_run_id=ctx.step_run_id, outcome="created"
        ).exclude(Q(user_id="") | Q(user_id__in=list(ours)))
        deletes = [
            PlannedChange("delete", user.username, {"first_name": user.first_name}, user.id)
            for user in ours.values()
        ] + [PlannedChange("delete", change.username, {}, change.user_id) for change in made]
        change_set = save_change_set(
            step_run_id=ctx.step_run_id,  # type: ignore[arg-type]
            instance_id=instance_id,
            plan=ChangePlan(changes=deletes, in_use=0, quota=0),
            tags={},
            purpose="rollback",
        )
    if change_set.finished_at is None:
        _start(ctx, change_set, connect)
        _work(ctx, change_set, connect)
    if change_set.changes.filter(status=ChangeStatus.FAILED).exists():
        raise _failures_error(change_set, change_set_progress(change_set))


class UsersStep(Step):
    """A step whose plan is a users plan: verify and rollback are the same for all of them and
    apply is apply_user_changes; a subclass says where its people come from in plan() and
    returns its own outputs class (UserChangeCounts and what else it adds) from apply()."""

    # The confirmed plan is its stored change set, which apply makes row by row: planning again
    # would store a new one in its place. A person changed meanwhile is met by their row (a user
    # someone else created since is left alone, one gone since fails with "no longer exists").
    checks_confirmed_plan = False

    def verify(self, ctx: StepContext) -> list[Finding]:
        return verify_user_changes(ctx)

    def rollback(self, ctx: StepContext) -> None:
        roll_back_user_changes(ctx)
