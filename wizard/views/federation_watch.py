"""The watch's pages: a watched federation (its state, its checks, its interval, which an admin
changes) and the Notifications page (admins: where changes of state are sent)."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from provisioning.federation_watch import notification_settings
from provisioning.models import (
    FederationCheckRecord,
    NotificationTest,
    SetupRun,
    WatchedFederation,
)
from provisioning.notifications import masked_webhook_url
from provisioning.runs.admin_moves import RunError
from provisioning.services.federation_repairs import repairable, watched_repair_run_create
from provisioning.services.federation_watch import (
    notifications_save,
    notifications_test_request,
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
    """Asks the worker to send a test notification; the page shows its result when it is in."""
    configured = notification_settings()
    if not configured.email_recipients and not configured.webhook_ciphertext:
        messages.error(request, _("Nothing to send to: add e-mail recipients or a webhook first."))
        return redirect("notifications")
    notifications_test_request(user=request.user, language=translation.get_language() or "en")
    messages.success(request, _("The test notification is on its way: its result appears below."))
    return redirect("notifications")


@role_required(ADMIN)
@require_GET
def notifications_test_status(request: HttpRequest, test_id: int) -> HttpResponse:
    """The test's result (the page polls it until the worker has sent it)."""
    test = NotificationTest.objects.filter(pk=test_id).first()
    if test is None:
        raise Http404
    return render(request, "notifications_test_result.html", {"test": test})


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
            "test": NotificationTest.objects.filter(requested_by_id=request.user.pk)
            .order_by("-requested_at")
            .first(),
        },
    )
