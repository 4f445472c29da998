"""A form post larger than the wizard accepts gets the wizard's page with an explanation."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("language", ["en", "ja"])
def test_a_too_large_post_explains_itself_and_offers_the_way_back(
    admin_client: Client, settings, language: str
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
    form_url = "http://testserver" + reverse("run_new")
    admin_client.cookies["django_language"] = language

    response = admin_client.post(
        reverse("run_new"),
        {"instance_alias": "x" * (2 * 1024 * 1024)},
        HTTP_REFERER=form_url,
    )
    html = response.content.decode()

    assert response.status_code == 400
    expected = {"en": "larger than the wizard accepts in one form (1.0 MB)", "ja": "1.0 MB"}
    assert expected[language] in html
    assert f'href="{form_url}"' in html
    assert 'lang="' + language in html


def test_a_back_link_to_another_site_is_not_offered(admin_client: Client, settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024

    response = admin_client.post(
        reverse("run_new"), {"instance_alias": "x" * 4096}, HTTP_REFERER="https://evil.example/"
    )

    assert response.status_code == 400
    assert "evil.example" not in response.content.decode()
