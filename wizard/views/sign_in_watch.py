"""The "Sign in as a test user now" pages: choose an assigned person, open their sign-in link,
and watch CloudTrail count down until their attempt shows up, then read how it went."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseStopPolling

from provisioning.aws.cloudtrail import TYPICAL_DELIVERY_MINUTES
from provisioning.models import SetupRun, SignInReading, SignInReadingStatus
from provisioning.services.sign_in_watch import (
    WATCH,
    WatchRefused,
    sign_in_watch_start,
    watch_people,
)
from provisioning.steps.sign_in_test import LINKS
from wizard.roles import OPERATOR, VIEWER, role_required
from wizard.views.runs import HtmxHttpRequest

TEMPLATE = "sign_in_watch.html"


def _get_run(run_id: uuid.UUID) -> SetupRun:
    run = SetupRun.objects.filter(pk=run_id).first()
    if run is None:
        raise Http404
    return run


def _get_watch(run: SetupRun, reading_id: uuid.UUID) -> SignInReading:
    """A watch of this run (any viewer of the run may follow it)."""
    reading = SignInReading.objects.filter(pk=reading_id).first()
    watch = (reading.facts or {}).get(WATCH) if reading is not None else None
    if reading is None or not watch or watch.get("run_id") != str(run.pk):
        raise Http404
    return reading


def _event_context(event: dict[str, Any] | None) -> dict[str, Any] | None:
    if not event:
        return None
    link = LINKS.get(event.get("link") or "")
    return {**event, "link_name": link.name if link else "", "fix": link.fix if link else ""}


def _watch_context(run: SetupRun, reading: SignInReading) -> dict[str, Any]:
    watch = (reading.facts or {})[WATCH]
    until = dt.datetime.fromisoformat(watch["until"])
    left = max(0, int((until - timezone.now()).total_seconds()))
    assume_role = _event_context(watch.get("assume_role"))
    federation = _event_context(watch.get("federation"))
    refusal = next((e for e in (assume_role, federation) if e and e.get("error_code")), None)
    if reading.status == SignInReadingStatus.FAILED:
        outcome = "failed"
    elif reading.status == SignInReadingStatus.PENDING:
        outcome = "watching"
    elif refusal is not None:
        outcome = "refused"
    elif federation is not None:
        outcome = "signed_in"
    else:
        outcome = "not_seen"
    return {
        "run": run,
        "reading": reading,
        "watch": watch,
        "outcome": outcome,
        "seconds_left": left,
        "time_left": f"{left // 60}:{left % 60:02d}",
        "assume_role": assume_role,
        "federation": federation,
        "refusal": refusal,
        "typical_minutes": TYPICAL_DELIVERY_MINUTES,
        "watch_minutes": int(settings.WIZARD_SIGN_IN_WATCH_S // 60),
        "poll_seconds": int(settings.WIZARD_SIGN_IN_WATCH_POLL_S),
    }


@role_required(OPERATOR)
@require_http_methods(["GET", "POST"])
def sign_in_watch_new(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    run = _get_run(run_id)
    people = watch_people(run)
    refused = False
    if request.method == "POST":
        try:
            reading = sign_in_watch_start(
                user=request.user, run_id=run.pk, login=request.POST.get("login", "")
            )
        except WatchRefused:
            refused = True
        else:
            return redirect(reverse("sign_in_watch", args=[run.pk, reading.pk]))
    context = {
        "run": run,
        "people": people,
        "refused": refused,
        "typical_minutes": TYPICAL_DELIVERY_MINUTES,
        "watch_minutes": int(settings.WIZARD_SIGN_IN_WATCH_S // 60),
    }
    return render(request, TEMPLATE, context, status=400 if refused else 200)


@role_required(VIEWER)
@require_GET
def sign_in_watch(
    request: HtmxHttpRequest, run_id: uuid.UUID, reading_id: uuid.UUID
) -> HttpResponse:
    run = _get_run(run_id)
    reading = _get_watch(run, reading_id)
    context = _watch_context(run, reading)
    if request.htmx:
        html = render_to_string(f"{TEMPLATE}#status", context, request=request)
        if reading.status != SignInReadingStatus.PENDING:
            return HttpResponseStopPolling(html)
        return HttpResponse(html)
    return render(request, TEMPLATE, context)
