"""The pages shown instead of a bare "Bad Request (400)": what went wrong with what was sent, and
that nothing saved before was lost."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's handler400: a form post over DATA_UPLOAD_MAX_MEMORY_SIZE, or a request it can't
    read. The browser still holds what was typed; Back returns to it."""
    back = request.META.get("HTTP_REFERER", "")
    if not url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        back = ""
    return render(
        request,
        "bad_request.html",
        {
            "too_big": isinstance(exception, RequestDataTooBig),
            "limit_mb": settings.DATA_UPLOAD_MAX_MEMORY_SIZE / 1024 / 1024,
            "back": back,
        },
        status=400,
    )
