"""Risky actions ask for the password again once it was typed too long ago: stale is asked, fresh
is not, a wrong password is refused and throttled like sign-in."""

from __future__ import annotations

import time
import uuid
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from provisioning.models import Connection
from tests.web.factories import make_connection
from wizard.roles import SESSION_PASSWORD_AT

pytestmark = pytest.mark.django_db

RUN_ID = uuid.UUID("00000000-0000-4000-8000-0000000000c3")


def _age_password(client: Client, seconds: float) -> None:
    session = client.session
    session[SESSION_PASSWORD_AT] = time.time() - seconds
    session.save()


def _reauth_url(back: str) -> str:
    return f"{reverse('reauth')}?{urlencode({'next': back})}"


def test_a_fresh_password_is_not_asked_again(admin_client: Client) -> None:
    connection = make_connection()
    _age_password(admin_client, settings.WIZARD_REAUTH_MAX_AGE_S - 30)

    response = admin_client.post(reverse("connection_delete", args=[connection.pk]))

    assert response["Location"] == reverse("connections")
    assert not Connection.objects.exists()


def test_a_stale_password_is_asked_again_and_the_action_waits(admin_client: Client) -> None:
    connection = make_connection()
    confirm = reverse("connection_delete", args=[connection.pk])
    _age_password(admin_client, settings.WIZARD_REAUTH_MAX_AGE_S + 1)

    response = admin_client.post(confirm)

    assert response.status_code == 302
    assert response["Location"] == _reauth_url(confirm)
    assert Connection.objects.filter(pk=connection.pk).exists()


def test_after_the_password_the_admin_is_back_on_the_confirmation_and_can_act(
    admin_client: Client,
) -> None:
    connection = make_connection()
    confirm = reverse("connection_delete", args=[connection.pk])
    _age_password(admin_client, settings.WIZARD_REAUTH_MAX_AGE_S + 1)

    asked = admin_client.get(_reauth_url(confirm))
    typed = admin_client.post(
        reverse("reauth"), {"password": "correct horse battery staple", "next": confirm}
    )
    deleted = admin_client.post(confirm)

    assert asked.status_code == 200
    assert "Enter your password again" in asked.content.decode()
    assert typed["Location"] == confirm
    assert deleted["Location"] == reverse("connections")
    assert not Connection.objects.exists()


def test_revealing_a_secret_comes_back_to_its_step_after_the_password(
    admin_client: Client,
) -> None:
    back = reverse("run_detail", args=[RUN_ID]) + "#step-okta_role_listing_user"
    _age_password(admin_client, settings.WIZARD_REAUTH_MAX_AGE_S + 1)

    response = admin_client.post(
        reverse("step_secret", args=[RUN_ID, "okta_role_listing_user"]), {"next": back}
    )

    assert response["Location"] == _reauth_url(back)


def test_the_password_page_never_sends_anyone_off_the_site(admin_client: Client) -> None:
    typed = admin_client.post(
        reverse("reauth"),
        {"password": "correct horse battery staple", "next": "https://evil.example/x"},
    )

    assert typed["Location"] == reverse("dashboard")


def test_a_wrong_password_is_refused_and_throttled_like_sign_in(
    admin_client: Client, admin_user: User
) -> None:
    connection = make_connection()
    confirm = reverse("connection_delete", args=[connection.pk])
    _age_password(admin_client, settings.WIZARD_REAUTH_MAX_AGE_S + 1)

    wrong = admin_client.post(reverse("reauth"), {"password": "wrong", "next": confirm})
    for _attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        admin_client.post(reverse("reauth"), {"password": "wrong", "next": confirm})
    locked = admin_client.post(
        reverse("reauth"), {"password": "correct horse battery staple", "next": confirm}
    )
    still_asked = admin_client.post(confirm)

    assert wrong.status_code == 200
    assert "That password is not right" in wrong.content.decode()
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.content.decode()
    assert still_asked["Location"] == _reauth_url(confirm)
    assert Connection.objects.filter(pk=connection.pk).exists()
    assert (
        Client()
        .post(reverse("login"), {"username": "admin", "password": "correct horse battery staple"})
        .status_code
        == 429
    )
