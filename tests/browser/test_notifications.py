"""The Notifications page in headless Chromium, in English and in Japanese: an admin saves
recipients and a webhook, the page shows the webhook masked (never its path), and a plain-http
webhook outside 127.0.0.1 is refused with what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from provisioning.models import NotificationSettings
from tests.browser.chromium import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.worker]

SECRET = "/services/T0001/B0001/very-secret-path"


@pytest.mark.parametrize(
    ("language", "heading", "saved", "refused"),
    [
        ("en", "Notifications", "Notifications are saved.", "must start with https://"),
        ("ja", "通知", "通知の設定を保存しました。", "https:// で始まる必要があります"),
    ],
)
def test_an_admin_sets_where_notifications_go(
    page: Page, artifacts_dir: Path, language: str, heading: str, saved: str, refused: str
) -> None:
    sign_in(page, language)
    page.goto(f"{page.base_url}/notifications/")  # type: ignore[attr-defined]
    expect(page.locator("h1")).to_have_text(heading)

    page.fill("#id_email_recipients", "ops@example.com\nkeiko@example.jp")
    page.fill("#id_webhook_url", "http://hooks.example.com" + SECRET)
    page.click("main button[type=submit]")
    expect(page.locator("#id_webhook_url_error")).to_contain_text(refused)
    assert not NotificationSettings.objects.exists()

    page.fill("#id_webhook_url", "https://hooks.example.com" + SECRET)
    page.click("main button[type=submit]")
    expect(page.locator(".messages")).to_contain_text(saved)
    expect(page.locator("#webhook-stored code")).to_have_text("https://hooks.example.com/…")
    assert SECRET not in page.content()
    page.screenshot(path=str(artifacts_dir / f"notifications-{language}.png"), full_page=True)
    stored = NotificationSettings.objects.get()
    assert stored.email_recipients == ["ops@example.com", "keiko@example.jp"]
    assert stored.webhook_url == "https://hooks.example.com" + SECRET
    assert stored.language == language
