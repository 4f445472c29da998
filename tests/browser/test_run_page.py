"""In headless Chromium against a live server: the run page an admin reads at a glance, for an
Entra, an Okta and a users run, at each phase (planned and needing an answer, applying, verifying
by the sign-in test, succeeded, failed, rolled back), in English and in Japanese, with a full-page
screenshot of each at tests/artifacts/run-page/<setup>-<phase>-<lang>.png. The runs are real ones
made headless against the sandbox; the other phases are copies of them moved back. At each
screenshot the page must show the phase's badge and chain link state, in the page's language.
Also: an Okta users run's group picker at 1280 and 390 px (<...>-picker-<width>-<lang>.png), and
the Connect users step's answers offered again (entra-connect_users-<phase>-<lang>.png)."""

from __future__ import annotations

import copy
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from playwright.sync_api import Browser, Page, expect

from provisioning.connections.sandbox_registration import register_sandbox_connections
from provisioning.flows import get_flow
from provisioning.messages import Message
from provisioning.models import RunStatus, SetupRun, StepStatus
from sandbox.server import Sandbox
from tests.browser.chromium import sign_in
from wizard.selectors.chain import STATE_LABELS, LinkState

pytestmark = [pytest.mark.browser]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# "About two screens and a half" at a laptop's 1280x800: a finished Entra run must not grow past.
SCREEN = {"width": 1280, "height": 800}
TWO_SCREENS_PX = 2000
# The step of each flow that stops for the admin's answer, where the other phases stop too, and
# the link of the chain drawing that step builds.
STOP_STEP = {"entra": "entra_claims", "okta": "okta_assignments", "users": "group_users"}
STOP_LINK = {"entra": "claims", "okta": "connect_users", "users": "connect_users"}
# The sign-in test verifies an SSO setup; a users run has no such step, so no "verifying" phase.
VERIFY_STEP = {"entra": "sign_in_test", "okta": "sign_in_test"}
PHASES = ("needs-answer", "applying", "verifying", "succeeded", "failed", "rolled-back")
# Per phase: the run's status (its badge) and the state of the stopped step's link.
EXPECTED = {
    "needs-answer": (RunStatus.WAITING, LinkState.NEEDS_YOU),
    "applying": (RunStatus.RUNNING, LinkState.WORKING),
    # The sign-in test builds no link: the users link it follows is done, and none is working.
    "verifying": (RunStatus.RUNNING, LinkState.DONE),
    "succeeded": (RunStatus.SUCCEEDED, LinkState.DONE),
    "failed": (RunStatus.FAILED, LinkState.BROKEN),
    "rolled-back": (RunStatus.ROLLED_BACK, LinkState.ROLLED_BACK),
}


def _example(name: str, tmp_path: Path, alias: str) -> Path:
    text = (EXAMPLES / name).read_text()
    lines = [
        f'alias = "{alias}"' if line.startswith("alias = ") else line for line in text.splitlines()
    ]
    path = tmp_path / f"{alias}-{name}"
    path.write_text("\n".join(lines) + "\n")
    return path


def _setup_sso(path: Path) -> SetupRun:
    before = set(SetupRun.objects.values_list("pk", flat=True))
    call_command("setup_sso", str(path))
    (run,) = SetupRun.objects.exclude(pk__in=before)
    assert run.status == RunStatus.SUCCEEDED, run.error
    return run


