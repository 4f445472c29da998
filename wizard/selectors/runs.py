"""Reads about setup runs for the pages: the dashboard list, one run with its steps, the flows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, OuterRef, Prefetch, Q, QuerySet, Subquery

from provisioning.federation_check.repair import REPAIR_OF_CHECK
from provisioning.flows import FLOWS, Flow
from provisioning.models import (
    RUN_IN_PROGRESS,
    RUN_RESUMABLE,
    AuditEvent,
    AuditKind,
    RunStatus,
    SetupRun,
    StepRun,
    StepStatus,
    UserSync,
)

# The dashboard shows this many runs; older ones stay in the audit log.
DASHBOARD_RUN_LIMIT = 50
# Rolled back and succeeded runs sort together, after the resumable ones.
DONE_URGENCY = 2
# Steps whose outputs count the Connect users a run created, updated and deleted.
USER_STEPS = ("group_users", "connect_users")


@dataclass
class DashboardRow:
    """One run of the dashboard with what the page shows of its steps."""

    run: SetupRun
    steps_done: int = 0
    steps_total: int = 0
    # A users run's summary: the outputs of its users step (created, updated, deleted, refused).
    users: dict[str, Any] | None = None
    flow: Flow | None = None
    started_by_deleted_account: bool = False

    @property
    def is_repair(self) -> bool:
        """Started by Repair from a federation check (its run page links back to the check)."""
        return bool(self.run.inputs.get(REPAIR_OF_CHECK))


def _latest_sync_runs() -> list[uuid.UUID]:
    """Each sync's latest run, in one query: one probe of the (sync, created_at) index per sync."""
    latest = SetupRun.objects.filter(sync_id=OuterRef("pk")).order_by("-created_at").values("pk")
    return [
        run_id
        for run_id in UserSync.objects.annotate(latest=Subquery(latest[:1])).values_list(
            "latest", flat=True
        )
        if run_id is not None
    ]


def dashboard_groups() -> list[QuerySet[SetupRun]]:
    """The dashboard's groups of runs, most urgent first, each newest first."""
    runs = SetupRun.objects.select_related("created_by", "aws_connection", "idp_connection")
    newest = ("-created_at",)
    return [
        runs.filter(status__in=RUN_IN_PROGRESS).order_by(*newest),
        runs.filter(status__in=RUN_RESUMABLE).order_by(*newest),
        runs.filter(status=RunStatus.ROLLED_BACK).order_by(*newest),
        # Succeeded setups: the partial index of runs without a sync keeps them apart.
        runs.filter(sync__isnull=True, status=RunStatus.SUCCEEDED).order_by(*newest),
        runs.filter(pk__in=_latest_sync_runs(), status=RunStatus.SUCCEEDED).order_by(*newest),
    ]


def started_by_deleted_account(runs: list[SetupRun]) -> set[uuid.UUID]:
    """Of `runs` without an admin or a schedule, those an admin started whose account is gone
    since: the audit line that started the run names its actor; setup_sso's names nobody."""
    orphans = [run.pk for run in runs if run.created_by_id is None and run.sync_id is None]
    if not orphans:
        return set()
    return set(
        AuditEvent.objects.filter(
            run_id__in=orphans, kind=AuditKind.RUN_STATE, old_value={}, actor_id__isnull=False
        ).values_list("run_id", flat=True)
    )


def runs_for_dashboard(*, user: object) -> list[DashboardRow]:
    """Every admin sees every run: runs in progress first, then ones that can be resumed, newest
    first within each group. Of a sync's succeeded runs only the latest is shown (an hourly sync
    would push every setup off the page); the syncs page lists the others.

    Each group is read newest first with a LIMIT through an index on (status, created_at), so
    the page reads about DASHBOARD_RUN_LIMIT runs however many there are; of the steps it reads
    only their statuses, and the outputs of users steps."""
    chosen: list[tuple[int, SetupRun]] = []
    for urgency, group in enumerate(dashboard_groups()):
        chosen += [(min(urgency, DONE_URGENCY), run) for run in group[:DASHBOARD_RUN_LIMIT]]
    chosen.sort(key=lambda item: (item[0], -item[1].created_at.timestamp()))
    rows = {run.pk: DashboardRow(run) for _, run in chosen[:DASHBOARD_RUN_LIMIT]}
    steps = (
        StepRun.objects.filter(run_id__in=rows)
        .values("run_id")
        .annotate(
            total=Count("pk"),
            done=Count("pk", filter=Q(status__in=[StepStatus.SUCCEEDED, StepStatus.SKIPPED])),
        )
        .order_by()
    )
    for counted in steps:
        rows[counted["run_id"]].steps_done = counted["done"]
        rows[counted["run_id"]].steps_total = counted["total"]
    users_steps = StepRun.objects.filter(run_id__in=rows, key__in=USER_STEPS).values_list(
        "run_id", "outputs"
    )
    for run_id, outputs in users_steps:
        if "change_set" in (outputs or {}):
            rows[run_id].users = outputs
    for run_id in started_by_deleted_account([row.run for row in rows.values()]):
        rows[run_id].started_by_deleted_account = True
    return list(rows.values())


def run_with_steps(*, run_id: uuid.UUID | str) -> SetupRun:
    """One run with its connections and ordered steps; raises SetupRun.DoesNotExist."""
    return (
        SetupRun.objects.select_related("created_by", "aws_connection", "idp_connection")
        .prefetch_related(Prefetch("steps", queryset=StepRun.objects.order_by("position")))
        .get(pk=run_id)
    )


def available_flows(*, idp: str | None = None) -> list[Flow]:
    """The flows the New setup page offers (all of them, or one IdP's), in title order."""
    flows = [
        flow
        for flow in FLOWS.values()
        if flow.on_new_setup_page and (idp is None or flow.idp == idp)
    ]
    return sorted(flows, key=lambda flow: flow.title)
