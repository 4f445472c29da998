"""The page that asks a signed-in user for their password again before a risky action, throttled
like the sign-in page."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import authenticate, login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from wizard.people_forms import PasswordAgainForm
from wizard.roles import REDIRECT_FIELD, VIEWER, role_required, safe_next_url


@role_required(VIEWER)
@never_cache
@require_http_methods(["GET", "POST"])
def reauth(request: HttpRequest) -> HttpResponse:
    """Check the password through `authenticate`, so django-axes counts each wrong one against
    the same user name and address as the sign-in page, and locks both out together."""
    back = safe_next_url(
        request,
        request.POST.get(REDIRECT_FIELD) or request.GET.get(REDIRECT_FIELD),
        reverse("dashboard"),
    )
    form = PasswordAgainForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = authenticate(
            request,
            username=request.user.get_username(),
            password=form.cleaned_data["password"],
        )
        if user is not None and user.pk == request.user.pk:
            # Signing in again renews the session key and notes when the password was typed.
            login(request, user)
            return redirect(back)
        form.add_error("password", _("That password is not right. Type the one you sign in with."))
    return render(
        request,
        "reauth.html",
        {
            "form": form,
            "next": back,
            "reauth_minutes": max(1, settings.WIZARD_REAUTH_MAX_AGE_S // 60),
        },
    )
