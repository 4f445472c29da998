"""The people picker's search: matching users and groups from the directory snapshot an assignment
step's plan stored (the database only; the IdP is read in the worker)."""

from __future__ import annotations

import uuid
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from provisioning.directory_picker import GROUP, USER, search_directory
from provisioning.models import StepRun
from wizard.roles import OPERATOR, role_required

# How many users and how many groups one search shows (the rest: "refine the search").
PICKER_RESULTS = 50


def _get_step(run_id: uuid.UUID, step_key: str) -> StepRun:
    step = StepRun.objects.filter(run_id=run_id, key=step_key).first()
    if step is None:
        raise Http404(_("This run has no such step."))
    return step


@role_required(OPERATOR)
@require_GET
def directory_results(request: HttpRequest, run_id: uuid.UUID, step_key: str) -> HttpResponse:
    """The results fragment for ?q=; the ticked boxes sent along stay ticked, listed first."""
    step = _get_step(run_id, step_key)
    directory: dict[str, Any] = (step.plan or {}).get("directory") or {}
    picked = request.GET.getlist(f"step-{step_key}-picked")
    users, groups, left_out = search_directory(
        directory, request.GET.get("q", ""), limit=PICKER_RESULTS
    )
    picked_users = [u for u in directory.get("users", []) if f"{USER}:{u['id']}" in picked]
    picked_groups = [g for g in directory.get("groups", []) if f"{GROUP}:{g['id']}" in picked]
    context = {
        "prefix": f"step-{step_key}",
        "users": picked_users + [u for u in users if u not in picked_users],
        "groups": picked_groups + [g for g in groups if g not in picked_groups],
        "picked": picked,
        "left_out": left_out,
    }
    return render(request, "directory_picker.html#results", context)
