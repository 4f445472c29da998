"""Pages for Connect users from groups: start a users run for a setup, keep its users in sync on a
schedule, and the syncs page (edit, pause, run now, delete)."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from provisioning.models import SetupRun, UserSync
from provisioning.runs.admin_moves import RunError
from provisioning.services import user_syncs as sync_services
from wizard.forms import UserSyncForm
from wizard.roles import OPERATOR, VIEWER, role_required
from wizard.selectors.user_syncs import sync_rows


def _get_sync(sync_id: uuid.UUID) -> UserSync:
    sync = UserSync.objects.select_related("setup").filter(pk=sync_id).first()
    if sync is None:
        raise Http404(_("No sync has this ID."))
    return sync


def _get_run(run_id: uuid.UUID) -> SetupRun:
    run = SetupRun.objects.filter(pk=run_id).first()
    if run is None:
        raise Http404(_("No setup run has this ID."))
    return run


def _run_url(run_id: Any) -> str:
    return reverse("run_detail", kwargs={"run_id": run_id})


@role_required(OPERATOR)
@require_POST
def users_from_groups(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    """Start "Connect users from groups" for the instance of this SSO setup."""
    _get_run(run_id)
    try:
        run = sync_services.users_run_create(user=request.user, setup_id=run_id)
    except RunError as error:
        messages.error(request, str(error))
        return redirect(_run_url(run_id))
    return redirect(_run_url(run.pk))


@role_required(OPERATOR)
@require_http_methods(["GET", "POST"])
def sync_new(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    """Keep the users of this (succeeded) users run in step with its groups from now on."""
    run = _get_run(run_id)
    form = UserSyncForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            sync = sync_services.sync_create(
                user=request.user,
                run_id=run.pk,
                every_hours=form.cleaned_data["every_hours"],
                departures=form.cleaned_data["departures"],
            )
        except RunError as error:
            form.add_error(None, str(error))
        else:
            messages.success(
                request,
                ngettext(
                    "The sync is on. Its first run starts in %(hours)d hour; “Run now” starts "
                    "one at once.",
                    "The sync is on. Its first run starts in %(hours)d hours; “Run now” starts "
                    "one at once.",
                    sync.every_hours,
                )
                % {"hours": sync.every_hours},
            )
            return redirect("syncs")
    groups = run.steps.filter(key=sync_services.USERS_STEP).values_list("inputs", flat=True).first()
    return render(
        request,
        "sync_form.html",
        {"form": form, "run": run, "sync": None, "groups": (groups or {}).get("groups", [])},
    )


@role_required(VIEWER)
@require_GET
def syncs(request: HttpRequest) -> HttpResponse:
    return render(request, "syncs.html", {"rows": sync_rows()})


@role_required(OPERATOR)
@require_http_methods(["GET", "POST"])
def sync_edit(request: HttpRequest, sync_id: uuid.UUID) -> HttpResponse:
    sync = _get_sync(sync_id)
    initial = {
        "every_hours": sync.every_hours,
        "departures": sync.departures,
        "enabled": sync.enabled,
    }
    form = UserSyncForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            sync_services.sync_update(
                user=request.user,
                sync_id=sync.pk,
                every_hours=form.cleaned_data["every_hours"],
                departures=form.cleaned_data["departures"],
                enabled=form.cleaned_data["enabled"],
            )
        except RunError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, _("The sync is saved."))
            return redirect("syncs")
    return render(
        request,
        "sync_form.html",
        {"form": form, "run": None, "sync": sync, "groups": sync.inputs.get("groups", [])},
    )


@role_required(OPERATOR)
@require_POST
def sync_run_now(request: HttpRequest, sync_id: uuid.UUID) -> HttpResponse:
    _get_sync(sync_id)
    try:
        run = sync_services.sync_start(user=request.user, sync_id=sync_id)
    except RunError as error:
        messages.error(request, str(error))
        return redirect("syncs")
    return redirect(_run_url(run.pk))


@role_required(OPERATOR, recent_password=True)
@require_http_methods(["GET", "POST"])
def sync_delete(request: HttpRequest, sync_id: uuid.UUID) -> HttpResponse:
    """GET asks for confirmation; POST deletes the sync (its runs and users stay)."""
    sync = _get_sync(sync_id)
    if request.method == "POST":
        try:
            sync_services.sync_delete(user=request.user, sync_id=sync.pk)
        except RunError as error:
            messages.error(request, str(error))
        else:
            messages.success(request, _("The sync is deleted. The users it made stay."))
        return redirect("syncs")
    return render(request, "sync_delete.html", {"sync": sync})
