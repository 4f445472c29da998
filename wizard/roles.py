"""Who may do what: the three roles (Django groups), the check every view makes, and the recent
password a risky action asks for."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, Group
from django.contrib.auth.views import redirect_to_login
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext_lazy as _

VIEWER = "viewer"
OPERATOR = "operator"
ADMIN = "admin"
# Each role may do everything the roles before it may: a viewer reads runs, plans, the audit log
# and syncs; an operator also starts and acts on runs with existing connections and manages
# syncs; an admin also manages connections, reveals one-time secrets and manages people.
ROLES = (VIEWER, OPERATOR, ADMIN)
ROLE_LABELS = {VIEWER: _("Viewer"), OPERATOR: _("Operator"), ADMIN: _("Admin")}
# Where the session keeps when its user last typed their password (at sign-in and re-entry).
SESSION_PASSWORD_AT = "wizard_password_entered_at"  # noqa: S105 - a session key name
# The page that asks for the password again, and where it sends the admin afterwards.
REAUTH_URL_NAME = "reauth"
REDIRECT_FIELD = "next"
# A user's role, kept on the user object for the rest of the request (the menu asks it too).
ROLE_CACHE = "_wizard_role"

View = TypeVar("View", bound=Callable[..., HttpResponseBase])


def role_of(user: Any) -> str | None:
    """The user's role: a superuser is an admin; in several groups, the highest one counts."""
    if not user.is_authenticated or not user.is_active:
        return None
    if ROLE_CACHE in user.__dict__:
        return cast(str | None, user.__dict__[ROLE_CACHE])
    if user.is_superuser:
        role: str | None = ADMIN
    else:
        held = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        role = next((name for name in reversed(ROLES) if name in held), None)
    user.__dict__[ROLE_CACHE] = role
    return role


def role_allows(held: str | None, required: str) -> bool:
    """Whether a user holding `held` may do what `required` is needed for."""
    return held is not None and ROLES.index(held) >= ROLES.index(required)


def role_group(role: str) -> Group:
    """The Django group of a role (migration 0006 creates them; a flushed test database not)."""
    return Group.objects.get_or_create(name=role)[0]


def admins() -> list[Any]:
    """The active admins, to name whom to ask for a role."""
    users = get_user_model()
    return list(
        users.objects.filter(is_active=True)
        .filter(Q(is_superuser=True) | Q(groups__name=ADMIN))
        .distinct()
        .order_by("username")
    )


def note_password_entered(request: HttpRequest | None, **_kwargs: Any) -> None:
    """Remember that the user just typed their password (receiver of `user_logged_in`)."""
    if request is not None and hasattr(request, "session"):
        request.session[SESSION_PASSWORD_AT] = time.time()


def password_is_recent(request: HttpRequest) -> bool:
    entered = request.session.get(SESSION_PASSWORD_AT)
    return isinstance(entered, int | float) and (
        time.time() - entered <= settings.WIZARD_REAUTH_MAX_AGE_S
    )


def safe_next_url(request: HttpRequest, candidate: str | None, fallback: str) -> str:
    """`candidate` if it is a path on this site, else `fallback` (never an outside address)."""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return fallback


def _refused(request: HttpRequest, held: str | None, required: str) -> HttpResponse:
    """The page a user sees for what their role doesn't allow (or when they have no role)."""
    return render(
        request,
        "role_refused.html",
        {
            "held_role": ROLE_LABELS[held] if held else None,
            "required_role": ROLE_LABELS[required],
            "admins": admins(),
        },
        status=403,
    )


def _ask_password(request: HttpRequest) -> HttpResponse:
    """Send the user to type their password again, then back to where the action was asked:
    the page itself for a GET, the page the form names (else the form's own address) for a
    POST, whose intent is kept by showing its confirmation again."""
    if request.method == "GET":
        back = request.get_full_path()
    else:
        back = safe_next_url(request, request.POST.get(REDIRECT_FIELD), request.path)
    response = HttpResponse(status=302)
    response["Location"] = f"{reverse(REAUTH_URL_NAME)}?{urlencode({REDIRECT_FIELD: back})}"
    return response


def role_required(role: str, *, recent_password: bool = False) -> Callable[[View], View]:
    """The check at the top of every view: signed in, holding `role` (or a higher one), and, for
    a risky action, having typed the password within WIZARD_REAUTH_MAX_AGE_S."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            held = role_of(request.user)
            if not role_allows(held, role):
                return _refused(request, held, role)
            if recent_password and not password_is_recent(request):
                return _ask_password(request)
            return view(request, *args, **kwargs)

        checked.required_role = role  # type: ignore[attr-defined]
        checked.asks_recent_password = recent_password  # type: ignore[attr-defined]
        return checked  # type: ignore[return-value]

    return decorate


def role_context(request: HttpRequest) -> dict[str, Any]:
    """What the menu and the buttons ask: which role the user holds and what it allows."""
    held = role_of(getattr(request, "user", AnonymousUser()))
    return {
        "user_role": held,
        "user_role_label": ROLE_LABELS[held] if held else "",
        "may_read": role_allows(held, VIEWER),
        "may_operate": role_allows(held, OPERATOR),
        "may_administer": role_allows(held, ADMIN),
    }
