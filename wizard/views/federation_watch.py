"""The watch's pages: a watched federation (its state, its checks, its interval, which an admin
changes) and the Notifications page (admins: where changes of state are sent)."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from provisioning.federation_watch import notification_settings
from provisioning.models import FederationCheckRecord, SetupRun, WatchedFederation
from provisioning.notifications import masked_webhook_url
from provisioning.runs.admin_moves import RunError
from provisioning.services.federation_repairs import repairable, watched_repair_run_create
from provisioning.services.federation_watch import (
    notifications_save,
    notifications_send_test,
    watch_set_interval,
    watch_set_watching,
)
from provisioning.services.signing_rotations import rotation_run_create
from wizard.notification_forms import NotificationsForm, WatchIntervalForm
from wizard.roles import ADMIN, OPERATOR, VIEWER, role_required

# The watched federation's page lists its latest checks.
CHECKS_SHOWN = 20


def _get_watched(watched_id: int) -> WatchedFederation:
    watched = (
        WatchedFederation.objects.select_related("aws_connection", "idp_connection", "latest_check")
        .filter(pk=watched_id)
        .first()
    )
    if watched is None:
        raise Http404
    return watched


def _watched_page(
    request: HttpRequest, watched: WatchedFederation, form: WatchIntervalForm, status: int = 200
) -> HttpResponse:
    checks = FederationCheckRecord.objects.filter(watched=watched).order_by("-created_at")
    return render(
        request,
        "watched_federation.html",
        {
            "watched": watched,
            "form": form,
            "checks": checks[:CHECKS_SHOWN],
            "repairable": repairable(watched.latest_check) is not None,
        },
        status=status,
    )


def _start_run(
    request: HttpRequest, watched: WatchedFederation, start: Callable[..., SetupRun]
) -> HttpResponse:
    """A run started for this federation opens its run page; a refused one is said here."""
    try:
        run = start(user=request.user, watched_id=watched.pk)
    except RunError as error:
        messages.error(request, str(error))
        return redirect("watched_federation", watched_id=watched.pk)
    return redirect("run_detail", run_id=run.pk)


@role_required(VIEWER)
@require_GET
def watched_federation(request: HttpRequest, watched_id: int) -> HttpResponse:
    watched = _get_watched(watched_id)
    form = WatchIntervalForm(initial={"every_hours": watched.every_hours})
    return _watched_page(request, watched, form)


@role_required(ADMIN)
@require_POST
def watched_federation_interval(request: HttpRequest, watched_id: int) -> HttpResponse:
    watched = _get_watched(watched_id)
    form = WatchIntervalForm(request.POST)
    if not form.is_valid():
        return _watched_page(request, watched, form, status=400)
    watch_set_interval(
        user=request.user, watched_id=watched.pk, every_hours=form.cleaned_data["every_hours"]
    )
    messages.success(request, _("The interval is saved."))
    return redirect("watched_federation", watched_id=watched.pk)


@role_required(OPERATOR)
@require_POST
def watched_federation_rotate(request: HttpRequest, watched_id: int) -> HttpResponse:
    """Start "Rotate the signing certificate" for this federation; its run page takes over."""
    return _start_run(request, _get_watched(watched_id), rotation_run_create)


@role_required(OPERATOR)
@require_POST
def watched_federation_repair(request: HttpRequest, watched_id: int) -> HttpResponse:
    """Start the repair of this federation from its latest check; its run page takes over."""
    return _start_run(request, _get_watched(watched_id), watched_repair_run_create)


@role_required(ADMIN)
@require_POST
def watched_federation_watching(
    request: HttpRequest, watched_id: int, *, watching: bool
) -> HttpResponse:
    """Stop watching a federation, or watch it again (the URL says which)."""
    watched = _get_watched(watched_id)
    watch_set_watching(user=request.user, watched_id=watched.pk, watching=watching)
    said = (
        _("%(federation)s is watched again: a check starts now.")
        if watching
        else _("%(federation)s is no longer watched: no more checks nor notifications.")
    )
    messages.success(request, said % {"federation": str(watched)})
    return redirect("watched_federation", watched_id=watched.pk)


@role_required(ADMIN)
@require_POST
def notifications_test(request: HttpRequest) -> HttpResponse:
    sent = notifications_send_test(user=request.user)
    if sent.email is None and sent.webhook is None:
        messages.error(request, _("Nothing to send to: add e-mail recipients or a webhook first."))
    if sent.email:
        messages.success(
            request,
            ngettext(
                "The test e-mail was sent to %(count)s recipient.",
                "The test e-mail was sent to %(count)s recipients.",
                sent.email_recipients,
            )
            % {"count": sent.email_recipients},
        )
    elif sent.email is False:
        messages.error(
            request,
            _(
                "The test e-mail could not be sent. Check the wizard's mail settings "
                "(EMAIL_HOST, EMAIL_PORT, DEFAULT_FROM_EMAIL) and the server log."
            ),
        )
    if sent.webhook:
        messages.success(request, _("The webhook accepted the test notification."))
    elif sent.webhook is False:
        messages.error(
            request,
            _(
                "The webhook did not accept the test notification (refused URL, no answer or an "
                "HTTP error; the server log says which). Check the URL and save it again."
            ),
        )
    return redirect("notifications")


@role_required(ADMIN)
@require_http_methods(["GET", "POST"])
def notifications(request: HttpRequest) -> HttpResponse:
    configured = notification_settings()
    form = NotificationsForm(
        request.POST if request.method == "POST" else None,
        initial={"email_recipients": "\n".join(configured.email_recipients)},
    )
    if request.method == "POST" and form.is_valid():
        notifications_save(
            user=request.user,
            email_recipients=form.cleaned_data["email_recipients"],
            webhook_url=form.webhook_change(),
            language=translation.get_language() or "en",
        )
        messages.success(request, _("Notifications are saved."))
        return redirect("notifications")
    return render(
        request,
        "notifications.html",
        {
            "form": form,
            "webhook_masked": masked_webhook_url(configured.webhook_url),
            "configured": configured,
        },
    )