def _copy_at(run: SetupRun, phase: str, stop_key: str) -> SetupRun:
    """A copy of a finished run, moved back to `phase` at its step `stop_key`."""
    if phase == "succeeded":
        return run
    steps = list(run.steps.order_by("position"))
    stop = next(step.position for step in steps if step.key == stop_key)
    clone = copy.copy(run)
    clone.pk = uuid.uuid4()
    clone.error = {}
    clone.finished_at = None
    clone.status = {
        "needs-answer": RunStatus.WAITING,
        "applying": RunStatus.RUNNING,
        "verifying": RunStatus.RUNNING,
        "failed": RunStatus.FAILED,
        "rolled-back": RunStatus.ROLLED_BACK,
    }[phase]
    if phase in ("failed", "rolled-back"):
        clone.finished_at = timezone.now()
    clone.save(force_insert=True)
    for step in steps:
        step.pk = None
        step.run = clone
        if phase == "rolled-back":
            step.status = StepStatus.ROLLED_BACK
        elif step.position > stop:
            step.status, step.plan, step.outputs = StepStatus.PENDING, {}, {}
            step.created_resources = []
        elif step.position == stop:
            step.outputs, step.created_resources = {}, []
            if phase == "needs-answer":
                step.status = StepStatus.PLANNED
                step.plan = {**step.plan, "needs_input": True}
            elif phase in ("applying", "verifying"):
                step.status = StepStatus.APPLYING
                step.waiting_since = timezone.now()
            else:
                step.status = StepStatus.FAILED
                step.attempts = 2
                # As a client module stores a refusal: messages, shown in the reader's language.
                who = {"who": "arn:aws:iam::123456789012:user/wizard", "action": "connect:Put"}
                step.error = {
                    "message": Message(
                        "AWS refused %(operation)s: %(who)s is missing the permission "
                        "%(action)s.%(said)s",
                        {**who, "operation": "PutThing", "said": ""},
                    ).to_json(),
                    "hint": Message(
                        "Add %(action)s to an IAM policy of %(who)s, then retry the step.", who
                    ).to_json(),
                    "code": "AccessDenied",
                }
        step.save(force_insert=True)
    return clone


@pytest.fixture
def runs(sandbox: Sandbox, settings: Any, tmp_path: Path) -> dict[str, SetupRun]:
    """A finished run of each kind, made headless against the sandbox."""
    settings.WIZARD_MODE = "sandbox"
    settings.SANDBOX_FILE = sandbox.state_dir / "sandbox.json"
    register_sandbox_connections(sandbox_file=settings.SANDBOX_FILE)
    alias = f"page-{uuid.uuid4().hex[:8]}"
    entra = _setup_sso(_example("entra-sandbox.toml", tmp_path, alias))
    users = _setup_sso(_example("entra-sandbox-users.toml", tmp_path, alias))
    okta = _setup_sso(_example("okta-sandbox-group-mapping.toml", tmp_path, f"okta-{alias}"))
    return {"entra": entra, "okta": okta, "users": users}


@pytest.fixture
def okta_users(runs: dict[str, SetupRun], tmp_path: Path) -> SetupRun:
    """A users run from Okta groups for the Okta run's instance, as the Entra users example."""
    text = (EXAMPLES / "entra-sandbox-users.toml").read_text()
    path = tmp_path / "okta-users.toml"
    path.write_text(
        "\n".join(
            f'alias = "{runs["okta"].instance_alias}"'
            if line.startswith("alias = ")
            else 'flow = "okta_users"'
            if line.startswith("flow = ")
            else 'idp = "Sandbox Okta"'
            if line.startswith("idp = ")
            else line
            for line in text.splitlines()
            if not line.startswith("username_source = ")
        )
        + "\n"
    )
    return _setup_sso(path)


def _page(browser: Browser, live_server: Any, language: str) -> Page:
    page = browser.new_context(viewport=SCREEN, locale="en-US").new_page()
    page.base_url = str(live_server)  # type: ignore[attr-defined]
    sign_in(page, language)
    return page


# Katakana words a Japanese heading or label must keep on one line (not ユー|ザー).
BROKEN_WORDS_JS = """() => {
  const broken = [];
  for (const element of document.querySelectorAll("h1, h2, h3, th, dt, dd, .badge, summary")) {
    const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const word of node.data.matchAll(/[\u30a0-\u30ff]{2,}/g)) {
        const range = document.createRange();
        range.setStart(node, word.index);
        range.setEnd(node, word.index + word[0].length);
        const tops = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
        if (tops.size > 1) broken.push(word[0]);
      }
    }
  }
  return broken;
}"""
# English a Japanese page must not show: plan sentences, warnings and reasons written by the wizard.
ENGLISH_IN_JAPANESE = (
    "users to create",
    "who can't have a user",
    "not assigned to the",
    "Assigning these groups",
    "Tick “Assign",
    "is missing the permission",
    "nothing to change",
)


