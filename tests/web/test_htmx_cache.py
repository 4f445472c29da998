"""A page and its htmx fragment share a URL but never a cache entry: the Back button shows pages."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from wizard.models import AuditExport

pytestmark = pytest.mark.django_db


@pytest.fixture
def export(admin_user: User) -> AuditExport:
    return AuditExport.objects.create(requested_by=admin_user, file_format="csv", query={})


def test_the_page_varies_on_hx_request_and_the_fragment_is_never_cached(
    admin_client: Client, export: AuditExport
) -> None:
    url = reverse("audit_export", args=[export.pk])

    page = admin_client.get(url)
    fragment = admin_client.get(url, headers={"HX-Request": "true"})

    assert "HX-Request" in page["Vary"]
    assert "<html" in page.content.decode()
    assert "HX-Request" in fragment["Vary"]
    assert "no-store" in fragment["Cache-Control"]
    assert "<html" not in fragment.content.decode()


def test_htmx_restoring_history_gets_the_whole_page(
    admin_client: Client, export: AuditExport
) -> None:
    url = reverse("audit_export", args=[export.pk])

    restored = admin_client.get(
        url, headers={"HX-Request": "true", "HX-History-Restore-Request": "true"}
    )

    assert "<html" in restored.content.decode()


def test_every_page_says_it_varies_on_hx_request(admin_client: Client) -> None:
    for name in ("dashboard", "audit_log", "connections"):
        assert "HX-Request" in admin_client.get(reverse(name))["Vary"], name
