"""In headless Chromium: after the Entra flow's green sign-in test, the admin clicks "Sign in as a
test user now", opens the test user's sign-in link in a second window, signs in through the
sandbox IdP, and the first window's countdown turns into "Signed in" once the sandbox's
CloudTrail shows the attempt; in English and in Japanese, with screenshots."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.chromium import VIEWPORT
from tests.browser.test_entra_flow import _sign_in_to_the_wizard, _walk_the_flow

pytestmark = [pytest.mark.browser, pytest.mark.worker]

WATCH_LINK = {"en": "Sign in as a test user now", "ja": "テストユーザーで今すぐサインイン"}
# The worker looks every WIZARD_SIGN_IN_WATCH_POLL_S (10 s); the sandbox in tests delivers at once.
RESULT_TIMEOUT_MS = 60_000


@pytest.mark.parametrize("language", ["en", "ja"])
def test_an_admin_signs_in_as_a_test_user_and_watches_cloudtrail_see_it(
    page: Page, artifacts_dir: Path, tmp_path: Path, language: str
) -> None:
    _sign_in_to_the_wizard(page, tmp_path, language)
    _walk_the_flow(page, tmp_path, language)

    page.get_by_role("link", name=WATCH_LINK[language]).click()
    expect(page.locator("#delivery-delay")).to_be_visible()
    page.screenshot(path=str(artifacts_dir / f"watch-01-choose-{language}.png"), full_page=True)
    page.locator("#start-watch").click()
    expect(page.locator("#countdown")).to_be_visible()
    page.screenshot(path=str(artifacts_dir / f"watch-02-watching-{language}.png"), full_page=True)

    # The test user's own window: the sandbox's CA is not in Chromium's store.
    sign_in_url = str(page.locator("#sign-in-url").get_attribute("href"))
    browser = page.context.browser
    assert browser is not None
    user_window = browser.new_context(viewport=VIEWPORT, ignore_https_errors=True).new_page()
    # A browser asks every host for /favicon.ico; the sandbox IdP has none, and the wire check
    # would take the 404 for an invented Graph path.
    user_window.route("**/favicon.ico", lambda route: route.abort())
    user_window.goto(sign_in_url)
    user_window.get_by_role("button", name="Submit").click()
    expect(user_window.locator("h1")).to_have_text("Signed in to Amazon Connect")
    user_window.context.close()

    status = page.locator("#watch-status")
    expect(status).to_have_attribute("data-outcome", "signed_in", timeout=RESULT_TIMEOUT_MS)
    expect(page.locator("#event-assume-role")).not_to_contain_text("AccessDenied")
    expect(page.locator("html")).to_have_attribute("lang", language)
    page.screenshot(path=str(artifacts_dir / f"watch-03-signed-in-{language}.png"), full_page=True)
