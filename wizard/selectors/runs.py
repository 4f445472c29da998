"""Reads about setup runs for the pages: the dashboard list, one run with its steps, the flows."""

from __future__ import annotations

import uuid

from django.db.models import Case, IntegerField, OuterRef, Prefetch, Q, Subquery, Value, When

from provisioning.flows import FLOWS, Flow
from wizard.models import RunStatus, SetupRun, StepRun

# The dashboard shows this many runs; older ones stay in the audit log.
DASHBOARD_RUN_LIMIT = 50
IN_PROGRESS = [RunStatus.PENDING, RunStatus.RUNNING, RunStatus.WAITING, RunStatus.ROLLING_BACK]
RESUMABLE = [RunStatus.FAILED, RunStatus.CANCELLED]


def runs_for_dashboard(*, user: object) -> list[SetupRun]:
    """Every admin sees every run: runs in progress first, then ones that can be resumed, newest
    first within each group. Of a sync's succeeded runs only the latest is shown (an hourly sync
    would push every setup off the page); the syncs page lists the others."""
    latest_of_sync = (
        SetupRun.objects.filter(sync_id=OuterRef("sync_id"))
        .order_by("-created_at")
        .values("pk")[:1]
    )
    urgency = Case(
        When(status__in=IN_PROGRESS, then=Value(0)),
        When(status__in=RESUMABLE, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    runs = (
        SetupRun.objects.select_related("created_by", "aws_connection", "idp_connection")
        .prefetch_related(Prefetch("steps", queryset=StepRun.objects.order_by("position")))
        .annotate(urgency=urgency)
        .exclude(
            Q(sync__isnull=False, status=RunStatus.SUCCEEDED) & ~Q(pk=Subquery(latest_of_sync))
        )
        .order_by("urgency", "-created_at")
    )
    return list(runs[:DASHBOARD_RUN_LIMIT])


def run_with_steps(*, run_id: uuid.UUID | str) -> SetupRun:
    """One run with its connections and ordered steps; raises SetupRun.DoesNotExist."""
    return (
        SetupRun.objects.select_related("created_by", "aws_connection", "idp_connection")
        .prefetch_related(Prefetch("steps", queryset=StepRun.objects.order_by("position")))
        .get(pk=run_id)
    )


def available_flows(*, idp: str | None = None) -> list[Flow]:
    """The flows a new run can follow (all of them, or one IdP's), in title order."""
    flows = [flow for flow in FLOWS.values() if idp is None or flow.idp == idp]
    return sorted(flows, key=lambda flow: flow.title)
