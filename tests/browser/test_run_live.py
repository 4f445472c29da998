"""In headless Chromium against a live server and a real Celery worker: start a run, watch its steps
turn green without a reload, in English and in Japanese, with no CSP violation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from tests.browser.chromium import PASSWORD
from tests.web.factories import make_connection
from tests.worker_process import WorkerProcess
from wizard.roles import ADMIN, role_group

pytestmark = [pytest.mark.browser, pytest.mark.worker]

WIDE = {"width": 1280, "height": 900}
NARROW = {"width": 390, "height": 844}
# A test-flow run takes a few seconds (three 1 s steps, two short waits); a busy CI box is slower.
RUN_TIMEOUT_MS = 90_000


@dataclass
class BrowserSession:
    page: Page
    base_url: str
    shots: Path
    console: list[str] = field(default_factory=list)
    main_frame_navigations: int = 0

    def shot(self, name: str, *, full_page: bool = True) -> None:
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=full_page)

    def csp_violations(self) -> list[str]:
        return [text for text in self.console if "Content Security Policy" in text]


@pytest.fixture
def session(
    celery_worker: WorkerProcess, live_server: object, chromium: Browser, artifacts_dir: Path
) -> Iterator[BrowserSession]:
    User.objects.create_user("admin", password=PASSWORD).groups.add(role_group(ADMIN))
    make_connection("aws", name="Sandbox AWS", is_sandbox=True)
    make_connection(
        "entra", name="Sandbox Entra ID", is_sandbox=True, config={"method": "client_secret"}
    )
    context = chromium.new_context(viewport=WIDE, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(RUN_TIMEOUT_MS)
    session = BrowserSession(page=page, base_url=str(live_server), shots=artifacts_dir)

    def on_console(message: ConsoleMessage) -> None:
        session.console.append(f"{message.type}: {message.text}")

    def on_navigation(frame: object) -> None:
        if frame == page.main_frame:
            session.main_frame_navigations += 1

    page.on("console", on_console)
    page.on("pageerror", lambda error: session.console.append(f"pageerror: {error}"))
    page.on("framenavigated", on_navigation)
    yield session
    context.close()


def _start_run(session: BrowserSession, language: str, start_label: str) -> None:
    page = session.page
    page.goto(f"{session.base_url}/runs/new/")
    page.fill("#id_instance_alias", f"tokyo-{language}")
    page.select_option("#id_flow_key", "test_flow")
    page.uncheck("#id_review_plans")
    session.shot(f"02-new-setup-{language}")
    page.get_by_role("button", name=start_label).click()
    page.wait_for_url("**/runs/*/")


def _watch_run_finish_without_reload(session: BrowserSession, language: str) -> None:
    page = session.page
    expect(page.locator("#run-status")).to_have_attribute("hx-trigger", "every 1.5s")
    navigations = session.main_frame_navigations
    page.evaluate("window.stillTheSamePage = true")
    first_step = page.locator('#step-test_marker_one [data-step-status="succeeded"]')
    first_step.wait_for()
    session.shot(f"03-run-in-progress-{language}")
    page.locator('#step-test_marker_three [data-step-status="succeeded"]').wait_for()
    expect(page.locator("#run-status")).not_to_have_attribute("hx-trigger", "every 1.5s")
    session.shot(f"04-run-succeeded-{language}")

    assert session.main_frame_navigations == navigations
    assert page.evaluate("window.stillTheSamePage") is True


def test_it_shows_a_run_progress_live_in_english_and_japanese(session: BrowserSession) -> None:
    page = session.page

    page.goto(f"{session.base_url}/")
    expect(page.locator(".mode-banner")).to_contain_text("Sandbox mode")
    session.shot("01-login-en")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Setup runs", exact=True)).to_be_visible()
    session.shot("01-dashboard-empty-en")

    _start_run(session, "en", "Start setup")
    _watch_run_finish_without_reload(session, "en")
    expect(page.locator(".run-summary")).to_contain_text("Succeeded")
    expect(page.locator(".run-summary")).to_contain_text("3 of 3 steps done")

    page.get_by_role("button", name="日本語").click()
    expect(page.locator("html")).to_have_attribute("lang", "ja")
    expect(page.locator(".run-summary")).to_contain_text("成功")
    expect(page.locator(".mode-banner")).to_contain_text("サンドボックスモード")
    session.shot("05-run-succeeded-after-switch-ja")
    page.set_viewport_size(NARROW)
    session.shot("05-run-succeeded-narrow-ja")
    page.set_viewport_size(WIDE)

    _start_run(session, "ja", "セットアップを開始")
    _watch_run_finish_without_reload(session, "ja")
    expect(page.locator(".run-summary")).to_contain_text("3 / 3 ステップ完了")

    page.goto(f"{session.base_url}/")
    session.shot("06-dashboard-ja")
    page.goto(f"{session.base_url}/audit/")
    expect(page.get_by_role("heading", name="監査ログ", exact=True)).to_be_visible()
    session.shot("07-audit-log-ja", full_page=False)
    page.goto(f"{session.base_url}/connections/")
    session.shot("08-connections-ja")

    page.get_by_role("button", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    session.shot("08-connections-en")
    page.goto(f"{session.base_url}/audit/")
    session.shot("07-audit-log-en", full_page=False)
    page.set_viewport_size(NARROW)
    page.goto(f"{session.base_url}/")
    session.shot("06-dashboard-narrow-en")

    assert session.csp_violations() == []
    assert not [line for line in session.console if line.startswith(("error", "pageerror"))]
