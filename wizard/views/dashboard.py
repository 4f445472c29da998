"""The dashboard: every run, the ones in progress or resumable first."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from provisioning.flows import FLOWS
from wizard.models import Connection, StepStatus
from wizard.selectors.runs import runs_for_dashboard


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
            }
        )
    return render(
        request,
        "dashboard.html",
        {"rows": rows, "has_connections": Connection.objects.exists()},
    )
