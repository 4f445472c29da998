"""In headless Chromium: a sign-in posted to the sandbox's AWS sign-in is recorded as a HAR file,
which the admin uploads to "Inspect a sign-in" (English and Japanese) to see the broken link."""

from __future__ import annotations

import html
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from provisioning.models import Cloud, Connection
from sandbox.server import Sandbox
from tests.browser.chromium import VIEWPORT, sign_in
from tests.web.sign_in_cases import build_federation, minted_response

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def _record_sign_in_har(page: Page, sandbox: Sandbox, har: Path, saml_response: str, relay: str):
    """What an IdP serves after sign-on: a form that posts itself to AWS sign-in (here the
    sandbox's), recorded by Chromium as a HAR file."""
    browser = page.context.browser
    assert browser is not None
    # The sandbox's CA is not in Chromium's store; the wizard's own pages don't need it.
    context = browser.new_context(
        viewport=VIEWPORT, record_har_path=str(har), ignore_https_errors=True
    )
    idp_page = context.new_page()
    idp_page.set_content(
        f'<form method="post" action="{html.escape(sandbox.endpoints["aws_signin_url"])}">'
        f'<input type="hidden" name="SAMLResponse" value="{html.escape(saml_response)}">'
        f'<input type="hidden" name="RelayState" value="{html.escape(relay)}">'
        "<button>Continue</button></form>"
    )
    idp_page.get_by_role("button", name="Continue").click()
    expect(idp_page.locator("#error")).to_contain_text("not been onboarded")
    context.close()  # writes the HAR


@pytest.mark.parametrize("language", ["en", "ja"])
def test_an_admin_inspects_a_har_recorded_from_a_failed_sign_in(
    page: Page, sandbox: Sandbox, artifacts_dir: Path, tmp_path: Path, language: str
) -> None:
    federation = build_federation(sandbox)
    har = tmp_path / "sign-in.har"
    _record_sign_in_har(
        page, sandbox, har, minted_response(federation, "no_connect_user"), federation.relay_state
    )
    assert sandbox.endpoints["aws_signin_url"] in har.read_text()

    sign_in(page, language)
    page.locator(".main-nav").get_by_role(
        "link", name="サインインを調べる" if language == "ja" else "Inspect a sign-in"
    ).click()
    expect(page.locator("#nothing-stored")).to_be_visible()
    page.screenshot(path=str(artifacts_dir / f"inspector-01-form-{language}.png"), full_page=True)
    page.set_input_files("#id_upload", str(har))
    sandbox_aws = Connection.objects.get(cloud=Cloud.AWS, is_sandbox=True)
    page.select_option("#id_connection", value=str(sandbox_aws.pk))
    page.locator("form button[type=submit]").last.click()

    verdict = page.locator("#verdict")
    expect(verdict).to_have_attribute("data-link", "connect_user")
    expect(page.locator("#check-connect_user")).to_have_attribute("data-outcome", "failed")
    expect(page.locator("#check-federation_permission")).to_have_attribute("data-outcome", "passed")
    expect(page.locator("#assertion-facts")).to_contain_text("nobody-here@contoso-sandbox")
    expect(page.locator("#assertion-facts")).to_contain_text(sandbox.endpoints["aws_signin_url"])
    page.screenshot(path=str(artifacts_dir / f"inspector-02-result-{language}.png"), full_page=True)
