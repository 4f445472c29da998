"""In headless Chromium, in English (an Entra federation) and Japanese (an Okta one): a check's
page puts each finding's fix next to it (the rotation by the expiring certificate, the users run
by the Connect users findings, the console steps by the disabled app), and the users run's link
opens New setup with the users flow, the instance and the connections chosen."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from provisioning.flows import USER_FLOWS
from sandbox.server import Sandbox
from tests.browser.chromium import sign_in
from tests.web.test_federation_check_fixes import INSTANCE_ID, check_record

pytestmark = [pytest.mark.browser, pytest.mark.worker]


@pytest.mark.parametrize(("language", "idp"), [("en", "entra"), ("ja", "okta")])
def test_a_checks_findings_lead_to_their_fixes(
    page: Page, sandbox: Sandbox, artifacts_dir: Path, language: str, idp: str
) -> None:
    record = check_record(idp)
    sign_in(page, language)

    page.goto(f"{page.base_url}/check/{record.pk}/")  # type: ignore[attr-defined]

    certificate = page.locator('[data-code="certificate_expiring"]')
    expect(certificate.locator('[data-fix="rotate"] button')).to_be_visible()
    for code in ("person_without_user", "user_nobody_signs_in_as"):
        expect(page.locator(f'[data-code="{code}"] [data-fix="users_run"] a')).to_be_visible()
    expect(page.locator('[data-code="app_disabled"] [data-fix="console"]')).to_contain_text(
        "Entra" if idp == "entra" else "Okta"
    )
    expect(page.locator('[data-code="instance_not_saml"] [data-fix]')).to_have_count(0)
    page.screenshot(
        path=str(artifacts_dir / f"federation-check-fixes-01-{idp}-{language}.png"), full_page=True
    )

    page.locator('[data-code="person_without_user"] [data-fix="users_run"] a').click()

    expect(page.locator("#id_flow_key")).to_have_value(USER_FLOWS[idp])
    expect(page.locator("#id_instance_id")).to_have_value(INSTANCE_ID)
    expect(page.locator("#id_aws_connection")).to_have_value(str(record.aws_connection_id))
    expect(page.locator("#id_idp_connection")).to_have_value(str(record.idp_connection_id))
    page.screenshot(
        path=str(artifacts_dir / f"federation-check-fixes-02-users-run-{idp}-{language}.png"),
        full_page=True,
    )
