"""In headless Chromium against a live server and a real Celery worker, after a real Entra SSO
setup (it assigns "Connect Admins" and makes their Connect users): "Add Connect users from groups"
for another group, a sync that deletes people who left, Run now. The admins keep their users;
then, with the group changed through Graph, a person who left every source is deleted and one
still assigned to the app through "Connect Admins" is kept, the plan saying why. English and
Japanese, with screenshots."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.db import connections
from playwright.sync_api import Page, expect

from provisioning.models import RunStatus
from sandbox.directory import ADMINS_GROUP, AGENTS_GROUP
from sandbox.server import Sandbox
from tests.browser.chromium import sign_in
from tests.flows import user_runs
from tests.flows.entra_runs import plan_file, setup_sso
from tests.sandbox.aws_clients import aws_client
from tests.sandbox.entra_graph import add_member, remove_member, run

pytestmark = [pytest.mark.browser, pytest.mark.worker]
T = TypeVar("T")

directory_admin = user_runs.directory_admin
RUN_PAGE = re.compile(r".*/runs/[0-9a-f-]{36}/$")
TEXT = {
    "en": {
        "add": "Add Connect users from groups",
        "save": "Save and continue",
        "keep": "Keep these users in sync…",
        "start": "Start syncing",
        "run_now": "Run now",
        "kept": f"assigned to the app through the group “{ADMINS_GROUP}”",
        "cannot": "can't sign in yet",
    },
    "ja": {
        "add": "グループから Connect ユーザーを追加",
        "save": "保存して続行",
        "keep": "これらのユーザーを定期的に同期…",
        "start": "同期を開始",
        "run_now": "今すぐ実行",
        "kept": f"グループ「{ADMINS_GROUP}」経由でアプリに割り当て済み",
        "cannot": "まだサインインできません",
    },
}


def _shot(page: Page, shots: Path, name: str) -> None:
    page.screenshot(path=str(shots / f"sync-safety-{name}.png"), full_page=True)


def _upns(tenant: Any, group: str, marker: str) -> list[str]:
    group_id = next(g["id"] for g in tenant.groups.values() if g["displayName"] == group)
    return sorted(
        tenant.users[i]["userPrincipalName"]
        for i in tenant.transitive_members(group_id)
        if i in tenant.users and marker in tenant.users[i]["userPrincipalName"]
    )


def _off_loop(call: Callable[[], T]) -> T:
    """Run `call` in a thread of its own: Playwright's sync API keeps an event loop in this one,
    where the SDKs' own loops (msgraph's, the engine's Graph calls) can't run."""

    def wrapped() -> T:
        try:
            return call()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(wrapped).result()


def _run_now(page: Page, base: str, text: dict[str, str]) -> None:
    page.goto(f"{base}/syncs/")
    page.get_by_role("button", name=text["run_now"]).first.click()
    page.wait_for_url(RUN_PAGE)
    page.locator('#step-group_users [data-step-status="succeeded"]').wait_for()


@pytest.mark.parametrize("language", ["en", "ja"])
def test_a_sync_keeps_the_admins_and_deletes_only_who_left_every_source(
    page: Page,
    artifacts_dir: Path,
    sandbox: Sandbox,
    directory_admin: Any,
    tmp_path: Path,
    language: str,
) -> None:
    text = TEXT[language]
    setup, output = _off_loop(lambda: setup_sso(plan_file(tmp_path)))
    assert setup.status == RunStatus.SUCCEEDED, output
    tenant = sandbox.apps["entra"].tenant
    admins = _upns(tenant, ADMINS_GROUP, ".admin")
    agents = _upns(tenant, AGENTS_GROUP, ".agent0")[:2]
    by_upn = {user["userPrincipalName"]: user["id"] for user in tenant.users.values()}
    group_name = f"Sync {language} {uuid.uuid4().hex[:6]}"
    group_id = tenant.add_group(group_name, [])
    for upn in [*agents, admins[0]]:
        _off_loop(lambda upn=upn: run(lambda: add_member(directory_admin, group_id, by_upn[upn])))
    connect = aws_client(sandbox, "connect")

    def usernames() -> set[str]:
        listed = connect.list_users(InstanceId=setup.instance_id, MaxResults=1000)
        return {user["Username"] for user in listed["UserSummaryList"]}

    sign_in(page, language)
    base = page.base_url  # type: ignore[attr-defined]
    page.goto(f"{base}/runs/{setup.pk}/")
    page.get_by_role("button", name=text["add"]).click()
    page.wait_for_url(RUN_PAGE)
    card = page.locator("#step-group_users")
    card.locator("form.step-form").wait_for()
    card.locator("#id_step-group_users-groups-0-group").select_option(label=group_name)
    _shot(page, artifacts_dir, f"00-mapping-{language}")
    card.get_by_role("button", name=text["save"]).click()
    card.locator("form[action$='/apply/']").wait_for()
    expect(card).to_contain_text(text["cannot"])  # the agents' group isn't assigned to the app
    _shot(page, artifacts_dir, f"01-plan-{language}")
    card.locator("form[action$='/apply/'] button").click()
    card.locator('[data-step-status="succeeded"]').wait_for()

    page.get_by_role("link", name=text["keep"]).click()
    page.locator("input[name=departures][value=delete]").check()
    page.get_by_role("button", name=text["start"]).click()
    page.wait_for_url(f"{base}/syncs/")
    _run_now(page, base, text)
    _shot(page, artifacts_dir, f"02-first-sync-run-{language}")
    assert set(admins) <= usernames()  # the SSO setup's admins keep their users

    # Through Graph: one agent leaves the group (and every source); the admin leaves the group
    # but is still in "Connect Admins", which the SSO setup assigned to the app.
    for upn in (agents[0], admins[0]):
        _off_loop(
            lambda upn=upn: run(lambda: remove_member(directory_admin, group_id, by_upn[upn]))
        )
    _run_now(page, base, text)
    expect(page.locator("#step-group_users")).to_contain_text(text["kept"])
    expect(page.locator("#step-group_users")).to_contain_text(admins[0])
    _shot(page, artifacts_dir, f"03-second-sync-run-{language}")
    remaining = usernames()
    assert agents[0] not in remaining
    assert set(admins) <= remaining and agents[1] in remaining
