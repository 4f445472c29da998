"""In headless Chromium against a live server and a real Celery worker: from a succeeded Entra
setup, "Add Connect users from groups", the group mapping, the plan with its lists, Apply and the
live progress bar (surviving a reload), then "Keep these users in sync" and a sync run; in English
and in Japanese, with screenshots."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from provisioning.flows import FLOWS
from provisioning.models import Cloud, Connection, RunStatus, SetupRun, StepRun
from sandbox.directory import CONTACT_CENTRE_GROUP, SUPERVISORS_GROUP
from sandbox.knobs import Knobs
from sandbox.server import Sandbox
from tests.browser.chromium import sign_in
from tests.sandbox.aws_clients import active_instance, aws_client

pytestmark = [pytest.mark.browser, pytest.mark.worker]

RUN_PAGE = re.compile(r".*/runs/[0-9a-f-]{36}/$")
TEXT = {
    "en": {
        "add": "Add Connect users from groups",
        "save": "Save and continue",
        "apply": "Apply",
        "keep": "Keep these users in sync…",
        "start": "Start syncing",
        "run_now": "Run now",
        "made": "changes made",
    },
    "ja": {
        "add": "グループから Connect ユーザーを追加",
        "save": "保存して続行",
        "apply": "適用",
        "keep": "これらのユーザーを定期的に同期…",
        "start": "同期を開始",
        "run_now": "今すぐ実行",
        "made": "件の変更が完了",
    },
}


def _shot(page: Page, shots: Path, name: str, locator: Any = None) -> None:
    target = locator if locator is not None else page
    kwargs = {} if locator is not None else {"full_page": True}
    target.screenshot(path=str(shots / f"users-{name}.png"), **kwargs)


def _succeeded_setup(sandbox: Sandbox) -> SetupRun:
    """An Entra SSO setup that succeeded for a new sandbox instance (its steps as they end)."""
    instance = active_instance(aws_client(sandbox, "connect"), "users")
    flow = FLOWS["entra"]
    setup = SetupRun.objects.create(
        idp="entra",
        flow_key=flow.key,
        flow_signature=flow.signature,
        region="ap-northeast-1",
        instance_id=instance["Id"],
        instance_alias=instance["InstanceAlias"],
        aws_connection=Connection.objects.get(cloud=Cloud.AWS, is_sandbox=True),
        idp_connection=Connection.objects.get(cloud=Cloud.ENTRA, is_sandbox=True),
        status=RunStatus.SUCCEEDED,
    )
    for position, key in enumerate(flow.step_keys):
        outputs = {"session_name_source": "userprincipalname"} if key == "entra_claims" else {}
        StepRun.objects.create(
            run=setup, key=key, position=position, status="succeeded", outputs=outputs
        )
    return setup


def _map_row(card: Any, row: int, group: str, profiles: list[str]) -> None:
    prefix = "#id_step-group_users-groups"
    card.locator(f"{prefix}-{row}-group").select_option(label=group)
    for box in card.locator(f"input[name='step-group_users-groups-{row}-security_profiles']").all():
        if box.get_attribute("value") in profiles:
            box.check()
        else:
            box.uncheck()


@pytest.mark.parametrize("language", ["en", "ja"])
def test_it_adds_users_from_groups_shows_progress_and_keeps_them_in_sync(
    page: Page, artifacts_dir: Path, sandbox: Sandbox, sandbox_knobs: Knobs, language: str
) -> None:
    # A moment per CreateUser, so the progress bar is seen moving.
    sandbox_knobs.latency_s["connect:CreateUser"] = 0.15
    text = TEXT[language]
    setup = _succeeded_setup(sandbox)
    sign_in(page, language)
    base = page.base_url  # type: ignore[attr-defined]

    page.goto(f"{base}/runs/{setup.pk}/")
    page.get_by_role("button", name=text["add"]).click()
    page.wait_for_url(RUN_PAGE)
    card = page.locator("#step-group_users")
    card.locator("form.step-form").wait_for()
    expect(card.locator(".mapping-table")).to_be_visible()
    _map_row(card, 0, SUPERVISORS_GROUP, ["Agent", "CallCenterManager"])
    _map_row(card, 1, CONTACT_CENTRE_GROUP, ["Agent"])
    _shot(page, artifacts_dir, f"01-mapping-{language}", card)
    card.get_by_role("button", name=text["save"]).click()

    card.locator("form[action$='/apply/']").wait_for()
    expect(card.locator(".change-counts")).to_contain_text("3")  # the seeded people refused
    card.locator("details.change-list").first.locator("summary").click()
    _shot(page, artifacts_dir, f"02-plan-{language}", card)
    csv_link = card.locator(".change-counts a").first
    assert "changes.csv" in str(csv_link.get_attribute("href"))
    card.locator("form[action$='/apply/'] button").click()

    progress = card.locator("progress.progress-bar")
    progress.wait_for()
    expect(card.locator(".progress-box")).to_contain_text(text["made"])
    page.reload()  # the numbers come from the database, not from the page
    card.locator("progress.progress-bar").wait_for()
    _shot(page, artifacts_dir, f"03-progress-{language}", card)
    card.locator('[data-step-status="succeeded"]').wait_for()
    maximum = card.locator("progress.progress-bar").get_attribute("max")
    expect(card.locator("progress.progress-bar")).to_have_attribute("value", str(maximum))
    _shot(page, artifacts_dir, f"04-done-{language}")

    page.get_by_role("link", name=text["keep"]).click()
    page.locator("input[name=departures][value=delete]").check()
    page.select_option("#id_every_hours", "6")
    _shot(page, artifacts_dir, f"05-sync-form-{language}")
    page.get_by_role("button", name=text["start"]).click()
    page.wait_for_url(f"{base}/syncs/")
    _shot(page, artifacts_dir, f"06-syncs-{language}")
    page.get_by_role("button", name=text["run_now"]).first.click()
    page.wait_for_url(RUN_PAGE)
    page.locator('#step-group_users [data-step-status="succeeded"]').wait_for()
    expect(page.locator(".run-summary")).to_contain_text("2")
    _shot(page, artifacts_dir, f"07-sync-run-{language}")
    page.goto(f"{base}/syncs/")
    expect(page.locator(".sync-row__last")).to_be_visible()
    _shot(page, artifacts_dir, f"08-syncs-after-run-{language}")
    page.goto(f"{base}/")
    _shot(page, artifacts_dir, f"09-dashboard-{language}")
