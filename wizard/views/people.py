"""The People page: admins invite people with a role, change their role and deactivate them; an
invited person sets their password through a one-time link."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.tokens import default_token_generator
from django.contrib.auth.views import PasswordResetConfirmView
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.decorators import method_decorator
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from wizard.people_forms import InviteForm, RoleForm
from wizard.roles import ADMIN, ROLE_LABELS, role_of, role_required
from wizard.services import people as people_services


def _people_page(request: HttpRequest, invite_form: InviteForm, status: int = 200) -> HttpResponse:
    rows = []
    for person in get_user_model().objects.order_by("-is_active", "username"):
        role = role_of(person) if person.is_active else None
        rows.append(
            {
                "person": person,
                "role": role,
                "role_label": ROLE_LABELS[role] if role else "",
                "role_form": RoleForm(initial={"role": role}, prefix=f"person-{person.pk}"),
                "is_me": person.pk == request.user.pk,
            }
        )
    return render(request, "people.html", {"rows": rows, "invite_form": invite_form}, status=status)


@role_required(ADMIN)
@require_GET
def people(request: HttpRequest) -> HttpResponse:
    return _people_page(request, InviteForm())


def _set_password_url(request: HttpRequest, person: Any) -> str:
    """The invite link: Django's password-reset token, void once the password is set or after
    PASSWORD_RESET_TIMEOUT."""
    path = reverse(
        "set_password",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(person.pk)),
            "token": default_token_generator.make_token(person),
        },
    )
    return request.build_absolute_uri(path)


@role_required(ADMIN)
@never_cache
@require_POST
def person_invite(request: HttpRequest) -> HttpResponse:
    """Create the person and show their set-password link this once (it is not stored)."""
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            person = people_services.person_invite(
                actor=request.user,
                username=form.cleaned_data["username"],
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
            )
        except ValidationError as error:
            form.add_error("username", error)
        else:
            return render(
                request,
                "person_invited.html",
                {
                    "person": person,
                    "role_label": ROLE_LABELS[form.cleaned_data["role"]],
                    "set_password_url": _set_password_url(request, person),
                },
            )
    return _people_page(request, form, status=400)


@role_required(ADMIN)
@require_POST
def person_role(request: HttpRequest, person_id: int) -> HttpResponse:
    form = RoleForm(request.POST, prefix=f"person-{person_id}")
    if not form.is_valid():
        messages.error(request, _("Choose one of the roles."))
        return redirect("people")
    try:
        people_services.person_change_role(
            actor=request.user, person_id=person_id, role=form.cleaned_data["role"]
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, _("The role is saved."))
    return redirect("people")


@role_required(ADMIN)
@require_POST
def person_deactivate(request: HttpRequest, person_id: int) -> HttpResponse:
    try:
        people_services.person_deactivate(actor=request.user, person_id=person_id)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, _("Deactivated. They can no longer sign in."))
    return redirect("people")


@method_decorator(login_not_required, name="dispatch")
class SetPasswordView(PasswordResetConfirmView):
    """An invited person chooses their password; the link works once."""

    template_name = "registration/set_password.html"
    success_url = reverse_lazy("login")

    def form_valid(self, form: Any) -> HttpResponse:
        messages.success(self.request, _("Your password is set. Sign in with it."))
        return super().form_valid(form)
