"""In headless Chromium against a live server: the users step's group picker, with Okta's groups
(its longest option: the role group `aws#<label>#<role>#<account>`, about 557 px), fits a phone's
screen (390 px) and a laptop's (1280 px) without scrolling the page or its table sideways, and
shows the chosen group whole at both, in English and in Japanese; no width up to 720 px scrolls
either (the table stacks its rows at a width of the screen's, not its frame's: see app.css);
screenshots at tests/artifacts/group-picker/(page|picker|picker-open)-<width>-<lang>.png."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser

from provisioning.connections.sandbox_registration import register_sandbox_connections
from provisioning.models import SetupRun
from sandbox.server import Sandbox
from tests.browser.test_run_page import (
    EXAMPLES,
    PHONE,
    SCREEN,
    _copy_at,
    _example,
    _page,
    _setup_sso,
)

pytestmark = [pytest.mark.browser]

# A laptop's screen and a phone's (an iPhone 14's CSS pixels).
VIEWPORTS = {"1280": SCREEN, "390": PHONE}
# How wide the page is laid out, and how far the picker's table scrolls sideways in its frame.
OVERFLOW_JS = """() => {
  const table = document.querySelector("#step-group_users .mapping .table-wrap");
  return {page: document.documentElement.scrollWidth, table: table.scrollWidth - table.clientWidth};
}"""
# The width a select takes out of the flow with no width limit: its chosen option and the arrow.
NATURAL_WIDTH_JS = """(select) => {
  const alone = select.cloneNode(true);
  alone.value = select.value;
  alone.style.cssText = "position: absolute; left: 0; top: 0; max-width: none; width: auto";
  select.parentElement.appendChild(alone);
  const natural = alone.getBoundingClientRect().width;
  alone.remove();
  return natural;
}"""


@pytest.fixture
def okta_users_waiting(sandbox: Sandbox, settings: Any, tmp_path: Path) -> SetupRun:
    """An Okta users run stopped at its group picker, for an instance whose Okta SSO setup made
    the role group `aws#…`."""
    settings.WIZARD_MODE = "sandbox"
    settings.SANDBOX_FILE = sandbox.state_dir / "sandbox.json"
    register_sandbox_connections(sandbox_file=settings.SANDBOX_FILE)
    alias = f"picker-{uuid.uuid4().hex[:8]}"
    _setup_sso(_example("okta-sandbox-group-mapping.toml", tmp_path, alias))
    lines = (EXAMPLES / "entra-sandbox-users.toml").read_text().splitlines()
    replaced = {"alias = ": f'alias = "{alias}"', "flow = ": 'flow = "okta_users"'}
    replaced["idp = "] = 'idp = "Sandbox Okta"'
    path = tmp_path / "okta-users.toml"
    path.write_text(
        "\n".join(
            next((new for start, new in replaced.items() if line.startswith(start)), line)
            for line in lines
            if not line.startswith("username_source = ")
        )
        + "\n"
    )
    return _copy_at(_setup_sso(path), "needs-answer", "group_users")


@pytest.mark.parametrize("language", ["en", "ja"])
def test_it_fits_the_group_picker_on_a_phone_and_a_laptop(
    okta_users_waiting: SetupRun,
    browser: Browser,
    live_server: Any,
    artifacts_dir: Path,
    language: str,
) -> None:
    shots = artifacts_dir / "group-picker"
    shots.mkdir(exist_ok=True)
    page = _page(browser, live_server, language)
    page.goto(f"{page.base_url}/runs/{okta_users_waiting.pk}/")  # type: ignore[attr-defined]
    card = page.locator("#step-group_users")
    group = card.locator('select[name="step-group_users-groups-0-group"]')
    longest = max(group.locator("option").all_inner_texts(), key=len)
    assert longest.startswith("aws#"), longest
    group.select_option(label=longest)
    # Every width from a small phone's to where the table stops stacking its rows (45rem): the
    # old breakpoint, a 34rem frame, let the table scroll at 640-720 px.
    scrolled = {}
    for width in range(360, 740, 20):
        page.set_viewport_size({"width": width, "height": PHONE["height"]})
        overflow = page.evaluate(OVERFLOW_JS)
        if overflow["page"] > width or overflow["table"] > 0:
            scrolled[width] = overflow
    assert not scrolled, f"{language}: the page or the picker's table scrolls sideways: {scrolled}"
    for width, viewport in VIEWPORTS.items():
        page.set_viewport_size(viewport)
        card.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / f"page-{width}-{language}.png"), full_page=True)
        card.locator(".mapping").screenshot(path=str(shots / f"picker-{width}-{language}.png"))
        overflow, where = page.evaluate(OVERFLOW_JS), f"{width}-{language}"
        assert overflow["page"] <= viewport["width"], f"{where}: the page scrolls: {overflow}"
        assert overflow["table"] <= 0, f"{where}: the table scrolls: {overflow}"
        chosen = group.bounding_box()
        other = card.locator('select[name="step-group_users-groups-1-group"]').bounding_box()
        assert chosen is not None and other is not None
        if width == "1280":
            # The longest option on one line, not cut: as wide as it takes alone.
            natural = group.evaluate(NATURAL_WIDTH_JS)
            assert chosen["width"] >= natural - 0.5, f"{language}: {chosen} < {natural}"
        else:
            # Narrower than the name, the select wraps it whole rather than cutting it.
            assert chosen["height"] > other["height"] + 10, f"{language}: {chosen}, {other}"
            group.click()
            page.screenshot(path=str(shots / f"picker-open-{width}-{language}.png"))
            page.keyboard.press("Escape")
