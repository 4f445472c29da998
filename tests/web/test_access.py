"""Who may see what: login everywhere, CSRF on every action, POST-only actions, login lockout."""

from __future__ import annotations

import re
import uuid

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from tests.web.conftest import PASSWORD
from tests.web.factories import make_connection, make_run

pytestmark = pytest.mark.django_db

RUN_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")

PAGES = [
    reverse("dashboard"),
    reverse("run_new"),
    reverse("run_detail", args=[RUN_ID]),
    reverse("run_rollback", args=[RUN_ID]),
    reverse("audit_log"),
    reverse("audit_export", args=[RUN_ID]),
    reverse("audit_export_download", args=[RUN_ID]),
    reverse("connections"),
    reverse("connection_new", args=["aws", "access_key"]),
    reverse("connection_edit", args=[1]),
    reverse("connection_test_status", args=[1]),
    reverse("connection_delete", args=[1]),
    reverse("step_changes_csv", args=[RUN_ID, "connect_users"]),
    reverse("sync_new", args=[RUN_ID]),
    reverse("syncs"),
    reverse("sync_edit", args=[RUN_ID]),
    reverse("sync_delete", args=[RUN_ID]),
]

POST_ONLY = [
    reverse("run_resume", args=[RUN_ID]),
    reverse("run_cancel", args=[RUN_ID]),
    reverse("step_retry", args=[RUN_ID, "web_create"]),
    reverse("step_rerun", args=[RUN_ID, "web_create"]),
    reverse("step_apply", args=[RUN_ID, "web_create"]),
    reverse("step_inputs", args=[RUN_ID, "web_ask"]),
    reverse("connection_test", args=[1]),
    reverse("users_from_groups", args=[RUN_ID]),
    reverse("sync_run_now", args=[RUN_ID]),
    reverse("logout"),
    reverse("audit_export_new"),
    reverse("watched_federation_stop", args=[1]),
    reverse("watched_federation_resume", args=[1]),
    reverse("notifications_test"),
]


@pytest.mark.parametrize("url", PAGES + POST_ONLY)
def test_it_sends_anonymous_visitors_to_the_login_page(client: Client, url: str) -> None:
    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


def test_it_answers_healthz_without_login(client: Client) -> None:
    response = client.get(reverse("healthz"))

    assert response.status_code in {200, 503}
    assert response["Content-Type"] == "application/json"


def test_it_serves_the_login_page_and_language_switch_without_login(client: Client) -> None:
    page = client.get(reverse("login"))
    switched = client.post(reverse("set_language"), {"language": "ja", "next": reverse("login")})

    assert page.status_code == 200
    assert b'name="password"' in page.content
    assert switched["Location"] == reverse("login")
    assert "サインイン" in client.get(reverse("login")).content.decode()


@pytest.mark.parametrize("url", POST_ONLY)
def test_it_refuses_get_on_actions_that_change_something(admin_client: Client, url: str) -> None:
    make_run(pk=RUN_ID, steps=[{"key": "web_create", "status": "failed"}])
    make_connection(pk=1)

    assert admin_client.get(url).status_code == 405


def test_it_refuses_actions_without_the_csrf_token(admin_user: User) -> None:
    make_run(pk=RUN_ID, status="running")
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)

    response = client.post(reverse("run_cancel", args=[RUN_ID]))

    assert response.status_code == 403


def test_it_accepts_actions_with_the_csrf_token(admin_user: User) -> None:
    connection = make_connection()
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    page = client.get(reverse("connection_delete", args=[connection.pk]))

    response = client.post(
        reverse("connection_delete", args=[connection.pk]),
        {"csrfmiddlewaretoken": page.context["csrf_token"]},
    )

    assert response.status_code == 302


def test_it_shows_mode_user_logout_and_language_switch_on_every_page(admin_client: Client) -> None:
    response = admin_client.get(reverse("connections"))
    html = response.content.decode()

    assert "Sandbox mode" in html
    assert "nothing leaves this machine" in html
    assert re.search(r'class="account__user".*?Signed in as</span>admin', html, re.S)
    assert f'action="{reverse("logout")}" method="post"' in html
    assert f'action="{reverse("set_language")}" method="post"' in html
    assert f'name="next" value="{reverse("connections")}"' in html
    assert 'hx-headers=\'{"X-CSRFToken": "' in html
    assert '<meta name="htmx-config" content=\'{"includeIndicatorStyles": false}\'>' in html


def test_it_renders_no_inline_script_style_or_handler(admin_client: Client) -> None:
    run = make_run(status="failed", steps=[{"key": "web_create", "status": "failed"}])
    connection = make_connection()
    pages = [
        reverse("dashboard"),
        reverse("run_new"),
        reverse("run_detail", args=[run.pk]),
        reverse("audit_log"),
        reverse("connections"),
        reverse("connection_edit", args=[connection.pk]),
    ]

    for url in pages:
        response = admin_client.get(url)
        html = response.content.decode()
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "style-src 'self'" in policy, url
        assert "unsafe-inline" not in policy, url
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), url
        assert not re.search(r"<style\b|\sstyle=|\son[a-z]+=", html), url


def test_it_signs_in_and_out(client: Client, admin_user: User) -> None:
    signed_in = client.post(reverse("login"), {"username": "admin", "password": PASSWORD})
    signed_out = client.post(reverse("logout"))

    assert signed_in.status_code == 302
    assert signed_in["Location"] == reverse("dashboard")
    assert signed_out["Location"] == reverse("login")
    assert client.get(reverse("dashboard")).status_code == 302


def test_it_locks_a_user_name_out_after_too_many_failed_logins(
    client: Client, admin_user: User
) -> None:
    for _attempt in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("login"), {"username": "admin", "password": "wrong"})

    locked = client.post(reverse("login"), {"username": "admin", "password": PASSWORD})

    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.content.decode()
    assert "Try again after" in locked.content.decode()
    assert "15 min" in locked.content.decode()
    assert client.get(reverse("dashboard")).status_code == 302


def test_it_keeps_the_lockout_to_one_user_name(client: Client, admin_user: User) -> None:
    User.objects.create_user("other", password=PASSWORD)
    for _attempt in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("login"), {"username": "admin", "password": "wrong"})

    other = client.post(reverse("login"), {"username": "other", "password": PASSWORD})

    assert other.status_code == 302
