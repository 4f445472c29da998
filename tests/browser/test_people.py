"""In headless Chromium: an admin invites a viewer on the People page, the viewer sets a password
with the link and sees only what a viewer may use; someone with no role sees whom to ask."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from tests.browser.chromium import PASSWORD, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.worker]

VIEWER_PASSWORD = "hanako's own long passphrase"  # noqa: S105 - a test login


def _sign_in_as(page: Page, username: str, password: str) -> None:
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.locator("form button[type=submit]").last.click()


def test_an_invited_viewer_sets_a_password_and_sees_only_what_a_viewer_may(
    page: Page, artifacts_dir: Path
) -> None:
    base_url = page.base_url  # type: ignore[attr-defined]
    sign_in(page, "en")
    page.locator(".main-nav").get_by_role("link", name="People").click()
    page.fill("#id_username", "hanako")
    page.select_option("#id_role", "viewer")
    page.get_by_role("button", name="Invite", exact=True).click()
    link = page.locator("#set-password-link").inner_text()
    page.screenshot(path=str(artifacts_dir / "roles-01-invited.png"), full_page=True)

    invitee = page.context.browser.new_context(locale="en-US")  # type: ignore[union-attr]
    hanako = invitee.new_page()
    hanako.goto(link)
    hanako.fill("#id_new_password1", VIEWER_PASSWORD)
    hanako.fill("#id_new_password2", VIEWER_PASSWORD)
    hanako.get_by_role("button", name="Set password").click()
    expect(hanako.locator(".messages")).to_contain_text("Your password is set")
    _sign_in_as(hanako, "hanako", VIEWER_PASSWORD)
    hanako.wait_for_url(f"{base_url}/")
    nav = hanako.locator(".main-nav")
    expect(nav).to_contain_text("Audit log")
    for hidden in ("New setup", "Connections", "People"):
        expect(nav.get_by_role("link", name=hidden)).to_have_count(0)
    expect(hanako.locator(".account__role")).to_have_text("Viewer")
    hanako.screenshot(path=str(artifacts_dir / "roles-02-viewer-dashboard.png"), full_page=True)
    hanako.goto(f"{base_url}/connections/")
    expect(hanako.get_by_role("heading", name="Not allowed for your role")).to_be_visible()
    expect(hanako.locator(".admin-list")).to_contain_text("admin")
    hanako.goto(link)
    expect(hanako.locator("[role=alert]")).to_contain_text("This link has been used")
    invitee.close()

    page.reload()
    expect(page.locator("#people-rows")).to_contain_text("hanako")
    assert User.objects.get(username="hanako").groups.filter(name="viewer").exists()


def test_someone_with_no_role_sees_whom_to_ask_in_japanese(page: Page, artifacts_dir: Path) -> None:
    User.objects.create_user("newcomer", password=PASSWORD)
    page.goto(f"{page.base_url}/")  # type: ignore[attr-defined]
    page.get_by_role("button", name="日本語").click()
    _sign_in_as(page, "newcomer", PASSWORD)

    expect(page.get_by_role("heading", name="ロールがまだありません")).to_be_visible()
    expect(page.locator(".admin-list")).to_contain_text("admin")
    expect(page.locator(".main-nav")).to_have_count(0)
    page.screenshot(path=str(artifacts_dir / "roles-03-no-role-ja.png"), full_page=True)


@pytest.mark.parametrize("language", ["en", "ja"])
def test_an_admins_menu_fits_on_one_line_at_1280_px(
    page: Page, artifacts_dir: Path, language: str
) -> None:
    """Nine entries in Japanese wrapped to a second line, pushing the tools to a third row."""
    page.set_viewport_size({"width": 1280, "height": 800})
    sign_in(page, language)
    tops = page.locator(".main-nav a").evaluate_all("links => links.map(a => a.offsetTop)")
    assert len(tops) == 9 and len(set(tops)) == 1, tops
    brand = page.locator(".brand").bounding_box()
    tools = page.locator(".site-header__tools").bounding_box()
    assert brand and tools and abs(brand["y"] - tools["y"]) < brand["height"], (brand, tools)
    page.screenshot(path=str(artifacts_dir / f"header-{language}-1280.png"))
