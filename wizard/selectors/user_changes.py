"""Reads about users steps for the pages: a change set's summary, a sample of each list, its
progress, and every row for the CSV download."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from provisioning.messages import render
from provisioning.models import ChangeAction, StepRun, UserChange, UserChangeSet
from provisioning.user_changes.progress import Progress, change_set_progress

# The run page lists this many people per kind of change; the CSV has them all.
SAMPLE_SIZE = 25
# The order the lists appear in on the page.
ACTION_ORDER = ("create", "update", "delete", "departed", "nothing", "refused")
EXPORT_COLUMNS = (
    "action",
    "username",
    "first_name",
    "last_name",
    "login",
    "groups",
    "security_profiles",
    "routing_profile",
    "phone_type",
    "changes",
    "reasons",
    "status",
    "outcome",
    "user_id",
    "error",
)


@dataclass
class ActionList:
    action: str
    label: str
    count: int
    sample: list[UserChange] = field(default_factory=list)


@dataclass
class ChangeSetView:
    change_set: UserChangeSet
    lists: list[ActionList]
    progress: Progress
    failed_sample: list[UserChange]

    @property
    def started(self) -> bool:
        return self.change_set.dispatched_at is not None

    @property
    def room_after(self) -> int:
        """How many more users fit under the quota once the plan is applied."""
        counts = self.change_set.counts
        used = self.change_set.users_in_use + counts.get("create", 0) - counts.get("delete", 0)
        return max(0, self.change_set.users_quota - used)


def change_set_view(step: StepRun) -> ChangeSetView | None:
    """What the run page shows for a users step: the change set of its plan (or, while rolling
    back, of its rollback)."""
    change_set_id = (step.plan or {}).get("change_set")
    if not change_set_id:
        return None
    change_set = (
        UserChangeSet.objects.filter(step_run=step, purpose="rollback").order_by("-pk").first()
        or UserChangeSet.objects.filter(pk=change_set_id, step_run=step).first()
    )
    if change_set is None:
        return None
    labels = dict(ChangeAction.choices)
    lists = []
    for action in ACTION_ORDER:
        count = int(change_set.counts.get(action, 0))
        if not count:
            continue
        sample = list(change_set.changes.filter(action=action).order_by("position")[:SAMPLE_SIZE])
        lists.append(ActionList(action, str(labels[action]), count, sample))
    failed = list(change_set.changes.filter(status="failed").order_by("position")[:SAMPLE_SIZE])
    return ChangeSetView(change_set, lists, change_set_progress(change_set), failed)


def change_set_progress_view(step: StepRun) -> ChangeSetView | None:
    """Just the progress of a users step's change set (the latest: the rollback's once there is
    one), for the status poll: its counters, not its lists."""
    change_set = (
        UserChangeSet.objects.filter(step_run=step)
        .only("pk", "step_run_id", "purpose", "dispatched_at")
        .order_by("-pk")
        .first()
    )
    if change_set is None:
        return None
    return ChangeSetView(change_set, [], change_set_progress(change_set), [])


def change_set_of_step(step: StepRun, change_set_id: int) -> UserChangeSet | None:
    return UserChangeSet.objects.filter(pk=change_set_id, step_run=step).first()


def rows_for_export(
    change_set: UserChangeSet, *, action: str = "", status: str = ""
) -> Iterator[dict[str, Any]]:
    """Every row of the set (or of one action, or one status), as CSV columns, in order."""
    rows = change_set.changes.order_by("position")
    if action:
        rows = rows.filter(action=action)
    if status:
        rows = rows.filter(status=status)
    for change in rows.iterator(chunk_size=1000):
        details = change.details or {}
        yield {
            "action": change.action,
            "username": change.username,
            "first_name": details.get("first_name", ""),
            "last_name": details.get("last_name", ""),
            "login": details.get("login", ""),
            "groups": "; ".join(details.get("groups", [])),
            "security_profiles": "; ".join(details.get("security_profiles", [])),
            "routing_profile": details.get("routing_profile", ""),
            "phone_type": details.get("phone_type", ""),
            "changes": details.get("changes") or details.get("differs") or "",
            "reasons": " ".join(str(render(reason)) for reason in details.get("reasons", [])),
            "status": change.status,
            "outcome": change.outcome,
            "user_id": change.user_id,
            "error": render((change.error or {}).get("message", "")),
        }
