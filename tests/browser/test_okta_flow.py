"""In headless Chromium against a live server and a real Celery worker: the whole Okta flow from
login to a green sign-in test, answering each step on the run page, with a screenshot per step:
roles by group mapping in English, roles downloaded from AWS (with its guided manual step, done
by the sandbox Okta) in Japanese."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from provisioning.connections.sandbox_registration import SANDBOX_NAMES
from provisioning.models import Cloud, Connection
from tests.browser.chromium import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.worker]

# With the Japanese phone numbers step, skipped (New setup's box left unticked).
GROUP_MAPPING_STEPS = 13
ROLE_DOWNLOAD_STEPS = 14


class Walk:
    """One walk through the run page, naming its screenshots okta-<variant>-<n>-<what>-<lang>."""

    def __init__(self, page: Page, shots: Path, variant: str, language: str) -> None:
        self.page, self.shots, self.variant, self.language = page, shots, variant, language
        self.count = 0

    def shot(self, what: str, target: Locator | None = None) -> None:
        self.count += 1
        path = self.shots / f"okta-{self.variant}-{self.count:02d}-{what}-{self.language}.png"
        if target is None:
            self.page.screenshot(path=str(path), full_page=True)
        else:
            target.scroll_into_view_if_needed()
            self.page.screenshot(path=str(path), full_page=False)

    def step(self, key: str) -> Locator:
        return self.page.locator(f"#step-{key}")

    def wait_for_form(self, key: str) -> Locator:
        step = self.step(key)
        step.locator("form.step-form, form[action$='/apply/']").first.wait_for()
        return step

    def submit(self, step: Locator) -> None:
        step.locator("form.step-form button[type=submit]").click()


def sign_in_to_the_wizard(walk: Walk) -> None:
    sign_in(walk.page, walk.language, before_submit=lambda: walk.shot("login"))


def start_run(walk: Walk, flow_key: str) -> None:
    page = walk.page
    page.goto(f"{page.base_url}/runs/new/")  # type: ignore[attr-defined]
    okta = Connection.objects.get(cloud=Cloud.OKTA, name=SANDBOX_NAMES[Cloud.OKTA])
    page.check("input[name=idp][value=okta]")
    # The page swaps in Okta's flows and connections in place of Entra's.
    page.wait_for_selector(f"#id_idp_connection option[value='{okta.pk}']", state="attached")
    page.select_option("#id_flow_key", flow_key)
    page.select_option("#id_idp_connection", str(okta.pk))
    page.fill("#id_instance_alias", f"okta-{walk.language}-{uuid.uuid4().hex[:6]}")
    page.uncheck("#id_review_plans")
    walk.shot("new-setup")
    page.locator("form button[type=submit]").last.click()
    page.wait_for_url("**/runs/*/")


def confirm_role_and_answer_app(walk: Walk, destination: str) -> None:
    app = walk.wait_for_form("okta_app")
    app.locator(f"input[value={destination}]").check()
    walk.shot("okta-app", app)
    walk.submit(app)
    # A new role needs no confirmation; the plan waits for Apply only when it would change an
    # existing role's trust (a re-used instance).
    apply = walk.step("federation_role").locator("form[action$='/apply/'] button")
    walk.page.locator(
        "#step-federation_role form[action$='/apply/'], #step-okta_assignments form.step-form, "
        "#step-okta_role_download_confirmed form.step-form"
    ).first.wait_for()
    if apply.count():
        walk.shot("confirm-role", walk.step("federation_role"))
        apply.click()


def pick_people_and_sign_in(walk: Walk, group: str, members: int, steps: int) -> None:
    assignments = walk.wait_for_form("okta_assignments")
    expect(assignments.locator(".picker")).to_be_visible()
    assignments.locator("input[type=search]").fill(group.split()[-1].lower())
    label = assignments.locator(".picker__results label", has_text=group)
    expect(label).to_have_count(1)
    label.locator("input").check()
    walk.shot("people-picker", assignments)
    walk.submit(assignments)

    users = walk.wait_for_form("connect_users")
    # The instance's profiles, with the defaults chosen.
    expect(users.locator("input[name$=security_profiles][value=Agent]")).to_be_checked()
    expect(users.locator("select[name$=routing_profile]")).to_have_value("Basic Routing Profile")
    walk.shot("connect-users", users)
    walk.submit(users)

    sign_in = walk.wait_for_form("sign_in_test")
    expect(sign_in.locator(".picker__results input")).to_have_count(members)
    walk.shot("choose-person", sign_in)
    walk.submit(sign_in)

    sign_in.locator('[data-step-status="succeeded"]').wait_for()
    # "13 of 13 steps done" (the skipped phone step counts as done), in either language.
    expect(walk.page.locator(".run-summary")).to_contain_text(re.compile(rf"{steps}\D+{steps}"))
    walk.shot("signed-in")
    sign_in.scroll_into_view_if_needed()
    walk.shot("sign-in-result", sign_in)


def test_it_walks_the_group_mapping_flow_in_english(page: Page, artifacts_dir: Path) -> None:
    walk = Walk(page, artifacts_dir, "group-mapping", "en")
    sign_in_to_the_wizard(walk)
    start_run(walk, "okta_group_mapping")
    confirm_role_and_answer_app(walk, "ccp")
    pick_people_and_sign_in(walk, "Connect Admins", members=3, steps=GROUP_MAPPING_STEPS)
    mapping = walk.step("okta_group_mapping")
    expect(mapping).to_contain_text("aws#")


def test_it_walks_the_role_download_flow_in_japanese(page: Page, artifacts_dir: Path) -> None:
    walk = Walk(page, artifacts_dir, "role-download", "ja")
    sign_in_to_the_wizard(walk)
    start_run(walk, "okta_role_download")
    confirm_role_and_answer_app(walk, "agent_workspace")

    manual = walk.wait_for_form("okta_role_download_confirmed")
    guide = manual.locator(".okta-guide")
    expect(guide).to_be_visible()
    expect(guide.locator("[data-copy]")).to_have_count(3)
    expect(guide).to_contain_text("Update User Attributes")
    walk.shot("manual-step-guide", guide)
    manual.locator("input[name$=sandbox_perform_manual_step]").check()
    walk.submit(manual)

    pick_people_and_sign_in(walk, "Connect Supervisors", members=4, steps=ROLE_DOWNLOAD_STEPS)
    expect(walk.step("okta_role_download_confirmed")).to_contain_text("sandbox")
    expect(page.locator("html")).to_have_attribute("lang", "ja")
