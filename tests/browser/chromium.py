"""How browser tests start Debian's headless Chromium, and the login they sign in with."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

CHROMIUM = "/usr/bin/chromium"
# Without the networking flags Chromium keeps calling Google's hosts, which this machine refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update"]
PASSWORD = "a long test password for the browser"  # noqa: S105 - a test login
VIEWPORT = {"width": 1280, "height": 900}
# A whole flow takes 10-15 s in the sandbox; a busy CI box is slower.
STEP_TIMEOUT_MS = 60_000


def sign_in(page: Page, language: str, *, before_submit: Callable[[], None] | None = None) -> None:
    """Sign in as the test admin, switching the pages to Japanese first for "ja";
    `before_submit` runs with the form filled in (a test's screenshot of the login page)."""
    page.goto(f"{page.base_url}/")  # type: ignore[attr-defined]
    if language == "ja":
        page.get_by_role("button", name="日本語").click()
        expect(page.locator("html")).to_have_attribute("lang", "ja")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    if before_submit is not None:
        before_submit()
    page.locator("form button[type=submit]").last.click()
    page.wait_for_url(f"{page.base_url}/")  # type: ignore[attr-defined]
