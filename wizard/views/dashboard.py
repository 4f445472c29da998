"""The dashboard: every run, the ones in progress or resumable first."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from provisioning.flows import FLOWS
from provisioning.models import Connection, WatchedFederation
from wizard.roles import VIEWER, role_required
from wizard.selectors.runs import runs_for_dashboard

# The dashboard lists this many watched federations, the unwell first.
WATCHED_SHOWN = 50
WATCH_URGENCY = {"broken": 0, "unreadable": 1, "warning": 2}


@role_required(VIEWER)
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    rows = runs_for_dashboard(user=request.user)
    for row in rows:
        row.flow = FLOWS.get(row.run.flow_key)
    return render(
        request,
        "dashboard.html",
        {
            "rows": rows,
            "has_connections": Connection.objects.exists(),
            # Broken first, then warnings, then the rest; a page of them at most.
            "watched": sorted(
                WatchedFederation.objects.filter(enabled=True)[:WATCHED_SHOWN],
                key=lambda federation: WATCH_URGENCY.get(federation.state, len(WATCH_URGENCY)),
            ),
        },
    )
