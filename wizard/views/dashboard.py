"""The dashboard: every run, the ones in progress or resumable first."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from provisioning.flows import FLOWS
from wizard.models import Connection, StepStatus
from wizard.roles import VIEWER, role_required
from wizard.selectors.runs import runs_for_dashboard

# Steps whose outputs count the Connect users a run created, updated and deleted.
USER_STEPS = ("group_users", "connect_users")


@role_required(VIEWER)
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    runs = runs_for_dashboard(user=request.user)
    rows = []
    for run in runs:
        steps = list(run.steps.all())
        rows.append(
            {
                "run": run,
                "flow": FLOWS.get(run.flow_key),
                "steps_done": sum(step.status == StepStatus.SUCCEEDED for step in steps),
                "steps_total": len(steps),
                # A users run's summary: what its users step changed.
                "users": next(
                    (
                        step.outputs
                        for step in steps
                        if step.key in USER_STEPS and "change_set" in (step.outputs or {})
                    ),
                    None,
                ),
            }
        )
    return render(
        request,
        "dashboard.html",
        {"rows": rows, "has_connections": Connection.objects.exists()},
    )
