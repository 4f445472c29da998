"""In headless Chromium against a live server and a real Celery worker: the whole Entra ID flow
from login to a green sign-in test, answering each step's questions on the run page (the
federation role's plan, the claims, the people picker, the person to test), in English and in
Japanese, with a screenshot per step."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.chromium import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.worker]

START = {"en": "Start setup", "ja": "セットアップを開始"}
RUN_PAGE = re.compile(r".*/runs/[0-9a-f-]{36}/$")


def _shot(page: Page, shots: Path, name: str) -> None:
    page.screenshot(path=str(shots / f"entra-{name}.png"), full_page=True)


def _shot_step(step: Any, shots: Path, name: str) -> None:
    """The step's card only: the run page is long, the card is what the step shows."""
    step.screenshot(path=str(shots / f"entra-{name}.png"))


def _step(page: Page, key: str) -> Any:
    return page.locator(f"#step-{key}")


def _wait_for_form(page: Page, key: str) -> None:
    _step(page, key).locator("form.step-form, form[action$='/apply/']").first.wait_for()


def _next_stop(page: Page) -> str:
    """The key of the step whose form or Apply button the page shows next."""
    stop = page.locator(".step-card:has(form.step-form), .step-card:has(form[action$='/apply/'])")
    stop.first.wait_for()
    return str(stop.first.get_attribute("id")).removeprefix("step-")


def _walk_the_flow(page: Page, shots: Path, language: str) -> None:
    base = page.base_url  # type: ignore[attr-defined]
    page.goto(f"{base}/runs/new/")
    page.fill("#id_instance_alias", f"entra-{language}-{uuid.uuid4().hex[:6]}")
    page.select_option("#id_flow_key", "entra")
    page.uncheck("#id_review_plans")
    _shot(page, shots, f"02-new-setup-{language}")
    page.get_by_role("button", name=START[language]).click()
    page.wait_for_url(RUN_PAGE)

    # The steps that stop for the admin, in flow order; federation_role stops only when its plan
    # asks for confirmation.
    while _next_stop(page) == "federation_role":
        _shot_step(_step(page, "federation_role"), shots, f"03-confirm-role-{language}")
        _step(page, "federation_role").locator("form[action$='/apply/'] button").click()

    claims = _step(page, "entra_claims")
    expect(claims.locator("input[value=userprincipalname]")).to_be_checked()
    claims.locator("input[value=ccp]").check()
    _shot_step(claims, shots, f"04-claims-{language}")
    claims.locator("form.step-form button[type=submit]").click()

    _wait_for_form(page, "entra_assignments")
    assignments = _step(page, "entra_assignments")
    expect(assignments.locator(".picker")).to_be_visible()
    assignments.locator("input[type=search]").fill("admins")
    group = assignments.locator(".picker__results label", has_text="Connect Admins")
    expect(assignments.locator(".picker__results label")).to_have_count(1)
    group.locator("input").check()
    _shot_step(assignments, shots, f"05-people-picker-{language}")
    assignments.locator("form.step-form button[type=submit]").click()

    _wait_for_form(page, "connect_users")
    users = _step(page, "connect_users")
    # The instance's own profiles, read once it exists, with the defaults chosen.
    expect(users.locator("input[name$=security_profiles]")).to_have_count(4)
    expect(users.locator("input[name$=security_profiles][value=Agent]")).to_be_checked()
    expect(users.locator("select[name$=routing_profile]")).to_have_value("Basic Routing Profile")
    expect(users.locator("input[name$=phone_type][value=SOFT_PHONE]")).to_be_checked()
    users.locator("input[name$=security_profiles][value=CallCenterManager]").check()
    _shot_step(users, shots, f"055-connect-users-{language}")
    users.locator("form.step-form button[type=submit]").click()

    _wait_for_form(page, "sign_in_test")
    sign_in = _step(page, "sign_in_test")
    expect(sign_in.locator(".picker__results input")).to_have_count(3)
    _shot_step(sign_in, shots, f"06-choose-person-{language}")
    sign_in.locator("form.step-form button[type=submit]").click()

    sign_in.locator('[data-step-status="succeeded"]').wait_for()
    # "12 of 12 steps done": the phone numbers step, skipped, counts as done.
    expect(page.locator(".run-summary")).to_contain_text(re.compile(r"12\D+12"))
    # The plan named what the admin chose.
    expect(users).to_contain_text(
        "“CallCenterManager”" if language == "en" else "「CallCenterManager」"
    )
    _shot_step(sign_in, shots, f"07-signed-in-{language}")
    _shot(page, shots, f"08-run-succeeded-{language}")


def _sign_in_to_the_wizard(page: Page, shots: Path, language: str) -> None:
    sign_in(page, language, before_submit=lambda: _shot(page, shots, f"01-login-{language}"))


@pytest.mark.parametrize("language", ["en", "ja"])
def test_it_walks_the_entra_flow_to_a_green_sign_in(
    page: Page, artifacts_dir: Path, language: str
) -> None:
    _sign_in_to_the_wizard(page, artifacts_dir, language)
    _walk_the_flow(page, artifacts_dir, language)
    expect(page.locator("html")).to_have_attribute("lang", language)
