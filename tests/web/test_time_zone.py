"""Times in one format, in the viewer's time zone (issue 13): the `tz` cookie, the `when`
filter, and a page read from Tokyo against the same page read in UTC."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest
from django.conf import settings
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone

from tests.web.factories import make_event
from wizard.middleware import TimeZoneMiddleware
from wizard.templatetags.wizard_tags import when, when_title

MOMENT = dt.datetime(2025, 3, 14, 9, 30, 5, tzinfo=dt.UTC)


def _zone_seen_with(cookie: str | None) -> str:
    """The name of the zone active while a view runs, given the request's `tz` cookie."""
    request = RequestFactory().get("/")
    if cookie is not None:
        request.COOKIES["tz"] = cookie
    seen: list[str] = []

    def view(_request: object) -> HttpResponse:
        seen.append(timezone.get_current_timezone_name())
        return HttpResponse()

    TimeZoneMiddleware(view)(request)
    return seen[0]


def test_a_valid_cookie_activates_its_zone_for_the_request_only() -> None:
    assert _zone_seen_with("Asia/Tokyo") == "Asia/Tokyo"
    assert timezone.get_current_timezone_name() == settings.TIME_ZONE


BAD_COOKIES = ["Mars/Olympus", "../../etc/passwd", "/etc/localtime", "", "x" * 300]


@pytest.mark.parametrize("cookie", BAD_COOKIES)
def test_an_invalid_cookie_falls_back_to_the_server_zone(cookie: str) -> None:
    assert _zone_seen_with(cookie) == settings.TIME_ZONE


def test_no_cookie_means_the_server_zone() -> None:
    assert _zone_seen_with(None) == settings.TIME_ZONE


def test_when_renders_one_format_inside_a_time_element() -> None:
    with timezone.override("Asia/Tokyo"):
        assert when(MOMENT) == (
            '<time datetime="2025-03-14T18:30:05+09:00">2025-03-14 18:30:05 JST</time>'
        )
        assert when_title(MOMENT) == "2025-03-14 18:30:05 JST"
    with timezone.override("UTC"):
        assert when(MOMENT) == (
            '<time datetime="2025-03-14T09:30:05+00:00">2025-03-14 09:30:05 UTC</time>'
        )


def test_when_shows_an_offset_for_a_zone_without_an_abbreviation() -> None:
    with timezone.override("Asia/Dubai"):
        assert "2025-03-14 13:30:05 +04</time>" in when(MOMENT)


def test_when_reads_cloudtrail_iso_strings_and_passes_nothing_through_unescaped() -> None:
    with timezone.override("Asia/Tokyo"):
        assert "2025-03-14 18:30:05 JST" in when("2025-03-14T09:30:05Z")
    assert when(None) == ""
    assert when("<b>") == "&lt;b&gt;"


@pytest.mark.django_db
def test_the_audit_log_shows_times_in_the_cookie_zone(admin_client: Client) -> None:
    with mock.patch("django.utils.timezone.now", return_value=MOMENT):
        make_event(operation="CreateUser")
    utc_page = admin_client.get(reverse("audit_log")).content.decode()
    admin_client.cookies["tz"] = "Asia/Tokyo"
    tokyo_page = admin_client.get(reverse("audit_log")).content.decode()
    assert "2025-03-14 09:30:05 UTC" in utc_page
    assert "2025-03-14 18:30:05 JST" in tokyo_page
    assert "2025-03-14 09:30:05 UTC" not in tokyo_page
