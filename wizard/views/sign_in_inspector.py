"""The "Inspect a sign-in" page: paste or upload what the browser posted to AWS, see the
assertion's facts, every check AWS makes and the first broken link with its fix."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlencode

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from provisioning.models import SignInReading, SignInReadingStatus
from provisioning.services.sign_in_inspection import (
    sandbox_signin_urls,
    sign_in_inspect,
    sign_in_reading_request,
    sign_in_targets,
)
from provisioning.signin_checks.posted_sign_in import (
    PostedSignIn,
    UnreadableSignIn,
    read_posted_sign_in,
)
from wizard.inspection_forms import SignInInspectionForm
from wizard.middleware import wants_fragment
from wizard.roles import VIEWER, role_required
from wizard.views.runs import HtmxHttpRequest

TEMPLATE = "sign_in_inspector.html"
# Where the response was found in what the admin pasted (PostedSignIn.found_in).
FOUND_IN_LABELS = {
    "har": _("a HAR file: the POST to"),
    "form": _("the form body"),
    "base64": _("the base64 SAMLResponse"),
    "xml": _("the decoded XML"),
}


def _get_reading(request: HttpRequest, reading_id: str) -> SignInReading:
    """A reading, only for the admin who asked for it (it shows their pasted sign-in's role)."""
    reading = SignInReading.objects.filter(pk=reading_id, requested_by_id=request.user.pk).first()
    if reading is None:
        raise Http404
    return reading


def _posted_form_body(posted: PostedSignIn) -> str:
    """The response as a form body, for the page to hand back when it asks for the result: the
    server keeps nothing of it."""
    return urlencode(
        {"SAMLResponse": base64.b64encode(posted.xml).decode(), "RelayState": posted.relay_state}
    )


def _result_context(
    posted: PostedSignIn,
    *,
    reading: SignInReading | None,
    metadata: str,
    instance_id: str,
    region: str,
) -> dict[str, Any]:
    facts = reading.facts if reading is not None else None
    inspection = sign_in_inspect(
        posted=posted,
        aws_facts=facts,
        pasted_metadata=metadata,
        instance_id=instance_id,
        region=region,
    )
    return {
        "inspection": inspection,
        "facts": inspection.facts,
        "rows": inspection.rows(),
        "verdict": inspection.verdict(),
        "not_checked": sum(1 for row in inspection.rows() if row["outcome"] == "not_checked"),
        "now": timezone.now(),
        "reading": reading,
        "posted_body": _posted_form_body(posted),
        "found_in": FOUND_IN_LABELS[posted.found_in],
        "metadata": metadata,
        "instance_id": instance_id,
        "region": region,
    }


@role_required(VIEWER)
@require_http_methods(["GET", "POST"])
def inspect_sign_in(request: HttpRequest) -> HttpResponse:
    # A link from a run fills in its instance, region and AWS connection; the form checks them
    # again when it is posted.
    initial = {key: request.GET.get(key, "") for key in ("instance_id", "region", "connection")}
    form = SignInInspectionForm(
        request.POST or None,
        request.FILES or None,
        initial=initial,
        sandbox_signin_urls=sandbox_signin_urls(),
    )
    context: dict[str, Any] = {"form": form}
    if request.method == "POST" and form.is_valid():
        posted: PostedSignIn = form.cleaned_data["posted"]
        targets = sign_in_targets(
            posted,
            instance_id=form.cleaned_data["instance_id"],
            region=form.cleaned_data["region"],
        )
        reading = None
        if form.cleaned_data["connection"] is not None:
            reading = sign_in_reading_request(
                user=request.user,
                connection_id=form.cleaned_data["connection"].pk,
                targets=targets,
            )
        context.update(
            _result_context(
                posted,
                reading=reading,
                metadata=form.cleaned_data["metadata"],
                instance_id=targets.instance_id,
                region=targets.region,
            )
        )
    return render(request, TEMPLATE, context)


@role_required(VIEWER)
@require_POST
def inspect_sign_in_result(request: HtmxHttpRequest, reading_id: str) -> HttpResponse:
    """The checks again once the worker has read AWS; the page posts the response back."""
    reading = _get_reading(request, reading_id)
    try:
        posted = read_posted_sign_in(request.POST.get("posted", "").encode())
    except UnreadableSignIn as error:
        raise Http404 from error
    context = _result_context(
        posted,
        reading=reading,
        metadata="",
        instance_id=reading.instance_id,
        region=reading.region,
    )
    if wants_fragment(request):
        html = render_to_string(f"{TEMPLATE}#result", context, request=request)
        if reading.status != SignInReadingStatus.PENDING:
            return HttpResponseStopPolling(html)
        return HttpResponse(html)
    return render(request, TEMPLATE, {"form": SignInInspectionForm(), **context})
