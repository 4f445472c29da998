"""In headless Chromium, in English and Japanese: an admin checks, from the dashboard, a federation
the Entra flow built and whose relay state was then edited by hand; the page polls until the
worker has read it and draws the chain with the broken link and the finding."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from provisioning.models import Cloud, Connection, RunStatus
from sandbox.server import Sandbox
from tests.browser.chromium import STEP_TIMEOUT_MS, sign_in
from tests.browser.test_sync_safety import _off_loop
from tests.flows.entra_runs import plan_file, setup_sso

pytestmark = [pytest.mark.browser, pytest.mark.worker]

OTHER_INSTANCE = "00000000-0000-4000-8000-000000000000"


@pytest.mark.parametrize("language", ["en", "ja"])
def test_an_admin_checks_a_federation_whose_relay_state_was_edited(
    page: Page, sandbox: Sandbox, artifacts_dir: Path, tmp_path: Path, language: str
) -> None:
    run, output = _off_loop(lambda: setup_sso(plan_file(tmp_path)))
    assert run.status == RunStatus.SUCCEEDED, output
    app_id = run.steps.get(key="entra_app").outputs["app_id"]
    sandbox.apps["entra"].tenant.patch_service_principal(
        app_id,
        {
            "samlSingleSignOnSettings": {
                "relayState": "https://ap-northeast-1.console.aws.amazon.com/connect/federate/"
                + OTHER_INSTANCE
            }
        },
        by_app_id=True,
    )

    sign_in(page, language)
    page.locator("#check-federation").click()
    expect(page.locator("#read-only")).to_be_visible()
    page.select_option(
        "#id_aws_connection", value=str(Connection.objects.get(cloud=Cloud.AWS, is_sandbox=True).pk)
    )
    page.fill("#id_region", run.region)
    page.fill("#id_instance", run.instance_alias)
    page.select_option(
        "#id_idp_connection",
        value=str(Connection.objects.get(cloud=Cloud.ENTRA, is_sandbox=True).pk),
    )
    page.screenshot(path=str(artifacts_dir / f"federation-check-01-form-{language}.png"))
    page.locator("form button[type=submit]").last.click()

    # The worker reads three clouds; the page polls every second until it has.
    expect(page.locator("#verdict")).to_have_attribute(
        "data-verdict", "broken", timeout=STEP_TIMEOUT_MS
    )
    expect(page.locator("#check-result")).to_have_attribute("data-status", "done")
    chain = page.locator("#chain")
    expect(chain.locator("[data-link=claims]")).to_have_attribute("data-state", "broken")
    expect(chain.locator("[data-link=saml_provider]")).to_have_attribute("data-state", "done")
    expect(chain.locator("[data-link=connect_users]")).to_have_attribute("data-state", "done")
    finding = page.locator("#findings-claims")
    expect(finding).to_contain_text(OTHER_INSTANCE)
    expect(finding).to_contain_text("Bad Request" if language == "en" else "別のインスタンス")
    page.screenshot(
        path=str(artifacts_dir / f"federation-check-02-result-{language}.png"), full_page=True
    )