def _reads_well(page: Page, kind: str, phase: str, language: str) -> None:
    """What the run page must never show again (issue 13)."""
    # Who started it: a CLI run says so instead of a dash.
    started = page.locator("#run-started")
    expect(started).not_to_contain_text("—")
    with translation.override(language):
        expect(started).to_contain_text(_("from the command line"))
    # Step titles name what the step does; none is an instruction.
    titles = page.locator(".step-card__title").all_inner_texts()
    assert titles and not [t for t in titles if t.startswith("Check ") or t.endswith("ください")]
    # A users run started from a plan file names its SSO setup: its chain is drawn whole.
    if kind == "users":
        expect(page.locator("#run-chain [data-link]")).to_have_count(6)
    # The sign-in test is no link's work: while it runs, no link of the chain is "working".
    if phase == "verifying":
        expect(page.locator('#run-chain [data-state="working"]')).to_have_count(0)
    if kind == "users" and phase in ("needs-answer", "failed"):
        # Its answers are offered with the IdP's groups and the instance's profiles to pick from,
        # the plan file's picked (issue 13: never an empty picker).
        group = page.locator('select[name="step-group_users-groups-0-group"]')
        assert group.locator("option").count() > 1, f"{kind}-{phase}: no groups to pick"
        assert group.evaluate("select => select.value"), f"{kind}-{phase}: no group picked"
        routing = page.locator('select[name="step-group_users-groups-0-routing_profile"]')
        assert routing.locator("option").count() >= 1, f"{kind}-{phase}: no routing profiles"
        profiles = page.locator('input[name="step-group_users-groups-0-security_profiles"]')
        assert profiles.count() > 1, f"{kind}-{phase}: no security profiles"
    if language != "ja":
        return
    assert page.evaluate(BROKEN_WORDS_JS) == [], f"{kind}-{phase}: words broken across lines"
    text = page.locator("body").inner_text()
    assert not [english for english in ENGLISH_IN_JAPANESE if english in text], (kind, phase)
    if kind == "users" and phase in ("needs-answer", "failed"):
        # The plan counts its users in a Japanese sentence, and says each reason once.
        sentences = page.locator(".change__sentence").all_inner_texts()
        assert any(re.fullmatch(r"Connect ユーザーを \d+ 人作成します。", s) for s in sentences)
        warnings = " ".join(page.locator(".warning").all_inner_texts())
        assert warnings.count("入れ子のグループは対象外です") == 1, (kind, phase)
        expect(page.locator(".warning").filter(has_text="割り当てると")).to_have_count(1)


# The width a select takes where it stands; the width it takes out of the flow with no width
# limit (its longest option and the arrow, in the same font); and the room its table's frame has.
SELECT_FIT_JS = """(select) => {
  const alone = select.cloneNode(true);
  alone.style.cssText = "position: absolute; left: 0; top: 0; max-width: none; width: auto";
  select.parentElement.appendChild(alone);
  const natural = alone.getBoundingClientRect().width;
  alone.remove();
  const cell = getComputedStyle(select.parentElement);
  const frame = select.closest(".table-wrap").clientWidth;
  const room = frame - parseFloat(cell.paddingLeft) - parseFloat(cell.paddingRight);
  const table = select.closest(".table-wrap");
  const overflow = table.scrollWidth - table.clientWidth;
  return {placed: select.getBoundingClientRect().width, natural, room, overflow};
}"""
PHONE = {"width": 390, "height": 844}


def _group_picker_fits(page: Page, shots: Path, kind: str, phase: str, language: str) -> None:
    """The group select is as wide as its longest option (it was cut at 18rem: Okta's role group
    "aws#…", a count's "（4 人）" in Japanese), up to the picker's width, at a laptop's width and
    a phone's; at a laptop's the mapping also fits without scrolling. Screenshots of both."""
    card = page.locator("#step-group_users")
    for name, viewport in (("1280", SCREEN), ("390", PHONE)):
        page.set_viewport_size(viewport)
        if phase == "failed":
            card.locator("details.step-answers").evaluate("details => { details.open = true; }")
        card.locator(".mapping").screenshot(
            path=str(shots / f"{kind}-{phase}-picker-{name}-{language}.png")
        )
        for row in range(2):
            group = card.locator(f'select[name="step-group_users-groups-{row}-group"]')
            fit = group.evaluate(SELECT_FIT_JS)
            wanted = min(fit["natural"], fit["room"])
            where = f"{kind}-{phase}-{language}-{name}-row{row}"
            assert fit["placed"] >= wanted - 0.5, f"{where}: {fit}"
            if viewport == SCREEN:
                assert fit["overflow"] <= 0, f"{where}: the mapping scrolls sideways: {fit}"
    page.set_viewport_size(SCREEN)


