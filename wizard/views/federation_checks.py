"""The "Check a federation" page: the form, and a check's result (the chain with each link's
state, and the findings), polled with htmx while a worker reads the clouds. It reads only."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from provisioning.models import FederationCheckRecord, FederationCheckStatus, SetupRun
from provisioning.runs.admin_moves import RunError
from provisioning.services.federation_checks import federation_check_request
from provisioning.services.federation_repairs import repair_run_create
from provisioning.services.signing_rotations import check_rotation_run_create
from wizard.federation_check_forms import FederationCheckForm
from wizard.middleware import wants_fragment
from wizard.roles import OPERATOR, VIEWER, role_required
from wizard.selectors.federation_checks import check_page

TEMPLATE = "federation_check.html"


def _get_check(check_id: uuid.UUID) -> FederationCheckRecord:
    record = (
        FederationCheckRecord.objects.select_related("aws_connection", "idp_connection")
        .filter(pk=check_id)
        .first()
    )
    if record is None:
        raise Http404
    return record


# Any signed-in role may check: it only reads, through connections the admins set up.
@role_required(VIEWER)
@require_http_methods(["GET", "POST"])
def federation_check_new(request: HttpRequest) -> HttpResponse:
    form = FederationCheckForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        record = federation_check_request(
            user=request.user,
            aws_connection=form.cleaned_data["aws_connection"],
            idp_connection=form.cleaned_data["idp_connection"],
            region=form.cleaned_data["region"],
            instance=form.cleaned_data["instance"],
            app_id=form.cleaned_data["app_id"],
        )
        return redirect("federation_check", check_id=record.pk)
    return render(request, TEMPLATE, {"form": form})


@role_required(VIEWER)
@require_GET
def federation_check(request: HttpRequest, check_id: uuid.UUID) -> HttpResponse:
    context = check_page(_get_check(check_id))
    if wants_fragment(request):
        html = render_to_string(f"{TEMPLATE}#result", context, request=request)
        if context["record"].status != FederationCheckStatus.PENDING:
            return HttpResponseStopPolling(html)
        return HttpResponse(html)
    return render(request, TEMPLATE, context)


@role_required(VIEWER)
@require_POST
def federation_check_again(request: HttpRequest, check_id: uuid.UUID) -> HttpResponse:
    """The same check once more (after a repair, or a fix made by hand): a new check of the same
    federation through the same connections; its page takes over."""
    record = _get_check(check_id)
    again = federation_check_request(
        user=request.user,
        aws_connection=record.aws_connection,
        idp_connection=record.idp_connection,
        region=record.region,
        instance=record.instance,
        app_id=record.app_id,
    )
    return redirect("federation_check", check_id=again.pk)


def _start_run(
    request: HttpRequest, check_id: uuid.UUID, start: Callable[..., SetupRun]
) -> HttpResponse:
    """A run started from this check opens its run page, where each plan waits for the admin's
    confirmation; a refused one is said here."""
    record = _get_check(check_id)
    try:
        run = start(user=request.user, check_id=record.pk)
    except RunError as error:
        messages.error(request, str(error))
        return redirect("federation_check", check_id=record.pk)
    return redirect("run_detail", run_id=run.pk)


# Repair and rotation start runs that change clouds: an operator's move, as starting a setup is.
@role_required(OPERATOR)
@require_POST
def federation_check_repair(request: HttpRequest, check_id: uuid.UUID) -> HttpResponse:
    """Start the repair of the federation this check read."""
    return _start_run(request, check_id, repair_run_create)


@role_required(OPERATOR)
@require_POST
def federation_check_rotate(request: HttpRequest, check_id: uuid.UUID) -> HttpResponse:
    """Start "Rotate the signing certificate" for the federation this check read (its findings
    say the certificate expired or expires soon)."""
    return _start_run(request, check_id, check_rotation_run_create)
