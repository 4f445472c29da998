"""How browser tests start Debian's headless Chromium, and the login they sign in with."""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
# Without the networking flags Chromium keeps calling Google's hosts, which this machine refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update"]
PASSWORD = "a long test password for the browser"  # noqa: S105 - a test login
VIEWPORT = {"width": 1280, "height": 900}
# A whole flow takes 10-15 s in the sandbox; a busy CI box is slower.
STEP_TIMEOUT_MS = 60_000