def _offers_connect_users_choices(page: Page, phase: str) -> None:
    """The Connect users step's answers offered again (a plan waiting again, a failed step) come
    with the instance's profiles, the plan file's ticked, not text fields and a people list to
    type: the assignments step brought the people (issue 13)."""
    card = page.locator("#step-connect_users")
    if phase == "failed":
        card.locator("details.step-answers summary").click()
    expect(card.locator("form.step-form")).to_be_visible()
    profiles = card.locator('input[name="step-connect_users-security_profiles"]')
    assert profiles.count() > 1, f"{phase}: no security profiles to tick"
    expect(profiles.and_(page.locator('[value="Admin"]'))).to_be_checked()
    expect(profiles.and_(page.locator('[value="Agent"]'))).not_to_be_checked()
    routing = card.locator('select[name="step-connect_users-routing_profile"]')
    expect(routing).to_have_value("Basic Routing Profile")
    expect(card.locator('[name="step-connect_users-people_csv"]')).to_have_count(0)


def _height(page: Page) -> int:
    return int(page.evaluate("document.documentElement.scrollHeight"))


def _expect_phase(page: Page, run: SetupRun, phase: str, link: str, language: str) -> None:
    """The badge, the chain's link and the heading say the phase, in the page's language."""
    status, state = EXPECTED[phase]
    with translation.override(language):
        badge = str(RunStatus(status).label)
        state_label = str(STATE_LABELS[state])
        title = str(get_flow(run.flow_key).title)
    expect(page.locator("html")).to_have_attribute("lang", language)
    expect(page.locator("h1")).to_have_text(title)
    expect(page.locator(f"#run-status .badge--{status}")).to_contain_text(badge)
    box = page.locator(f'#run-chain [data-link="{link}"]')
    expect(box).to_have_attribute("data-state", state)
    expect(box).to_contain_text(state_label)


@pytest.mark.parametrize("language", ["en", "ja"])
def test_it_shows_each_phase_of_each_kind_of_run(
    runs: dict[str, SetupRun],
    okta_users: SetupRun,
    browser: Browser,
    live_server: Any,
    artifacts_dir: Path,
    language: str,
) -> None:
    page = _page(browser, live_server, language)
    shots = artifacts_dir / "run-page"
    shots.mkdir(exist_ok=True)
    heights = {}
    for kind, run in runs.items():
        for phase in PHASES:
            if phase == "verifying" and kind not in VERIFY_STEP:
                continue
            stop = VERIFY_STEP[kind] if phase == "verifying" else STOP_STEP[kind]
            link = "connect_users" if phase in ("verifying", "succeeded") else STOP_LINK[kind]
            shown = _copy_at(run, phase, stop)
            page.goto(f"{page.base_url}/runs/{shown.pk}/")  # type: ignore[attr-defined]
            _expect_phase(page, shown, phase, link, language)
            _reads_well(page, kind, phase, language)
            page.screenshot(path=str(shots / f"{kind}-{phase}-{language}.png"), full_page=True)
            heights[f"{kind}-{phase}"] = _height(page)
    # Okta lists each group with its number of people: the longest options of a group picker.
    for phase in ("needs-answer", "failed"):
        shown = _copy_at(okta_users, phase, "group_users")
        page.goto(f"{page.base_url}/runs/{shown.pk}/")  # type: ignore[attr-defined]
        _group_picker_fits(page, shots, "okta-users", phase, language)
    # The Connect users step stopped at, as the SSO setup's plan file answered it.
    for phase in ("needs-answer", "failed"):
        shown = _copy_at(runs["entra"], phase, "connect_users")
        page.goto(f"{page.base_url}/runs/{shown.pk}/")  # type: ignore[attr-defined]
        _expect_phase(page, shown, phase, "connect_users", language)
        _offers_connect_users_choices(page, phase)
        page.locator("#step-connect_users").screenshot(
            path=str(shots / f"entra-connect_users-{phase}-{language}.png")
        )
    print(f"run page heights ({language}): {heights}")  # noqa: T201 - the report's figures
    assert heights["entra-succeeded"] <= TWO_SCREENS_PX, heights
