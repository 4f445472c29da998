"""In headless Chromium set to Tokyo: the page stores the browser's zone in the `tz` cookie, and
the next page shows times in Tokyo time (issue 13)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.chromium import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def test_a_browser_in_tokyo_sees_times_in_tokyo_time(page: Page) -> None:
    tokyo = page.context.browser.new_context(  # type: ignore[union-attr]
        locale="en-US", timezone_id="Asia/Tokyo"
    )
    viewer = tokyo.new_page()
    viewer.base_url = page.base_url  # type: ignore[attr-defined]
    sign_in(viewer, "en")
    cookies = {cookie["name"]: cookie for cookie in tokyo.cookies()}
    assert cookies["tz"]["value"] == "Asia/Tokyo"
    assert cookies["tz"]["sameSite"] == "Lax"
    viewer.goto(f"{page.base_url}/people/")  # type: ignore[attr-defined]
    expect(viewer.locator("#people-rows time").first).to_have_text(
        re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d JST$")
    )
    tokyo.close()
